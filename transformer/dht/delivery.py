"""Records each analysis in the durable outbox and runs the sender that posts it to the DHT.

What is posted: per analysed recording, a start and an end record per anomaly
event (``transformer.analysis.records``: one schema for recordings and live
sources), always, and the recording's analysis value for every analysis
(``post_mode="all"``) or only when an event was found (``"anomalies"``, the
default). A listening source's starts and ends go the same way
(``record_events``), and its mode changes (``record_mode_changes``, ``SIFIS:Audio_Mode``).
Each returns once the messages are on disk.

Other sinks (the MQTT one, ``transformer.mqtt``) keep their rows in the same outbox file,
staged in the same transaction (``Outbox.add_companion``); their senders are started and
stopped here with the DHT's. Without a DHT (``Outbox(dht=False)``, no sender) only they get rows.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from contract.errors import InvalidConfiguration, ServiceNotReady
from transformer.analysis.events import EventChange
from transformer.analysis.mode_records import mode_record
from transformer.analysis.modes import ModeChange
from transformer.analysis.record_context import RecordContext
from transformer.analysis.records import event_record, recording_event_records
from transformer.analysis.types import AnalysisResult
from transformer.dht.outbox import Outbox, OutboxMessage
from transformer.dht.records import PostMode, analysis_messages, event_messages, mode_messages
from transformer.dht.sender import OutboxSender
from transformer.dht.topics import ANOMALY_TOPIC_NAME, MODE_TOPIC_NAME, RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID

logger = logging.getLogger(__name__)


class BackgroundSender(Protocol):
    """Another sink's sender: started on the server's loop, stopped before the outbox closes."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        """One status line (``GET /v1/monitor``'s ``sinks``); blocking (reads the outbox)."""

    def event_delivery(self, event_id: str) -> dict[str, Any]:
        """This sink's state for one event (``sink``, ``state``, maybe more); blocking."""


class DeliveryService:
    """Records each analysis in the outbox; its sender (if any) posts to the DHT in the background."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        post_mode: PostMode = "anomalies",
        results_topic: tuple[str, str] = (RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID),
        anomaly_topic: str = ANOMALY_TOPIC_NAME,
        sender: OutboxSender | None = None,
        mode_topic: str = MODE_TOPIC_NAME,
        others: Sequence[BackgroundSender] = (),
    ) -> None:
        if post_mode not in ("anomalies", "all"):
            raise InvalidConfiguration(f"dht_post must be 'anomalies' or 'all', got {post_mode!r}")
        self.outbox = outbox
        self.post_mode: PostMode = post_mode
        self.results_topic = results_topic
        self.anomaly_topic = anomaly_topic
        self.sender = sender
        self.mode_topic = mode_topic
        self.others = tuple(others)

    def record_analysis(self, result: AnalysisResult) -> None:
        """Store what one analysed recording posts (its event records and its analysis value),
        durably (fsync), in one transaction.

        Synchronous and blocking (one SQLite commit, a few ms): call it from a
        worker thread before the response is returned.

        Raises:
            ServiceNotReady: the outbox could not be written (503: nothing was stored).
        """
        messages = analysis_messages(
            result.sifis_value,
            recording_event_records(result),
            post_mode=self.post_mode,
            results_topic=self.results_topic,
            anomaly_topic=self.anomaly_topic,
        )
        self._store(messages, "the result was not recorded")

    def record_events(self, changes: Sequence[EventChange], context: RecordContext) -> None:
        """Store the starts and ends of a listening source's events, durably, in one transaction.

        Raises:
            ServiceNotReady: the outbox could not be written (nothing was stored).
        """
        records = [event_record(change, context) for change in changes]
        messages = event_messages(records, anomaly_topic=self.anomaly_topic)
        self._store(messages, "the events were not recorded")

    def record_mode_changes(self, changes: Sequence[ModeChange], context: RecordContext) -> None:
        """Store live sources' mode changes, durably, in one transaction (ServiceNotReady if not)."""
        records = [mode_record(change, context) for change in changes]
        self._store(mode_messages(records, mode_topic=self.mode_topic), "the mode changes were not recorded")

    def _store(self, messages: Sequence[OutboxMessage], lost: str) -> None:
        """All of ``messages`` in one transaction, or ServiceNotReady saying what was lost."""
        if not messages:
            return
        try:
            self.outbox.enqueue_many(messages)
        except sqlite3.Error as error:
            logger.error("cannot write the DHT outbox %s: %s", self.outbox.path, error)
            raise ServiceNotReady(f"the anomaly outbox could not be written ({error}); {lost}") from None

    def sink_status(self) -> list[dict[str, Any]]:
        """One line per sink: the DHT's (connected: None until its first post), then the others'."""
        lines = []
        if self.outbox.dht:
            sender = self.sender
            lines.append(
                {
                    "sink": "dht",
                    "connected": None if sender is None else sender.connected,
                    "pending": len(self.outbox),
                    "oldest_pending_seconds": None
                    if sender is None
                    else round(sender.oldest_pending_seconds(), 3),
                    "delivered": None if sender is None else sender.delivered,
                    "failures": None if sender is None else sender.failures,
                    "dead_letters": sum(self.outbox.dead_letter_depth().values()),
                    "last_error": None if sender is None else sender.last_error,
                }
            )
        return lines + [other.status() for other in self.others]

    def event_delivery(self, event_id: str) -> list[dict[str, Any]]:
        """Each sink's state for one event (the web page's timeline); blocking (reads the outbox)."""
        lines = [{"sink": "dht", "state": self.outbox.event_state(event_id)}] if self.outbox.dht else []
        return lines + [other.event_delivery(event_id) for other in self.others]

    async def start(self) -> None:
        """Start the background sender on the running loop (call once the server's loop runs)."""
        if self.sender is not None:
            await self.sender.start()
        for other in self.others:
            await other.start()

    async def stop(self) -> None:
        """Stop the senders and close the DHT client and the outbox; pending messages stay stored."""
        for other in self.others:
            await other.stop()
        if self.sender is not None:
            await self.sender.stop()
            await self.sender.client.aclose()
        self.outbox.close()
