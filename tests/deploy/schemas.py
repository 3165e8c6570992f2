"""Strict JSON schemas for kubeconform, built offline.

kubeconform normally downloads its schemas; here they come from two local sources:

* Kubernetes kinds: the "local-strict" schemas of the PyPI wheel
  kubernetes-validate (unpacked by scripts/install-deploy-tools.sh). Their
  ``$ref``s point at a shared ``_definitions.json`` under an https ``$id``, which
  kubeconform would try to fetch, so every needed kind is written out
  standalone (references inlined).
* InferenceService: the full KServe CRD copied into tests/deploy/schemas/. Its
  OpenAPI v3 schema is converted to a JSON schema that rejects unknown fields
  (``additionalProperties: false`` wherever properties are listed, except where
  the CRD says ``x-kubernetes-preserve-unknown-fields``), with ``metadata``
  checked as a real ObjectMeta.

Layout (kubeconform ``-schema-location`` templates):
  <out>/v<k8s>-standalone-strict/<kind>-<group>-<version>.json
  <out>/crds/<group>/<kind>_<version>.json
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

#: The Kubernetes kinds the deployment files may contain (kubeconform fails on any other kind).
KUBERNETES_SCHEMA_FILES = (
    "configmap-v1.json",
    "secret-v1.json",
    "persistentvolumeclaim-v1.json",
    "service-v1.json",
    "deployment-apps-v1.json",
    "job-batch-v1.json",
    "networkpolicy-networking-v1.json",
    "poddisruptionbudget-policy-v1.json",
)
_DEFINITIONS_REF = "/api/_definitions.json#/$defs/"
_LOCAL_REF = "#/$defs/"


def _inline_refs(node: Any, definitions: Mapping[str, Any], trail: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_inline_refs(item, definitions, trail) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix(_DEFINITIONS_REF).removeprefix(_LOCAL_REF)
        if name == ref or name not in definitions:
            raise ValueError(f"unresolvable $ref {ref!r}")
        if name in trail:
            raise ValueError(f"recursive definition {' -> '.join((*trail, name))}")
        target = _inline_refs(definitions[name], definitions, (*trail, name))
        siblings = {key: value for key, value in node.items() if key not in ("$ref", "description")}
        return {**target, **_inline_refs(siblings, definitions, trail)}
    return {
        key: _inline_refs(value, definitions, trail)
        for key, value in node.items()
        if key not in ("$id", "$schema")
    }


def standalone_kubernetes_schema(local_strict_dir: Path, file_name: str) -> dict[str, Any]:
    """One kind's strict schema with every reference inlined (draft 2020-12)."""
    definitions = json.loads((local_strict_dir / "_definitions.json").read_text("utf-8"))["$defs"]
    schema = json.loads((local_strict_dir / file_name).read_text("utf-8"))
    standalone = _inline_refs(schema, definitions)
    standalone["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return standalone


def object_meta_schema(local_strict_dir: Path) -> dict[str, Any]:
    definitions = json.loads((local_strict_dir / "_definitions.json").read_text("utf-8"))["$defs"]
    return _inline_refs(definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"], definitions)


def strict_openapi(node: Any) -> Any:
    """OpenAPI v3 (CRD flavour) -> JSON schema that rejects fields the CRD does not list."""
    if isinstance(node, list):
        return [strict_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: strict_openapi(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes") and key != "nullable"
    }
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in converted:
        converted["type"] = [converted["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


def crd_json_schemas(crd: Mapping[str, Any], metadata_schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{version: strict JSON schema} for every served version of a CustomResourceDefinition."""
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    schemas = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = strict_openapi(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema["properties"]["metadata"] = copy.deepcopy(dict(metadata_schema))
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        schema["additionalProperties"] = False
        schema["$schema"] = "http://json-schema.org/draft-04/schema#"
        schemas[version["name"]] = schema
    return schemas


def write_schema_dir(
    out: Path,
    *,
    local_strict_dir: Path,
    kubernetes_version: str,
    crd_files: Iterable[Path],
    kubernetes_files: Iterable[str] = KUBERNETES_SCHEMA_FILES,
) -> list[str]:
    """Write the kubeconform schema tree; return its two -schema-location templates."""
    core_dir = out / f"v{kubernetes_version}-standalone-strict"
    core_dir.mkdir(parents=True, exist_ok=True)
    for file_name in kubernetes_files:
        schema = standalone_kubernetes_schema(local_strict_dir, file_name)
        (core_dir / file_name).write_text(json.dumps(schema), "utf-8")
    metadata = object_meta_schema(local_strict_dir)
    for crd_file in crd_files:
        crd = yaml.load(crd_file.read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        kind = crd["spec"]["names"]["kind"].lower()
        group_dir = out / "crds" / crd["spec"]["group"]
        group_dir.mkdir(parents=True, exist_ok=True)
        for version, schema in crd_json_schemas(crd, metadata).items():
            (group_dir / f"{kind}_{version}.json").write_text(json.dumps(schema), "utf-8")
    return [
        str(out / "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
            / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
        str(out / "crds" / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
    ]  # fmt: skip
