"""The pods a rendered manifest set would run, with their environment resolved.

An InferenceService component (``spec.predictor`` / ``spec.transformer``) and a
plain Deployment (the edge transformer) are both reduced to a ``Workload``: its
pod spec, its first container, the labels its pods carry and the environment the
container sees (``env`` plus every ConfigMap/Secret named in ``envFrom``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Labels the KServe controller puts on the pods of an InferenceService component.
KSERVE_POD_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_COMPONENT_LABEL = "component"


@dataclass(frozen=True)
class Workload:
    component: str  # "transformer" or "predictor"
    source_kind: str  # "InferenceService" or "Deployment"
    spec: dict[str, Any]  # the component spec (ISVC) or the Deployment spec
    pod: dict[str, Any]  # the pod spec
    pod_labels: dict[str, str]
    env: dict[str, str]  # resolved: env values + envFrom ConfigMaps/Secrets

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.pod["containers"]
        return containers[0]

    @property
    def args(self) -> list[str]:
        return [str(arg) for arg in self.container.get("args", [])]


def flag_values(args: Iterable[str]) -> dict[str, str | None]:
    """``--flag value`` pairs of an argument list; a flag followed by another flag maps to None."""
    items = list(args)
    values: dict[str, str | None] = {}
    for index, item in enumerate(items):
        if not item.startswith("--"):
            continue
        following = items[index + 1] if index + 1 < len(items) else None
        assert item not in values, f"{item} given twice in {items}"
        values[item] = None if following is None or following.startswith("--") else following
    return values


def _env_sources(docs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    sources: dict[tuple[str, str], dict[str, str]] = {}
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            sources["configMapRef", doc["metadata"]["name"]] = dict(doc.get("data", {}))
        elif doc["kind"] == "Secret":
            sources["secretRef", doc["metadata"]["name"]] = dict(doc.get("stringData", {}))
    return sources


def resolved_env(container: Mapping[str, Any], docs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The container's environment; every envFrom source must be among the rendered objects."""
    sources = _env_sources(docs)
    env: dict[str, str] = {}
    for entry in container.get("envFrom", []):
        ((ref_kind, ref),) = entry.items()
        key = (ref_kind, ref["name"])
        assert key in sources, f"envFrom {ref_kind} {ref['name']} is not rendered"
        env.update(sources[key])
    for item in container.get("env", []):
        secret = item.get("valueFrom", {}).get("secretKeyRef")
        if secret is not None:  # an operator's Secret (camera credentials): never a setting
            assert not item["name"].startswith("AUDIOGUARD_"), f"setting {item['name']} from a Secret"
            env[item["name"]] = f"<secret {secret['name']}/{secret['key']}>"
            continue
        assert "value" in item, f"env {item['name']} has no literal value"
        env[item["name"]] = str(item["value"])
    return env


def workloads(docs: list[dict[str, Any]]) -> dict[str, Workload]:
    """{component: Workload} of everything the rendered objects would run."""
    found: dict[str, Workload] = {}
    for doc in docs:
        if doc["kind"] == "InferenceService":
            for component in ("predictor", "transformer"):
                spec = doc["spec"].get(component)
                if spec is None:
                    continue
                labels = {
                    **spec.get("labels", {}),
                    KSERVE_POD_LABEL: doc["metadata"]["name"],
                    KSERVE_COMPONENT_LABEL: component,
                }
                env = resolved_env(spec["containers"][0], docs)
                found[component] = Workload(component, "InferenceService", spec, spec, labels, env)
        elif doc["kind"] == "Deployment":
            component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
            template = doc["spec"]["template"]
            env = resolved_env(template["spec"]["containers"][0], docs)
            found[component] = Workload(
                component, "Deployment", doc["spec"], template["spec"], template["metadata"]["labels"], env
            )
    return found


def volume_for_mount(workload: Workload, mount_path: str) -> dict[str, Any]:
    """The pod volume mounted at ``mount_path`` in the workload's container."""
    mounts = [m for m in workload.container.get("volumeMounts", []) if m["mountPath"] == mount_path]
    assert len(mounts) == 1, f"{workload.component}: {len(mounts)} mounts at {mount_path}"
    volumes = {volume["name"]: volume for volume in workload.pod.get("volumes", [])}
    assert mounts[0]["name"] in volumes, f"{workload.component}: volume {mounts[0]['name']} is not declared"
    return dict(volumes[mounts[0]["name"]])
