"""Incidents: one sound heard by several live sources, one incident id and one MQTT message."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.dht_standin import eventually
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.records import assert_event_records
from tests.transformer.mqtt.test_sender import config, recording
from transformer.analysis.records import recording_event_records
from transformer.dht.backoff import Backoff
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.records import event_messages
from transformer.mqtt.cooldown import Cooldown
from transformer.mqtt.incidents import Incidents
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import MqttSender

T0 = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)


class Clock:
    """The tracker's monotonic clock, set by the test (when each record "came in")."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def start(event: str, source: str, second: float, group: str = "glass_break") -> dict[str, Any]:
    at = (T0 + timedelta(seconds=second)).isoformat()
    return {"event_id": event, "source": source, "group": group, "label": "Glass breaking",
            "change": "start", "started_at": at}  # fmt: skip


def test_one_glass_break_heard_by_three_microphones_is_one_incident() -> None:
    clock = Clock()
    incidents = Incidents(5, clock)
    first = incidents.tag(start("e1", "kitchen", 0.0))
    clock.now += 1.0
    second = incidents.tag(start("e2", "hall", 0.9))
    clock.now += 1.0
    third = incidents.tag(start("e3", "living", 1.8))
    other = incidents.tag(start("e4", "garage", 1.9, group="dog_alert"))
    assert first["incident_id"] == second["incident_id"] == third["incident_id"] != other["incident_id"]
    assert incidents.due() == [] and 2.9 < (incidents.next_due() or 0) <= 3.0
    end = incidents.tag({**start("e2", "hall", 0.9), "change": "end"})
    assert end["incident_id"] == first["incident_id"]
    clock.now += 3.5  # the window (5 s from the first start) has passed
    messages = {m.topic: json.loads(m.payload) for m in incidents.due()}
    assert set(messages) == {"incident/glass_break"}  # the dog's window, opened 2 s later, runs on
    glass = messages["incident/glass_break"]
    assert glass["sources"] == ["kitchen", "hall", "living"] and glass["event_ids"] == ["e1", "e2", "e3"]
    assert glass["incident_id"] == first["incident_id"] and glass["description"].endswith(
        "kitchen, hall, living"
    )
    clock.now += 2.0
    assert [m.topic for m in incidents.due()] == ["incident/dog_alert"]
    assert incidents.due() == []  # each once
    # a later glass break is another incident; the same first event gives the same id
    clock.now += 10
    assert incidents.tag(start("e5", "kitchen", 30))["incident_id"] not in (None, first["incident_id"])
    assert Incidents(5, clock).tag(start("e1", "kitchen", 0.0))["incident_id"] == first["incident_id"]
    # a recording (no wall clock) and incidents off: the record as it is
    assert "incident_id" not in incidents.tag({**start("r1", "upload", 0), "started_at": None})
    assert "incident_id" not in Incidents(0).tag(start("e6", "kitchen", 40))


async def test_the_incident_message_lists_the_sources_on_the_bus(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    subscriber = Subscriber(mosquitto.port, ["audioguard/#"])
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000, dht=False)
    queue = MqttQueue(outbox, incidents=Incidents(1.0))
    sender = MqttSender(config(mosquitto), outbox, queue, backoff=Backoff(0.05, 0.2))
    service = DeliveryService(outbox, others=[sender])
    now = datetime.now(UTC).isoformat()
    try:
        await service.start()
        result = await asyncio.to_thread(recording, {"glass_break": [0, 1]})
        template = recording_event_records(result)[0]
        heard = [
            {**template, "source": source, "event_id": event_id, "origin": "live", "started_at": now}
            for source, event_id in (("kitchen", "0b0e1c7e-0000-5000-8000-000000000001"),
                                     ("hall", "0b0e1c7e-0000-5000-8000-000000000002"))
        ]  # fmt: skip
        await asyncio.to_thread(outbox.enqueue_many, event_messages(heard))
        await eventually(lambda: subscriber.on("audioguard/incident/glass_break"), 10, "the incident")
        (message,) = subscriber.on("audioguard/incident/glass_break")
        incident = message.json()
        assert incident["sources"] == ["kitchen", "hall"] and not message.retain
        published = [m.json() for m in subscriber.all() if m.topic.endswith("/glass_break/event")]
        assert {r["incident_id"] for r in published} == {incident["incident_id"]}
        # what MQTT adds to the record is the incident id alone: the rest is the documented schema
        assert_event_records([{k: v for k, v in r.items() if k != "incident_id"} for r in published])
    finally:
        await service.stop()
        subscriber.close()


async def test_each_sink_says_how_far_it_is_with_an_event_and_mqtt_its_incident(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """What the web page's timeline shows per event: the DHT's state from its outbox (pending, dead
    letter, delivered), MQTT's from its own table and cooldown, and the incident MQTT tagged."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)  # the DHT's rows too (no DHT sender: they wait)
    queue = MqttQueue(outbox, cooldown=Cooldown(30), incidents=Incidents(5))
    sender = MqttSender(config(mosquitto), outbox, queue, backoff=Backoff(0.05, 0.2))
    service = DeliveryService(outbox, others=[sender])
    result = await asyncio.to_thread(recording, {"glass_break": [0, 1]})
    template = recording_event_records(result)[0]
    now = datetime.now(UTC)

    def live(event: str, source: str, change: str, second: float) -> dict[str, Any]:
        at = (now + timedelta(seconds=second)).isoformat()
        times = {"started_at": at} if change == "start" else {"started_at": at, "ended_at": at}
        return {**template, "source": source, "event_id": event, "origin": "live", "change": change, **times}

    kitchen, hall, again = (f"0b0e1c7e-0000-5000-8000-00000000001{n}" for n in (1, 2, 3))
    records = [live(kitchen, "kitchen", "start", 0), live(hall, "hall", "start", 0.5),
               live(kitchen, "kitchen", "end", 6), live(again, "kitchen", "start", 10)]  # fmt: skip
    await asyncio.to_thread(outbox.enqueue_many, event_messages(records))

    def states(event: str) -> dict[str, dict[str, Any]]:
        return {line["sink"]: line for line in service.event_delivery(event)}

    assert states(kitchen)["mqtt"]["state"] == "pending" and states(kitchen)["dht"]["state"] == "pending"
    assert states(kitchen)["mqtt"]["incident_id"] == states(hall)["mqtt"]["incident_id"] is not None
    assert states(again)["mqtt"] == {"sink": "mqtt", "state": "held by the cooldown", "incident_id": None}
    try:
        await service.start()
        await eventually(lambda: states(hall)["mqtt"]["state"] == "delivered", 10, "the PUBACKs")
        assert states(kitchen)["mqtt"]["state"] == "delivered"
        assert states(again)["mqtt"]["state"] == "held by the cooldown"
        assert states(hall)["dht"]["state"] == "pending"  # the DHT has no sender here
        hall_row = next(m for m in outbox.pending() if m.value.get("event_id") == hall)
        outbox.bury(hall_row.id, "refused for the test")
        assert states(hall)["dht"]["state"] == "dead letter"
        for message in outbox.pending():
            if message.value.get("event_id") == kitchen:
                outbox.mark_delivered(message.id)
        assert states(kitchen)["dht"]["state"] == "delivered"
    finally:
        await service.stop()
