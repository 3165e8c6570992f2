"""The served transformer with ``--mqtt_url``: real predictor and transformer processes, real
ffmpeg captures, a real Mosquitto with a password file, a subscriber as Home Assistant would be.

MQTT alone (no DHT): the live source's events and an upload's reach their topics, states follow
them and end OFF, discovery announces the source's device, ``GET /v1/monitor`` has the sink's
status line, the password (from the environment, ``${VAR}``) is in no log line, and a clean stop
leaves ``offline`` retained on the status topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e.test_anomaly_delivery import poll, transformer_args
from tests.support.mosquitto import Mosquitto, Subscriber, retained
from tests.support.records import assert_event_records
from tests.support.serverutil import RunningServer, start_server
from tests.support.service_clients import metric_value, sifis_url, wav_bytes

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ffmpeg_installed")]

PASSWORD = "e2e-Pa55word-not-in-logs"
SECONDS = 14.0


@pytest.fixture(scope="module")
def service(
    predictor: RunningServer, synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, Mosquitto, Subscriber, bytes]]:
    work = tmp_path_factory.mktemp("mqtt")
    rng = np.random.default_rng(27)
    envelope = 0.1 + 0.25 * np.abs(np.sin(np.linspace(0, 9 * np.pi, int(SECONDS * 16_000))))
    recording = wav_bytes((envelope * rng.standard_normal(envelope.shape[0])).clip(-1, 1), 16_000)
    (work / "night.wav").write_bytes(recording)
    (work / "sources.yaml").write_text(
        f"sources:\n  - {{name: replay, url: 'file:{work / 'night.wav'}', realtime: true}}\n"
    )
    broker = Mosquitto(work / "mosquitto", users={"audioguard": PASSWORD, "ha": "ha"}).start()
    subscriber = Subscriber(broker.port, ["audioguard/#", "homeassistant/#"], username="ha", password="ha")
    server = start_server(
        "transformer",
        [
            *transformer_args(synthetic_model_dir, predictor),
            "--sources_file", str(work / "sources.yaml"),
            "--mqtt_url", f"mqtt://audioguard:${{E2E_MQTT_PASSWORD}}@127.0.0.1:{broker.port}",
            "--mqtt_client_id", "e2e",
            "--outbox_path", str(work / "state" / "outbox.sqlite3"),
            "--ui_store_path", str(work / "state" / "ui.sqlite3"),
        ],
        env={"E2E_MQTT_PASSWORD": PASSWORD},
    )  # fmt: skip
    try:
        yield server, broker, subscriber, recording
    finally:
        server.stop()
        subscriber.close()
        broker.stop()


def monitor(server: RunningServer) -> dict[str, Any]:
    answer = requests.get(server.http_url + "/v1/monitor", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def records(subscriber: Subscriber, source: str) -> list[dict[str, Any]]:
    return [
        m.json()
        for m in subscriber.all()
        if m.topic.startswith(f"audioguard/{source}/") and m.topic.endswith("/event")
    ]


def incident_ids(subscriber: Subscriber) -> set[str]:
    return {m.json()["incident_id"] for m in subscriber.all() if m.topic.startswith("audioguard/incident/")}


def test_a_live_sources_events_and_states_reach_mqtt_alone(
    service: tuple[RunningServer, Mosquitto, Subscriber, bytes],
) -> None:
    server, _, subscriber, _ = service
    poll(lambda: monitor(server)["sources"][0]["state"] == "finished", "the replay to play out")
    (line,) = poll(lambda: [s for s in monitor(server)["sinks"] if s["pending"] == 0], "an empty MQTT table")
    assert (
        line["sink"] == "mqtt" and line["connected"] is True and line["broker"].startswith("mqtt://127.0.0.1")
    )
    published = records(subscriber, "replay")
    assert published, "synthetic weights fire groups on any sound"
    # the same figures on /metrics
    assert metric_value(server, "audioguard_sink_connected", sink="mqtt") == 1
    assert metric_value(server, "audioguard_sink_pending", sink="mqtt") == 0
    assert (metric_value(server, "audioguard_sink_delivered_total", sink="mqtt") or 0) >= len(published)
    # a live record (played at real time: it has a wall clock) on MQTT is the documented record plus
    # the incident it belongs to
    assert all(r["incident_id"] for r in published)
    assert_event_records([{k: v for k, v in r.items() if k != "incident_id"} for r in published])
    # each incident's one message, once its 5-s window has passed (one source here: one each)
    expected = {r["incident_id"] for r in published}
    poll(lambda: incident_ids(subscriber) == expected, "the incident messages")
    starts = {r["event_id"] for r in published if r["change"] == "start"}
    assert starts == {r["event_id"] for r in published if r["change"] == "end"}
    assert {r["source"] for r in published} == {"replay"} and {r["origin"] for r in published} == {"live"}
    for group in {r["group"] for r in published}:
        states = [m.payload for m in subscriber.on(f"audioguard/replay/{group}/state")]
        assert states[-1] == b"OFF" and b"ON" in states
    configs = {
        m.topic: json.loads(m.payload)
        for m in subscriber.all()
        if m.topic.startswith("homeassistant/")
        and m.topic.endswith("/config")  # what Home Assistant reads (the end-of-retained probe is not)
    }
    assert "homeassistant/sensor/audioguard/replay_level/config" in configs
    binary = [c for t, c in configs.items() if t.startswith("homeassistant/binary_sensor/audioguard/replay_")]
    assert binary and {c["device"]["identifiers"][0] for c in binary} == {"audioguard_replay"}
    assert PASSWORD not in server.log_text()


def test_an_upload_publishes_under_its_file_name(
    service: tuple[RunningServer, Mosquitto, Subscriber, bytes],
) -> None:
    server, _, subscriber, recording = service
    answer = requests.post(
        sifis_url(server, audio_file="door.wav"),
        files={"audio": ("door.wav", recording, "audio/wav")},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    published = poll(
        lambda: records(subscriber, "door_wav"), "the upload's records on audioguard/door_wav/..."
    )
    assert {r["source"] for r in published} == {"door.wav"} and {r["origin"] for r in published} == {"sifis"}


def test_a_clean_stop_says_offline_and_leaves_nothing_on(
    service: tuple[RunningServer, Mosquitto, Subscriber, bytes],
) -> None:
    server, broker, _, _ = service
    assert server.stop() == 0
    held = retained(broker.port, "audioguard/#", username="ha", password="ha")
    assert held["audioguard/status"] == b"offline"
    states = {topic: payload for topic, payload in held.items() if topic.endswith("/state")}
    assert states and set(states.values()) == {b"OFF"}
