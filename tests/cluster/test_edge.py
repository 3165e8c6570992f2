"""The edge topology on the real cluster: the chart's predictor-only release in one namespace (the
cluster half), its transformer-only release in another (the home gateway's half, as on k3s),
calling the predictor over gRPC across namespaces, with the VGGish files from a claim.

The SIFIS endpoint answers on the edge Service's port 5000, as the Analytics-API calls it, and the
anomalies go to the broker. The predictor-only NetworkPolicy is not enforced here (the bridge CNI
ignores policies): the cross-namespace call shows the topology, not the policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import ANY_SOUND_GROUPS
from tests.support.cluster import CHART, Cluster, ClusterBroker, Endpoint, poll, site_values
from tests.support.service_clients import Services, sifis_post, triton_binary
from transformer.dht.topics import ANOMALY_TOPIC_NAME

CLOUD, EDGE = "audioguard-cloud", "audioguard-edge"


@pytest.fixture(scope="module")
def edge(
    cluster: Cluster, weights: Path, broker: ClusterBroker, timings: dict[str, float]
) -> Iterator[Endpoint]:
    cluster.storage(CLOUD, weights)
    cluster.storage(EDGE, weights, models_claim="audioguard-vggish")
    sites = cluster.home / "sites"
    cloud_values = (
        "-f",
        str(CHART / "ci" / "predictor-only-values.yaml"),
        "-f",
        str(site_values(sites / "cloud.json")),
    )
    edge_values = site_values(
        sites / "edge.json",
        dht_url=f"http://sifis-dht.{broker.namespace}.svc.cluster.local:3000",
        groups=ANY_SOUND_GROUPS,
        topology="transformer-only",
        edge={
            # the predictor's Service: port 80 is its gRPC port (listed first in Standard mode)
            "predictorHost": f"audioguard-predictor.{CLOUD}.svc.cluster.local:80",
            "predictorUseSsl": False,
            "modelsClaimName": "audioguard-vggish",
            "service": {"type": "ClusterIP", "port": 5000},
        },
    )
    with (
        cluster.helm_release(CLOUD, *cloud_values) as cloud_seconds,
        cluster.helm_release(EDGE, "-f", str(edge_values), ready="deploy") as edge_seconds,
    ):
        timings["edge: both releases to Ready"] = cloud_seconds + edge_seconds
        yield cluster.service("audioguard-transformer", EDGE, 5000)
    cluster.drop_storage(CLOUD)
    cluster.drop_storage(EDGE, models_claim="audioguard-vggish")


def test_the_edge_transformer_answers_on_port_5000_through_the_cluster_predictor(
    edge: Endpoint, local: Services, broker: ClusterBroker, shared_audio_dir: Path
) -> None:
    audio = (shared_audio_dir / "gunshots.wav").read_bytes()
    there, here = triton_binary(edge, audio, {}), triton_binary(local.transformer, audio, {})
    assert [e["label"] for e in there["windows"][0]["top"]] == [e["label"] for e in here["windows"][0]["top"]]
    answer = sifis_post(edge, audio)
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == [
        p["label"] for p in sifis_post(local.transformer, audio).json()["predictions"]
    ]
    (event,) = [e for e in there["anomalies"] if e["group"] == "any_sound"]
    start = str(uuid.uuid5(uuid.UUID(event["event_id"]), "start"))
    value = poll(lambda: broker.get(ANOMALY_TOPIC_NAME, start), "the edge's anomaly at the broker", 60)
    assert value["analyzer_id"].startswith("audioguard-transformer-")
