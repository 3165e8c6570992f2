"""The offline schemas the validation relies on: the full KServe CRD, converted strictly."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.conftest import INFERENCESERVICE_CRD
from tests.deploy.schemas import crd_json_schemas, strict_openapi

COMPONENT_FIELDS = {
    "minReplicas", "maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "containerConcurrency",
    "timeout", "logger", "containers", "volumes", "securityContext", "automountServiceAccountToken", "labels",
}  # fmt: skip


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document: dict[str, Any] = yaml.load(INFERENCESERVICE_CRD.read_text("utf-8"), Loader=loader)
    return document


def _openapi(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1beta1" and version["served"] and version["storage"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_crd_is_the_full_inferenceservice_crd(crd: dict[str, Any]) -> None:
    """The chart's minimal CRD has no schema (preserve-unknown-fields): only the full one validates."""
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "inferenceservices.serving.kserve.io"
    spec = _openapi(crd)["properties"]["spec"]
    assert set(spec["properties"]) == {"predictor", "transformer", "explainer", "canary"}
    for component in ("predictor", "transformer"):
        fields = spec["properties"][component]["properties"]
        assert set(fields) >= COMPONENT_FIELDS, COMPONENT_FIELDS - set(fields)
        assert fields["scaleMetric"]["enum"] == ["cpu", "memory", "concurrency", "rps"]
        container = fields["containers"]["items"]["properties"]
        assert "drop" in container["securityContext"]["properties"]["capabilities"]["properties"]
        assert "httpGet" in container["readinessProbe"]["properties"]


def test_only_status_is_left_open(crd: dict[str, Any]) -> None:
    open_paths: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("x-kubernetes-preserve-unknown-fields"):
                open_paths.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(_openapi(crd), "")
    assert open_paths == ["/properties/status"]


def test_strict_conversion_closes_every_object_with_properties() -> None:
    openapi = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": True}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    strict = strict_openapi(openapi)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["spec"]["additionalProperties"] is False
    assert strict["properties"]["spec"]["properties"]["port"]["anyOf"] == [
        {"type": "integer"},
        {"type": "string"},
    ]
    assert "additionalProperties" not in strict["properties"]["status"]
    assert strict["properties"]["labels"]["additionalProperties"] == {"type": "string"}


def test_converted_schema_checks_metadata_and_kind(crd: dict[str, Any]) -> None:
    metadata = {"type": "object", "properties": {"name": {"type": "string"}}}
    (schema,) = crd_json_schemas(crd, metadata).values()
    assert schema["properties"]["kind"]["enum"] == ["InferenceService"]
    assert schema["properties"]["apiVersion"]["enum"] == ["serving.kserve.io/v1beta1"]
    assert schema["properties"]["metadata"] == metadata
    assert {"apiVersion", "kind", "metadata"} <= set(schema["required"])
