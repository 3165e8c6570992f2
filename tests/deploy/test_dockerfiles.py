"""Dockerfile.transformer and Dockerfile.predictor, checked without a Docker engine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.deploy.dockerfile import Dockerfile, Stage, healthcheck_command, read_dockerfile
from tests.deploy.dockerignore import context_files, read_rules
from tests.deploy.policy import TRANSFORMER_FLAGS
from tests.deploy.tools import MANIFESTS, REPO, deploycheck
from tests.deploy.workloads import flag_values

SERVICES = ("transformer", "predictor")
SLIM_PYTHON_311 = re.compile(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?")
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|c\+\+|clang|build-essential|make|cmake|gfortran|rustc|cargo)\b")
#: What each image may take from the build context (besides its own package and its locks).
SHARED_SOURCES = {"pyproject.toml", "contract/"}
#: Each image's lock files (requirements/README.md); the predictor's -ray variant is a build-arg.
AMD64_LOCKS = {
    "transformer": {"requirements/transformer.lock"},
    "predictor": {"requirements/predictor.lock", "requirements/predictor-ray.lock"},
}
#: ... and an arm64 base installs the .arm64 lock of each (requirements/arm64-overrides.txt).
IMAGE_LOCKS = {
    service: locks | {lock.replace(".lock", ".arm64.lock") for lock in locks}
    for service, locks in AMD64_LOCKS.items()
}
#: Packages no image process imports, which no image lock may hold (Ray: the -ray variant only).
NEVER_IN_AN_IMAGE = {"matplotlib", "scipy", "libclang", "pillow", "pytest", "mypy", "ruff"}
#: The project's top-level packages; an image holds the contract and its own service only.
PROJECT_PACKAGES = ("contract", "transformer", "predictor", "audioguard")
WEIGHTS_COMMAND = "python -m contract.weights_cli download --dest /models"


def dockerfile(service: str) -> Dockerfile:
    return read_dockerfile(REPO / f"Dockerfile.{service}")


def expand(text: str, values: dict[str, str | None]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2)) or "", text)


def cmd_args(service: str) -> list[str]:
    final = dockerfile(service).final
    instruction = final.last("CMD")
    assert instruction is not None
    return instruction.exec_form()


def run_commands(stage: Stage) -> list[str]:
    return [item.value for item in stage.all("RUN")]


@pytest.mark.parametrize("service", SERVICES)
def test_buildkit_parses_it_without_warnings(service: str) -> None:
    """BuildKit's own parser (what `docker build` runs) accepts the file, its default lint rules
    find nothing, and it sees the same stages and instructions as this module's reader."""
    buildkit = deploycheck("dockerfile", REPO / f"Dockerfile.{service}")
    assert buildkit["warnings"] == []
    parsed = dockerfile(service)
    assert {arg["name"]: arg["default"] for arg in buildkit["args"]} == parsed.global_args
    assert [(stage["name"], stage["base"]) for stage in buildkit["stages"]] == [
        (stage.name, stage.base) for stage in parsed.stages
    ]
    assert [stage["commands"] for stage in buildkit["stages"]] == [
        [item.keyword for item in stage.instructions] for stage in parsed.stages
    ]


def test_buildkit_refuses_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:3.11-slim\nHEALTHCHECK --interval=soon CMD true\n", "utf-8")
    with pytest.raises(AssertionError, match="invalid duration"):
        deploycheck("dockerfile", broken)


@pytest.mark.parametrize("service", SERVICES)
def test_multi_stage_on_slim_python_311(service: str) -> None:
    parsed = dockerfile(service)
    stage_names = {stage.name for stage in parsed.stages}
    assert len(parsed.stages) >= 2
    for stage in parsed.stages:
        base = expand(stage.base, parsed.global_args)
        assert base in stage_names or SLIM_PYTHON_311.fullmatch(base), f"stage {stage.name}: base {base}"
    # The runtime starts again from the slim base: nothing of the build stage but what it copies.
    assert SLIM_PYTHON_311.fullmatch(expand(parsed.final.base, parsed.global_args))


@pytest.mark.parametrize("service", SERVICES)
def test_installs_exactly_the_locked_requirements(service: str) -> None:
    parsed = dockerfile(service)
    installs = [
        cmd for stage in parsed.stages for cmd in run_commands(stage) if re.search(r"\bpip\b|\buv\b", cmd)
    ]
    installs = [cmd for cmd in installs if re.search(r"pip install", cmd)]
    assert len(installs) == 2, installs
    locked, project = installs
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", "-r "):
        assert flag in locked, f"{flag} missing from {locked!r}"
    for lock in AMD64_LOCKS[service]:
        assert lock in locked, f"{lock} is not what {service} installs"
    # The project itself adds no dependency and fetches nothing (build backend from the lock).
    for flag in ("--no-deps", "--no-build-isolation", "--no-index"):
        assert flag in project, f"{flag} missing from {project!r}"
    # Debian packages: binutils (strip) in the build stage; in the transformer's runtime only
    # ffmpeg, and only in the LISTEN=true image (live sources).
    for stage in parsed.stages:
        for cmd in run_commands(stage):
            if "apt-get install" in cmd:
                package = cmd.split("apt-get install", 1)[1].split("&&", 1)[0].split()[-1]
                if stage.name == "build":
                    assert package == "binutils", cmd
                else:
                    assert (service, stage.name, package) == ("transformer", "runtime", "ffmpeg"), cmd
                    assert cmd.startswith('if [ "$LISTEN" = "true" ]; then'), cmd


def _installed_lock(command: str, tmp_path: Path, architecture: str, ray: bool) -> str:
    """The lock a RUN ``command`` hands to pip on a base of ``architecture`` (dpkg's name): run by
    sh with stand-ins for dpkg and pip that print what they were asked."""
    for name, body in (("dpkg", f"echo {architecture}"), ("pip", 'echo "$@"')):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    script = command.split(" ", 1)[1] if command.startswith("--mount=") else command
    result = subprocess.run(
        ["sh", "-c", script],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "RAY": "true" if ray else "false"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split(" -r ", 1)[1].strip()


@pytest.mark.parametrize("service", SERVICES)
def test_an_arm64_base_installs_the_arm64_lock(service: str, tmp_path: Path) -> None:
    """The same Dockerfile on both architectures: the base's dpkg architecture picks the lock."""
    commands = [cmd for stage in dockerfile(service).stages for cmd in run_commands(stage)]
    (locked,) = [cmd for cmd in commands if "--require-hashes" in cmd]
    variants = [False, True] if service == "predictor" else [False]
    for ray in variants:
        amd64 = _installed_lock(locked, tmp_path, "amd64", ray)
        arm64 = _installed_lock(locked, tmp_path, "arm64", ray)
        assert amd64 == f"requirements/{service}{'-ray' if ray else ''}.lock"
        assert arm64 == amd64.replace(".lock", ".arm64.lock")
        assert {amd64, arm64} <= IMAGE_LOCKS[service]


def _locked_versions(lock: str = "requirements.lock") -> dict[str, str]:
    text = (REPO / lock).read_text("utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    versions = {}
    for entry in entries:
        head = entry.split("\\", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", head)
        assert match, f"unpinned requirement {head!r}"
        assert "--hash=sha256:" in entry, f"{head} has no hash"
        versions[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return versions


def test_lock_file_pins_every_dependency_with_hashes() -> None:
    locked = _locked_versions()
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    block = pyproject.split("dependencies = [", 1)[1].split("]\n", 1)[0]
    for line in re.findall(r'"([^"]+)"', block):
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in locked, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]} violates {line}"
    # The locked build backend lets the image build the project offline (--no-build-isolation).
    assert "setuptools" in locked


@pytest.mark.parametrize("lock", sorted(set().union(*IMAGE_LOCKS.values())))
def test_image_locks_pin_the_tested_versions_and_only_what_the_process_needs(lock: str) -> None:
    """Each image lock is hashed, holds requirements-dev.lock's versions (what the tests ran), and
    none of the packages its process never imports; `bash scripts/lock.sh` regenerates them."""
    image = _locked_versions(lock)
    development = _locked_versions("requirements-dev.lock")
    differing = {name: version for name, version in image.items() if development.get(name) != version}
    if lock.endswith(".arm64.lock"):
        # the same as the amd64 lock but where requirements/arm64-overrides.txt says why not
        overrides = {
            re.sub(r"[-_.]+", "-", requirement.name).lower(): requirement
            for line in (REPO / "requirements/arm64-overrides.txt").read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")
            for requirement in [Requirement(line)]
        }
        assert set(image) == set(_locked_versions(lock.replace(".arm64.lock", ".lock")))
        assert set(differing) == set(overrides)
        assert all(overrides[name].specifier.contains(version) for name, version in differing.items())
        differing = {}
    assert differing == {}
    assert NEVER_IN_AN_IMAGE.isdisjoint(image)
    assert ("ray" in image) == lock.endswith(("-ray.lock", "-ray.arm64.lock"))
    assert {"kserve", "numpy", "setuptools"} <= set(image)
    # both services run on ONNX Runtime (VGGish, the classifier): no image holds TensorFlow or Keras
    assert {"tensorflow-cpu", "tensorflow", "keras"}.isdisjoint(image)
    assert {"onnxruntime", "onnx"} <= set(image)
    if "transformer" in lock:
        # resampling is numpy (transformer/audio/resample_kernels.py): no resampy, numba or llvmlite
        assert {"soundfile", "websockets"} <= set(image)
        assert {"resampy", "numba", "llvmlite"}.isdisjoint(image)
    else:
        assert "h5py" in image and "resampy" not in image and "numba" not in image


@pytest.mark.parametrize("service", SERVICES)
def test_copies_only_its_own_package(service: str) -> None:
    parsed = dockerfile(service)
    from_context = {
        source for stage in parsed.stages for copy in stage.copies() if copy.from_stage is None
        for source in copy.sources
    }  # fmt: skip
    assert from_context == SHARED_SOURCES | IMAGE_LOCKS[service] | {f"{service}/"}
    assert not any(item.keyword == "ADD" for stage in parsed.stages for item in stage.instructions)
    for source in from_context:
        assert (REPO / source).exists(), source


def test_dockerignore_sends_only_what_the_images_copy() -> None:
    rules = read_rules((REPO / ".dockerignore").read_text("utf-8"))
    sent = set(context_files(REPO, rules, frozenset({".git", ".venv", ".cache", "node_modules"})))
    locks = set().union(*IMAGE_LOCKS.values())
    allowed_roots = SHARED_SOURCES | locks | {f"{service}/" for service in SERVICES}
    for path in sent:
        assert path in allowed_roots or any(
            path.startswith(root) for root in allowed_roots if root.endswith("/")
        )
        assert "__pycache__" not in path and not path.endswith((".pyc", ".h5", ".ckpt", ".npz", ".sqlite3"))
    assert not any(path.startswith("audioguard/") for path in sent)  # the CLI is in no image
    for package in ("contract", "transformer", "predictor"):
        modules = {p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py")}
        modules = {m for m in modules if "__pycache__" not in m}
        assert modules <= sent, f"{package}: missing {sorted(modules - sent)[:5]}"
    assert "transformer/data/class_labels_indices.csv" in sent
    assert {"pyproject.toml", *set().union(*IMAGE_LOCKS.values())} <= sent


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root_without_compilers(service: str) -> None:
    final = dockerfile(service).final
    user = final.last("USER")
    assert user is not None
    uid = user.value.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, user.value
    for command in run_commands(final):
        assert not COMPILERS.search(command), command
    # Only the finished venv (and optional model files) come over from the build stages.
    copied = {(copy.from_stage, source) for copy in final.copies() for source in copy.sources}
    assert copied == {("build", "/opt/venv"), ("models", "/models")}


@pytest.mark.parametrize("service", SERVICES)
def test_models_are_not_baked_in_by_default(service: str) -> None:
    models = dockerfile(service).stage("models")
    assert models.args() == {"BAKE_MODELS": "false"}
    (bake,) = run_commands(models)
    assert '[ "$BAKE_MODELS" = "true" ]' in bake and WEIGHTS_COMMAND in bake


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_starts_the_service_with_the_manifest_flags(service: str) -> None:
    final = dockerfile(service).final
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == ["python", "-m", service]
    flags = flag_values(cmd_args(service))
    assert flags["--model_dir"] == "/mnt/models" and flags["--model_name"] == "audioguard"
    exposed = {int(port) for item in final.all("EXPOSE") for port in item.value.split()}
    assert {int(str(flags["--http_port"])), int(str(flags["--grpc_port"]))} == exposed
    if service == "transformer":
        for flag, value in TRANSFORMER_FLAGS.items():
            assert flags[flag] == value, flag
        assert "--enable_predictor_health_check" in flags
    # A manifest's args replace CMD: the InferenceService repeats it exactly.
    isvc = yaml.safe_load((MANIFESTS / "base" / "inferenceservice.yaml").read_text("utf-8"))
    assert isvc["spec"][service]["containers"][0]["args"] == cmd_args(service)


#: Run with only the image's packages importable: every module of them must import (nothing
#: reaches a package the image lacks), then the service's real parsers take the image's CMD.
_IMAGE_PROBE = """
import importlib, importlib.abc, json, pkgutil, sys

in_image, absent, optional, service, argv = json.loads(sys.argv[1])

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in absent:
            raise ModuleNotFoundError(f"{name} is not in this image")
        return None

sys.meta_path.insert(0, NotInImage())
imported, refused = [], {}
for package in in_image:
    root = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name in optional:
            try:
                importlib.import_module(info.name)
            except ModuleNotFoundError as error:
                refused[info.name] = str(error)
                continue
        importlib.import_module(info.name)
        imported.append(info.name)
from contract.weights_cli import build_parser as weights_parser
weights_parser().parse_args(["download", "--dest", "/models"])
main = importlib.import_module(service + ".__main__")
args = main.build_parser().parse_args(argv)
parsed = {key: str(value) for key, value in vars(args).items()}
print(json.dumps({"imported": imported, "refused": refused, "args": parsed}))
"""


#: Third-party packages an image leaves out, with the distribution its lock must not hold: the
#: transformer serves VGGish on ONNX Runtime, so TensorFlow, Keras and h5py are not in its image.
ABSENT_THIRD_PARTY = {
    "transformer": {"tensorflow": "tensorflow-cpu", "keras": "keras", "h5py": "h5py", "ray": "ray"},
    "predictor": {"tensorflow": "tensorflow-cpu", "keras": "keras", "ray": "ray"},
}
#: Modules of an image that need a left-out package: the reference VGGish on TensorFlow
#: (``--vggish_runtime tensorflow``), the Keras reference classifier (tests only) and Ray serving
#: (``--ray_replicas``, the RAY=true variant); all are refused with a clear message in the image.
OPTIONAL_MODULES = {
    "transformer": ["transformer.audio.vggish"],
    "predictor": ["predictor.keras_reference", "predictor.network", "predictor.ray_serving"],
}


def image_packages(service: str) -> list[str]:
    """The project packages the service's Dockerfile copies into its image."""
    copied = {
        source.rstrip("/") for stage in dockerfile(service).stages for copy in stage.copies()
        if copy.from_stage is None for source in copy.sources
    }  # fmt: skip
    return [package for package in PROJECT_PACKAGES if package in copied]


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_every_module_of_an_image_imports_with_only_the_image_packages(service: str) -> None:
    """Each image holds exactly what its process imports: with only the packages its Dockerfile
    copies importable, every module of them loads, the real parsers (KServe's flags + settings
    flags) accept the CMD, and the weights download command loads."""
    in_image = image_packages(service)
    assert in_image == ["contract", service]
    lock = (REPO / "requirements" / f"{service}.lock").read_text()
    locked = {line.split("==")[0] for line in lock.splitlines()}
    assert not locked & set(ABSENT_THIRD_PARTY[service].values())
    absent = [package for package in PROJECT_PACKAGES if package not in in_image]
    absent += list(ABSENT_THIRD_PARTY[service])
    # KServe appends --predictor_host to the transformer's args.
    extra = ["--predictor_host", "audioguard-predictor.default"] if service == "transformer" else []
    probe = json.dumps([in_image, absent, OPTIONAL_MODULES[service], service, [*cmd_args(service), *extra]])
    result = subprocess.run(
        [sys.executable, "-c", _IMAGE_PROBE, probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    on_disk = {
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for package in in_image
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts and path.name != "__main__.py"
    }
    assert on_disk <= {*report["imported"], *report["refused"]}, sorted(on_disk - {*report["imported"]})
    assert sorted(report["refused"]) == OPTIONAL_MODULES[service]
    for module, message in report["refused"].items():
        assert re.search(rf"({'|'.join(ABSENT_THIRD_PARTY[service])}) is not in this image", message), module
    args = report["args"]
    assert args["model_dir"] == "/mnt/models" and args["http_port"] == "8080" and args["grpc_port"] == "8081"
    if service == "transformer":
        assert args["workers"] == "1" and args["predictor_protocol"] == "grpc-v2"
        assert args["enable_predictor_health_check"] == "True"


class _Health(BaseHTTPRequestHandler):
    """200 on the v2 health routes, 503 elsewhere."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/v2/health/ready", "/v2/health/live") else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("service", SERVICES)
def test_healthcheck_probes_the_v2_ready_route(service: str, health_server: str, tmp_path: Path) -> None:
    final = dockerfile(service).final
    instruction = final.last("HEALTHCHECK")
    assert instruction is not None
    options, command = healthcheck_command(instruction)
    assert {"interval", "timeout", "start-period", "retries"} <= options.keys()
    url = final.env()["HEALTHCHECK_URL"]
    assert url == f"http://127.0.0.1:{flag_values(cmd_args(service))['--http_port']}/v2/health/ready"
    assert command[0] == "python"

    def healthcheck(target: str) -> int:
        env = {"HEALTHCHECK_URL": target, "PATH": "/usr/bin:/bin"}
        result = subprocess.run(
            [sys.executable, *command[1:]], env=env, cwd=tmp_path, capture_output=True, timeout=30
        )
        return result.returncode

    # Run the image's own check: healthy on the ready route, unhealthy on a 503 or no server.
    assert healthcheck(f"{health_server}/v2/health/ready") == 0
    assert healthcheck(f"{health_server}/not-ready") != 0
