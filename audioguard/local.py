"""``audioguard serve``: predictor + transformer on one machine, no Kubernetes.

Two processes, as in a cluster: the predictor (``python -m predictor``, REST
8080 / gRPC 8081) and the transformer (``python -m transformer``, REST 5000 =
the SIFIS endpoint, gRPC 5001), the transformer sending embeddings to the
predictor over gRPC v2 under the same model name. The command waits until the
transformer reports ready (its readiness includes the predictor's), prints the
URLs, and stops both on Ctrl-C / SIGTERM, also while they start; it then exits
128 + the signal (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a command
stopped by a signal. A second Ctrl-C kills both at once. If either process dies,
the other is stopped and the command exits 1.

Both listen on ``--host``: 127.0.0.1 by default, this machine only (KServe
alone would listen on every interface). ``--host 0.0.0.0`` opens them to the
network, e.g. for the other devices of a home. Containers keep KServe's every
interface (``--bind_host`` of each service).

Flags it does not know are passed on to the transformer (e.g.
``--privacy-minimum scramble``, given to it as ``--privacy_minimum``; see
``python -m transformer --help``); environment variables ``AUDIOGUARD_*`` reach
both processes. Its own flags take hyphens (``--model-dir``) or underscores.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import requests

from contract.assets import ALL_ASSETS, require_assets
from contract.cli_style import CliParser, hyphenated, known_flags, underscored, unrecognized
from contract.errors import MissingModelAsset
from contract.interrupts import exit_now
from contract.kserve_import import import_kserve

LOOPBACK = "127.0.0.1"
#: hosts that mean "every interface": reached locally through loopback
_EVERY_INTERFACE = ("0.0.0.0", "::", "[::]")
READY_POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 20.0
#: a stop that takes longer than this is said (requests in flight), with the way to stop at once
SLOW_STOP_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Service:
    """One child server process and where it answers."""

    name: str
    command: list[str]
    http_port: int
    host: str = LOOPBACK
    process: subprocess.Popen[bytes] | None = None

    @property
    def ready_url(self) -> str:
        return f"http://{local_address(self.host)}:{self.http_port}/v2/health/ready"

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return None if self.process is None else self.process.poll()


def local_address(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    return LOOPBACK if host in _EVERY_INTERFACE else host


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="audioguard serve",
        description=__doc__,
        # unknown flags go to the transformer: never let a prefix match swallow one
        allow_abbrev=False,
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("models"),
        help="directory filled by `audioguard weights download`",
    )
    parser.add_argument("--model-name", default="audioguard", help="v2 model name of both services")
    parser.add_argument(
        "--host",
        default=LOOPBACK,
        help="interface both services listen on (127.0.0.1: this machine only; "
        "0.0.0.0: every interface, reachable from the network)",
    )
    parser.add_argument("--http-port", type=int, default=5000, help="transformer REST port (SIFIS endpoint)")
    parser.add_argument("--grpc-port", type=int, default=5001, help="transformer gRPC port")
    parser.add_argument("--predictor-http-port", type=int, default=8080, help="predictor REST port")
    parser.add_argument("--predictor-grpc-port", type=int, default=8081, help="predictor gRPC port")
    parser.add_argument(
        "--predictor-protocol",
        choices=("grpc-v2", "v2"),
        default="grpc-v2",
        help="how the transformer calls the predictor",
    )
    parser.add_argument(
        "--predictor-timeout-seconds",
        type=int,
        default=30,
        help="longest the transformer waits for one predictor answer",
    )
    parser.add_argument(
        "--startup-timeout-seconds",
        type=float,
        default=600.0,
        help="give up if the services are not ready after this long",
    )
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """(own options, the transformer's flags): either spelling of ours is accepted; flags it does
    not know go to the transformer in the transformer's own (KServe) underscore spelling."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(hyphenated(argv, known_flags(parser)))
    if unknown:
        check_transformer_flags(parser, unknown)
    return args, underscored(unknown)


def check_transformer_flags(parser: argparse.ArgumentParser, unknown: Sequence[str]) -> None:
    """Refuse (usage error, exit 2) flags that neither ``serve`` nor the transformer knows,
    before any process starts: a typo is one line with its likely meaning, not the
    transformer's usage after the predictor has loaded its weights."""
    import_kserve()  # the transformer's parser is KServe's plus its settings (seconds to import)
    from transformer.__main__ import build_parser as transformer_parser

    transformer = transformer_parser()
    transformer.prog = parser.prog  # a bad value for one of its flags is this command's usage error
    passed = underscored(unknown)
    as_given = dict(zip(passed, unknown, strict=True))
    _, rest = transformer.parse_known_args(passed)
    if rest:
        passed_on = {flag.replace("_", "-") for flag in known_flags(transformer)}
        parser.error(unrecognized([as_given.get(arg, arg) for arg in rest], known_flags(parser) | passed_on))


def service_commands(args: argparse.Namespace, transformer_extra: Sequence[str]) -> list[Service]:
    """The predictor and transformer command lines for ``args``."""
    python = sys.executable
    predictor_port = (
        args.predictor_grpc_port if args.predictor_protocol == "grpc-v2" else args.predictor_http_port
    )
    predictor = Service(
        "predictor",
        [
            python, "-m", "predictor",
            "--model_name", args.model_name,
            "--model_dir", str(args.model_dir),
            "--http_port", str(args.predictor_http_port),
            "--grpc_port", str(args.predictor_grpc_port),
            "--bind_host", args.host,
        ],
        args.predictor_http_port,
        args.host,
    )  # fmt: skip
    transformer = Service(
        "transformer",
        [
            python, "-m", "transformer",
            "--model_name", args.model_name,
            "--model_dir", str(args.model_dir),
            "--http_port", str(args.http_port),
            "--grpc_port", str(args.grpc_port),
            "--bind_host", args.host,
            "--predictor_host", f"{local_address(args.host)}:{predictor_port}",
            "--predictor_protocol", args.predictor_protocol,
            "--predictor_request_timeout_seconds", str(args.predictor_timeout_seconds),
            "--enable_predictor_health_check",
            "--workers", "1",
            *transformer_extra,
        ],
        args.http_port,
        args.host,
    )  # fmt: skip
    return [predictor, transformer]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True if something already listens on ``port`` of ``host`` (or of every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0" if host in _EVERY_INTERFACE else host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM if ``audioguard serve`` itself is killed (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start(service: Service) -> None:
    # Own process group: a terminal's Ctrl-C reaches only this supervisor,
    # which then stops each server exactly once (a second SIGINT makes
    # uvicorn skip its graceful shutdown).
    # TensorFlow's C++ start-up chatter hides the banner; the operator can still raise it.
    env = {**os.environ}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    service.process = subprocess.Popen(service.command, process_group=0, preexec_fn=_die_with_parent, env=env)


def stop(services: Sequence[Service], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every running service, then SIGKILL whatever is left after the grace.

    A server finishes the requests in flight first: when that takes longer than a moment, one
    line says so and how to stop at once (a second Ctrl-C)."""
    running = [s.process for s in services if s.process is not None and s.process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace_seconds
    if not _all_ended(running, time.monotonic() + SLOW_STOP_SECONDS):
        print(
            "audioguard: the servers are finishing the requests in flight (Ctrl-C again: stop at once)",
            file=sys.stderr,
            flush=True,
        )
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _all_ended(processes: Sequence[subprocess.Popen[bytes]], deadline: float) -> bool:
    try:
        for process in processes:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def kill(services: Sequence[Service]) -> None:
    """SIGKILL every service still running (their process groups: helpers go too); return once
    they are dead.

    Called from the signal handler, maybe while the main thread waits in ``Popen.wait`` (which
    holds its lock): so no ``Popen`` call here, and no reaping (``WNOWAIT``).
    """
    pids = [s.process.pid for s in services if s.process is not None and s.process.returncode is None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for pid in pids:
        with contextlib.suppress(ChildProcessError):  # already reaped
            while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)


def is_ready(service: Service) -> bool:
    try:
        return requests.get(service.ready_url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def first_exit(services: Sequence[Service]) -> Service | None:
    return next((s for s in services if s.exited() is not None), None)


def wait_until_ready(services: Sequence[Service], stopping: threading.Event, timeout: float) -> str | None:
    """None once every service is ready, else why not (a death, a signal, the timeout)."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        dead = first_exit(services)
        if dead is not None:
            return f"the {dead.name} exited with code {dead.exited()} while starting"
        if stopping.is_set():
            return "stopped before the services were ready"
        if time.monotonic() > deadline:
            return f"the services were not ready after {timeout:g} s"
        pending = [s for s in pending if not is_ready(s)]
        if pending:
            stopping.wait(READY_POLL_SECONDS)
    return None


def banner(args: argparse.Namespace, services: Sequence[Service]) -> str:
    host = local_address(args.host)
    base = f"http://{host}:{args.http_port}"
    pids = ", ".join(f"{s.name} pid {s.process.pid}" for s in services if s.process is not None)
    return "\n".join(
        [
            f"audioguard is ready ({pids})",
            f"  v2 REST : {base}/v2/models/{args.model_name}/infer",
            f"  v2 gRPC : {host}:{args.grpc_port}",
            f"  SIFIS   : {base}/model/predict/{{audio_file}}/{{method}}/"
            "{requestor_id}/{requestor_type}/{request_id}",
            f"  predictor: http://{host}:{args.predictor_http_port} (gRPC {host}:{args.predictor_grpc_port})",
            "  listening on " + ("every interface" if args.host in _EVERY_INTERFACE else f"{args.host} only"),
            "Press Ctrl-C to stop.",
        ]
    )


def main(argv: Sequence[str]) -> int:
    """Run both services until Ctrl-C / SIGTERM; non-zero if one of them fails."""
    args, transformer_extra = parse_args(argv)
    try:  # before two processes spend seconds loading: a wrong folder is one line, at once
        require_assets(args.model_dir, ALL_ASSETS)
    except MissingModelAsset as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    ports = (args.http_port, args.grpc_port, args.predictor_http_port, args.predictor_grpc_port)
    if len(set(ports)) != len(ports):
        print(f"error: the four ports must differ, got {ports}", file=sys.stderr)
        return 2
    busy = [port for port in ports if port_in_use(port, args.host)]
    if busy:
        print(f"error: port(s) {', '.join(map(str, busy))} already in use", file=sys.stderr)
        return 2

    stopping = threading.Event()
    signals: list[int] = []
    services = service_commands(args, transformer_extra)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)
        if len(signals) > 1:  # a second signal: no more waiting for the graceful stop
            kill(services)
            os.write(2, b"audioguard stopped (killed)\n")  # not print: main may be mid-write
            exit_now(signals[0])
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for service in services:
            start(service)
        problem = wait_until_ready(services, stopping, args.startup_timeout_seconds)
        if signals:  # stopped on purpose, while starting or after: 128 + the signal
            return 128 + signals[0]
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        print(banner(args, services), flush=True)
        while not stopping.is_set():
            dead = first_exit(services)
            if dead is not None:
                print(f"error: the {dead.name} exited with code {dead.exited()}", file=sys.stderr)
                return 1
            stopping.wait(READY_POLL_SECONDS)
        return 128 + signals[0]
    finally:
        stop(services)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("audioguard stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
