"""Paths and the external tools the deployment tests drive (helm, kustomize, kubeconform).

scripts/install-deploy-tools.sh puts pinned builds in .cache/bin (or
$AUDIOGUARD_TOOLS_DIR/bin). A test needing a tool that is absent is skipped with
the install command, or fails when AUDIOGUARD_REQUIRE_DEPLOY_TOOLS=1 (CI: a
validation that silently did not run is not a pass).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "audioguard"
MANIFESTS = REPO / "manifests"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
TOOLS_DIR = Path(os.environ.get("AUDIOGUARD_TOOLS_DIR", REPO / ".cache"))
INSTALL_HINT = "run `bash scripts/install-deploy-tools.sh`"
#: The Kubernetes version the manifests target (its strict schemas come with the tools).
KUBERNETES_VERSION = "1.32.0"
RELEASE = "audioguard"


def find_tool(name: str) -> Path | None:
    local = TOOLS_DIR / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def tools_required() -> bool:
    return os.environ.get("AUDIOGUARD_REQUIRE_DEPLOY_TOOLS") == "1"


def missing(what: str) -> NoReturn:
    """Skip (or fail under AUDIOGUARD_REQUIRE_DEPLOY_TOOLS=1) because a validator is absent."""
    message = f"{what} ({INSTALL_HINT})"
    if tools_required():
        pytest.fail(f"{message}; AUDIOGUARD_REQUIRE_DEPLOY_TOOLS=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> Path:
    path = find_tool(name)
    if path is None:
        missing(f"{name} is not installed")
    return path


def run(command: Sequence[str | Path], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a tool; on failure the assertion shows its stderr."""
    result = subprocess.run(
        [str(part) for part in command], input=stdin, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stderr}{result.stdout}"
        )
    return result.stdout


def helm_command(
    action: str,
    values: Mapping[str, Any] | None = None,
    *,
    values_files: Iterable[Path] = (),
    set_values: Iterable[str] = (),
) -> list[str | Path]:
    """A helm command line for the chart (``values`` on stdin); `template` renders release "audioguard"."""
    release = [RELEASE] if action == "template" else []
    command: list[str | Path] = [require_tool("helm"), *action.split(), *release, CHART]
    command += ["--kube-version", KUBERNETES_VERSION]
    for path in values_files:
        command += ["--values", path]
    if values:
        command += ["--values", "-"]
    for item in set_values:
        command += ["--set", item]
    return command


def helm_template(
    values: Mapping[str, Any] | None = None,
    *,
    values_files: Iterable[Path] = (),
    set_values: Iterable[str] = (),
) -> str:
    """`helm template` of the chart; raises AssertionError with helm's message on failure."""
    command = helm_command("template", values, values_files=values_files, set_values=set_values)
    return run(command, stdin=yaml.safe_dump(dict(values)) if values else None)


def helm_template_error(values: Mapping[str, Any] | None = None, *, set_values: Iterable[str] = ()) -> str:
    """helm's error message for values that must be refused (fails the test if helm renders them)."""
    command = helm_command("template", values, set_values=set_values)
    result = subprocess.run(
        [str(part) for part in command],
        input=yaml.safe_dump(dict(values)) if values else None,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, f"helm rendered values it should refuse: {values} {list(set_values)}"
    return result.stderr


def kustomize_build(path: Path) -> str:
    """Render a kustomization with the pinned `kustomize build` (else `kubectl kustomize`)."""
    kustomize = find_tool("kustomize")
    if kustomize is not None:
        return run([kustomize, "build", path])
    kubectl = find_tool("kubectl")
    if kubectl is None or tools_required():
        missing("kustomize is not installed")
    return run([kubectl, "kustomize", path])


def documents(rendered: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document stream."""
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind_and_name(docs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    indexed: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in indexed, f"{key} rendered twice"
        indexed[key] = dict(doc)
    return indexed


def deploycheck(kind: str, path: Path, *, env: Mapping[str, str] | None = None) -> Any:
    """BuildKit's (``dockerfile``) or compose-go's (``compose``) reading of a file, as JSON."""
    command = [str(require_tool("deploycheck")), kind, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    if result.returncode != 0:
        raise AssertionError(f"deploycheck {kind} {path}: {result.stderr}")
    return json.loads(result.stdout)
