"""Finished record values (``transformer.analysis.records``) wrapped into outbox messages.

- An **event record** (a start or an end) goes to ``SIFIS:Audio_Anomaly`` under its own
  ``topic_uuid`` (UUIDv5 of the event id and the change), so a start is never overwritten by
  its end, records never overwrite each other, and a re-sent duplicate lands on the same key.
- The **analysis value** of a recording goes to ``SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results``
  / ``Audio_Anomaly_Detection_Results``, so each result overwrites the previous one (as the
  Analytics-API does).

Nothing here decides a field: docs/anomalies-and-dht.md documents the values.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from transformer.dht.outbox import OutboxMessage
from transformer.dht.topics import ANOMALY_TOPIC_NAME, MODE_TOPIC_NAME, RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID

PostMode = Literal["anomalies", "all"]


def event_topic_uuid(record: Mapping[str, Any]) -> str:
    """The topic uuid of one start or end record: UUIDv5 of its event id and its change."""
    return str(uuid.uuid5(uuid.UUID(str(record["event_id"])), str(record["change"])))


def event_messages(
    records: Sequence[Mapping[str, Any]], *, anomaly_topic: str = ANOMALY_TOPIC_NAME
) -> list[OutboxMessage]:
    """One outbox message per event record, in order."""
    return [
        OutboxMessage(anomaly_topic, event_topic_uuid(record), dict(record), "anomaly") for record in records
    ]


def mode_messages(
    records: Sequence[Mapping[str, Any]], *, mode_topic: str = MODE_TOPIC_NAME
) -> list[OutboxMessage]:
    """One outbox message per mode change record, under its own ``record_id`` (kept like an event's:
    a full outbox drops results first)."""
    return [
        OutboxMessage(mode_topic, str(record["record_id"]), dict(record), "anomaly") for record in records
    ]


def analysis_messages(
    value: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    *,
    post_mode: PostMode = "anomalies",
    results_topic: tuple[str, str] = (RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID),
    anomaly_topic: str = ANOMALY_TOPIC_NAME,
) -> list[OutboxMessage]:
    """The messages of one analysed recording: its event records first, then its analysis value
    when ``post_mode`` is "all" or it had an event."""
    messages = event_messages(records, anomaly_topic=anomaly_topic)
    if post_mode == "all" or records:
        messages.append(OutboxMessage(results_topic[0], results_topic[1], dict(value), "result"))
    return messages
