"""manifests/overlays/standard with the dht component on the real cluster (`kubectl apply -k`).

A site kustomization over the overlay sets the loaded images (never pulled) and adds the claim for
the weights, which the overlay leaves to the site (manifests/weights fills one with a Job; here a
static hostPath PersistentVolume holds the synthetic weights). The dht component's Secret already
names the broker of manifests/dht-broker. The SIFIS endpoint, as the Analytics-API calls it, goes
through `kubectl port-forward` to the transformer's Service.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.cluster import IMAGES, Cluster, ClusterBroker, Endpoint, poll, site_kustomization
from tests.support.serverutil import PROJECT_ROOT
from tests.support.service_clients import Services, sifis_post
from transformer.dht.topics import RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID

NAMESPACE = "overlay"
MANIFESTS = PROJECT_ROOT / "manifests"


@pytest.fixture(scope="module")
def overlay(
    cluster: Cluster, weights: Path, broker: ClusterBroker, timings: dict[str, float]
) -> Iterator[Cluster]:
    cluster.storage(NAMESPACE, weights)
    site = site_kustomization(
        cluster.home / "sites" / "overlay-standard",
        MANIFESTS / "overlays" / "standard",
        components=(MANIFESTS / "components" / "dht",),
        images={
            "ghcr.io/audioguard/audioguard-transformer": IMAGES["transformer"],
            "ghcr.io/audioguard/audioguard-predictor": IMAGES["predictor"],
        },
        pull_never=[
            ("InferenceService", "audioguard", "/spec/predictor/containers/0"),
            ("InferenceService", "audioguard", "/spec/transformer/containers/0"),
        ],
    )
    # every result, not only anomalies, goes to the DHT: the SIFIS request below is visible there
    (site / "kustomization.yaml").write_text(
        (site / "kustomization.yaml").read_text()
        + "  - target: {kind: ConfigMap, name: audioguard-transformer}\n"
        + "    patch: |-\n      - {op: replace, path: /data/AUDIOGUARD_DHT_POST, value: all}\n"
    )
    started = time.monotonic()
    cluster.kubectl("apply", "-n", NAMESPACE, "-k", str(site))
    cluster.wait_isvc_ready("audioguard", NAMESPACE)
    timings["overlay standard: apply -k to InferenceService Ready"] = time.monotonic() - started
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "-n", NAMESPACE, "-k", str(site), "--wait=true", timeout=300)
        cluster.drop_storage(NAMESPACE)


def test_the_sifis_request_through_port_forward_answers_and_reaches_the_broker(
    overlay: Cluster, broker: ClusterBroker, local: Services, shared_audio_dir: Path
) -> None:
    audio = (shared_audio_dir / "sample1.wav").read_bytes()
    with overlay.port_forward("svc/audioguard-transformer", 80, NAMESPACE) as port:
        there = sifis_post(Endpoint(f"http://127.0.0.1:{port}", ""), audio)
        live = requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=10)
    assert there.status_code == 200 and live.status_code == 200, there.text
    body = there.json()
    here = sifis_post(local.transformer, audio).json()
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in here["predictions"]]
    assert (body["requestor_id"], body["request_id"]) == ("nssd-7", "req-42")
    result = poll(
        lambda: (
            (v := broker.get(RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID))
            and v["analysis_id"] == body["analysis_id"]
            and v
        ),
        "the SIFIS result at the broker",
        60,
    )
    assert result["analyzer_id"].startswith("audioguard-transformer-")


def test_the_overlay_runs_the_hardened_pods_it_declares(overlay: Cluster) -> None:
    """What the API server, the webhooks and the kubelet made of the overlay: storage initializer
    mounting the weights' claim, read-only root, uid 1000, the outbox claim, the preStop hook."""
    for component in ("predictor", "transformer"):
        (pod,) = overlay.pods(NAMESPACE, f"component={component}")
        spec = pod["spec"]
        container = next(c for c in spec["containers"] if c["name"] == "kserve-container")
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsUser"] == 1000
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/mnt/models" in mounts, "KServe's pod mutator mounts the pvc:// weights"
        claims = {
            v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
        }
        assert "audioguard-models" in claims
        if component == "transformer":
            assert "audioguard-outbox" in claims
