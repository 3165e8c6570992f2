"""Containers run with podman for the image tests (tests/images, started by scripts/images.sh).

``run_hardened`` starts a container the way the manifests run the services (uid 1000, read-only
root, /tmp as tmpfs, every capability dropped, no-new-privileges). A ``Container`` has the
``http_url``/``grpc_address`` of a ``RunningServer`` so the service clients of
tests/support/service_clients.py talk to it unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.support.serverutil import POLL_INTERVAL_S

HARDENING = (
    "--user", "1000:1000",
    "--read-only",
    "--tmpfs", "/tmp:rw,size=256m,mode=1777",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
)  # fmt: skip


#: Paths podman creates in every container for its own bind mounts (network and identity files).
PODMAN_MOUNT_POINTS = frozenset(
    {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv", "/run/secrets"}
)


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run podman (with scripts/images.sh's CONTAINERS_CONF from the environment)."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:3])} ... failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result


def image_name(service: str) -> str:
    """The tag scripts/images.sh built for ``service`` (transformer, predictor, sifis-dht-broker)."""
    tag = os.environ.get("AUDIOGUARD_IMAGES_TAG", "test")
    repository = service if service == "sifis-dht-broker" else f"audioguard-{service}"
    return f"localhost/{repository}:{tag}"


def image_size_bytes(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


@dataclass
class Container:
    """A started container and where its service answers on the host."""

    name: str
    http_url: str
    grpc_address: str
    started: float = field(default_factory=time.monotonic)
    ready_seconds: float | None = None

    def inspect(self) -> dict[str, Any]:
        return dict(json.loads(podman("container", "inspect", self.name).stdout)[0])

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout

    def changed_paths(self) -> list[str]:
        """What ``podman diff`` lists: paths of the container's own filesystem added or changed,
        less the mount points podman itself makes (/etc/hosts, /etc/resolv.conf, ... and their
        folders, and the folders it creates where a volume is mounted)."""
        mounts = {mount["Destination"] for mount in self.inspect().get("Mounts") or []}
        lines = [line.strip() for line in podman("diff", self.name).stdout.splitlines() if line.strip()]
        return [line for line in lines if line.split(maxsplit=1)[-1] not in PODMAN_MOUNT_POINTS | mounts]

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])

    def wait_ready(self, path: str = "/v2/health/ready", timeout: float = 240) -> float:
        """Poll ``path`` until 200; returns (and records) seconds since ``podman run``."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"{self.name} exited before it was ready:\n{self.logs()[-4000:]}")
            try:
                answer = requests.get(self.http_url + path, timeout=2)
                if answer.status_code == 200:
                    self.ready_seconds = time.monotonic() - self.started
                    return self.ready_seconds
                last = f"HTTP {answer.status_code}"
            except requests.RequestException as error:
                last = type(error).__name__
            time.sleep(POLL_INTERVAL_S)
        raise AssertionError(f"{self.name}: {path} not ready in {timeout} s ({last}):\n{self.logs()[-4000:]}")

    def wait_exit(self, timeout: float = 120) -> int:
        """Block until the container's process ends (``podman wait``); its exit code."""
        result = podman("wait", self.name, check=False, timeout=timeout)
        return int(result.stdout.strip().splitlines()[-1])

    def remove(self) -> None:
        podman("rm", "--force", "--time", "10", self.name, check=False)


def run_hardened(
    name: str,
    image: str,
    args: Sequence[str] = (),
    *,
    http_port: int,
    grpc_port: int,
    publish: bool,
    volumes: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Container:
    """``podman run -d`` as the manifests run the services.

    With ``publish`` the container's 8080/8081 go to 127.0.0.1:``http_port``/``grpc_port``; without,
    it takes the host network (as docker-compose.yml runs the transformer) and ``args`` must name
    those ports.
    """
    podman("rm", "--force", name, check=False)
    network = (
        ["--publish", f"127.0.0.1:{http_port}:8080", "--publish", f"127.0.0.1:{grpc_port}:8081"]
        if publish
        else ["--network", "host"]
    )
    command = ["run", "--detach", "--name", name, *HARDENING, *network]
    for volume in volumes:
        command += ["--volume", volume]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    container = Container(name, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
    podman(*command, image, *args)
    return container
