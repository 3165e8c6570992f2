"""A live source's event as the monitor hands it to delivery: its start and end changes, with
the wall clock of its sound, and the record context of the source."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from transformer.analysis.anomalies import TriggeringClass
from transformer.analysis.events import EventChange
from transformer.analysis.record_context import RecordContext


def live_event(source: str, heard: datetime, group: str = "glass_break") -> list[EventChange]:
    """The start and end of one event of ``group`` on ``source`` whose sound began at ``heard``."""
    start = EventChange(
        change="start", event_id=str(uuid.uuid4()), source=source, group=group, label="Glass breaking",
        threshold=0.5, start_seconds=10.0, end_seconds=None, peak_score=0.9,
        triggered_by=(TriggeringClass(435, "Glass", 0.9),), started_at=heard.isoformat(),
    )  # fmt: skip
    end = dataclasses.replace(start, change="end", end_seconds=11.0, ended_at=datetime.now(UTC).isoformat())
    return [start, end]


def live_context(source: str) -> RecordContext:
    return RecordContext(origin="live", source=source, analyzer_id="a1", privacy_method="none", session="s")


def onset_to_delivery(sink: str, suffix: str) -> float:
    """``audioguard_event_delivery_seconds_{suffix}`` (count, sum) of ``sink`` in this process."""
    return REGISTRY.get_sample_value(f"audioguard_event_delivery_seconds_{suffix}", {"sink": sink}) or 0.0
