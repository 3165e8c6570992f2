"""The transformer listening to live sources (``--sources_file``): real predictor and transformer
processes, real ffmpeg captures, the real SIFIS DHT broker.

One source is a recording played out as fast as ffmpeg reads it, under the operator's minimum
privacy (``dp_noise``, as it names no method); another plays it anonymised by ``speech_mask``; a
third is an HTTP address where nothing listens (a camera that is off). With synthetic weights
the default groups fire on any sound, so the recordings raise events: each must reach the DHT
as a start and an end record (the end when the recording is over), with the source, the session,
the privacy method applied and the weights verdict, and nothing of the audio may appear in the
log, the outbox or what went to the DHT. The dead source
must stay one line of status (reconnecting, its error, its restarts) and never stop the other.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e.test_anomaly_delivery import poll, transformer_args
from tests.support.dht_broker import DhtBroker
from tests.support.leakscan import AudioFingerprints, files_under, read_bounded, scan_files
from tests.support.records import assert_event_records, assert_mode_records
from tests.support.serverutil import RunningServer, free_port, start_server
from tests.support.service_clients import metric_value, wav_bytes

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ffmpeg_installed")]

ANOMALY_TOPIC = "SIFIS:Audio_Anomaly"
MODE_TOPIC = "SIFIS:Audio_Mode"
REQUEST_TOPIC = "SIFIS:Privacy_Aware_Audio_Anomaly_Detection"
SECONDS = 14.0


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(16)
    envelope = 0.1 + 0.25 * np.abs(np.sin(np.linspace(0, 9 * np.pi, int(SECONDS * 16_000))))
    stereo = envelope[:, None] * rng.standard_normal((envelope.shape[0], 2))  # the leak scan wants two
    return wav_bytes(stereo.clip(-1, 1), 16_000)


@pytest.fixture(scope="module")
def listening(
    predictor: RunningServer,
    synthetic_model_dir: Path,
    recording: bytes,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, DhtBroker, Path]]:
    work = tmp_path_factory.mktemp("monitor")
    (work / "night.wav").write_bytes(recording)
    dead_port = free_port()  # nothing listens there
    (work / "sources.yaml").write_text(
        "sources:\n"
        f"  - {{name: replay, url: 'file:{work / 'night.wav'}', realtime: false}}\n"
        f"  - {{name: kitchen, url: 'file:{work / 'night.wav'}', realtime: true, privacy: speech_mask}}\n"
        f"  - {{name: garden-cam, url: 'http://127.0.0.1:{dead_port}/audio', no_data_seconds: 2}}\n"
    )
    broker = DhtBroker(work / "dht").start()
    server = start_server(
        "transformer",
        [
            *transformer_args(synthetic_model_dir, predictor),
            "--sources_file", str(work / "sources.yaml"),
            "--dht_url", broker.url,
            "--outbox_path", str(work / "state" / "outbox.sqlite3"),
            "--ui_store_path", str(work / "state" / "ui.sqlite3"),
            "--sudden_loud", "true",
            "--unusual_sound", "true",
            "--baselines_path", str(work / "state" / "baselines.json"),
            "--novelty_dir", str(work / "state" / "novelty"),
            "--listener_enabled", "true",  # for mode requests over the DHT
            "--listener_audio_dir", str(work),
            "--analyzer_id", "e2e-listener",
            "--privacy_minimum", "dp_noise",
        ],
    )  # fmt: skip
    try:
        yield server, broker, work
    finally:
        server.stop()
        broker.stop()


def _status(server: RunningServer) -> dict[str, Any]:
    answer = requests.get(server.http_url + "/v1/monitor", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _source(status: dict[str, Any], name: str) -> dict[str, Any]:
    (source,) = [s for s in status["sources"] if s["name"] == name]
    return dict(source)


def test_a_played_recording_raises_events_that_start_and_end_at_the_dht(
    listening: tuple[RunningServer, DhtBroker, Path],
) -> None:
    server, broker, work = listening
    began = datetime.fromtimestamp((work / "sources.yaml").stat().st_mtime, UTC)  # just before the start
    for name in ("replay", "kitchen"):
        poll(lambda n=name: _source(_status(server), n)["state"] == "finished", f"{name} to play out")
    records = poll(lambda: broker.entries(ANOMALY_TOPIC) or None, "live event records at the DHT")

    def complete() -> list[dict[str, Any]] | None:
        values = list(broker.entries(ANOMALY_TOPIC).values())
        starts = {v["event_id"] for v in values if v["change"] == "start"}
        ends = {v["event_id"] for v in values if v["change"] == "end"}
        heard = {v["source"] for v in values}
        return values if starts and starts == ends and heard == {"replay", "kitchen"} else None

    records = poll(complete, "an end record for every started event")
    status = _status(server)
    for name in ("replay", "kitchen"):
        source = _source(status, name)
        assert source["open_events"] == [] and source["seconds_captured"] == pytest.approx(SECONDS, abs=0.05)
    assert {record["source"] for record in records} == {"replay", "kitchen"}
    assert_event_records(records)  # the documented schema, as a consumer reads it
    privacy = {"replay": "dp_noise", "kitchen": "speech_mask"}  # the minimum, and what the source asks
    for record in records:
        assert (record["session"], record["origin"], record["analysis_id"]) == (
            status["session"],
            "live",
            None,
        )
        assert (
            record["privacy_method"] == privacy[record["source"]] and record["analyzer_id"] == "e2e-listener"
        )
        if record["source"] == "kitchen":  # played at real time: a live source's wall clock
            started = datetime.fromisoformat(record["started_at"])
            assert began <= started <= datetime.now(UTC)
            if record["change"] == "end":
                lasted = (datetime.fromisoformat(record["ended_at"]) - started).total_seconds()
                assert lasted == pytest.approx(record["end_seconds"] - record["start_seconds"], abs=0.5)
        else:  # a replay as fast as possible runs ahead of the clock: none, as for a recording
            assert (record["started_at"], record["ended_at"]) == (None, None)
        assert record["weights_official"] is False and "official" in record["weights_warning"]
        assert 0 <= record["start_seconds"] <= SECONDS
        if record["change"] == "end":
            assert record["reason"] in ("source finished", "not heard")
            assert record["start_seconds"] < record["end_seconds"] <= SECONDS
    # one event per group at a time: no two open events of a group overlap
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for record in records:
        if record["change"] == "end":
            key = (record["source"], record["group"])
            spans.setdefault(key, []).append((record["start_seconds"], record["end_seconds"]))
    for group, group_spans in spans.items():
        ordered = sorted(group_spans)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered)), group
    assert metric_value(server, "audioguard_monitor_source_up", source="replay") == 0.0
    assert metric_value(server, "audioguard_monitor_open_events", source="replay") == 0.0


def test_a_dead_source_is_one_line_of_status_and_never_stops_the_other(
    listening: tuple[RunningServer, DhtBroker, Path],
) -> None:
    server, _, _ = listening
    cam = poll(
        lambda: (s := _source(_status(server), "garden-cam"))["restarts"] >= 2 and s,
        "the camera to be retried",
    )
    assert cam["state"] in ("reconnecting", "starting")
    assert cam["url"].startswith("http://127.0.0.1:") and cam["seconds_since_audio"] is None
    assert cam["last_error"]
    assert (metric_value(server, "audioguard_monitor_source_restarts_total", source="garden-cam") or 0) >= 2
    assert metric_value(server, "audioguard_monitor_source_up", source="garden-cam") == 0.0
    # the transformer still answers file requests meanwhile
    assert requests.get(server.http_url + "/v2/health/ready", timeout=10).status_code == 200


def test_nothing_of_the_live_audio_in_the_log_the_outbox_or_the_dht(
    listening: tuple[RunningServer, DhtBroker, Path], recording: bytes
) -> None:
    server, broker, work = listening
    for name in ("replay", "kitchen"):
        poll(lambda n=name: _source(_status(server), n)["state"] == "finished", f"{name} to play out")
    state = work / "state"

    def learnt() -> list[Path] | None:  # a source that ends has what it learnt saved
        stores = [state / "baselines.json", *sorted((state / "novelty").glob("*.novelty.npz"))]
        return stores if len(stores) >= 2 and all(path.exists() for path in stores) else None

    assert poll(learnt, "the learnt baselines and a novelty model on disk")  # scanned below too
    fingerprints = AudioFingerprints.of_wav(recording, [0.5, 3.0, 7.5, 12.0])
    findings = fingerprints.find(read_bounded(server.logs), "transformer log")
    findings += scan_files(list(files_under([work / "state"])), fingerprints)
    findings += fingerprints.find(json.dumps(broker.entries(ANOMALY_TOPIC)).encode(), "DHT entries")
    assert not findings, "audio found:\n" + "\n".join(map(str, findings))
    assert "live event start on replay" in server.log_text()


def test_the_status_endpoint_says_when_nothing_is_listened_to(
    predictor: RunningServer, synthetic_model_dir: Path
) -> None:
    server = start_server("transformer", transformer_args(synthetic_model_dir, predictor))
    try:
        answer = requests.get(server.http_url + "/v1/monitor", timeout=10)
        assert answer.status_code == 404 and "--sources_file" in answer.json()["error"]
    finally:
        server.stop()


def test_a_mode_request_over_the_api_changes_one_source_and_reaches_the_dht_as_a_record(
    listening: tuple[RunningServer, DhtBroker, Path],
) -> None:
    server, broker, _ = listening
    url = server.http_url + "/v1/monitor/mode"
    answer = requests.put(url, json={"mode": "away", "source": "garden-cam"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] == [{"source": "garden-cam", "mode": "away", "previous": "home"}]
    status = _status(server)
    assert (_source(status, "garden-cam")["mode"], _source(status, "garden-cam")["set_by"]) == ("away", "api")
    assert _source(status, "replay")["mode"] == "home"  # only the source named

    def recorded() -> list[dict[str, Any]] | None:
        values = list(broker.entries(MODE_TOPIC).values())
        return values if any(value["set_by"] == "api" for value in values) else None

    records = assert_mode_records(poll(recorded, "the mode change at the DHT"))
    assert _source(status, "replay")["unusual_sound"]["state"] == "learning"  # a day to learn, by default
    assert {(r["source"], r["mode"], r["set_by"]) for r in records} == {
        ("replay", "home", "start"),
        ("kitchen", "home", "start"),
        ("garden-cam", "home", "start"),
        ("garden-cam", "away", "api"),
    }
    for body, problem in (
        (b"{not json", "the body of a mode request must be JSON"),
        (b'{"mode": "holiday"}', "'mode' must be one of home, away, night"),
        (b'{"mode": "away", "source": "attic"}', "'source' must be one of the sources listened to"),
    ):
        refused = requests.put(url, data=body, headers={"content-type": "application/json"}, timeout=10)
        assert refused.status_code == 400 and problem in refused.json()["error"], refused.text
    assert _source(_status(server), "garden-cam")["mode"] == "away"  # nothing changed by them


def test_a_source_forgets_its_normal_sounds_on_request(
    listening: tuple[RunningServer, DhtBroker, Path],
) -> None:
    server, _, work = listening
    poll(lambda: _source(_status(server), "replay")["state"] == "finished", "replay to play out")
    before = _source(_status(server), "replay")["unusual_sound"]
    assert before["state"] == "learning" and before["seconds_learnt"] > 0
    url = server.http_url + "/v1/monitor/unusual_sound/reset"
    answer = requests.post(url, json={"source": "replay"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["replay"]["seconds_learnt"] == 0 and answer.json()["replay"]["state"] == "learning"
    assert _source(_status(server), "replay")["unusual_sound"]["seconds_learnt"] == 0
    assert not (work / "state" / "novelty" / "replay.novelty.npz").exists()  # its stored model too
    assert _source(_status(server), "kitchen")["unusual_sound"]["seconds_learnt"] > 0  # only the one named
    refused = requests.post(url, json={"source": "attic"}, timeout=10)
    assert (
        refused.status_code == 400
        and "'source' must be one of the sources that learn" in refused.json()["error"]
    )


def test_a_mode_request_written_to_the_dht_changes_the_source_and_a_bad_one_changes_nothing(
    listening: tuple[RunningServer, DhtBroker, Path],
) -> None:
    server, broker, _ = listening
    poll(
        lambda: metric_value(server, "audioguard_dht_listener_connected") == 1,
        "the listener's subscription (the broker subscribes a socket before its handshake ends)",
    )
    broker.post(REQUEST_TOPIC, "mode-2", {"Type": "Audio_mode", "mode": "holiday", "request_id": "m-bad"})
    broker.post(
        REQUEST_TOPIC,
        "mode-1",
        {"Type": "Audio_mode", "mode": "night", "source": "kitchen", "request_id": "m-1"},
    )

    def recorded() -> list[dict[str, Any]] | None:
        values = [value for value in broker.entries(MODE_TOPIC).values() if value["set_by"] == "dht"]
        return values or None

    [record] = assert_mode_records(poll(recorded, "the DHT mode request's change at the DHT"))
    assert (record["source"], record["mode"]) == ("kitchen", "night")
    assert _source(_status(server), "kitchen")["set_by"] == "dht"
    poll(
        lambda: "mode request 'm-bad' refused: 'mode' must be one of home, away, night" in server.log_text(),
        "the log line",
    )
    assert "holiday" not in server.log_text()  # named, never echoed
    assert {s["name"]: s["mode"] for s in _status(server)["sources"]}["replay"] == "home"
