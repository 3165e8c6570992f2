"""Fixtures of the cluster tests: one real single-node Kubernetes + KServe for the session.

These tests run from the test command after the images are built (scripts/test.sh sets
AUDIOGUARD_CLUSTER_TESTS=1); elsewhere they are skipped, and the quick loop (-m "not slow") leaves
them out. They need root and the binaries of `bash scripts/cluster.sh build`. The session starts the
cluster, installs KServe, loads the images (AUDIOGUARD_IMAGES_TAG, default test), deploys the SIFIS
DHT broker from manifests/dht-broker and stops everything at the end (AUDIOGUARD_CLUSTER_KEEP=1 leaves
the cluster running for a look with `bash scripts/cluster.sh status`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import IMAGES, Cluster, ClusterBroker, site_kustomization
from tests.support.serverutil import PROJECT_ROOT
from tests.support.service_clients import Services, running_services

ENABLED = os.environ.get("AUDIOGUARD_CLUSTER_TESTS") == "1"
#: A group every window fires (all 527 classes, a threshold just above 0): anomalies on any audio,
#: so delivery and the outbox are tested without depending on what the synthetic weights hear.
ANY_SOUND_GROUPS = {
    "groups": [{"name": "any_sound", "label": "Any sound", "members": list(range(527)), "threshold": 1e-6}]
}
BROKER_NAMESPACE = "sifis-home"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
            if not ENABLED:
                item.add_marker(
                    pytest.mark.skip(
                        reason="a real cluster: AUDIOGUARD_CLUSTER_TESTS=1 (the test command sets it)"
                    )
                )


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root (bridge, iptables, containerd)")
    kube = Cluster()
    kube.script("up")
    try:
        kube.script("kserve")
        kube.script("load", *IMAGES.values())
        yield kube
    finally:
        if os.environ.get("AUDIOGUARD_CLUSTER_KEEP") != "1":
            kube.script("down")


@pytest.fixture(scope="session")
def weights(cluster: Cluster, synthetic_model_dir: Path) -> Path:
    """The synthetic official-format weights (the local services' too), where the PVs point."""
    folder = cluster.run_dir / "volumes" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    for source in synthetic_model_dir.iterdir():
        shutil.copyfile(source, folder / source.name)
        (folder / source.name).chmod(0o644)
    return folder


@pytest.fixture(scope="session")
def groups_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("groups") / "anomaly_groups.json"
    path.write_text(json.dumps(ANY_SOUND_GROUPS))
    return path


@pytest.fixture(scope="session")
def local(weights: Path, groups_file: Path) -> Iterator[Services]:
    """The same services on loopback, same weights and groups: the answers to match."""
    with running_services(weights, {"AUDIOGUARD_ANOMALY_GROUPS_FILE": str(groups_file)}) as services:
        yield services


@pytest.fixture(scope="session")
def broker(cluster: Cluster) -> ClusterBroker:
    """manifests/dht-broker in its namespace, its store on a hostPath volume."""
    cluster.namespace(BROKER_NAMESPACE)
    key = os.urandom(32).hex()
    cluster.apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: sifis-dht-key}\n"
        f"stringData: {{DHT_SHARED_KEY: '{key}'}}\n",
        BROKER_NAMESPACE,
    )
    cluster.volume("sifis-dht-store", BROKER_NAMESPACE, cluster.run_dir / "volumes" / "dht", owner=1000)
    site = site_kustomization(
        cluster.home / "sites" / "dht-broker",
        PROJECT_ROOT / "manifests" / "dht-broker",
        images={"ghcr.io/audioguard/sifis-dht-broker": IMAGES["broker"]},
        pull_never=[("Deployment", "sifis-dht", "/spec/template/spec/containers/0")],
    )
    cluster.kubectl("apply", "-k", str(site))
    cluster.rollout("sifis-dht", BROKER_NAMESPACE, timeout=180)
    return ClusterBroker(cluster, BROKER_NAMESPACE)


@pytest.fixture(scope="session")
def timings() -> Iterator[dict[str, float]]:
    """Seconds measured by the tests (InferenceService ready, rolling update, ...): printed at the end
    and written to report.json in K8S_HOME for the record."""
    figures: dict[str, float] = {}
    yield figures
    Cluster().home.mkdir(parents=True, exist_ok=True)
    (Cluster().home / "report.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    print("\ncluster timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(figures.items())))
