"""The HPA that KServe makes in Standard mode, with metrics-server (scripts/cluster.sh starts it),
scales the transformer out under load and back in when the load stops.

The chart's standard variant with `transformer.maxReplicas=2` (two transformer pods fit the 2-core node
with the site's requests of 400m) and its HPA target of 70 % CPU of the request. The cluster's
controller-manager runs with a scale-down stabilization of 30 s instead of 5 min (scripts/cluster.sh),
so the way back is seen within the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import CHART, Cluster, Endpoint, RequestStream, poll, site_values
from tests.support.service_clients import clip

NAMESPACE = "autoscale"


@pytest.fixture(scope="module")
def scalable(cluster: Cluster, weights: Path) -> Iterator[Endpoint]:
    cluster.storage(NAMESPACE, weights)
    values = site_values(cluster.home / "sites" / "autoscale.json")
    standard = CHART / "ci" / "standard-values.yaml"
    limits = "transformer.maxReplicas=2,predictor.maxReplicas=1"
    with cluster.helm_release(NAMESPACE, "-f", str(standard), "-f", str(values), "--set", limits):
        yield cluster.service("audioguard-transformer", NAMESPACE, 80, 8081)
    cluster.drop_storage(NAMESPACE)


def hpa(cluster: Cluster) -> dict[str, object]:
    return cluster.json("hpa", "audioguard-transformer", "-n", NAMESPACE)  # type: ignore[no-any-return]


def utilization(cluster: Cluster) -> int | None:
    """The HPA's current CPU utilisation (percent of the request), None while it has no figure."""
    for metric in hpa(cluster).get("status", {}).get("currentMetrics") or []:  # type: ignore[attr-defined]
        value = metric.get("resource", {}).get("current", {}).get("averageUtilization")
        if value is not None:
            return int(value)
    return None


def test_the_transformer_scales_out_under_load_and_back_in_after(
    cluster: Cluster, scalable: Endpoint, timings: dict[str, float]
) -> None:
    poll(
        lambda: utilization(cluster) is not None,
        "the HPA's first CPU figure (metrics-server)",
        180,
        interval=2,
    )
    assert len(cluster.ready_pods(NAMESPACE, "component=transformer")) == 1
    with RequestStream(scalable, clip(51, seconds=10.0), clients=3) as stream:
        started = time.monotonic()
        poll(
            lambda: len(cluster.ready_pods(NAMESPACE, "component=transformer")) == 2,
            "a second transformer pod",
            300,
            interval=2,
        )
        timings["HPA: load to 2 transformer pods Ready"] = time.monotonic() - started
        peak = utilization(cluster)
        more = time.monotonic()
        poll(lambda: stream.count_since(more) >= 6, "requests served by the two pods", 120)
    stopped = time.monotonic()
    assert peak is not None and peak > 70, f"scaled out at {peak}% of the CPU request"
    # every request of the stream was answered while the HPA added a pod
    assert stream.summary() == {200: len(stream.outcomes)}, [o for o in stream.outcomes if o.status != 200][
        :5
    ]
    poll(
        lambda: len(cluster.pods(NAMESPACE, "component=transformer")) == 1,
        "the way back to one pod",
        300,
        interval=2,
    )
    timings["HPA: load stopped to 1 transformer pod"] = time.monotonic() - stopped
