"""Anomalies end to end: real predictor + transformer processes, the real SIFIS DHT broker, a real outbox.

A group file is written for the synthetic weights: its one firing group's
member is the class that best separates two generated clips (scores computed
in-process with ``audioguard.offline``) and its threshold lies half way, so
clip A fires and clip B does not, deterministically. The transformer is
SIGKILLed with an anomaly in its outbox while the DHT is down, restarted on
the same outbox, and the DHT then receives exactly the expected entries; the
restarted transformer also answers DHT requests (listener) and exposes the
metrics on ``/metrics``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from audioguard.offline import OfflineClassifier
from tests.support.dht_broker import DhtBroker
from tests.support.records import assert_event_records
from tests.support.serverutil import RunningServer, run_module, start_server
from tests.support.service_clients import MODEL, clip, metric_value, sifis_post, triton_binary
from transformer.analysis.labels import load_labels
from transformer.dht.clients import same_json

pytestmark = pytest.mark.slow

ANALYZER = "e2e-analyzer"
RESULTS = ("SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results", "Audio_Anomaly_Detection_Results")
ANOMALY_TOPIC = "SIFIS:Audio_Anomaly"
REQUEST_TOPIC = "SIFIS:Privacy_Aware_Audio_Anomaly_Detection"
SCORE_ATOL = 1e-4
#: clip A's and clip B's scores must straddle the threshold by more than this
MIN_MARGIN = 0.005
DEADLINE_S = 90.0


def poll(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    """The first truthy value of ``condition()``; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def record_uuids(event_id: str) -> tuple[str, str]:
    """The topic uuids of an event's start and end records, as docs/anomalies-and-dht.md says."""
    return tuple(str(uuid.uuid5(uuid.UUID(event_id), change)) for change in ("start", "end"))  # type: ignore[return-value]


def metric(server: RunningServer, name: str, **labels: str) -> float | None:
    return metric_value(server, name, **labels)


# --- the deterministic group ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Two clips, the group that fires on A only, and the in-process scores it was derived from."""

    clip_a: bytes
    clip_b: bytes
    member: int
    threshold: float
    score_a: float
    groups_file: Path


@pytest.fixture(scope="module")
def plan(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Plan:
    reference = OfflineClassifier.from_model_dir(synthetic_model_dir)
    clip_a, clip_b = clip(501, 3.0), clip(502, 3.0)
    (window_a,) = reference.classify(clip_a, all_windows=True).windows
    (window_b,) = reference.classify(clip_b, all_windows=True).windows
    scores_a, scores_b = window_a.scores.astype(np.float64), window_b.scores.astype(np.float64)
    member = int(np.argmax(scores_a - scores_b))
    threshold = float((scores_a[member] + scores_b[member]) / 2)
    assert scores_a[member] - threshold > MIN_MARGIN, "the synthetic clips do not separate any class"
    # a second group that fires on neither clip: its member's best score is far below its threshold
    silent = int(np.argmin(np.maximum(scores_a, scores_b)))
    silent_threshold = float((max(scores_a[silent], scores_b[silent]) + 1) / 2)
    assert silent_threshold - max(scores_a[silent], scores_b[silent]) > MIN_MARGIN

    groups_file = tmp_path_factory.mktemp("groups") / "groups.json"
    groups_file.write_text(
        json.dumps(
            {
                "replace_defaults": True,
                "groups": [
                    {"name": "e2e_alarm", "label": "E2E alarm", "members": [member], "threshold": threshold},
                    {
                        "name": "e2e_silent",
                        "label": "Never",
                        "members": [silent],
                        "threshold": silent_threshold,
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    return Plan(clip_a, clip_b, member, threshold, float(scores_a[member]), groups_file)


# --- servers -------------------------------------------------------------------------------------------


def transformer_args(model_dir: Path, predictor: RunningServer) -> list[str]:
    return [
        "--model_name", MODEL,
        "--model_dir", str(model_dir),
        "--predictor_host", predictor.grpc_address,
        "--predictor_protocol", "grpc-v2",
        "--predictor_request_timeout_seconds", "30",
    ]  # fmt: skip


@dataclass
class Restarted:
    """The transformer restarted on the outbox of a killed one, and what the killed one left."""

    server: RunningServer
    broker: DhtBroker
    killed_response: dict[str, Any]
    killed_outbox_rows: list[tuple[str, str, str]]
    audio_dir: Path


@pytest.fixture(scope="module")
def restarted(
    plan: Plan,
    predictor: RunningServer,
    synthetic_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Restarted]:
    """Kill a transformer (SIGKILL) right after it answered an anomaly while the DHT was down,
    then start a new one on the same outbox, the DHT still down, the listener on."""
    state = tmp_path_factory.mktemp("transformer-state")
    audio_dir = tmp_path_factory.mktemp("listener-audio")
    broker = DhtBroker(tmp_path_factory.mktemp("dht"))  # its port is chosen, nothing listens yet
    env = {
        "AUDIOGUARD_ANALYZER_ID": ANALYZER,
        "AUDIOGUARD_ANOMALY_GROUPS_FILE": str(plan.groups_file),
        "AUDIOGUARD_DHT_URL": broker.url,
        "AUDIOGUARD_DHT_TIMEOUT_SECONDS": "2",
        "AUDIOGUARD_OUTBOX_PATH": str(state / "outbox.sqlite3"),
    }
    args = transformer_args(synthetic_model_dir, predictor)

    doomed = start_server("transformer", args, env)
    try:
        answer = sifis_post(doomed, plan.clip_a)
        assert answer.status_code == 200, answer.text
        os.killpg(doomed.process.pid, signal.SIGKILL)  # no shutdown hook runs
        assert doomed.process.wait(30) == -signal.SIGKILL
    finally:
        doomed.stop()
    with sqlite3.connect(state / "outbox.sqlite3") as db:
        rows = db.execute("SELECT topic_name, topic_uuid, kind FROM outbox ORDER BY id").fetchall()

    listener_env = {"AUDIOGUARD_LISTENER_ENABLED": "true", "AUDIOGUARD_LISTENER_AUDIO_DIR": str(audio_dir)}
    server = start_server("transformer", args, {**env, **listener_env})
    yield Restarted(server, broker, answer.json(), rows, audio_dir)
    server.stop()
    broker.stop()


@pytest.fixture
def live(restarted: Restarted) -> Restarted:
    """The restarted transformer with the DHT up and its outbox drained."""
    restarted.broker.start()
    poll(
        lambda: (
            metric(restarted.server, "audioguard_outbox_depth", kind="anomaly") == 0
            and metric(restarted.server, "audioguard_outbox_depth", kind="result") == 0
        ),
        "the restarted transformer's outbox to drain",
    )
    return restarted


def results_with(broker: DhtBroker, key: str, value: str) -> Callable[[], dict[str, Any] | None]:
    """Poll target: the stored result value once its ``key`` equals ``value``."""

    def stored() -> dict[str, Any] | None:
        result = broker.get(*RESULTS)
        return result if result is not None and result.get(key) == value else None

    return stored


def unique_in_order(values: list[str]) -> list[str]:
    """Delivery is at least once: a retried post may repeat; order is what counts."""
    return list(dict.fromkeys(values))


# --- tests ------------------------------------------------------------------------------------------------


def test_killed_transformer_anomaly_reaches_the_dht_after_restart(plan: Plan, restarted: Restarted) -> None:
    response = restarted.killed_response
    analysis_id = response["analysis_id"]
    (found,) = response["anomalies"]  # a 3-s clip: one window, one event
    assert found["group"] == "e2e_alarm"
    assert (found["window_start_seconds"], found["window_end_seconds"]) == (0.0, 2.88)
    assert found["peak_score"] == pytest.approx(plan.score_a, abs=SCORE_ATOL)
    assert [c["index"] for c in found["triggered_by"]] == [plan.member]
    start_uuid, end_uuid = record_uuids(found["event_id"])
    # durable before the 200: the killed process left its messages on disk
    assert restarted.killed_outbox_rows == [
        (ANOMALY_TOPIC, start_uuid, "anomaly"),
        (ANOMALY_TOPIC, end_uuid, "anomaly"),
        (*RESULTS, "result"),
    ]

    # the DHT is still down: the restarted transformer tries, fails and counts it
    poll(
        lambda: (
            (metric(restarted.server, "audioguard_dht_delivery_failures_total", reason="connection") or 0)
            >= 1
        ),
        "a failed delivery while the DHT is down",
    )
    assert metric(restarted.server, "audioguard_outbox_depth", kind="anomaly") == 2

    restarted.broker.start()
    result = poll(results_with(restarted.broker, "analysis_id", analysis_id), "the result at the DHT")
    started = poll(lambda: restarted.broker.get(ANOMALY_TOPIC, start_uuid), "the event's start record")
    event = poll(lambda: restarted.broker.get(ANOMALY_TOPIC, end_uuid), "the event's end record")

    assert restarted.broker.keys() == {(ANOMALY_TOPIC, start_uuid), (ANOMALY_TOPIC, end_uuid), RESULTS}
    assert_event_records([started, event])  # the documented schema, as a consumer reads it
    assert (started["change"], event["change"], event["reason"]) == ("start", "end", "source finished")
    assert (event["origin"], event["source"], event["session"]) == ("sifis", "anonymized_audio", None)
    labels = load_labels()
    assert event["group"] == "e2e_alarm" and event["label"] == "E2E alarm"
    assert event["event_id"] == found["event_id"] and event["analysis_id"] == analysis_id
    assert event["peak_score"] == pytest.approx(plan.score_a, abs=SCORE_ATOL)
    assert event["threshold"] == pytest.approx(plan.threshold)
    assert event["triggered_by"][0]["label"] == labels[plan.member].display_name
    assert (event["requestor_id"], event["requestor_type"], event["request_id"]) == (
        "nssd-7",
        "NSSD",
        "req-42",
    )
    assert (event["start_seconds"], event["end_seconds"]) == (found["start_seconds"], found["end_seconds"])

    # what the HTTP caller got is what the DHT holds (the answer leaves out the description), up to
    # the last bit of a float: the broker re-parses values with serde_json, not correctly rounded
    sifis_fields = (
        "requestor_id", "requestor_type", "request_id", "analyzer_id",
        "analysis_id", "audio_file", "method", "predictions", "anomalies",
    )  # fmt: skip
    held = {name: result[name] for name in sifis_fields}
    answered = {name: response[name] for name in sifis_fields}
    assert same_json(answered, held), (answered, held)
    assert isinstance(result["description"], str) and result["description"]
    assert result["analyzer_id"] == ANALYZER and result["method"] == "nothing"
    # the id names this analysis, never the audio (no digest of the recording in it)
    assert result["analysis_id"].startswith(ANALYZER)
    assert hashlib.sha256(plan.clip_a).hexdigest() not in result["analysis_id"]


def test_only_results_with_anomalies_are_posted_each_event_under_its_own_uuid(
    plan: Plan, live: Restarted
) -> None:
    broker = live.broker
    before = {uuid_ for uuid_ in broker.entries(ANOMALY_TOPIC)}
    quiet = sifis_post(live.server, plan.clip_b)
    assert quiet.status_code == 200 and quiet.json()["anomalies"] == []
    loud = sifis_post(live.server, plan.clip_a)
    assert loud.status_code == 200
    analysis_id = loud.json()["analysis_id"]

    poll(results_with(broker, "analysis_id", analysis_id), "the second result")
    new_records = set(record_uuids(loud.json()["anomalies"][0]["event_id"]))
    for record in new_records:
        poll(lambda record=record: broker.get(ANOMALY_TOPIC, record), "the second event's records")
    # the quiet result was never enqueued: it would have reached the results topic first
    posted = unique_in_order([w.value["analysis_id"] for w in broker.writes_to(RESULTS[0])])
    assert quiet.json()["analysis_id"] not in posted and posted[-1] == analysis_id
    # events do not overwrite each other
    assert set(broker.entries(ANOMALY_TOPIC)) == before | new_records
    assert {entry["topic_name"] for entry in requests.get(broker.url + "/get_all", timeout=10).json()} == {
        ANOMALY_TOPIC,
        RESULTS[0],
    }


def test_listener_analyses_the_file_named_in_a_dht_request(plan: Plan, live: Restarted) -> None:
    (live.audio_dir / "kitchen.wav").write_bytes(plan.clip_a)
    broker = live.broker
    poll(
        lambda: metric(live.server, "audioguard_dht_listener_connected") == 1,
        "the listener's subscription (the broker subscribes a socket before its handshake ends)",
    )
    broker.post(
        REQUEST_TOPIC,
        "Audio_Anomaly_Detection",
        {
            "description": "Privacy-Aware Audio Anomaly Detection",
            "requestor_id": "nssd-9",
            "requestor_type": "NSSD",
            "request_id": "listen-1",
            "Type": "Audio_file",
            "audio_file": "kitchen.wav",
            "method": "nothing",
        },
    )
    result = poll(results_with(broker, "request_id", "listen-1"), "the listener's result at the DHT")
    assert (result["audio_file"], result["requestor_id"], result["method"]) == (
        "kitchen.wav",
        "nssd-9",
        "nothing",
    )
    assert hashlib.sha256(plan.clip_a).hexdigest() not in result["analysis_id"]
    assert [a["group"] for a in result["anomalies"]] == ["e2e_alarm"]
    start_uuid, _ = record_uuids(result["anomalies"][0]["event_id"])
    event = poll(lambda: broker.get(ANOMALY_TOPIC, start_uuid), "the listener's anomaly event")
    assert_event_records([event])
    assert (event["request_id"], event["origin"], event["audio_file"]) == (
        "listen-1",
        "dht_request",
        "kitchen.wav",
    )


def test_a_v2_request_posts_the_same_records(plan: Plan, live: Restarted) -> None:
    """The v2 path records its events as the SIFIS path does: one schema, its own origin."""
    answer = triton_binary(live.server, plan.clip_a, {"request_id": "v2-1"})
    (found,) = answer["anomalies"]
    start_uuid, end_uuid = record_uuids(found["event_id"])
    records = [
        poll(lambda uuid_=uuid_: live.broker.get(ANOMALY_TOPIC, uuid_), "the v2 request's records")
        for uuid_ in (start_uuid, end_uuid)
    ]
    start, end = assert_event_records(records)
    assert (start["origin"], start["request_id"], start["source"]) == ("v2", "v2-1", "upload")
    assert same_json({k: end[k] for k in found}, found)  # the answer's event is the end record's


def test_metrics_are_exposed_on_the_transformer(live: Restarted) -> None:
    server = live.server
    assert (metric(server, "audioguard_anomalies_total", group="e2e_alarm", path="file") or 0) >= 1
    assert metric(server, "audioguard_anomalies_total", group="e2e_silent") is None
    assert metric(server, "audioguard_outbox_depth", kind="anomaly") == 0
    assert (metric(server, "audioguard_dht_delivery_latency_seconds_count", kind="anomaly") or 0) >= 1
    assert (metric(server, "audioguard_dht_delivery_latency_seconds_count", kind="result") or 0) >= 1
    assert metric(server, "audioguard_dht_delivery_failures_total", reason="connection") is not None


def test_an_invalid_group_file_refuses_to_start(
    predictor: RunningServer, synthetic_model_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "groups.json"
    bad.write_text(json.dumps({"groups": [{"name": "glass_break", "members": [600], "threshold": 1.5}]}))
    finished = run_module(
        "transformer",
        transformer_args(synthetic_model_dir, predictor),
        {"AUDIOGUARD_ANOMALY_GROUPS_FILE": str(bad)},
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output[-2000:]
    assert "unknown AudioSet index 600" in output and r"threshold 1.5 is outside (0, 1]" in output
