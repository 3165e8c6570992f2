"""The messages a listening source posts to the SIFIS DHT: one per event start and end.

Each goes to ``SIFIS:Audio_Anomaly`` (as the anomalies of an uploaded file do) under its own
topic uuid (the event's id and the change), so a start is never overwritten by its end and a
replay of the same stream posts the same uuids. The value carries the source's name, the
event's start (and end), its peak score and triggering classes, the privacy method applied
to the stream and the weights verdict.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from transformer.analysis.events import EventChange
from transformer.dht.outbox import OutboxMessage
from transformer.dht.topics import ANOMALY_TOPIC_NAME


def live_event_uuid(change: EventChange) -> str:
    """The topic uuid of one start or end: UUIDv5 of the event id and the change."""
    return str(uuid.uuid5(uuid.UUID(change.event_id), change.change))


def live_event_messages(
    changes: Sequence[EventChange], context: Mapping[str, Any], *, anomaly_topic: str = ANOMALY_TOPIC_NAME
) -> list[OutboxMessage]:
    """Outbox messages for ``changes``; ``context`` adds fields to each value (analyzer id,
    privacy method, weights verdict)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return [
        OutboxMessage(
            anomaly_topic,
            live_event_uuid(change),
            {
                "description": f"Audio anomaly {'started' if change.change == 'start' else 'ended'}: "
                f"{change.label} ({change.source})",
                **change.to_dict(),
                **context,
                "detected_at": now,
            },
            "anomaly",
        )
        for change in changes
    ]
