"""The durable SQLite outbox: DHT messages kept until the broker acknowledged them.

Why: an anomaly must reach the SIFIS DHT even when the broker is down or
restarting, and even when this process dies. ``Outbox.enqueue_many`` commits
with SQLite in WAL mode and ``synchronous=FULL``, so the message is on disk
(fsync) before the caller's response goes out. The sender (``transformer.dht.sender``)
delivers in the background and deletes a row only after the DHT acknowledged it; a crash between
the acknowledgement and the delete means the message is sent again (duplicates
are acceptable, loss is not).

Ordering: messages of one ``topic_name`` are delivered strictly in enqueue
order; a failing head blocks only its own topic, others continue.

Capacity (``max_items``), when full:
1. the oldest *result* message is dropped to make room;
2. if only anomalies are stored, a new result is not stored;
3. if only anomalies are stored, a new anomaly replaces the oldest anomaly.
Every drop increments ``audioguard_outbox_dropped_total{kind}``; dropping an
anomaly is also logged as an error naming it. Anomalies are never dropped while
a result could be dropped instead.

Other sinks (``transformer.mqtt``) keep their own table in the same file, with their own
delivery progress, so one sink's outage never holds up another: a ``Companion`` stages its
rows inside the very transaction that stores the DHT's, so a record reaches every sink's
table or none. ``dht=False`` (no DHT configured) stores the companions' rows only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from contract.errors import InvalidConfiguration
from transformer.dht.outbox_schema import COLUMNS, HEADS_QUERY, RECOUNT, SCHEMA
from transformer.metrics import DEAD_LETTERS, OUTBOX_DEPTH, OUTBOX_DROPPED

logger = logging.getLogger(__name__)

Kind = Literal["anomaly", "result"]
KINDS: Final[tuple[Kind, ...]] = ("anomaly", "result")


@dataclass(frozen=True)
class OutboxMessage:
    """A message to store: ``value`` (JSON-ready) goes to (topic_name, topic_uuid)."""

    topic_name: str
    topic_uuid: str
    value: Any
    kind: Kind


@dataclass(frozen=True)
class StoredMessage:
    """A row of the outbox.

    Attributes:
        id: enqueue order (autoincrement, never reused).
        created_at: UNIX time of the enqueue.
        attempts: failed delivery attempts so far.
        next_attempt_at: UNIX time before which the sender does not retry it.
    """

    id: int
    topic_name: str
    topic_uuid: str
    value: Any
    kind: Kind
    created_at: float
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True)
class _Drop:
    """A message lost to the capacity policy (``refused_incoming``: the new one itself)."""

    kind: Kind
    topic_name: str
    topic_uuid: str
    refused_incoming: bool


class Companion(Protocol):
    """Another sink's table in the outbox file, written in the outbox's transactions."""

    def stage(self, db: sqlite3.Connection, messages: Sequence[OutboxMessage], now: float) -> None:
        """Insert this sink's rows for ``messages`` with ``db`` (inside the open transaction)."""


def _stored(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])


class Outbox:
    """The SQLite outbox file; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path, max_items: int, *, dht: bool = True) -> None:
        """Open (or create) the outbox at ``path``; ``dht=False``: store no DHT rows (the
        companions' only).

        Raises:
            InvalidConfiguration: the file cannot be created or opened as SQLite.
        """
        if max_items < 1:
            raise InvalidConfiguration(f"outbox_max_items must be at least 1, got {max_items}")
        self.path = Path(path)
        self.max_items = max_items
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._companions: list[Companion] = []
        self.dht = dht
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            # FULL: every commit fsyncs the WAL before returning
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._db.execute(RECOUNT)
        except (OSError, sqlite3.Error) as error:
            raise InvalidConfiguration(f"cannot open the DHT outbox {self.path}: {error}") from None
        if mode.lower() != "wal":
            logger.warning(
                "outbox %s: journal mode is %s, not WAL (file system without WAL support?)", path, mode
            )
        self._publish_depth()
        if len(self):
            logger.info("outbox %s holds %d undelivered message(s)", self.path, len(self))

    # --- writing -----------------------------------------------------------------------

    def enqueue_many(self, messages: Sequence[OutboxMessage]) -> list[int | None]:
        """Store messages in one transaction, on disk (fsync) when this returns.

        Returns:
            The id of each message, in order; None for a result refused because
            the outbox is full of anomalies.

        Raises:
            ValueError: a value is not JSON-serialisable (NaN included) or a kind is unknown.
            sqlite3.Error: the write failed (nothing of this call was stored).
        """
        rows = []
        for message in messages:
            if message.kind not in KINDS:
                raise ValueError(f"unknown outbox message kind {message.kind!r}")
            rows.append((message, json.dumps(message.value, allow_nan=False, separators=(",", ":"))))
        now = time.time()
        ids: list[int | None] = []
        drops: list[_Drop] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # read inside the write transaction: exact whoever wrote before (threads, processes)
                counts = self._read_counts()
                for message, text in rows if self.dht else []:
                    if sum(counts.values()) >= self.max_items:
                        drop = self._make_room(message, counts)
                        drops.append(drop)
                        if drop.refused_incoming:
                            ids.append(None)
                            continue
                    cursor = self._db.execute(
                        "INSERT INTO outbox (topic_name, topic_uuid, value, kind, created_at,"
                        " next_attempt_at) VALUES (?, ?, ?, ?, ?, 0)",
                        (message.topic_name, message.topic_uuid, text, message.kind, now),
                    )
                    ids.append(cursor.lastrowid)
                    counts[message.kind] += 1
                if not self.dht:
                    ids = [None] * len(rows)
                for companion in self._companions:
                    companion.stage(self._db, messages, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._report_drops(drops)
        self._publish_depth()
        for listener in list(self._listeners):
            listener()
        return ids

    def _make_room(self, incoming: OutboxMessage, counts: dict[str, int]) -> _Drop:
        """Apply the capacity policy for one incoming message (inside the transaction)."""
        drop_order: tuple[Kind, ...] = ("result", "anomaly")
        for kind in drop_order:
            row = self._db.execute(
                "SELECT id, topic_name, topic_uuid FROM outbox WHERE kind = ? ORDER BY id LIMIT 1", (kind,)
            ).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
                counts[kind] -= 1
                return _Drop(kind, row[1], row[2], refused_incoming=False)
            if incoming.kind == "result":
                # only anomalies left: a result never pushes one out
                break
        return _Drop("result", incoming.topic_name, incoming.topic_uuid, refused_incoming=True)

    @staticmethod
    def _report_drops(drops: list[_Drop]) -> None:
        for drop in drops:
            OUTBOX_DROPPED.labels(kind=drop.kind).inc()
            if drop.kind == "anomaly":
                logger.error(
                    "DHT outbox full of anomalies: dropped the oldest undelivered anomaly %s/%s; "
                    "raise outbox_max_items or restore the DHT connection",
                    drop.topic_name,
                    drop.topic_uuid,
                )
            elif drop.refused_incoming:
                logger.warning("DHT outbox full of anomalies: a new result was not stored")
            else:
                logger.warning("DHT outbox full: dropped the oldest undelivered result %s", drop.topic_name)

    def mark_delivered(self, message_id: int) -> None:
        """Delete a message the DHT acknowledged (no-op if already gone)."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
        self._publish_depth()

    def bury(self, message_id: int, reason: str) -> str | None:
        """Move a message the DHT refused for good to the dead letters (kept, listed, re-sendable),
        so later messages of its topic go on; returns its kind (None if it was gone)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "INSERT INTO dead_letters SELECT id, topic_name, topic_uuid, value, kind, created_at,"
                    " attempts + 1, ?, ? FROM outbox WHERE id = ? RETURNING kind",
                    (time.time(), reason, message_id),
                ).fetchone()
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._publish_depth()
        return None if row is None else str(row[0])

    def mark_failed(self, message_id: int, next_attempt_at: float) -> None:
        """Count a failed attempt and schedule the next one."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                (next_attempt_at, message_id),
            )

    def reschedule_all(self, next_attempt_at: float = 0.0) -> None:
        """Make every message due at ``next_attempt_at`` (a restarted sender retries at once)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET next_attempt_at = ?", (next_attempt_at,))

    # --- reading -----------------------------------------------------------------------

    def heads(self) -> list[StoredMessage]:
        """The oldest message of every topic_name, in id order (only these may be sent)."""
        with self._lock:
            rows = self._db.execute(HEADS_QUERY).fetchall()
        return [_stored(row) for row in rows]

    def pending(self) -> list[StoredMessage]:
        """Every stored message in id order."""
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM outbox ORDER BY id").fetchall()
        return [_stored(row) for row in rows]

    def event_state(self, event_id: str) -> str:
        """The DHT's progress with one event's records: ``pending`` while one waits, ``dead letter``
        once one was refused for good, else ``delivered``."""
        query = "SELECT 1 FROM {} WHERE json_extract(value, '$.event_id') = ? LIMIT 1"
        with self._lock:
            waiting = self._db.execute(query.format("outbox"), (event_id,)).fetchone()
            buried = self._db.execute(query.format("dead_letters"), (event_id,)).fetchone()
        return "pending" if waiting else "dead letter" if buried else "delivered"

    def _read_counts(self) -> dict[str, int]:
        counts = dict(self._db.execute("SELECT kind, n FROM outbox_counts").fetchall())
        return {kind: int(counts.get(kind, 0)) for kind in KINDS}

    def depth(self) -> dict[str, int]:
        """Stored messages by kind."""
        with self._lock:
            return self._read_counts()

    def oldest_created_at(self) -> float | None:
        """UNIX time of the oldest stored message (None when empty)."""
        with self._lock:
            row = self._db.execute("SELECT created_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def dead_letter_depth(self) -> dict[str, int]:
        """Dead letters by kind."""
        with self._lock:
            counts = dict(self._db.execute("SELECT kind, COUNT(*) FROM dead_letters GROUP BY kind"))
        return {kind: int(counts.get(kind, 0)) for kind in KINDS}

    def __len__(self) -> int:
        return sum(self.depth().values())

    def _publish_depth(self) -> None:
        depth, dead = self.depth(), self.dead_letter_depth()
        for kind in KINDS:
            OUTBOX_DEPTH.labels(kind=kind).set(depth[kind])
            DEAD_LETTERS.labels(kind=kind).set(dead[kind])

    # --- plumbing ------------------------------------------------------------------------

    def add_companion(self, companion: Companion) -> None:
        """Have ``companion`` stage its rows in every later enqueue's transaction."""
        self._companions.append(companion)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the enqueuing thread) after every committed enqueue."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def close(self) -> None:
        with self._lock:
            self._db.close()
