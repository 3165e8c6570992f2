"""manifests/ and the Helm chart describe the same deployment, so neither can drift.

Each kustomize rendering is compared with the chart rendered with the values
that mean the same thing: every object must exist in both, with the same body
(images, args, ports, env, protocol, resources, autoscaling, probes, security
contexts, volumes, NetworkPolicy, PDB and ConfigMap data) and annotations; the
chart may only add its own bookkeeping labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import MANIFESTS, by_kind_and_name, documents, helm_template, kustomize_build
from tests.deploy.variants import COMPONENTS, kustomize_site

ANOMALY_GROUPS_FILE = MANIFESTS / "components" / "anomaly-groups" / "anomaly_groups.json"
CHECKSUM = "audioguard/config-checksum"
JSON_DOCUMENTS = {("ConfigMap", "audioguard-anomaly-groups"): "anomaly_groups.json"}


def differences(left: Any, right: Any, path: str = "") -> Iterator[str]:
    """Paths (``spec.transformer.containers[0].args``) where two YAML trees differ."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(left.keys() | right.keys()):
            if key not in left or key not in right:
                yield f"{path}.{key} only in {'chart' if key in left else 'manifests'}"
            else:
                yield from differences(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from differences(a, b, f"{path}[{index}]")
    elif left != right:
        yield f"{path}: chart {left!r} != manifests {right!r}"


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The object without metadata, JSON documents parsed (formatting may differ)."""
    body = {key: value for key, value in doc.items() if key != "metadata"}
    key = (doc["kind"], doc["metadata"]["name"])
    if doc["kind"] == "InferenceService":
        # the chart's rollout trigger on a changed setting (a digest of its own rendering); kustomize
        # users apply the manifests and restart the pods themselves (docs/deploy.md)
        spec = body["spec"] = dict(body["spec"])
        for component in ("predictor", "transformer"):
            if component in spec:
                spec[component] = dict(spec[component])
                annotations = spec[component].pop("annotations", {})
                assert set(annotations) <= {CHECKSUM}, annotations
    if key in JSON_DOCUMENTS:
        data = dict(body["data"])
        data[JSON_DOCUMENTS[key]] = json.loads(data[JSON_DOCUMENTS[key]])
        body["data"] = data
    return body


def assert_same_deployment(chart_rendered: str, manifests_rendered: str) -> None:
    chart = by_kind_and_name(documents(chart_rendered))
    manifests = by_kind_and_name(documents(manifests_rendered))
    assert chart.keys() == manifests.keys()
    problems: list[str] = []
    for key, from_chart in chart.items():
        from_manifests = manifests[key]
        problems += [f"{key}: {d}" for d in differences(comparable(from_chart), comparable(from_manifests))]
        annotations = (
            from_chart["metadata"].get("annotations"),
            from_manifests["metadata"].get("annotations"),
        )
        if annotations[0] != annotations[1]:
            problems.append(f"{key}: annotations {annotations[0]} != {annotations[1]}")
        chart_labels = from_chart["metadata"].get("labels", {})
        for label, value in from_manifests["metadata"].get("labels", {}).items():
            if chart_labels.get(label) != value:
                problems.append(f"{key}: label {label}={value} missing from the chart")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("overlay", "mode"), [("knative", "Knative"), ("standard", "Standard")])
def test_overlay_equals_chart_defaults(overlay: str, mode: str) -> None:
    assert_same_deployment(
        helm_template({"deploymentMode": mode}), kustomize_build(MANIFESTS / "overlays" / overlay)
    )


def test_components_equal_the_chart_values_that_enable_them(tmp_path: Path) -> None:
    manifests = kustomize_site(tmp_path, "knative", COMPONENTS)
    secret = by_kind_and_name(documents(manifests))["Secret", "audioguard-dht"]
    logger = by_kind_and_name(documents(manifests))["InferenceService", "audioguard"]["spec"]["transformer"][
        "logger"
    ]
    values = {
        "dht": {"url": secret["stringData"]["AUDIOGUARD_DHT_URL"]},
        "settings": {"anomalyGroups": json.loads(ANOMALY_GROUPS_FILE.read_text("utf-8"))},
        "transformer": {"logger": {"enabled": True, **logger}},
        "deploymentMode": "Knative",
    }
    assert_same_deployment(helm_template(values), manifests)


def test_the_comparison_notices_drift() -> None:
    """A changed image tag or resource limit in either source is reported by path."""
    manifests = kustomize_build(MANIFESTS / "overlays" / "knative")
    drifted = helm_template(
        {
            "images": {"predictor": {"tag": "0.2.0"}},
            "transformer": {"resources": {"limits": {"memory": "5Gi"}}},
            "deploymentMode": "Knative",
        }
    )
    with pytest.raises(AssertionError) as caught:
        assert_same_deployment(drifted, manifests)
    message = str(caught.value)
    assert ".spec.predictor.containers[0].image" in message
    assert ".spec.transformer.containers[0].resources.limits.memory" in message
