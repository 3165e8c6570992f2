"""manifests/: the kustomize overlays and components render, validate strictly and follow the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.kubeconform import Kubeconform
from tests.deploy.policy import check_deployment_policy
from tests.deploy.tools import MANIFESTS, by_kind_and_name, documents, kustomize_build
from tests.deploy.variants import COMPONENTS, OVERLAYS, kustomize_site

BASE_KINDS = {
    "ConfigMap",
    "InferenceService",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_strictly_valid_objects(overlay: str, kubeconform: Kubeconform) -> None:
    kubeconform.assert_valid(kustomize_build(MANIFESTS / "overlays" / overlay), expected_kinds=BASE_KINDS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_follows_the_deployment_policy(overlay: str) -> None:
    found = check_deployment_policy(documents(kustomize_build(MANIFESTS / "overlays" / overlay)))
    assert set(found) == {"transformer", "predictor"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_with_every_component(overlay: str, tmp_path: Path, kubeconform: Kubeconform) -> None:
    rendered = kustomize_site(tmp_path, overlay, COMPONENTS)
    kubeconform.assert_valid(rendered, expected_kinds=BASE_KINDS | {"Secret"})
    docs = documents(rendered)
    found = check_deployment_policy(docs)
    transformer = found["transformer"]
    assert transformer.env["AUDIOGUARD_DHT_URL"].startswith("http://")
    assert transformer.env["AUDIOGUARD_ANOMALY_GROUPS_FILE"] == "/etc/audioguard/anomaly_groups.json"
    assert transformer.spec["logger"]["mode"] == "response"


def test_components_are_off_by_default() -> None:
    """DHT delivery, site anomaly groups and payload logging are opt-in."""
    docs = documents(kustomize_build(MANIFESTS / "overlays" / "knative"))
    transformer = check_deployment_policy(docs)["transformer"]
    assert "logger" not in transformer.spec
    assert "AUDIOGUARD_DHT_URL" not in transformer.env
    assert "AUDIOGUARD_ANOMALY_GROUPS_FILE" not in transformer.env


def test_anomaly_groups_component_ships_the_file_it_mounts(tmp_path: Path) -> None:
    docs = by_kind_and_name(documents(kustomize_site(tmp_path, "knative", ("anomaly-groups",))))
    shipped = json.loads(
        (MANIFESTS / "components" / "anomaly-groups" / "anomaly_groups.json").read_text("utf-8")
    )
    mounted = json.loads(docs["ConfigMap", "audioguard-anomaly-groups"]["data"]["anomaly_groups.json"])
    assert mounted == shipped


def test_knative_and_standard_differ_only_in_mode_specific_fields() -> None:
    """The overlays change the serving mode, never the model, the settings or the security."""
    rendered = {
        overlay: by_kind_and_name(documents(kustomize_build(MANIFESTS / "overlays" / overlay)))
        for overlay in OVERLAYS
    }
    knative, standard = rendered["knative"], rendered["standard"]
    assert knative.keys() == standard.keys()
    mode_specific = {
        "scaleMetric",
        "scaleMetricType",
        "scaleTarget",
        "ports",
        "readinessProbe",
        "livenessProbe",
    }

    def invariant(isvc: dict[str, Any]) -> dict[str, Any]:
        spec = json.loads(json.dumps(isvc["spec"]))
        for component in spec.values():
            for key in mode_specific:
                component.pop(key, None)
                component["containers"][0].pop(key, None)
        return dict(spec)

    key = ("InferenceService", "audioguard")
    assert invariant(knative[key]) == invariant(standard[key])
    for other in knative.keys() - {key, ("NetworkPolicy", "audioguard-predictor-access")}:
        assert knative[other] == standard[other], other


def test_weights_job_renders_strictly_valid_objects(kubeconform: Kubeconform) -> None:
    rendered = kustomize_build(MANIFESTS / "weights")
    kubeconform.assert_valid(rendered, expected_kinds={"PersistentVolumeClaim", "Job"})
    docs = by_kind_and_name(documents(rendered))
    job = docs["Job", "audioguard-weights"]["spec"]["template"]["spec"]
    container = job["containers"][0]
    assert container["command"][:4] == ["python", "-m", "contract.weights_cli", "download"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    claim = job["volumes"][0]["persistentVolumeClaim"]["claimName"]
    # The claim the InferenceService reads through STORAGE_URI pvc://<claim>/.
    isvc = by_kind_and_name(documents(kustomize_build(MANIFESTS / "overlays" / "knative")))[
        "InferenceService", "audioguard"
    ]
    storage = {
        env["value"]
        for component in ("predictor", "transformer")
        for env in isvc["spec"][component]["containers"][0]["env"]
        if env["name"] == "STORAGE_URI"
    }
    assert storage == {f"pvc://{claim}/"}


def test_dht_broker_renders_strictly_valid_objects_where_the_dht_component_points(
    kubeconform: Kubeconform,
) -> None:
    """manifests/dht-broker is the broker the dht component's default URL names (run for real in
    tests/cluster)."""
    rendered = kustomize_build(MANIFESTS / "dht-broker")
    kubeconform.assert_valid(rendered, expected_kinds={"PersistentVolumeClaim", "Deployment", "Service"})
    docs = by_kind_and_name(documents(rendered))
    service = docs["Service", "sifis-dht"]
    url = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:3000"
    secret = (MANIFESTS / "components" / "dht" / "secret-dht.yaml").read_text("utf-8")
    assert f'AUDIOGUARD_DHT_URL: "{url}"' in secret
    pod = docs["Deployment", "sifis-dht"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    # the network's key only from a Secret the site creates, never a file in git
    (key,) = [env for env in container["env"] if env["name"] == "DHT_SHARED_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "sifis-dht-key", "key": "DHT_SHARED_KEY"}
    assert docs["Deployment", "sifis-dht"]["spec"]["strategy"] == {"type": "Recreate"}
