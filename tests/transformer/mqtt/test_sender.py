"""The MQTT sink against a real Mosquitto: topics, order, last will, and the faults of issue 27."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.analysis_rig import analysed
from tests.support.dht_standin import eventually
from tests.support.live_events import live_context, live_event, onset_to_delivery
from tests.support.mosquitto import Mosquitto, Subscriber, retained
from tests.support.records import assert_event_records
from transformer.analysis.records import recording_event_records
from transformer.analysis.types import AnalysisOptions, AnalysisResult
from transformer.dht.backoff import Backoff
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.records import event_messages
from transformer.mqtt.config import MqttConfig, broker_config
from transformer.mqtt.discovery import GroupEntity, SourceEntities
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import MqttSender

STATE = "audioguard/kitchen/glass_break/state"
KITCHEN = SourceEntities("kitchen", (GroupEntity("glass_break", "Glass breaking"),))


def recording(hot: dict[str, list[int]], source: str = "kitchen") -> AnalysisResult:
    """A recording analysed by the real analysis, published under ``source`` (its file name)."""
    return analysed(hot, dataclasses.replace(AnalysisOptions(), audio_file=source, origin="v2"))


def config(broker: Mosquitto, **options: Any) -> MqttConfig:
    return broker_config(broker.url, **{"timeout": 2.0, "discovery_prefix": "", **options})


def mqtt_delivery(tmp_path: Path, mqtt: MqttConfig, **sender: Any) -> tuple[DeliveryService, MqttSender]:
    """A delivery service with the MQTT sink only (no DHT), as ``--mqtt_url`` alone makes it."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000, dht=False)
    queue = MqttQueue(outbox)
    mqtt_sender = MqttSender(mqtt, outbox, queue, backoff=Backoff(0.05, 0.2), **sender)
    return DeliveryService(outbox, others=[mqtt_sender]), mqtt_sender


def events(
    subscriber: Subscriber, source: str = "kitchen", group: str = "glass_break"
) -> list[dict[str, Any]]:
    return [m.json() for m in subscriber.on(f"audioguard/{source}/{group}/event")]


async def test_a_recordings_events_reach_the_event_and_state_topics(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    subscriber = Subscriber(mosquitto.port, ["audioguard/#"])
    service, sender = mqtt_delivery(tmp_path, config(mosquitto), sources=[KITCHEN])
    try:
        await service.start()
        result = await asyncio.to_thread(recording, {"glass_break": [0, 1]})
        await asyncio.to_thread(service.record_analysis, result)
        await eventually(lambda: len(events(subscriber)) == 2, 20, "the start and end records")
        records = assert_event_records(events(subscriber))
        assert [r["change"] for r in records] == ["start", "end"]
        assert {r["event_id"] for r in records} == {result.anomalies[0]["event_id"]}
        # the start's OFF (no event open at start), ON at the start, OFF at its end
        states = [m.payload for m in subscriber.on("audioguard/kitchen/glass_break/state")]
        assert states == [b"OFF", b"ON", b"OFF"]
        assert [m.payload for m in subscriber.on("audioguard/status")] == [b"online"]
        await eventually(lambda: sender.delivered == 5, 10, "five PUBACKs (an OFF, two events' two)")
        assert sender.status()["connected"] is True and sender.status()["pending"] == 0
    finally:
        await service.stop()
        subscriber.close()
    held = await asyncio.to_thread(retained, mosquitto.port, "audioguard/#")
    assert held == {"audioguard/status": b"offline", "audioguard/kitchen/glass_break/state": b"OFF"}


async def test_levels_go_out_at_their_rate_and_are_not_kept(tmp_path: Path, mosquitto: Mosquitto) -> None:
    subscriber = Subscriber(mosquitto.port, ["audioguard/+/level"])
    levels = {"kitchen": -23.456, "hall": None}  # the hall has no audio yet: nothing said
    service, _ = mqtt_delivery(tmp_path, config(mosquitto, level_seconds=0.2), levels=lambda: levels)
    try:
        await service.start()
        await eventually(lambda: len(subscriber.on("audioguard/kitchen/level")) >= 3, 10, "three levels")
        assert {m.payload for m in subscriber.on("audioguard/kitchen/level")} == {b"-23.5"}
        assert not subscriber.on("audioguard/hall/level")
    finally:
        await service.stop()
        subscriber.close()
    assert "audioguard/kitchen/level" not in await asyncio.to_thread(retained, mosquitto.port, "audioguard/#")


async def test_a_source_that_stops_delivering_audio_leaves_no_state_on(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The monitor's view of its sources stands in as a dict the test changes (the sink's rule,
    not the capture, is under test): kitchen online with an event open, then reconnecting."""
    subscriber = Subscriber(mosquitto.port, [STATE])
    online: dict[str, float | None] = {"kitchen": -20.0}
    service, sender = mqtt_delivery(tmp_path, config(mosquitto), sources=[KITCHEN], levels=lambda: online)
    try:
        await service.start()
        result = await asyncio.to_thread(recording, {"glass_break": [0, 1]})
        start = recording_event_records(result)[0]  # the start; its end comes when the source returns
        await asyncio.to_thread(service.outbox.enqueue_many, event_messages([start]))
        await eventually(lambda: [m.payload for m in subscriber.on(STATE)] == [b"OFF", b"ON"], 10, "ON")
        online.clear()  # the camera drops out
        await eventually(lambda: [m.payload for m in subscriber.on(STATE)][-1:] == [b"OFF"], 10, "OFF")
        assert sender.connected
    finally:
        await service.stop()
        subscriber.close()


async def test_a_live_start_record_published_is_observed_from_its_sound(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """``audioguard_event_delivery_seconds{sink="mqtt"}``: a live event's start (its ``started_at``)
    to the broker's acknowledgement; its end record is not observed."""
    service, sender = mqtt_delivery(tmp_path, config(mosquitto), sources=[KITCHEN])
    count, total = onset_to_delivery("mqtt", "count"), onset_to_delivery("mqtt", "sum")
    try:
        await service.start()
        changes = live_event("kitchen", datetime.now(UTC) - timedelta(seconds=2))
        await asyncio.to_thread(service.record_events, changes, live_context("kitchen"))
        await eventually(lambda: sender.status()["pending"] == 0, 20, "both records published")
    finally:
        await service.stop()
    assert onset_to_delivery("mqtt", "count") == count + 1
    assert 2.0 <= onset_to_delivery("mqtt", "sum") - total < 2.0 + 20  # from the sound, not the enqueue
