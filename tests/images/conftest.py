"""Fixtures of the image tests: the images scripts/images.sh built, run as the manifests run them.

These tests run only from scripts/images.sh (it sets AUDIOGUARD_IMAGES_TAG after building the
images); tests/conftest.py leaves this folder out of a plain ``pytest`` run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.containers import Container, image_name, image_size_bytes, podman, run_hardened
from tests.support.dht_broker import DhtBroker
from tests.support.serverutil import free_port
from tests.support.service_clients import MODEL

#: The services' command lines inside the images, as the manifests give them.
PREDICTOR_CMD = [
    "--model_name",
    MODEL,
    "--model_dir",
    "/mnt/models",
    "--http_port",
    "8080",
    "--grpc_port",
    "8081",
]


@dataclass
class Deployment:
    """Both images running (predictor published on loopback, transformer on the host network),
    with the real DHT broker on the host and the transformer's outbox on a named volume."""

    predictor: Container
    transformer: Container
    broker: DhtBroker
    outbox_volume: str
    models: Path


def run_transformer(
    name: str,
    predictor_grpc: str,
    *,
    volumes: list[str],
    env: dict[str, str],
    extra: tuple[str, ...] = (),
    image: str | None = None,
) -> Container:
    """The transformer image (``image``: a variant) as the manifests run it (hardened, host
    network), pointed at a predictor."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        "--model_name", MODEL, "--model_dir", "/mnt/models", "--http_port", str(http_port),
        "--grpc_port", str(grpc_port), "--workers", "1", "--predictor_protocol", "grpc-v2",
        "--enable_predictor_health_check", "--predictor_host", predictor_grpc, *extra,
    ]  # fmt: skip
    return run_hardened(
        name,
        image or image_name("transformer"),
        command,
        http_port=http_port,
        grpc_port=grpc_port,
        publish=False,
        volumes=volumes,
        env={**env, "HEALTHCHECK_URL": f"http://127.0.0.1:{http_port}/v2/health/ready"},
    )


def resident_mib(container: Container) -> float:
    """VmRSS of the container's main process (the service), in MiB."""
    status = container.exec("cat", "/proc/1/status")
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="session")
def report() -> Iterator[dict[str, dict[str, float]]]:
    """Figures for scripts/images.sh's summary (image sizes, seconds to ready), written at the end."""
    figures: dict[str, dict[str, float]] = {}
    yield figures
    path = os.environ.get("AUDIOGUARD_IMAGES_REPORT")
    if path:
        Path(path).write_text(json.dumps(figures, indent=2, sort_keys=True))


@pytest.fixture(scope="session")
def image_models(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic official-format weights in a folder the containers' uid 1000 can read."""
    folder = tmp_path_factory.mktemp("image-models")
    for source in synthetic_model_dir.iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
        (folder / source.name).chmod(0o644)
    # only the mounted folder's own mode matters inside the container, not its parents' on the host
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def deployment(
    image_models: Path, tmp_path_factory: pytest.TempPathFactory, report: dict[str, dict[str, float]]
) -> Iterator[Deployment]:
    run = uuid.uuid4().hex[:8]
    names = {service: f"audioguard-test-{service}-{run}" for service in ("predictor", "transformer")}
    broker = DhtBroker(tmp_path_factory.mktemp("dht"))
    outbox_volume = f"audioguard-test-outbox-{run}"
    models = f"{image_models}:/mnt/models:ro"
    try:
        broker.start()
        podman("volume", "create", outbox_volume)
        predictor = run_hardened(
            names["predictor"],
            image_name("predictor"),
            PREDICTOR_CMD,
            http_port=free_port(),
            grpc_port=free_port(),
            publish=True,
            volumes=[models],
        )
        predictor.wait_ready()
        transformer = run_transformer(
            names["transformer"],
            predictor.grpc_address,
            volumes=[models, f"{outbox_volume}:/var/lib/audioguard"],
            env={"AUDIOGUARD_DHT_URL": broker.url, "AUDIOGUARD_DHT_POST": "all"},
        )
        transformer.wait_ready()
        for service, container in (("predictor", predictor), ("transformer", transformer)):
            report[service] = {
                "image_bytes": image_size_bytes(image_name(service)),
                "ready_seconds": round(container.ready_seconds or 0.0, 1),
            }
        yield Deployment(predictor, transformer, broker, outbox_volume, image_models)
    finally:
        # whatever got as far as being created goes, even when a start failed
        for name in names.values():
            podman("rm", "--force", "--time", "10", name, check=False)
        podman("volume", "rm", "--force", outbox_volume, check=False)
        broker.stop()
