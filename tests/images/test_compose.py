"""docker-compose.yml brought up with podman-compose (the gateway without Kubernetes), its "dht"
profile running the real SIFIS DHT broker image, and one SIFIS request end to end: port 5000 ->
transformer -> predictor, the result delivered to the broker on 127.0.0.1:3000."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.containers import image_name, image_size_bytes, podman
from tests.support.dht_standin import wait_until
from tests.support.serverutil import PROJECT_ROOT
from tests.support.service_clients import clip
from transformer.dht.topics import RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID

#: The compose file's fixed host ports: SIFIS/v2 REST, transformer gRPC, predictor REST/gRPC, DHT.
PORTS = (5000, 5001, 8080, 8081, 3000)
SIFIS = "http://127.0.0.1:5000"
DHT = "http://127.0.0.1:3000"


def _compose_command() -> list[str]:
    configured = os.environ.get("AUDIOGUARD_PODMAN_COMPOSE")
    if not configured:
        pytest.fail("AUDIOGUARD_PODMAN_COMPOSE is not set: run the image tests with bash scripts/images.sh")
    return [configured]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def gateway(image_models: Path, report: dict[str, dict[str, float]]) -> Iterator[str]:
    busy = [port for port in PORTS if not _port_free(port)]
    assert not busy, f"the compose file's host ports {busy} are taken on this machine"
    project = f"audioguard-test-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "AUDIOGUARD_VERSION": os.environ.get("AUDIOGUARD_IMAGES_TAG", "test"),
        "SIFIS_DHT_IMAGE": image_name("sifis-dht-broker"),
        "SIFIS_DHT_SHARED_KEY": secrets.token_hex(32),
        "AUDIOGUARD_DHT_POST": "all",
    }
    compose = [*_compose_command(), "--project-name", project, "--profile", "dht", "-f", "docker-compose.yml"]
    # The weights volume filled as `--profile setup run weights` would, from the synthetic files.
    models_volume = f"{project}_models"
    podman("volume", "create", models_volume)
    podman(
        "run", "--rm", "--user", "0",
        "--volume", f"{models_volume}:/dst", "--volume", f"{image_models}:/src:ro",
        "--entrypoint", "sh", image_name("transformer"), "-c", "cp /src/* /dst/ && chown -R 1000:1000 /dst",
    )  # fmt: skip
    up: subprocess.CompletedProcess[str] | None = None
    try:
        up = subprocess.run(
            [*compose, "up", "--detach", "--no-build"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        wait_until(lambda: _answers(f"{SIFIS}/v2/health/ready"), 240, "the transformer on port 5000")
        wait_until(lambda: _answers(f"{DHT}/get_all"), 60, "the DHT broker on port 3000")
        report["sifis-dht-broker"] = {"image_bytes": image_size_bytes(image_name("sifis-dht-broker"))}
        yield project
    finally:
        logs = subprocess.run([*compose, "logs"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        subprocess.run([*compose, "down", "--volumes"], cwd=PROJECT_ROOT, env=env, capture_output=True)
        podman("volume", "rm", "--force", models_volume, check=False)
        if up is None or up.returncode != 0:
            print(logs.stdout[-5000:])


def test_one_sifis_request_through_the_compose_gateway_reaches_its_dht(gateway: str) -> None:
    answer = requests.post(
        f"{SIFIS}/model/predict/anonymized_audio/nothing/nssd-1/NSSD/compose-1",
        files={"audio": ("sample1.wav", clip(21, seconds=3.0), "audio/wav")},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["predictions"]) == 5 and body["request_id"] == "compose-1"

    def delivered() -> bool:
        value = requests.get(
            f"{DHT}/topic_name/{RESULTS_TOPIC_NAME}/topic_uuid/{RESULTS_TOPIC_UUID}", timeout=5
        )
        stored = value.json()
        return bool(stored) and stored["value"]["analysis_id"] == body["analysis_id"]

    wait_until(delivered, 60, "the result in the compose DHT broker")
    # the three services of the profile, each still running (`podman ps` lists running ones only)
    names = podman("ps", "--filter", f"label=io.podman.compose.project={gateway}", "--format", "{{.Names}}")
    services = sorted(name.removeprefix(f"{gateway}_").rsplit("_", 1)[0] for name in names.stdout.split())
    assert services == ["dht", "predictor", "transformer"]
