"""Fixtures for the deployment tests: the strict validator and rendered manifests."""

from __future__ import annotations

import pytest

from tests.deploy.kubeconform import Kubeconform
from tests.deploy.schemas import write_schema_dir
from tests.deploy.tools import KUBERNETES_VERSION, SCHEMAS, TOOLS_DIR, missing, require_tool

KUBERNETES_SCHEMAS = TOOLS_DIR / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
INFERENCESERVICE_CRD = SCHEMAS / "serving.kserve.io_inferenceservices.yaml"


@pytest.fixture(scope="session")
def kubeconform(tmp_path_factory: pytest.TempPathFactory) -> Kubeconform:
    """kubeconform -strict over offline Kubernetes + InferenceService schemas."""
    binary = require_tool("kubeconform")
    if not (KUBERNETES_SCHEMAS / "_definitions.json").is_file():
        missing(f"Kubernetes JSON schemas missing in {KUBERNETES_SCHEMAS}")
    locations = write_schema_dir(
        tmp_path_factory.mktemp("kubeconform-schemas"),
        local_strict_dir=KUBERNETES_SCHEMAS,
        kubernetes_version=KUBERNETES_VERSION,
        crd_files=[INFERENCESERVICE_CRD],
    )
    return Kubeconform(binary, tuple(locations))
