"""The one-machine mode: ``audioguard serve``, ``audioguard client`` and ``scripts/run.sh``.

Real processes: the supervisor starts the real predictor and transformer on
free loopback ports; Ctrl-C is a SIGINT to the supervisor's process group, as
a terminal sends it. Answers are compared with the in-process chain.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from audioguard import local
from audioguard.offline import OfflineClassifier
from tests.support.cli import run_audioguard
from tests.support.interrupts import EXIT_BOUND_S, ONNXRUNTIME_LIBRARY, maps_library
from tests.support.serverutil import PROJECT_ROOT, free_port, listening_addresses, service_env
from transformer.analysis.document import result_document

MODEL = "audioguard"
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
ATOL = 1e-4
BANNER = re.compile(r"audioguard is ready \(predictor pid (\d+), transformer pid (\d+)\)")


def wav_file(path: Path, seed: int, seconds: float = 3.0) -> bytes:
    """Write a distinct synthetic recording to ``path``; return its bytes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    samples = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 4000) * t) + 0.1 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1, 1), 16000, format="WAV", subtype="PCM_16")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Supervisor:
    """A running ``audioguard serve`` (or ``scripts/run.sh``) and its two children."""

    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    child_pids: tuple[int, int] = (0, 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http_port']}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_banner(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = BANNER.search(self.text())
            if match:
                self.child_pids = (int(match.group(1)), int(match.group(2)))
                return
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.text()[-4000:]}")
            time.sleep(0.2)
        pytest.fail(f"serve printed no banner within {START_TIMEOUT_S:.0f} s:\n{self.text()[-4000:]}")

    def interrupt(self, sig: int = signal.SIGINT, times: int = 1) -> int:
        """Ctrl-C: SIGINT to the supervisor's process group (``times`` presses); its exit code,
        within ``EXIT_BOUND_S`` of the signal."""
        sent = time.monotonic()
        for _ in range(times):
            os.killpg(self.process.pid, sig)
        code = self.process.wait(STOP_TIMEOUT_S)
        elapsed = time.monotonic() - sent
        print(f"\n[serve: exit {code} {elapsed:.3f} s after the signal]", file=sys.stderr)
        assert elapsed < EXIT_BOUND_S, f"{elapsed:.1f} s from the signal to the exit"
        return code

    def children(self) -> list[int]:
        """The supervisor's child processes now (its two servers once started)."""
        found: list[int] = []
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def kill_everything(self) -> None:
        for pid in (self.process.pid, *self.child_pids, *self.children()):
            if pid and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def free_ports() -> dict[str, int]:
    names = ("http_port", "grpc_port", "predictor_http_port", "predictor_grpc_port")
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(names):
        ports = {name: free_port() for name in names}
    return ports


@contextlib.contextmanager
def supervisor(
    command: Sequence[str], log: Path, env: dict[str, str | None] | None = None
) -> Iterator[Supervisor]:
    """Start ``command`` + port flags in its own session; always leave no process behind."""
    ports = free_ports()
    flags = [item for name, port in ports.items() for item in (f"--{name}", str(port))]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, *flags],
            cwd=PROJECT_ROOT,
            env=service_env(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Supervisor(process, log, ports)
    try:
        yield running
    finally:
        running.kill_everything()


def assert_stopped_cleanly(running: Supervisor, code: int) -> None:
    assert code == 130, running.text()[-4000:]  # 128 + SIGINT, as for every command stopped by Ctrl-C
    for pid in running.child_pids:
        assert not alive(pid), f"child {pid} is still running after Ctrl-C"
    for port in running.ports.values():
        assert not listening(port), f"port {port} still answers after Ctrl-C"
    # both servers ran their graceful shutdown (not killed by the supervisor's grace timeout),
    # each said so once, and the command's own last word is that everything stopped
    text = running.text()
    assert text.count("transformer stopped") == 1 and text.count("predictor stopped") == 1, text[-4000:]
    assert text.rstrip().splitlines()[-1] == "audioguard stopped"


def assert_quiet_start(text: str) -> None:
    """What ``serve`` writes until it is ready: each service's start line, no server or TensorFlow
    banners, no warning that the predictor (still loading) is unreachable, short checksums."""
    assert "transformer serving: model 'audioguard'" in text and "weights NOT official" in text
    assert "predictor serving: model 'audioguard' (weights NOT official)" in text
    assert BANNER.search(text) and "Press Ctrl-C to stop." in text
    for noise in (
        "Press CTRL+C to quit",
        "kserve.trace",
        "uvicorn.access",
        "absl::InitializeLog",
        "oneDNN",
        "cpu_feature_guard",
        "This TensorFlow binary is optimized",
        "predictor unreachable",
        "Traceback",
    ):
        assert noise not in text, noise
    assert not re.search(r"[0-9a-f]{128}", text), "a whole sha512 at INFO"
    assert re.search(
        r"classifier_model\.h5 official=False sha512=[0-9a-f]{12}\.\.\.$", text, flags=re.MULTILINE
    )
    # the transformer, up first, waits for the predictor: said once at INFO, never warned about;
    # the only warnings are the weights' (synthetic here)
    lines = text.splitlines()
    waiting = [line for line in lines if "waiting for the predictor" in line]
    assert len(waiting) <= 1 and all(" INFO " in line for line in waiting), waiting
    warnings = [line for line in lines if " WARNING " in line or " ERROR " in line]
    assert all("do NOT match the official sha512 sums" in line for line in warnings), warnings


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return run_audioguard("client", *args)


@pytest.fixture(scope="module")
def reference(synthetic_model_dir: Path) -> OfflineClassifier:
    return OfflineClassifier.from_model_dir(synthetic_model_dir)


# --- fast: the command lines ------------------------------------------------------------------


def flag_values(command: Sequence[str]) -> dict[str, str | None]:
    """``--flag value`` pairs of a command line (None for a flag without a value)."""
    values: dict[str, str | None] = {}
    for position, token in enumerate(command):
        if token.startswith("--"):
            following = command[position + 1] if position + 1 < len(command) else "--"
            values[token] = None if following.startswith("--") else following
    return values


def test_defaults_put_the_sifis_endpoint_on_port_5000_and_link_the_services() -> None:
    args, extra = local.parse_args(["--privacy-minimum", "scramble"])
    predictor, transformer = local.service_commands(args, extra)
    assert args.http_port == 5000
    assert transformer.command[1:3] == ["-m", "transformer"] and predictor.command[1:3] == ["-m", "predictor"]
    flags = flag_values(transformer.command)
    assert flags["--http_port"] == "5000"
    assert flags["--predictor_host"] == f"127.0.0.1:{args.predictor_grpc_port}"
    assert flags["--predictor_protocol"] == "grpc-v2"
    assert flags["--privacy_minimum"] == "scramble"  # unknown flags reach the transformer
    assert flags["--enable_predictor_health_check"] is None
    predictor_flags = flag_values(predictor.command)
    assert predictor_flags["--model_name"] == flags["--model_name"]  # KServe calls under its own name
    assert predictor_flags["--grpc_port"] == str(args.predictor_grpc_port)


def test_both_services_listen_on_loopback_unless_told_otherwise() -> None:
    args, extra = local.parse_args([])
    assert [flag_values(s.command)["--bind_host"] for s in local.service_commands(args, extra)] == [
        "127.0.0.1",
        "127.0.0.1",
    ]
    opened, extra = local.parse_args(["--host", "0.0.0.0"])
    predictor, transformer = local.service_commands(opened, extra)
    assert flag_values(predictor.command)["--bind_host"] == flag_values(transformer.command)["--bind_host"]
    assert flag_values(transformer.command)["--bind_host"] == "0.0.0.0"
    # every interface includes loopback, which the transformer uses to reach the predictor
    assert flag_values(transformer.command)["--predictor_host"] == f"127.0.0.1:{opened.predictor_grpc_port}"


def test_rest_forwarding_points_at_the_predictor_http_port() -> None:
    args, extra = local.parse_args(["--predictor_protocol", "v2"])
    _, transformer = local.service_commands(args, extra)
    assert flag_values(transformer.command)["--predictor_host"] == f"127.0.0.1:{args.predictor_http_port}"


# --- slow: real processes ------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_answers_sifis_and_client_then_stops_both_on_ctrl_c(
    synthetic_model_dir: Path, reference: OfflineClassifier, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "audioguard.cli", "serve", "--model_dir", str(synthetic_model_dir)]
    # as from a user's shell: TensorFlow's log level not set by the test
    with supervisor(command, tmp_path / "serve.log", env={"TF_CPP_MIN_LOG_LEVEL": None}) as running:
        running.wait_for_banner()
        assert all(alive(pid) for pid in running.child_pids)
        # by default nothing listens beyond this machine: REST and gRPC of both, loopback only
        for name, port in running.ports.items():
            assert listening_addresses(port) == {"127.0.0.1"}, name

        # a quiet log: one start line per service, no server banners, probes at DEBUG only
        started = running.text()
        assert_quiet_start(started)
        before = len(running.text().splitlines())
        for _ in range(5):
            assert requests.get(f"{running.url}/v2/health/ready", timeout=10).status_code == 200
            assert requests.get(f"{running.url}/v2/health/live", timeout=10).status_code == 200
        # the Analytics-API's request on the configured SIFIS port
        first = wav_file(tmp_path / "first.wav", seed=1)
        response = requests.post(
            f"{running.url}/model/predict/anonymized_audio/nothing/nssd/NSSD/r1",
            files={"audio": ("sample1.wav", first, "audio/wav")},
            headers={"x-request-id": "sifis-7"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        # the probes wrote nothing; the request wrote one line in the transformer (method, path,
        # status, latency, id) and none in the predictor (its requests are summarized at stop)
        # (the line is written once the answer has gone out: read the log until it is there)
        deadline = time.monotonic() + 10
        new = running.text().splitlines()[before:]
        while time.monotonic() < deadline and not any("/model/predict/" in line for line in new):
            time.sleep(0.05)
            new = running.text().splitlines()[before:]
        assert not any("health" in line for line in new), new
        (sifis_line,) = [line for line in new if "/model/predict/" in line]
        assert re.search(
            r"POST /model/predict/anonymized_audio/nothing/nssd/NSSD/r1 200 [\d.]+ ms id=sifis-7$", sifis_line
        )
        assert new == [sifis_line], new
        expected_first = reference.classify(first, top_k=5)
        assert [p["label"] for p in response.json()["predictions"]] == [
            p["label"] for p in expected_first.windows[0].top
        ]

        # audioguard client over REST: one JSON document per file, each its own answer, with the
        # offline classifier's labels, anomalies and weights verdict (one result type for both)
        second = wav_file(tmp_path / "second.wav", seed=2, seconds=4.0)
        finished = run_client(
            "--url", running.url, "--json", str(tmp_path / "first.wav"), str(tmp_path / "second.wav")
        )
        assert finished.returncode == 0, finished.stderr
        lines = [json.loads(line) for line in finished.stdout.splitlines()]
        assert [line["file"] for line in lines] == [str(tmp_path / "first.wav"), str(tmp_path / "second.wav")]
        for line, audio in zip(lines, (first, second), strict=True):
            expected = result_document(reference.classify(audio, top_k=5))
            top = line["windows"][0]["top"]
            assert [p["label"] for p in top] == [p["label"] for p in expected["windows"][0]["top"]]
            np.testing.assert_allclose(
                [p["probability"] for p in top],
                [p["probability"] for p in expected["windows"][0]["top"]],
                atol=ATOL,
            )
            events = ("group", "start_seconds", "end_seconds", "window_start_seconds", "window_end_seconds")
            assert [[a[k] for k in events] for a in line["anomalies"]] == [
                [a[k] for k in events] for a in expected["anomalies"]
            ]
            # synthetic weights: said in every answer, offline and served alike
            assert line["weights_official"] is expected["weights_official"] is False
            assert line["weights_warning"] == expected["weights_warning"]
            assert set(expected) - {"analysis_id"} <= set(line)
            # numbers written alike: float32 scores at their shortest, times to the millisecond
            assert all(len(repr(p["probability"])) <= 12 for p in top)
            assert line["windows"][0]["end_seconds"] == expected["windows"][0]["end_seconds"]

        # audioguard client over gRPC, text output: the same --url form works for both transports
        grpc_address = f"127.0.0.1:{running.ports['grpc_port']}"
        for url in (grpc_address, f"http://{grpc_address}"):
            finished = run_client(
                "--grpc", "--url", url, "--privacy", "scramble", str(tmp_path / "second.wav")
            )
            assert finished.returncode == 0, finished.stderr
            text = finished.stdout.splitlines()
            assert text[0] == f"{tmp_path / 'second.wav'}  (4.00 s, privacy scramble)"
            assert text[1].startswith("  WARNING: these answers do not come from the official model weights")
            assert text[2] == "  0.00-3.84 s" and re.fullmatch(r"    1\. .+ \d\.\d\d", text[3])
        # REST given as host:port, --filter keeps only the named labels
        kept = expected["windows"][0]["top"][1]["label"]
        finished = run_client(
            "--url", running.url.removeprefix("http://"), "--filter", kept, str(tmp_path / "second.wav")
        )
        assert finished.returncode == 0, finished.stderr
        shown = re.findall(r"^ +\d+\. (.+?) +\d\.\d\d$", finished.stdout, flags=re.MULTILINE)
        assert shown == [kept]

        # a file that is not audio: the error is printed, the exit code says so
        (tmp_path / "notes.txt").write_text("not audio")
        finished = run_client("--url", running.url, str(tmp_path / "notes.txt"))
        assert finished.returncode == 1
        assert "400" in finished.stderr and "notes.txt" in finished.stderr
        # the same over gRPC: only the command's own line, not KServe's client log and traceback
        finished = run_client("--grpc", "--url", grpc_address, str(tmp_path / "notes.txt"))
        assert finished.returncode == 1
        assert len(finished.stderr.splitlines()) == 1, finished.stderr
        assert finished.stderr.startswith(f"{tmp_path / 'notes.txt'}: error: INVALID_ARGUMENT: ")
        assert "Traceback" not in finished.stderr and "kserve.trace" not in finished.stderr

        assert_stopped_cleanly(running, running.interrupt())
        # the predictor's calls in one summary line at stop (OK ones only: the bad file never left
        # the transformer), before it said it stopped
        text = running.text()
        (summary,) = re.findall(r"predictor: \d+ request\(s\) in the last \d+ s: .*", text)
        expected = r"predictor: \d+ request\(s\) in the last \d+ s: \d+ OK; mean [\d.]+ ms, slowest [\d.]+ ms"
        assert re.fullmatch(expected + r" \(each at DEBUG\)", summary), summary
        assert text.index(summary) < text.index("predictor stopped")
        predictor_requests = [
            line for line in text.splitlines() if f" {running.child_pids[0]} contract.requests INFO " in line
        ]
        assert len(predictor_requests) == 1 and predictor_requests[0].endswith(summary), predictor_requests


@pytest.mark.slow
def test_run_script_serves_and_stops_on_ctrl_c(synthetic_model_dir: Path, tmp_path: Path) -> None:
    """The README's main command with an existing model directory."""
    with supervisor(
        ["bash", "scripts/run.sh"],
        tmp_path / "run.log",
        env={"MODEL_DIR": str(synthetic_model_dir), "TF_CPP_MIN_LOG_LEVEL": None},
    ) as running:
        running.wait_for_banner()
        assert_quiet_start(running.text())
        assert requests.get(f"{running.url}/v2/health/ready", timeout=10).status_code == 200
        metadata = requests.get(f"{running.url}/v2/models/{MODEL}", timeout=10).json()
        if not metadata["parameters"]["weights_official"]:
            assert "are not the official weights" in running.text()
        assert_stopped_cleanly(running, running.interrupt())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "presses", "code", "last_line"),
    [
        (signal.SIGINT, 1, 130, "audioguard stopped"),
        (signal.SIGTERM, 1, 143, "audioguard stopped"),
    ],
)
def test_serve_stopped_while_starting_exits_128_plus_the_signal_and_stops_both(
    synthetic_model_dir: Path, tmp_path: Path, sig: int, presses: int, code: int, last_line: str | None
) -> None:
    """Ctrl-C (or SIGTERM) while both servers load: both stop at once and the command says it was
    stopped (130 / 143), with no error line and no traceback."""
    command = [sys.executable, "-m", "audioguard", "serve", "--model-dir", str(synthetic_model_dir)]
    with supervisor(command, tmp_path / "serve.log") as running:
        deadline = time.monotonic() + START_TIMEOUT_S
        # both servers started, one loading its model on ONNX Runtime (VGGish takes seconds to
        # build): well before ready
        while not (
            len(children := running.children()) == 2
            and any(maps_library(pid, ONNXRUNTIME_LIBRARY) for pid in children)
        ):
            assert running.process.poll() is None, running.text()[-4000:]
            assert time.monotonic() < deadline, "the servers never started"
            time.sleep(0.01)
        assert "audioguard is ready" not in running.text()
        assert running.interrupt(sig, presses) == code
        for pid in children:
            assert not alive(pid), f"server {pid} is still running"
        for port in running.ports.values():
            assert not listening(port)
        text = running.text()
        assert "Traceback" not in text and "error:" not in text, text[-4000:]
        lines = text.rstrip().splitlines()
        assert lines[-1] == last_line if last_line else lines[-1].startswith("audioguard stopped")


@pytest.mark.slow
def test_a_second_ctrl_c_stops_serve_at_once_while_a_request_runs(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """The first Ctrl-C lets the transformer finish the request in flight (a 10-minute recording)
    and says how to stop at once; the second kills both servers: exit 130 at once."""
    command = [sys.executable, "-m", "audioguard", "serve", "--model-dir", str(synthetic_model_dir)]
    with supervisor(command, tmp_path / "serve.log") as running:
        running.wait_for_banner()
        rng = np.random.default_rng(3)
        recording = tmp_path / "long.wav"
        sf.write(recording, np.clip(0.2 * rng.standard_normal(600 * 16000), -1, 1), 16000, subtype="PCM_16")
        client = subprocess.Popen(
            [sys.executable, "-m", "audioguard", "client", "--url", running.url, str(recording)],
            cwd=PROJECT_ROOT,
            env=service_env(None),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            metrics = f"{running.url}/metrics"
            deadline = time.monotonic() + START_TIMEOUT_S
            while (
                "audioguard_transformer_vggish_batch_examples_count"
                not in requests.get(metrics, timeout=10).text
            ):
                assert time.monotonic() < deadline, "the request never reached VGGish"
                time.sleep(0.05)
            os.killpg(running.process.pid, signal.SIGINT)
            while "Ctrl-C again" not in running.text():
                assert running.process.poll() is None, running.text()[-4000:]
                assert time.monotonic() < deadline, "serve never said why it waits"
                time.sleep(0.02)
            assert running.interrupt() == 130
        finally:
            client.kill()
            client.wait()
        for pid in running.child_pids:
            assert not alive(pid), f"server {pid} is still running"
        text = running.text()
        assert "Traceback" not in text
        assert text.rstrip().splitlines()[-1] == "audioguard stopped (killed)"


@pytest.mark.slow
def test_serve_without_weights_fails_at_once_and_starts_nothing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "audioguard.cli", "serve", "--model-dir", str(tmp_path / "empty")]
    with supervisor(command, tmp_path / "serve.log") as running:
        code = running.process.wait(START_TIMEOUT_S)
        assert code == 2
        (line,) = running.text().strip().splitlines()
        assert line.startswith(
            "error: model file(s) vggish_model.ckpt, vggish_pca_params.npz, classifier_model.h5"
        )
        assert "audioguard weights download" in line
        assert "predictor" not in running.text() and "transformer" not in running.text()  # none started
        for port in running.ports.values():
            assert not listening(port)
