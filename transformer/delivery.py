"""What the transformer posts to the SIFIS DHT for one analysis, via the durable outbox.

Per analysis (``DeliveryService.record``, called before the response returns):

- the **result** value, what SIFIS consumers read today (``description``,
  ``requestor_id``, ``requestor_type``, ``request_id``, ``analyzer_id``,
  ``analysis_id``, ``audio_file``, ``method``, ``predictions``) plus
  ``anomalies``, to ``SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results`` /
  ``Audio_Anomaly_Detection_Results``. The uuid is constant, so each result
  overwrites the previous one in the DHT (as the Analytics-API does). Posted for
  every analysis (``post_mode="all"``) or only when an anomaly was found
  (``"anomalies"``, the default).
- one **anomaly event** per detected anomaly, always, to ``SIFIS:Audio_Anomaly``
  with its own ``topic_uuid`` (a UUIDv5 of analysis id, group and window), so
  events never overwrite each other and a re-sent duplicate lands on the same key.

Message shapes are documented in docs/anomalies-and-dht.md.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from audioguard.errors import InvalidConfiguration, ServiceNotReady
from transformer.anomalies import Anomaly
from transformer.dht import make_dht_client
from transformer.outbox import Outbox, OutboxMessage, OutboxSender
from transformer.settings import TransformerSettings

logger = logging.getLogger(__name__)


def _default(field: str) -> str:
    return str(TransformerSettings.model_fields[field].default)


#: (topic_name, topic_uuid) of results and the anomaly topic_name: the settings' defaults
RESULTS_TOPIC: Final = (_default("dht_results_topic"), _default("dht_results_uuid"))
ANOMALY_TOPIC: Final = _default("dht_anomaly_topic")
#: the fields SIFIS consumers of the result topic read
RESULT_FIELDS: Final = (
    "description",
    "requestor_id",
    "requestor_type",
    "request_id",
    "analyzer_id",
    "analysis_id",
    "audio_file",
    "method",
    "predictions",
)
#: copied from the result into every anomaly event so it stands on its own
_CONTEXT_FIELDS: Final = (
    "analyzer_id",
    "analysis_id",
    "requestor_id",
    "requestor_type",
    "request_id",
    "audio_file",
    "method",
)
#: fixed namespace: the same (analysis, group, window) always gives the same event uuid
EVENT_NAMESPACE: Final = uuid.UUID("6f1d3c2a-8e4b-5a7c-9d0e-a1b2c3d4e5f6")

PostMode = Literal["anomalies", "all"]


def anomaly_event_uuid(analysis_id: str, anomaly: Anomaly) -> str:
    """The topic_uuid of one anomaly event: UUIDv5 of analysis id, group and window index."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{analysis_id}\n{anomaly.group}\n{anomaly.window_index}"))


def anomaly_event_value(result_value: Mapping[str, Any], anomaly: Anomaly, event_uuid: str) -> dict[str, Any]:
    """The value posted to the anomaly topic: the anomaly, its event id and the analysis context."""
    return {
        "description": f"Audio anomaly: {anomaly.label}",
        "event_id": event_uuid,
        **anomaly.to_dict(),
        **{field: result_value[field] for field in _CONTEXT_FIELDS if field in result_value},
        "detected_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def build_messages(
    result_value: Mapping[str, Any],
    anomalies: Sequence[Anomaly],
    *,
    post_mode: PostMode = "anomalies",
    results_topic: tuple[str, str] = RESULTS_TOPIC,
    anomaly_topic: str = ANOMALY_TOPIC,
) -> list[OutboxMessage]:
    """The outbox messages for one analysis: anomaly events first, then the result if posted.

    Raises:
        ValueError: ``result_value`` lacks one of ``RESULT_FIELDS``.
    """
    missing = [field for field in RESULT_FIELDS if field not in result_value]
    if missing:
        raise ValueError(f"the SIFIS result value lacks {', '.join(missing)}")
    analysis_id = str(result_value["analysis_id"])
    messages = []
    for anomaly in anomalies:
        event_uuid = anomaly_event_uuid(analysis_id, anomaly)
        messages.append(
            OutboxMessage(
                anomaly_topic, event_uuid, anomaly_event_value(result_value, anomaly, event_uuid), "anomaly"
            )
        )
    if post_mode == "all" or anomalies:
        value = {**result_value, "anomalies": [anomaly.to_dict() for anomaly in anomalies]}
        messages.append(OutboxMessage(results_topic[0], results_topic[1], value, "result"))
    return messages


class DeliveryService:
    """Records each analysis in the outbox; its sender (if any) posts to the DHT in the background."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        post_mode: PostMode = "anomalies",
        results_topic: tuple[str, str] = RESULTS_TOPIC,
        anomaly_topic: str = ANOMALY_TOPIC,
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
        if not messages:
            return
        try:
            self.outbox.enqueue_many(messages)
        except sqlite3.Error as error:
            logger.error("cannot write the DHT outbox %s: %s", self.outbox.path, error)
            raise ServiceNotReady(
                f"the anomaly outbox could not be written ({error}); the result was not recorded"
            ) from None

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
