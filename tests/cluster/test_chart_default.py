"""`helm install` of the chart with its default values on the real cluster.

Only the images are set (the release's registry cannot be reached here; the loaded ones are used,
never pulled): the default deploymentMode Auto finds no Knative Serving and renders Standard mode,
the default requests (transformer 1 CPU, predictor 0.5) fit the 2-core node, the weights come from
the default storage URI pvc://audioguard-models/ and the outbox from the chart's claim.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import IMAGES, TAG, Cluster, Endpoint
from tests.support.service_clients import Services, clip, sifis_post, triton_binary

NAMESPACE = "defaults"


@pytest.fixture(scope="module")
def default_release(cluster: Cluster, weights: Path, timings: dict[str, float]) -> Iterator[Endpoint]:
    cluster.storage(NAMESPACE, weights)
    images = [
        f"images.{component}.{key}={value}"
        for component in ("transformer", "predictor")
        for key, value in (
            ("repository", IMAGES[component].rsplit(":", 1)[0]),
            ("tag", TAG),
            ("pullPolicy", "Never"),
        )
    ]
    with cluster.helm_release(NAMESPACE, "--set", ",".join(images)) as seconds:
        timings["chart defaults: install to InferenceService Ready"] = seconds
        yield cluster.service("audioguard-transformer", NAMESPACE, 80, 8081)
    cluster.drop_storage(NAMESPACE)


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
