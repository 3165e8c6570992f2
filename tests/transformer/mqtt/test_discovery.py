"""Home Assistant's MQTT discovery, read back from a real Mosquitto as Home Assistant reads it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support.dht_standin import eventually
from tests.support.mosquitto import Mosquitto, retained
from tests.transformer.mqtt.test_sender import KITCHEN, config, mqtt_delivery, recording
from transformer.mqtt.discovery import GroupEntity, SourceEntities

HALL = SourceEntities(
    "hall",
    (GroupEntity("smoke_fire_alarm", "Smoke or fire alarm"), GroupEntity("water_leak", "Running water")),
)
# the keys https://www.home-assistant.io/integrations/binary_sensor.mqtt/ documents and we rely on
BINARY_SENSOR_KEYS = {
    "name",
    "unique_id",
    "state_topic",
    "payload_on",
    "payload_off",
    "device_class",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "device",
}


async def test_configs_carry_home_assistants_keys_and_stale_ones_are_removed(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    mqtt = config(mosquitto, discovery_prefix="homeassistant", prefix="ag-test", level_seconds=5)
    service, sender = mqtt_delivery(tmp_path / "first", mqtt, sources=[KITCHEN, HALL])
    await service.start()
    await eventually(lambda: sender.delivered >= 3, 10, "the OFF states")
    result = await asyncio.to_thread(recording, {"glass_break": [0, 1]})
    await asyncio.to_thread(service.record_analysis, result)
    await eventually(lambda: sender.status()["pending"] == 0, 10, "the records")
    await service.stop()

    held = await asyncio.to_thread(retained, mosquitto.port, "homeassistant/#")
    configs = {topic: json.loads(payload) for topic, payload in held.items()}
    assert set(configs) == {
        "homeassistant/binary_sensor/ag-test/kitchen_glass_break/config",
        "homeassistant/binary_sensor/ag-test/hall_smoke_fire_alarm/config",
        "homeassistant/binary_sensor/ag-test/hall_water_leak/config",
        "homeassistant/sensor/ag-test/kitchen_level/config",
        "homeassistant/sensor/ag-test/hall_level/config",
    }
    smoke = configs["homeassistant/binary_sensor/ag-test/hall_smoke_fire_alarm/config"]
    assert set(smoke) >= BINARY_SENSOR_KEYS
    assert smoke["device_class"] == "smoke" and smoke["state_topic"] == "ag-test/hall/smoke_fire_alarm/state"
    assert (smoke["payload_on"], smoke["payload_off"]) == ("ON", "OFF")
    assert smoke["availability_topic"] == "ag-test/status"
    assert (smoke["payload_available"], smoke["payload_not_available"]) == ("online", "offline")
    assert smoke["device"]["identifiers"] == ["ag-test_hall"]
    glass = configs["homeassistant/binary_sensor/ag-test/kitchen_glass_break/config"]
    assert (
        glass["device_class"] == "safety"
        and glass["json_attributes_topic"] == "ag-test/kitchen/glass_break/event"
    )
    water = configs["homeassistant/binary_sensor/ag-test/hall_water_leak/config"]
    assert water["device_class"] == "moisture" and water["device"] == smoke["device"]
    level = configs["homeassistant/sensor/ag-test/hall_level/config"]
    assert level["state_topic"] == "ag-test/hall/level" and level["unit_of_measurement"] == "dBFS"
    assert level["expire_after"] == 15
    unique = [payload["unique_id"] for payload in configs.values()]
    assert len(set(unique)) == len(unique)
    states = await asyncio.to_thread(retained, mosquitto.port, "ag-test/+/+/state")
    assert states["ag-test/hall/water_leak/state"] == b"OFF"

    # the hall goes from the configuration: its configs and its retained states go from the broker
    service, sender = mqtt_delivery(tmp_path / "second", mqtt, sources=[KITCHEN])
    await service.start()
    await eventually(lambda: sender.delivered >= 1 and sender.connected, 10, "the second run connected")
    await eventually(lambda: len(sender.discovery.removed) == 3, 10, "the hall's configs removed")
    await service.stop()
    held = await asyncio.to_thread(retained, mosquitto.port, "homeassistant/#")
    assert set(held) == {
        "homeassistant/binary_sensor/ag-test/kitchen_glass_break/config",
        "homeassistant/sensor/ag-test/kitchen_level/config",
    }
    states = await asyncio.to_thread(retained, mosquitto.port, "ag-test/+/+/state")
    assert set(states) == {"ag-test/kitchen/glass_break/state"}
