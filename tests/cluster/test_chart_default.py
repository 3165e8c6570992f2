"""`helm install` of the chart with its default values on the real cluster.

Only the images are set (the release's registry cannot be reached here; the loaded ones are used,
never pulled): the default deploymentMode Auto finds no Knative Serving and renders Standard mode,
the default requests (transformer 1 CPU, predictor 0.5) fit the 2-core node, the weights come from
the default storage URI pvc://audioguard-models/ and the outbox from the chart's claim.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import IMAGES, TAG, Cluster, Endpoint
from tests.support.serverutil import PROJECT_ROOT
from tests.support.service_clients import Services, clip, sifis_post, triton_binary

NAMESPACE = "defaults"
CHART = PROJECT_ROOT / "helm" / "audioguard"


@pytest.fixture(scope="module")
def default_release(cluster: Cluster, weights: Path, timings: dict[str, float]) -> Iterator[Endpoint]:
    cluster.namespace(NAMESPACE)
    cluster.volume("audioguard-models", NAMESPACE, weights, "2Gi")
    cluster.claim("audioguard-models", NAMESPACE, "2Gi")
    cluster.volume(
        "audioguard-outbox", NAMESPACE, cluster.run_dir / "volumes" / f"outbox-{NAMESPACE}", owner=1000
    )
    images = [
        f"images.{component}.{key}={value}"
        for component in ("transformer", "predictor")
        for key, value in (
            ("repository", IMAGES[component].rsplit(":", 1)[0]),
            ("tag", TAG),
            ("pullPolicy", "Never"),
        )
    ]
    started = time.monotonic()
    cluster.helm("install", "audioguard", str(CHART), "-n", NAMESPACE, "--set", ",".join(images))
    cluster.wait_isvc_ready("audioguard", NAMESPACE)
    timings["chart defaults: install to InferenceService Ready"] = time.monotonic() - started
    try:
        yield cluster.service("audioguard-transformer", NAMESPACE, 80, 8081)
    finally:
        cluster.helm("uninstall", "audioguard", "-n", NAMESPACE, "--wait")
        for claim in ("audioguard-models", "audioguard-outbox"):
            cluster.delete_volume(claim, NAMESPACE)


def test_the_default_values_become_a_standard_mode_service_that_answers(
    cluster: Cluster, default_release: Endpoint, local: Services
) -> None:
    isvc = cluster.json("isvc", "audioguard", "-n", NAMESPACE)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    hpas = {h["metadata"]["name"] for h in cluster.json("hpa", "-n", NAMESPACE)["items"]}
    assert hpas == {"audioguard-predictor", "audioguard-transformer"}
    audio = clip(41, seconds=3.0)
    there, here = triton_binary(default_release, audio, {}), triton_binary(local.transformer, audio, {})
    assert [e["label"] for e in there["windows"][0]["top"]] == [e["label"] for e in here["windows"][0]["top"]]
    answer = sifis_post(default_release, audio)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 5, answer.text
