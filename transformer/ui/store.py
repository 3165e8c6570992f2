"""The page's bounded local store (SQLite): live windows' scores and the event records.

The outbox deletes a record once it is delivered, so the page keeps its own copy for its
timeline, and each window's group scores for the score history and the threshold control.
Numbers only: never audio, never anything derived from it that identifies it (no hash). Rows
older than the retention (1-24 h) are deleted as new ones arrive. Written from the monitor's
worker threads, read by the page's handlers (one connection, one lock).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from transformer.analysis.events import EventChange
from transformer.analysis.record_context import RecordContext
from transformer.analysis.records import event_record
from transformer.monitor.window_scores import WindowScores

#: Seconds between two deletions of expired rows.
PRUNE_EVERY_SECONDS: Final = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    source TEXT NOT NULL, session TEXT NOT NULL, segment INTEGER NOT NULL,
    start_seconds REAL NOT NULL, end_seconds REAL NOT NULL, at REAL NOT NULL,
    level_dbfs REAL, group_set INTEGER NOT NULL, scores BLOB
);
CREATE TABLE IF NOT EXISTS group_sets (id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE);
CREATE INDEX IF NOT EXISTS windows_by_source ON windows (source, at);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, source TEXT NOT NULL, grp TEXT NOT NULL, at REAL NOT NULL,
    ended INTEGER NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
"""


class UiStore:
    """Window scores and event records of the last ``retention_hours``."""

    def __init__(self, path: Path | str, retention_hours: float) -> None:
        """``path``: the SQLite file (``:memory:`` for none on disk)."""
        if not 1 <= retention_hours <= 24:
            raise ValueError(f"the retention must be 1-24 hours, got {retention_hours}")
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.retention_seconds = retention_hours * 3600
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._pruned = 0.0
        self._sets: dict[str, int] = {}
        # the sources with windows (read once here, then kept as they come: no scan per prune)
        self._sources = {row[0] for row in self._db.execute("SELECT DISTINCT source FROM windows")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writes (the monitor's worker threads) ----------------------------------------------

    def add_windows(self, windows: Sequence[WindowScores]) -> None:
        """Store windows (a replayed file's, without a clock, dated now). The scores go as float32
        (the predictor's own precision: lossless), under their group names' set."""
        now = time.time()
        with self._lock:
            rows = [
                (
                    w.source,
                    w.session,
                    w.segment,
                    w.start_seconds,
                    w.end_seconds,
                    now if w.at is None else w.at,
                    w.level_dbfs,
                    self._group_set(list(w.thresholds if w.scores is None else w.scores)),
                    None if w.scores is None else np.array(list(w.scores.values()), "<f4").tobytes(),
                )
                for w in windows
            ]
            self._db.executemany("INSERT INTO windows VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self._sources.update(w.source for w in windows)
        self._prune()

    def _group_set(self, names: list[str]) -> int:
        """The id of a list of group names (held under the lock)."""
        key = "\n".join(names)
        known = self._sets.get(key)
        if known is None:
            self._db.execute("INSERT OR IGNORE INTO group_sets (names) VALUES (?)", (key,))
            row = self._db.execute("SELECT id FROM group_sets WHERE names = ?", (key,)).fetchone()
            known = self._sets[key] = int(row[0])
        return known

    def add_events(self, changes: Sequence[EventChange], context: RecordContext) -> None:
        """Each change's record (``analysis.records.event_record``: a start, then its end replacing it)."""
        now = time.time()
        with self._lock:
            for change in changes:
                # the record the outbox gets (one schema), and when the service recorded it
                record = {**event_record(change, context), "recorded_at": now}
                ended = change.change == "end"
                at = _epoch(change.started_at) or now
                self._db.execute(
                    "INSERT INTO events VALUES (?,?,?,?,?,?) ON CONFLICT(event_id) DO UPDATE SET "
                    "ended=excluded.ended, record=excluded.record",
                    (change.event_id, change.source, change.group, at, int(ended), json.dumps(record)),
                )
        self._prune()

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned < PRUNE_EVERY_SECONDS:
            return
        self._pruned = now
        oldest = now - self.retention_seconds
        with self._lock:
            for source in self._sources:  # by source: the (source, at) index finds the expired rows
                self._db.execute("DELETE FROM windows WHERE source = ? AND at < ?", (source, oldest))
            self._db.execute("DELETE FROM events WHERE at < ?", (oldest,))

    # --- reads (the page's handlers) -----------------------------------------------------------

    def windows(self, source: str, since: float) -> list[WindowScores]:
        """The source's windows since an epoch, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, session, segment, start_seconds, end_seconds, at, level_dbfs, names, "
                "scores FROM windows JOIN group_sets ON group_sets.id = windows.group_set "
                "WHERE source = ? AND at >= ? ORDER BY windows.rowid",
                (source, since),
            ).fetchall()
        return [_window(row) for row in rows]

    def events(self, since: float) -> list[dict[str, Any]]:
        """Every event record that started since an epoch, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM events WHERE at >= ? ORDER BY at DESC", (since,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def size_bytes(self) -> int:
        with self._lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)


def _window(row: Sequence[Any]) -> WindowScores:
    """A stored window (its thresholds are not stored: the live ones are the source's)."""
    source, session, segment, start, end, at, level, names, scores = row
    values = None if scores is None else np.frombuffer(scores, "<f4").tolist()
    groups = names.split("\n") if names else []
    return WindowScores(
        source, session, segment, start, end, at, level,
        None if values is None else dict(zip(groups, values, strict=True)), {},
    )  # fmt: skip


def _epoch(iso: str | None) -> float | None:
    if iso is None:
        return None
    return datetime.fromisoformat(iso).timestamp()
