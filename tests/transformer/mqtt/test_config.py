"""The broker URL, ``${VAR}`` credentials, topic names, and the settings made into a sink."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contract.errors import InvalidConfiguration
from transformer import wiring
from transformer.mqtt.config import broker_config
from transformer.mqtt.topics import record_messages, slug
from transformer.settings import TransformerSettings


def test_schemes_ports_and_transports() -> None:
    plain = broker_config("mqtt://broker.lan")
    assert (plain.host, plain.port, plain.transport, plain.tls) == ("broker.lan", 1883, "tcp", False)
    tls = broker_config("mqtts://broker.lan")
    assert (tls.port, tls.tls) == (8883, True)
    ws = broker_config("ws://broker.lan:9001/mqtt")
    assert (ws.port, ws.transport, ws.ws_path, ws.tls) == (9001, "websockets", "/mqtt", False)
    assert broker_config("wss://broker.lan/mqtt").port == 443
    with pytest.raises(InvalidConfiguration, match="must start with mqtt://"):
        broker_config("http://broker.lan")
    with pytest.raises(InvalidConfiguration, match="names no host"):
        broker_config("mqtt://:1883")
    with pytest.raises(InvalidConfiguration, match="port"):
        broker_config("mqtt://h:99999")


def test_credentials_come_from_the_environment_and_never_show() -> None:
    environ = {"MQTT_USER": "ha", "MQTT_PASSWORD": "s3cr:t@x"}
    from_url = broker_config("mqtt://${MQTT_USER}:${MQTT_PASSWORD}@broker:1883", environ=environ)
    assert (from_url.username, from_url.password) == ("ha", "s3cr:t@x")
    own = broker_config(
        "mqtt://broker", username="${MQTT_USER}", password="${MQTT_PASSWORD}", environ=environ
    )
    assert (own.username, own.password) == ("ha", "s3cr:t@x")
    assert own.address == "mqtt://broker:1883" and "s3cr" not in repr(own.address)
    with pytest.raises(InvalidConfiguration, match="MQTT_PASSWORD") as caught:
        broker_config("mqtt://broker", password="${MQTT_PASSWORD}", environ={})
    assert "s3cr" not in str(caught.value)


def test_topic_levels_are_safe_and_a_record_is_an_event_then_a_state() -> None:
    assert slug("kitchen") == "kitchen"
    assert slug("uploads/a b#+.wav") == "uploads_a_b_wav"
    assert slug("///") == "_"
    record = {"source": "door cam.wav", "group": "glass_break", "change": "start", "event_id": "e1"}
    event, state = record_messages(record)
    assert (event.topic, event.retain) == ("door_cam_wav/glass_break/event", False)
    assert (state.topic, state.payload, state.retain) == ("door_cam_wav/glass_break/state", "ON", True)
    assert record_messages({**record, "change": "end"})[1].payload == "OFF"


def test_settings_make_an_mqtt_only_delivery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MQTT_PASSWORD", "pw")
    settings = TransformerSettings(
        mqtt_url="mqtts://broker:8884",
        mqtt_username="audioguard",
        mqtt_password="${TEST_MQTT_PASSWORD}",
        mqtt_topic_prefix="home/audio",
        outbox_path=tmp_path / "outbox.sqlite3",
    )
    service = wiring.delivery_service(settings)
    try:
        assert service.sender is None and service.outbox.dht is False
        (sender,) = service.others
        status = sender.status()
        assert status["broker"] == "mqtts://broker:8884" and status["pending"] == 0
        assert status["connected"] is False and "pw" not in str(status)
        # no client id set: one per host (replicas must not evict each other), valid for the broker
        assert re.fullmatch(r"audioguard-[A-Za-z0-9_-]+", sender.config.client_id)
        assert [line["sink"] for line in service.sink_status()] == ["mqtt"]
    finally:
        service.outbox.close()
    with pytest.raises(InvalidConfiguration, match="UNSET_VAR"):
        wiring.delivery_service(
            TransformerSettings(mqtt_url="mqtt://${UNSET_VAR}@b", outbox_path=tmp_path / "b.sqlite3")
        )
    with pytest.raises(ValueError, match="empty level"):
        TransformerSettings(mqtt_topic_prefix="audio/")
