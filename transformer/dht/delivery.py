"""Records each analysis in the durable outbox and runs the sender that posts it to the DHT.

What is posted (``transformer.dht.records``): per analysis, one anomaly event
per anomaly, always, and the result value for every analysis
(``post_mode="all"``) or only when an anomaly was found (``"anomalies"``, the
default). ``record`` returns once the messages are on disk. A listening source's
event starts and ends (``transformer.dht.live_records``) go the same way
(``record_events``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from contract.errors import InvalidConfiguration, ServiceNotReady
from transformer.analysis.anomalies import Anomaly
from transformer.analysis.events import EventChange
from transformer.analysis.types import AnalysisResult
from transformer.dht.clients import make_dht_client
from transformer.dht.live_records import live_event_messages
from transformer.dht.outbox import Outbox, OutboxMessage
from transformer.dht.records import PostMode, build_messages, result_value
from transformer.dht.sender import OutboxSender
from transformer.dht.topics import ANOMALY_TOPIC_NAME, RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID
from transformer.settings import TransformerSettings

logger = logging.getLogger(__name__)


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
    ) -> None:
        if post_mode not in ("anomalies", "all"):
            raise InvalidConfiguration(f"dht_post must be 'anomalies' or 'all', got {post_mode!r}")
        self.outbox = outbox
        self.post_mode: PostMode = post_mode
        self.results_topic = results_topic
        self.anomaly_topic = anomaly_topic
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: TransformerSettings) -> DeliveryService:
        """Outbox at ``outbox_path``, DHT client per ``dht_transport``, topics and post mode
        from the settings, and its sender.

        Raises:
            InvalidConfiguration: ``dht_url`` is unset or invalid, or the outbox cannot be opened.
        """
        if not settings.dht_url:
            raise InvalidConfiguration("DHT delivery needs dht_url (e.g. http://localhost:3000)")
        try:
            client = make_dht_client(settings.dht_url, settings.dht_transport, settings.dht_timeout_seconds)
        except ValueError as error:
            raise InvalidConfiguration(str(error)) from None
        outbox = Outbox(settings.outbox_path, settings.outbox_max_items)
        return cls(
            outbox,
            post_mode=settings.dht_post,
            results_topic=(settings.dht_results_topic, settings.dht_results_uuid),
            anomaly_topic=settings.dht_anomaly_topic,
            sender=OutboxSender(outbox, client),
        )

    def record(self, result_value: Mapping[str, Any], anomalies: Sequence[Anomaly]) -> None:
        """Store what this analysis posts, durably (fsync), in one transaction.

        Synchronous and blocking (one SQLite commit, a few ms): call it from a
        worker thread before the response is returned.

        Raises:
            ValueError: ``result_value`` lacks a SIFIS field.
            ServiceNotReady: the outbox could not be written (503: nothing was stored).
        """
        messages = build_messages(
            result_value,
            anomalies,
            post_mode=self.post_mode,
            results_topic=self.results_topic,
            anomaly_topic=self.anomaly_topic,
        )
        self._store(messages, "the result was not recorded")

    def record_events(self, changes: Sequence[EventChange], context: Mapping[str, Any]) -> None:
        """Store the starts and ends of a listening source's events, durably, in one transaction.

        Raises:
            ServiceNotReady: the outbox could not be written (nothing was stored).
        """
        messages = live_event_messages(changes, context, anomaly_topic=self.anomaly_topic)
        self._store(messages, "the events were not recorded")

    def _store(self, messages: Sequence[OutboxMessage], lost: str) -> None:
        """All of ``messages`` in one transaction, or ServiceNotReady saying what was lost."""
        if not messages:
            return
        try:
            self.outbox.enqueue_many(messages)
        except sqlite3.Error as error:
            logger.error("cannot write the DHT outbox %s: %s", self.outbox.path, error)
            raise ServiceNotReady(f"the anomaly outbox could not be written ({error}); {lost}") from None

    def record_analysis(self, result: AnalysisResult, anomalies: Sequence[Anomaly]) -> None:
        """``record`` for one finished analysis (its SIFIS result value and its anomalies)."""
        self.record(result_value(result), anomalies)

    async def start(self) -> None:
        """Start the background sender on the running loop (call once the server's loop runs)."""
        if self.sender is not None:
            await self.sender.start()

    async def stop(self) -> None:
        """Stop the sender and close the DHT client and the outbox; pending messages stay stored."""
        if self.sender is not None:
            await self.sender.stop()
            await self.sender.client.aclose()
        self.outbox.close()
