"""transformer.metrics: the onset-to-delivery histogram read from a delivered record."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from transformer.metrics import observe_onset_to_delivery

NAME = "audioguard_event_delivery_seconds"


def _sample(suffix: str, sink: str) -> float:
    return REGISTRY.get_sample_value(f"{NAME}_{suffix}", {"sink": sink}) or 0.0


def test_a_live_start_record_is_observed_from_its_sound_to_the_acknowledgement() -> None:
    started = datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)
    record = {"change": "start", "started_at": started.isoformat(), "group": "glass"}
    count, total = _sample("count", "test-a"), _sample("sum", "test-a")
    observe_onset_to_delivery("test-a", json.dumps(record), started.timestamp() + 4.25)  # mqtt: JSON text
    observe_onset_to_delivery("test-a", record, started.timestamp() + 1.5)  # the DHT outbox: the record
    assert _sample("count", "test-a") == count + 2
    assert _sample("sum", "test-a") - total == 5.75
    assert REGISTRY.get_sample_value(f"{NAME}_bucket", {"sink": "test-a", "le": "2.0"}) == 1.0
    assert REGISTRY.get_sample_value(f"{NAME}_bucket", {"sink": "test-a", "le": "5.0"}) == 2.0


def test_other_messages_are_not_observed() -> None:
    start = {"change": "start", "started_at": "2026-12-07T03:00:00+00:00"}
    for payload in (
        json.dumps({**start, "change": "end"}),  # an end record
        json.dumps({"change": "start", "started_at": None}),  # a recording's event: no wall clock
        json.dumps({"request_id": "r1", "anomalies": []}),  # an analysis result
        json.dumps({**start, "started_at": "yesterday"}),  # not an ISO time
        "ON",  # an MQTT state
        json.dumps([start]),
        {**start, "started_at": 12},  # no ISO text
        b"\xff\xfe",  # not UTF-8
    ):
        observe_onset_to_delivery("test-b", payload, 1e10)
    assert _sample("count", "test-b") == 0.0
