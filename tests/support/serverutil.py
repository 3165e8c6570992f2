"""Start real service processes (``python -m predictor`` / ``python -m transformer``) for tests.

``start_server`` picks free loopback ports, passes them as ``--http_port`` /
``--grpc_port``, runs the module from the project root with the test's Python,
writes its stdout+stderr to a log file, and waits (bounded) until a readiness
URL answers 200. ``RunningServer.stop`` ends the process group it started
(SIGTERM, then SIGKILL), so helpers such as Ray workers go with it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_START_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.1


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    """The process exited or did not become ready in time; the message ends with its log tail."""


@dataclass
class RunningServer:
    """A service process started by ``start_server``."""

    http_url: str
    grpc_address: str
    process: subprocess.Popen[bytes]
    logs: Path

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.logs.read_text(errors="replace")

    def is_running(self) -> bool:
        return self.process.poll() is None

    def wait_for_status(self, path: str, status: int = 200, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Poll ``GET http_url + path`` until it answers ``status``.

        Raises ServerStartError if the process exits or the deadline passes.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ServerStartError(
                    f"process exited with {self.process.returncode} before {path} answered {status}"
                    f"\n--- log tail ---\n{self.log_text()[-4000:]}"
                )
            try:
                answer = requests.get(self.http_url + path, timeout=2)
                if answer.status_code == status:
                    return
                last = f"HTTP {answer.status_code}"
            except requests.RequestException as error:
                last = type(error).__name__
            time.sleep(POLL_INTERVAL_S)
        raise ServerStartError(
            f"{path} did not answer {status} within {timeout:.0f} s (last: {last})"
            f"\n--- log tail ---\n{self.log_text()[-4000:]}"
        )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; return the exit code."""
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        # Children that outlived a clean exit of the leader (same group) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode


def module_command(module: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", module, *args]


def service_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """The test's environment + the project on PYTHONPATH + ``env`` (a None value unsets the
    variable, e.g. ``TF_CPP_MIN_LOG_LEVEL`` to see what a user's shell would)."""
    merged = dict(os.environ)
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), merged.get("PYTHONPATH")) if p)
    merged.setdefault("PYTHONUNBUFFERED", "1")
    merged.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name, value in (env or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def start_server(
    module: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    ready_path: str | None = "/v2/health/ready",
    timeout: float = DEFAULT_START_TIMEOUT_S,
) -> RunningServer:
    """Run ``python -m module args --http_port P --grpc_port Q`` and wait until ready.

    ``ready_path`` (None: do not wait) is polled until it answers 200. On
    failure the process is stopped and ServerStartError carries the log tail.
    """
    http_port, grpc_port = free_port(), free_port()
    log_fd, log_name = tempfile.mkstemp(prefix=f"{module}-", suffix=".log")
    command = module_command(module, [*args, "--http_port", str(http_port), "--grpc_port", str(grpc_port)])
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=service_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(
        http_url=f"http://127.0.0.1:{http_port}",
        grpc_address=f"127.0.0.1:{grpc_port}",
        process=process,
        logs=Path(log_name),
    )
    if ready_path is not None:
        try:
            server.wait_for_status(ready_path, 200, timeout)
        except BaseException:
            server.stop()
            raise
    return server


@contextlib.contextmanager
def running_server(
    module: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    ready_path: str | None = "/v2/health/ready",
    timeout: float = DEFAULT_START_TIMEOUT_S,
) -> Iterator[RunningServer]:
    """``start_server`` as a context manager that always stops the process."""
    server = start_server(module, args, env, ready_path=ready_path, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def run_module(
    module: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None, *, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` to completion (for start-up failures); output captured as text."""
    return subprocess.run(
        module_command(module, args),
        cwd=PROJECT_ROOT,
        env=service_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the LISTEN sockets on ``port`` (from /proc/net/tcp and tcp6);
    an IPv4-mapped IPv6 address (gRPC's sockets) is given as the IPv4 one."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                address, port_hex = fields[1].split(":")
                if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                    continue
                # /proc prints each 32-bit word of the address in host (little-endian) order
                raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
                ip = ipaddress.ip_address(raw)
                mapped = getattr(ip, "ipv4_mapped", None)
                found.add(str(mapped or ip))
    return found
