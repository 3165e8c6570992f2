"""Every AUDIOGUARD_* variable a deployment file sets is a real settings field.

pydantic-settings ignores unknown variables (``extra="ignore"``), so a typo in a
manifest would silently leave the default in place; these tests are the guard.
Sources: the images' ENV, docker-compose.yml, manifests/ (every overlay and
component), every chart variant, and the variables docs/deploy.md names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from predictor.settings import PredictorSettings
from tests.deploy.dockerfile import read_dockerfile
from tests.deploy.policy import SETTINGS_OF, settings_field, settings_from_env
from tests.deploy.tools import REPO, documents
from tests.deploy.variants import CHART_VARIANTS, COMPONENTS, OVERLAYS, kustomize_site, render_variant
from tests.deploy.workloads import workloads
from transformer.settings import TransformerSettings


def test_a_misspelt_variable_is_caught() -> None:
    with pytest.raises(AssertionError, match="not a TransformerSettings setting"):
        settings_field("AUDIOGUARD_PRIVACY_MINIMUN", TransformerSettings)
    with pytest.raises(AssertionError, match="prefix"):
        settings_field("AUDIOGUARD_MAX_BATCH_SIZE", PredictorSettings)
    assert settings_field("AUDIOGUARD_PREDICTOR_MAX_BATCH_SIZE", PredictorSettings) == "max_batch_size"


@pytest.mark.parametrize("service", ["transformer", "predictor"])
def test_image_environment(service: str) -> None:
    env = read_dockerfile(REPO / f"Dockerfile.{service}").final.env()
    assert any(name.startswith("AUDIOGUARD_") for name in env)
    settings = settings_from_env(env, SETTINGS_OF[service])
    assert str(settings.model_dump()["model_dir"]) == "/mnt/models"


def test_compose_environment() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    checked: dict[str, list[str]] = {}
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        env = {key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)) for key, value in environment.items()}
        settings_cls: type[BaseSettings] = PredictorSettings if name == "predictor" else TransformerSettings
        settings_from_env(env, settings_cls)
        checked[name] = [key for key in env if key.startswith("AUDIOGUARD_")]
    assert checked.get("transformer"), checked  # the file configures the transformer: not a vacuous pass


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_environment(overlay: str, tmp_path: Path) -> None:
    found = workloads(documents(kustomize_site(tmp_path, overlay, COMPONENTS)))
    for component, workload in found.items():
        names = [name for name in workload.env if name.startswith("AUDIOGUARD_")]
        assert names, component
        settings_from_env(workload.env, SETTINGS_OF[component])


@pytest.mark.parametrize("name", sorted(CHART_VARIANTS))
def test_chart_environment(name: str) -> None:
    found = workloads(render_variant(name))
    assert found, name
    for component, workload in found.items():
        assert any(key.startswith("AUDIOGUARD_") for key in workload.env), component  # not a vacuous pass
        settings_from_env(workload.env, SETTINGS_OF[component])


# read by the process before any settings object (logging, the KServe version check) or by the tests
NOT_SETTINGS = {
    "AUDIOGUARD_REQUIRE_DEPLOY_TOOLS",
    "AUDIOGUARD_CLUSTER_TESTS",
    "AUDIOGUARD_CLUSTER_KEEP",
    "AUDIOGUARD_LOG_LEVEL",
    "AUDIOGUARD_ALLOW_UNTESTED_KSERVE",
    "AUDIOGUARD_ARM64",  # the arm64 image leg's switch (scripts/test.sh -> scripts/images-arm64.sh)
    "AUDIOGUARD_ARM64_TAG",  # the arm64 images' tag, set by scripts/images-arm64.sh for its test
}


def test_documented_variables() -> None:
    text = (REPO / "docs" / "deploy.md").read_text("utf-8")
    names = set(re.findall(r"\bAUDIOGUARD_[A-Z0-9_]*[A-Z0-9]\b", text)) - NOT_SETTINGS
    assert names
    for name in names:
        settings_cls = PredictorSettings if name.startswith("AUDIOGUARD_PREDICTOR_") else TransformerSettings
        settings_field(name, settings_cls)
