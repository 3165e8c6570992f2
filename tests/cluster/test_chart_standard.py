"""The chart's standard variant on the real cluster: answers, delivery to the DHT broker in the
cluster, and the faults a cluster operator meets (a predictor pod deleted, a rolling update of the
transformer, a transformer pod killed with anomalies waiting in its outbox).

`helm install -f helm/audioguard/ci/standard-values.yaml` with the site's values (the loaded images,
small requests, the broker's URL, a group that fires on any sound); the weights come from a claim on
a static hostPath PersistentVolume, the outbox from the chart's claim on another. Requests go to the
transformer Service's ClusterIP (kube-proxy's rules, as a pod's requests would); `audioguard client`
goes through `kubectl port-forward`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.conftest import ANY_SOUND_GROUPS
from tests.support.cli import run_audioguard
from tests.support.cluster import CHART, Cluster, ClusterBroker, Endpoint, RequestStream, poll, site_values
from tests.support.service_clients import Services, clip, kserve_grpc, sifis_post, triton_binary
from transformer.dht.topics import ANOMALY_TOPIC_NAME
from transformer.predictor_client import PREDICTOR_RETRY_AFTER_SECONDS

NAMESPACE = "audioguard"
RECORDINGS = ("gunshots.wav", "sample2.flac", "birds1.wav")
#: scores computed in two processes on the same weights (same CPU kind) agree to float32 rounding
SCORE_ATOL = 1e-5


@dataclass(frozen=True)
class Release:
    cluster: Cluster
    transformer: Endpoint
    outbox: Path
    values: Path


@pytest.fixture(scope="module")
def release(
    cluster: Cluster, weights: Path, broker: ClusterBroker, timings: dict[str, float]
) -> Iterator[Release]:
    outbox = cluster.storage(NAMESPACE, weights)
    values = site_values(
        cluster.home / "sites" / "standard-values.json",
        dht_url=f"http://sifis-dht.{broker.namespace}.svc.cluster.local:3000",
        groups=ANY_SOUND_GROUPS,
    )
    standard = CHART / "ci" / "standard-values.yaml"
    # one pod per component, so each fault hits the only one (the HPA under this load would add pods:
    # test_autoscaling.py)
    single = "transformer.maxReplicas=1,predictor.maxReplicas=1"
    with cluster.helm_release(NAMESPACE, "-f", str(standard), "-f", str(values), "--set", single) as seconds:
        timings["chart standard: install to InferenceService Ready"] = seconds
        yield Release(cluster, cluster.service("audioguard-transformer", NAMESPACE, 80, 8081), outbox, values)
    cluster.drop_storage(NAMESPACE)


def same_windows(remote: list[dict[str, Any]], local: list[dict[str, Any]]) -> None:
    assert len(remote) == len(local)
    for there, here in zip(remote, local, strict=True):
        assert [e["label"] for e in there["top"]] == [e["label"] for e in here["top"]]
        np.testing.assert_allclose(
            [e["probability"] for e in there["top"]], [e["probability"] for e in here["top"]], atol=SCORE_ATOL
        )


def same_anomalies(remote: list[dict[str, Any]], local: list[dict[str, Any]]) -> None:
    """The same events (their ids name the analysis, which differs)."""

    def comparable(event: dict[str, Any]) -> tuple[Any, ...]:
        return (event["group"], event["start_seconds"], event["end_seconds"], round(event["peak_score"], 4))

    assert [comparable(e) for e in remote] == [comparable(e) for e in local]


@pytest.mark.parametrize("recording", RECORDINGS)
def test_v2_rest_grpc_and_sifis_answer_as_the_local_services(
    release: Release, local: Services, shared_audio_dir: Path, recording: str
) -> None:
    audio = (shared_audio_dir / recording).read_bytes()
    for call in (triton_binary, kserve_grpc):
        there, here = call(release.transformer, audio, {}), call(local.transformer, audio, {})
        same_windows(there["windows"], here["windows"])
        same_anomalies(there["anomalies"], here["anomalies"])
        assert there["anomalies"], "the any-sound group fires on every recording"
    there, here = sifis_post(release.transformer, audio), sifis_post(local.transformer, audio)
    assert there.status_code == here.status_code == 200, there.text
    remote, ours = there.json()["predictions"], here.json()["predictions"]
    assert [p["label"] for p in remote] == [p["label"] for p in ours]
    np.testing.assert_allclose(
        [p["probability"] for p in remote], [p["probability"] for p in ours], atol=SCORE_ATOL
    )


def test_audioguard_client_through_port_forward_prints_what_it_prints_locally(
    release: Release, local: Services, shared_audio_dir: Path
) -> None:
    recording = str(shared_audio_dir / "gunshots.wav")
    with release.cluster.port_forward("svc/audioguard-transformer", 80, NAMESPACE) as port:
        there = run_audioguard("client", recording, "--url", f"127.0.0.1:{port}")
    here = run_audioguard("client", recording, "--url", local.transformer.http_url)
    assert there.returncode == here.returncode == 0, there.stdout + there.stderr
    assert "gunshots.wav" in there.stdout and "Any sound" in there.stdout
    assert there.stdout == here.stdout


def any_sound(answer: dict[str, Any]) -> dict[str, Any]:
    """The event of the group that fires on any sound (the shipped groups may fire too)."""
    (event,) = [e for e in answer["anomalies"] if e["group"] == "any_sound"]
    return event


def record_uuid(event_id: str, change: str) -> str:
    """A record's topic uuid (docs/anomalies-and-dht.md): UUIDv5 of its change in its event's namespace."""
    return str(uuid.uuid5(uuid.UUID(event_id), change))


def test_anomalies_reach_the_dht_broker_in_the_cluster_through_the_outbox_claim(
    release: Release, broker: ClusterBroker
) -> None:
    event = any_sound(triton_binary(release.transformer, clip(21, seconds=3.0), {}))
    for change in ("start", "end"):
        value = poll(
            lambda change=change: broker.get(ANOMALY_TOPIC_NAME, record_uuid(event["event_id"], change)),
            f"the {change} record at the broker",
            60,
        )
        assert (value["event_id"], value["change"], value["group"]) == (
            event["event_id"],
            change,
            "any_sound",
        )
        assert value["analyzer_id"].startswith("audioguard-transformer-")
    # the transformer's outbox is the file on the claim's volume (uid 1000 wrote it)
    assert (release.outbox / "outbox.sqlite3").stat().st_uid == 1000


def test_a_deleted_predictor_pod_gives_clear_503s_then_the_service_recovers(
    release: Release, timings: dict[str, float]
) -> None:
    cluster = release.cluster
    (old,) = cluster.ready_pods(NAMESPACE, "component=predictor")
    with RequestStream(release.transformer, clip(22, seconds=1.0)) as stream:
        poll(lambda: stream.count_since(0) >= 5, "requests before the fault", 60)
        deleted = time.monotonic()
        cluster.kubectl("delete", "pod", old, "-n", NAMESPACE, "--wait=false")
        poll(
            lambda: [p for p in cluster.ready_pods(NAMESPACE, "component=predictor") if p != old],
            "a new predictor pod",
            300,
        )
        ready = time.monotonic()
        # the ONNX predictor is ready within about a second: the gap may be short or none at all
        poll(lambda: stream.count_since(ready) >= 10, "requests once the new predictor pod is ready", 120)
    outcomes = [o for o in stream.outcomes if o.at >= deleted]
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, stream.summary()
    unavailable = [o for o in outcomes if o.status == 503]
    last_503 = max((o.at for o in unavailable), default=deleted)
    timings["predictor pod deleted: 503s for"] = last_503 - deleted
    # recovered: the answers after the last 503 are 200s, and there are some
    assert [o.status for o in outcomes if o.at > last_503] and all(
        o.status == 200 for o in outcomes if o.at > last_503
    ), stream.summary()
    assert all("the predictor is unavailable" in o.detail or "not ready" in o.detail for o in unavailable), (
        unavailable[:3]
    )
    assert {o.retry_after for o in unavailable} <= {str(PREDICTOR_RETRY_AFTER_SECONDS)}


def test_a_rolling_update_of_the_transformer_fails_no_request(
    release: Release, timings: dict[str, float]
) -> None:
    """`helm upgrade` of a transformer setting rolls the transformer (config checksum) while requests
    flow: surge pod Ready, old pod out of the Service during its preStop sleep, then drained."""
    cluster = release.cluster
    (old,) = cluster.ready_pods(NAMESPACE, "component=transformer")
    (predictor,) = cluster.ready_pods(NAMESPACE, "component=predictor")
    with RequestStream(release.transformer, clip(23, seconds=1.0)) as stream:
        poll(lambda: stream.count_since(0) >= 5, "requests before the update", 60)
        started = time.monotonic()
        cluster.helm(
            "upgrade", "audioguard", str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", "settings.topK=4"
        )
        poll(
            lambda: (
                not [
                    p
                    for p in cluster.pods(NAMESPACE, "component=transformer")
                    if p["metadata"]["name"] == old
                ]
            ),
            "the old transformer pod to go",
            300,
        )
        finished = time.monotonic()
        poll(lambda: stream.count_since(finished) >= 10, "requests after the update", 60)
    timings["rolling update of the transformer (helm upgrade to old pod gone)"] = finished - started
    assert stream.summary() == {200: len(stream.outcomes)}, [o for o in stream.outcomes if o.status != 200][
        :5
    ]
    (new,) = cluster.ready_pods(NAMESPACE, "component=transformer")
    assert new != old
    # only the component whose settings changed rolled, and the new setting is live
    assert cluster.ready_pods(NAMESPACE, "component=predictor") == [predictor]
    answer = triton_binary(release.transformer, clip(24, seconds=1.0), {})
    assert [len(w["top"]) for w in answer["windows"]] == [4]


def test_requests_in_flight_finish_when_the_transformer_pod_is_deleted(
    release: Release, timings: dict[str, float]
) -> None:
    """Graceful shutdown: four 600-s uploads (~20 s of work on 2 cores) in flight while the pod is
    deleted; each is answered, and the pod goes only after them."""
    cluster = release.cluster
    (pod,) = cluster.ready_pods(NAMESPACE, "component=transformer")
    audio = clip(25, seconds=600.0)
    results: dict[int, Any] = {}

    def upload(index: int) -> None:
        try:
            results[index] = triton_binary(release.transformer, audio, {})
        except Exception as error:  # the assertion below shows it
            results[index] = error

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    # every upload fully received: admitted by the transformer (in flight) or already answered
    poll(
        lambda: admitted_analyses(release.transformer) + len(results) >= 4,
        "the four uploads admitted by the transformer",
        120,
    )
    started = time.monotonic()
    cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=true", timeout=300)
    timings["transformer pod deleted with 4 x 600 s in flight: pod gone after"] = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == [0, 1, 2, 3]
    assert not [r for r in results.values() if isinstance(r, Exception)], results
    # whole answers: the any-sound event spans the 600 s of each upload
    assert all(any_sound(r)["end_seconds"] > 590 for r in results.values())
    cluster.wait_isvc_ready("audioguard", NAMESPACE)


def admitted_analyses(transformer: Endpoint) -> float:
    """The transformer's ``audioguard_admission_inflight{budget="analyses"}``, from its /metrics."""
    text = requests.get(f"{transformer.http_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "audioguard_admission_inflight" and sample.labels.get("budget") == "analyses":
                return float(sample.value)
    return 0.0


def test_a_killed_transformer_delivers_its_queued_anomalies_after_it_comes_back(
    release: Release, broker: ClusterBroker, timings: dict[str, float]
) -> None:
    cluster = release.cluster
    broker.scale(0)
    try:
        events = [
            any_sound(triton_binary(release.transformer, clip(30 + i, seconds=2.0), {})) for i in range(3)
        ]
        (pod,) = cluster.ready_pods(NAMESPACE, "component=transformer")
        # SIGKILL, no grace: the records exist only in the outbox on the claim
        cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--grace-period=0", "--force", "--wait=true")
        started = time.monotonic()
        poll(
            lambda: [p for p in cluster.ready_pods(NAMESPACE, "component=transformer") if p != pod],
            "a new transformer pod",
            300,
        )
        timings["transformer pod killed: new pod Ready after"] = time.monotonic() - started
        # every record is still waiting in the outbox file on the claim's volume
        assert {record_uuid(e["event_id"], c) for e in events for c in ("start", "end")} <= pending(
            release.outbox
        )
    finally:
        broker.scale(1)
    for event in events:
        for change in ("start", "end"):
            value = poll(
                lambda e=event, c=change: broker.get(ANOMALY_TOPIC_NAME, record_uuid(e["event_id"], c)),
                f"{change} of event {event['event_id']} at the broker",
                120,
            )
            assert value["event_id"] == event["event_id"]
    poll(lambda: not pending(release.outbox), "the outbox to empty", 60)


def pending(outbox: Path) -> set[str]:
    """Topic uuids of the messages waiting in the outbox file (read-only, beside the live service)."""
    with sqlite3.connect(f"file:{outbox / 'outbox.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
        return {row[0] for row in db.execute("SELECT topic_uuid FROM outbox")}
