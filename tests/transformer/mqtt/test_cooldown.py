"""The per source x group cooldown: which records the MQTT sink publishes (the DHT keeps all)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.dht_standin import eventually
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.transformer.mqtt.test_sender import KITCHEN, STATE, config, recording
from transformer.dht.backoff import Backoff
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.mqtt.cooldown import Cooldown
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import MqttSender

T0 = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)


def live(
    event: str, change: str, start: float, end: float | None, group: str = "dog_alert"
) -> dict[str, Any]:
    """A live record's fields the cooldown reads; times in seconds after T0."""
    at = (T0 + timedelta(seconds=end if end is not None else start)).isoformat()
    return {
        "source": "garden",
        "group": group,
        "event_id": event,
        "change": change,
        "started_at": (T0 + timedelta(seconds=start)).isoformat(),
        "ended_at": None if end is None else (T0 + timedelta(seconds=end)).isoformat(),
        "detected_at": at,
    }


def test_a_bout_of_barking_is_one_alert_and_other_groups_are_not_held() -> None:
    cooldown = Cooldown(30)
    said = [
        cooldown.admit(live("bark-1", "start", 0, None)),
        cooldown.admit(live("bark-1", "end", 0, 5)),
        cooldown.admit(live("bark-2", "start", 20, None)),  # 15 s after the end: the same bout
        cooldown.admit(live("glass", "start", 21, None, group="glass_break")),  # another group
        cooldown.admit(live("bark-2", "end", 20, 26)),  # quiet too, and the cooldown runs from here
        cooldown.admit(live("bark-3", "start", 50, None)),  # 24 s after bark-2's end: still the bout
        cooldown.admit(live("bark-3", "end", 50, 52)),
        cooldown.admit(live("bark-4", "start", 83, None)),  # 31 s after: news
    ]
    assert said == [True, True, False, True, False, False, False, True]
    assert all(Cooldown(0).admit(live(f"e{i}", "start", i, None)) for i in range(3))
    with pytest.raises(ValueError, match=">= 0"):
        Cooldown(-1)


async def test_mqtt_is_quiet_within_the_cooldown_while_the_dht_outbox_keeps_everything(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    subscriber = Subscriber(mosquitto.port, ["audioguard/#"])
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)  # the DHT's rows too (no DHT sender: kept)
    queue = MqttQueue(outbox, Cooldown(30))
    sender = MqttSender(config(mosquitto), outbox, queue, sources=[KITCHEN], backoff=Backoff(0.05, 0.2))
    service = DeliveryService(outbox, others=[sender])
    try:
        await service.start()
        first, second = [await asyncio.to_thread(recording, {"glass_break": [0, 1]}) for _ in range(2)]
        for result in (first, second):  # recorded a moment apart: the second is within 30 s
            await asyncio.to_thread(service.record_analysis, result)
        await eventually(lambda: sender.delivered == 5 and sender.status()["pending"] == 0, 10, "the first")
        # acknowledged by the broker is not yet forwarded to the subscriber: wait for the last state
        await eventually(lambda: len(subscriber.on(STATE)) == 3, 10, "the first recording's states")
        events = {m.json()["event_id"] for m in subscriber.on("audioguard/kitchen/glass_break/event")}
        assert events == {first.anomalies[0]["event_id"]}
        assert [m.payload for m in subscriber.on(STATE)] == [b"OFF", b"ON", b"OFF"]
        stored = {m.value["event_id"] for m in outbox.pending() if m.kind == "anomaly"}
        assert stored == {first.anomalies[0]["event_id"], second.anomalies[0]["event_id"]}
    finally:
        await service.stop()
        subscriber.close()
