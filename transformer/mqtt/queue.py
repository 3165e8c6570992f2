"""The MQTT sink's table in the outbox file: its publishes kept until the broker acknowledged them.

Rows are staged by the DHT outbox's own transaction (``Outbox.add_companion``), so an event
record is on disk for both sinks or for neither, and each sink then has its own progress: the
DHT sender deletes its rows, the MQTT sender (``transformer.mqtt.sender``) its own. Published
strictly in row order (one broker connection keeps it), a row is deleted only after its PUBACK:
a crash between the two publishes it again, with the same payload and the same event id
(at-least-once; a retained state converges on the last one).

Event records in their source and group's cooldown (``transformer.mqtt.cooldown``) get no rows;
the others carry their ``incident_id`` (``transformer.mqtt.incidents``).

Capacity (the outbox's ``max_items``): when full, the oldest rows go first, each drop counted
(``audioguard_sink_dropped_total{sink="mqtt"}``) and logged as an error.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from contract.errors import InvalidConfiguration
from transformer.dht.outbox import Outbox, OutboxMessage
from transformer.metrics import SINK_DROPPED
from transformer.mqtt.cooldown import Cooldown
from transformer.mqtt.incidents import REMEMBERED_EVENTS, Incidents
from transformer.mqtt.topics import ON, MqttMessage, is_event_record, record_messages

logger = logging.getLogger(__name__)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS mqtt_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    retain INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class QueuedPublish:
    """A stored row: ``id`` is the publish order."""

    id: int
    message: MqttMessage
    created_at: float


class MqttQueue:
    """The MQTT rows of the outbox file (thread-safe); stages itself in ``outbox``'s enqueues."""

    def __init__(
        self, outbox: Outbox, cooldown: Cooldown | None = None, incidents: Incidents | None = None
    ) -> None:
        """Open the table in ``outbox``'s file and join its transactions; ``cooldown`` says which
        event records are published (default: all), ``incidents`` tags them (default: none).

        Raises:
            InvalidConfiguration: the file cannot be opened as SQLite.
        """
        self.path = outbox.path
        self.max_items = outbox.max_items
        self.cooldown = cooldown or Cooldown(0)
        self.incidents = incidents or Incidents(0)
        self._lock = threading.Lock()
        self._states_lock = threading.Lock()
        self._states: dict[str, str] = {}  # retained topic -> the last payload stored for it
        self._held: OrderedDict[str, None] = OrderedDict()  # events the cooldown kept off the bus
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise InvalidConfiguration(f"cannot open the MQTT outbox in {self.path}: {error}") from None
        outbox.add_companion(self)

    # --- writing -------------------------------------------------------------------------

    def stage(self, db: sqlite3.Connection, messages: Sequence[OutboxMessage], now: float) -> None:
        """Insert the publishes of the event records among ``messages`` (inside ``db``'s transaction)."""
        rows = []
        for message in messages:
            if not is_event_record(message.value):
                continue
            if not self.cooldown.admit(message.value):
                self._hold(str(message.value.get("event_id")))
                continue
            for publish in record_messages(self.incidents.tag(message.value)):
                rows.append((publish.topic, publish.payload, int(publish.retain), now))
        self._insert(db, rows)

    def _hold(self, event_id: str) -> None:
        with self._states_lock:
            self._held[event_id] = None
            if len(self._held) > REMEMBERED_EVENTS:
                self._held.popitem(last=False)

    def event_state(self, event_id: str) -> dict[str, Any]:
        """This sink's progress with one event (for the web page's timeline): ``pending`` while one
        of its publishes waits, ``held by the cooldown`` when it was never published, else
        ``delivered``; with the incident it belongs to, when this run tagged it."""
        with self._states_lock:
            held = event_id in self._held
        with self._lock:
            waiting = self._db.execute(
                # state rows hold ON/OFF, not JSON: json_extract would raise on them
                "SELECT 1 FROM mqtt_outbox WHERE CASE WHEN json_valid(payload)"
                " THEN json_extract(payload, '$.event_id') END = ? LIMIT 1",
                (event_id,),
            ).fetchone()
        state = "held by the cooldown" if held else "pending" if waiting else "delivered"
        return {"state": state, "incident_id": self.incidents.incident_of(event_id)}

    def enqueue(self, messages: Sequence[MqttMessage]) -> None:
        """Store publishes of this sink alone (e.g. the OFF states at a start), on disk when this returns."""
        now = time.time()
        rows = [(message.topic, message.payload, int(message.retain), now) for message in messages]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._insert(self._db, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def is_on(self, topic: str) -> bool:
        """The last state this process stored for ``topic`` is ON."""
        with self._states_lock:
            return self._states.get(topic) == ON

    def _insert(self, db: sqlite3.Connection, rows: Sequence[tuple[str, str, int, float]]) -> None:
        if not rows:
            return
        with self._states_lock:
            self._states.update((topic, payload) for topic, payload, retain, _ in rows if retain)
        db.executemany(
            "INSERT INTO mqtt_outbox (topic, payload, retain, created_at) VALUES (?, ?, ?, ?)", rows
        )
        (count,) = db.execute("SELECT COUNT(*) FROM mqtt_outbox").fetchone()
        excess = int(count) - self.max_items
        if excess > 0:
            db.execute(
                "DELETE FROM mqtt_outbox WHERE id IN (SELECT id FROM mqtt_outbox ORDER BY id LIMIT ?)",
                (excess,),
            )
            SINK_DROPPED.labels(sink="mqtt").inc(excess)
            logger.error(
                "MQTT outbox full: dropped its %d oldest unpublished message(s); raise outbox_max_items "
                "or restore the MQTT broker",
                excess,
            )

    def mark_published(self, ids: Sequence[int]) -> None:
        """Delete rows the broker acknowledged (ids already gone are ignored)."""
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM mqtt_outbox WHERE id = ?", [(i,) for i in ids])

    # --- reading -------------------------------------------------------------------------

    def next_rows(self, after_id: int, limit: int) -> list[QueuedPublish]:
        """Up to ``limit`` rows after ``after_id``, in publish order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain, created_at FROM mqtt_outbox WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [QueuedPublish(row[0], MqttMessage(row[1], row[2], bool(row[3])), row[4]) for row in rows]

    def backlog(self) -> tuple[int, float | None]:
        """Rows waiting and the UNIX time of the oldest (None when empty)."""
        with self._lock:
            count, oldest = self._db.execute("SELECT COUNT(*), MIN(created_at) FROM mqtt_outbox").fetchone()
        return int(count), None if oldest is None else float(oldest)

    def close(self) -> None:
        with self._lock:
            self._db.close()
