"""The documented deployment variants: chart values files and kustomize overlays/components."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import CHART, MANIFESTS, documents, helm_template, kustomize_build

CHART_VARIANTS_DIR = CHART / "ci"
#: Each chart variant (helm/audioguard/ci/<name>-values.yaml; "default" = values.yaml alone)
#: and the kinds it must render.
_SERVICE = {"ConfigMap", "InferenceService", "NetworkPolicy", "PodDisruptionBudget"}
_FULL = _SERVICE | {"PersistentVolumeClaim"}  # + the outbox claim
#: The gateway half: the transformer as a Deployment + Service, its settings, DHT Secret, outbox.
_EDGE = {"ConfigMap", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service"}
CHART_VARIANTS = {
    "default": _FULL,
    "standard": _FULL,
    "site": _FULL | {"Secret"},
    "payload-logger": _FULL,
    "predictor-only": _SERVICE,
    "edge-transformer": _EDGE,
    "edge-listening": _EDGE,
    "weights-download": _FULL | {"Job"},
    "ephemeral-outbox": _SERVICE,
    "gateway": _FULL,
}

OVERLAYS = ("knative", "standard")
COMPONENTS = ("anomaly-groups", "dht", "payload-logger")


def variant_files(name: str) -> list[Path]:
    return [] if name == "default" else [CHART_VARIANTS_DIR / f"{name}-values.yaml"]


def render_variant(name: str) -> list[dict[str, Any]]:
    """`helm template` of one chart variant, parsed."""
    return documents(helm_template(values_files=variant_files(name)))


def kustomize_site(tmp_path: Path, overlay: str, components: tuple[str, ...]) -> str:
    """Render an overlay plus components the way a site's own kustomization would add them."""
    site = tmp_path / f"site-{overlay}-{len(components)}"
    site.mkdir()

    def relative(path: Path) -> str:  # kustomize refuses absolute paths
        return os.path.relpath(path, site)

    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [relative(MANIFESTS / "overlays" / overlay)],
        "components": [relative(MANIFESTS / "components" / name) for name in components],
    }
    (site / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), "utf-8")
    return kustomize_build(site)
