"""Predictor + transformer started for a benchmark as ``audioguard serve`` starts them."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from audioguard import local

MODEL = "audioguard"
START_TIMEOUT_S = 600.0


class Services:
    """Predictor + transformer as ``audioguard serve`` starts them, logs in a temporary file."""

    def __init__(self, model_dir: Path) -> None:
        ports = [free_port() for _ in range(4)]
        parser = local.build_parser()
        self.args = parser.parse_args(
            [
                "--model-dir", str(model_dir),
                "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
                "--predictor-http-port", str(ports[2]), "--predictor-grpc-port", str(ports[3]),
            ]
        )  # fmt: skip
        self.predictor, self.transformer = local.service_commands(self.args, [])
        descriptor, name = tempfile.mkstemp(prefix="service-benchmark-", suffix=".log")
        os.close(descriptor)
        self.log = Path(name)
        self.base_predictor_command = list(self.predictor.command)
        self.base_transformer_command = list(self.transformer.command)

    @property
    def infer_url(self) -> str:
        return f"http://127.0.0.1:{self.args.http_port}/v2/models/{MODEL}/infer"

    @property
    def predictor_grpc(self) -> str:
        return f"127.0.0.1:{self.args.predictor_grpc_port}"

    @property
    def predictor_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.args.predictor_http_port}/metrics"

    @property
    def transformer_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.args.http_port}/metrics"

    def _start(self, service: local.Service) -> None:
        with self.log.open("ab") as output:
            service.process = subprocess.Popen(service.command, stdout=output, stderr=subprocess.STDOUT)

    def _wait(self, services: Sequence[local.Service]) -> None:
        problem = local.wait_until_ready(services, threading.Event(), START_TIMEOUT_S)
        if problem is not None:
            raise RuntimeError(f"{problem} (log: {self.log})")

    def start(self) -> None:
        self._start(self.predictor)
        self._start(self.transformer)
        self._wait([self.predictor, self.transformer])

    def restart(self, *, predictor_extra: Sequence[str] = (), transformer_extra: Sequence[str] = ()) -> None:
        """Replace both services by ones with these extra flags (same ports)."""
        local.stop([self.transformer, self.predictor])
        self.predictor.command = [*self.base_predictor_command, *predictor_extra]
        self.transformer.command = [*self.base_transformer_command, *transformer_extra]
        self.start()

    def restart_transformer(self, extra: Sequence[str] = ()) -> float:
        """Replace the transformer alone by one with these extra flags; seconds until it is ready."""
        local.stop([self.transformer])
        self.transformer.command = [*self.base_transformer_command, *extra]
        started = time.perf_counter()
        self._start(self.transformer)
        self._wait([self.transformer])
        return time.perf_counter() - started

    def stop(self) -> None:
        local.stop([self.transformer, self.predictor])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
