"""Raw audio never reaches a log, a file or the predictor (issue 4), checked on real servers.

One predictor and two transformers (forwarding over gRPC v2 and REST v2) run as
real ModelServer processes with DEBUG logging, each with its own HOME, TMPDIR
and working directory. The transformers reach the predictor and the stand-in
DHT through TCP relays that record every byte they send. A random 7 s 48 kHz
stereo PCM16 recording (above Starlette's 1 MiB spool threshold) is sent over
v2 binary, v2 JSON/base64 and the SIFIS multipart route, with privacy none,
scramble and speech_mask. While the requests run, the open files of every
service process are polled through /proc (a spooled upload is an unlinked file:
only visible while open); afterwards every log, every file under the per-process
directories, new /tmp and /dev/shm entries and the relayed bytes are searched for
the recording's fingerprints (``tests.support.leakscan``). A control test plants
each kind of fingerprint and checks that the detectors report it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import logging
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import soundfile as sf
import tritonclient.http as triton_http_module
from kserve.logging import KSERVE_LOG_CONFIG

from tests.support.dht_broker import DhtBroker
from tests.support.leakscan import (
    AudioFingerprints,
    Finding,
    OpenFileWatcher,
    TcpRelay,
    files_under,
    new_entries,
    read_bounded,
    scan_files,
    session_members,
)
from tests.support.serverutil import RunningServer, free_port, module_command, service_env
from tests.support.service_clients import MODEL, kserve_grpc, sifis_post, triton_binary, triton_json

pytestmark = pytest.mark.slow

SAMPLE_RATE = 48_000
SECONDS = 7.0
#: Starlette's multipart parser spools a file part above this size to a temporary file.
SPOOL_THRESHOLD = 1024 * 1024
#: One second into each 1-s scramble segment's core: copied unchanged by scramble.
CHUNK_TIMES = (0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5)
METHODS = ("none", "scramble", "speech_mask")
#: Loggers of our packages, set to DEBUG (their parents get INFO from the services).
SERVICE_CHILD_LOGGERS = (
    "contract.http",
    "contract.assets",
    "transformer.model",
    "transformer.app",
    "transformer.analysis.analyzer",
    "transformer.audio.worker",
    "transformer.protocol",
    "transformer.dht",
    "predictor.model",
    "contract.batching",
)
#: Predictor-bound bytes per request: 1 window of uint8 embeddings + protocol overhead.
MAX_PREDICTOR_BYTES_PER_REQUEST = 32 * 1024
SHARED_DIRS = (Path(tempfile.gettempdir()), Path("/tmp"), Path("/dev/shm"))


# --- the recording ------------------------------------------------------------------------


def distinctive_recording(seed: int) -> bytes:
    """7 s, 48 kHz stereo PCM16 WAV: broadband noise + random tones, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    channels = []
    for _ in range(2):
        tones = sum(
            0.15 * np.sin(2 * np.pi * rng.uniform(200, 8000) * t + rng.uniform(0, 6)) for _ in range(3)
        )
        channels.append(np.clip(tones + 0.3 * rng.standard_normal(t.size), -1, 1))
    buffer = io.BytesIO()
    sf.write(buffer, np.stack(channels, axis=1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def recording() -> bytes:
    # A fresh seed each run: no earlier run's leftovers can match.
    audio = distinctive_recording(secrets.randbits(63))
    assert len(audio) > SPOOL_THRESHOLD
    return audio


@pytest.fixture(scope="module")
def fingerprints(recording: bytes) -> AudioFingerprints:
    return AudioFingerprints.of_wav(recording, CHUNK_TIMES)


# --- services in their own directories ---------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """A service process, its private directories and its log (stdout + stderr)."""

    name: str
    server: RunningServer
    dirs: tuple[Path, Path, Path]  # HOME, TMPDIR, cwd

    def pids(self) -> list[int]:
        return session_members(self.server.process.pid)


def debug_log_config(path: Path) -> Path:
    """KServe's log configuration with every logger (root included) at DEBUG."""
    config: dict[str, Any] = copy.deepcopy(KSERVE_LOG_CONFIG)
    for logger_config in config["loggers"].values():
        logger_config["level"] = "DEBUG"
    config["loggers"].update({name: {"level": "DEBUG"} for name in SERVICE_CHILD_LOGGERS})
    config["root"] = {"level": "DEBUG", "handlers": ["kserve"]}
    path.write_text(json.dumps(config))
    return path


def launch(name: str, module: str, args: list[str], env: dict[str, str], base: Path) -> Service:
    """Start ``python -m module`` with HOME, TMPDIR and cwd in ``base/name``; wait until ready."""
    home, tmp, cwd = (base / name / part for part in ("home", "tmp", "cwd"))
    for directory in (home, tmp, cwd):
        directory.mkdir(parents=True)
    log = base / "logs" / f"{name}.log"
    http_port, grpc_port = free_port(), free_port()
    command = module_command(
        module,
        [
            *args,
            "--http_port", str(http_port),
            "--grpc_port", str(grpc_port),
            "--log_config_file", str(debug_log_config(base / "logs" / f"{name}-logging.json")),
            "--enable_latency_logging", "true",
        ],
    )  # fmt: skip
    private = {"HOME": str(home), "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=service_env({**env, **private, "KSERVE_LOGLEVEL": "DEBUG"}),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, log)
    try:
        server.wait_for_status("/v2/health/ready")
    except BaseException:
        server.stop()
        raise
    return Service(name, server, (home, tmp, cwd))


@dataclass(frozen=True)
class Deployment:
    predictor: Service
    transformers: dict[str, Service]  # by protocol towards the predictor: "grpc", "rest"
    predictor_relays: dict[str, TcpRelay]
    dht_relay: TcpRelay
    dht: DhtBroker
    base: Path
    shared_baseline: dict[Path, set[str]]

    def services(self) -> list[Service]:
        return [self.predictor, *self.transformers.values()]


@pytest.fixture(scope="module")
def deployment(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("leaks")
    (base / "logs").mkdir()
    shared_baseline = {
        directory: set(os.listdir(directory)) for directory in SHARED_DIRS if directory.is_dir()
    }
    model = ["--model_name", MODEL, "--model_dir", str(synthetic_model_dir)]
    predictor = launch("predictor", "predictor", model, {}, base)
    dht = DhtBroker(base / "dht").start()
    dht_relay = TcpRelay(("127.0.0.1", int(dht.url.rsplit(":", 1)[1])))
    relays = {
        "grpc": TcpRelay(("127.0.0.1", int(predictor.server.grpc_address.rsplit(":", 1)[1]))),
        "rest": TcpRelay(("127.0.0.1", int(predictor.server.http_url.rsplit(":", 1)[1]))),
    }
    common = {"AUDIOGUARD_DHT_URL": f"http://{dht_relay.address}", "AUDIOGUARD_DHT_POST": "all"}

    def start_transformer(kind: str) -> Service:
        protocol = "grpc-v2" if kind == "grpc" else "v2"
        args = [*model, "--predictor_host", relays[kind].address, "--predictor_protocol", protocol]
        return launch(f"transformer-{kind}", "transformer", args, common, base)

    started: list[Service] = [predictor]
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = {kind: pool.submit(start_transformer, kind) for kind in relays}
            transformers = {}
            for kind, future in futures.items():
                transformers[kind] = future.result()
                started.append(transformers[kind])
        yield Deployment(predictor, transformers, relays, dht_relay, dht, base, shared_baseline)
    finally:
        for service in started:
            service.server.stop()
        for relay in (*relays.values(), dht_relay):
            relay.close()
        dht.stop()


# --- the three client paths -------------------------------------------------------------------


def send_v2_binary(server: RunningServer, audio: bytes, method: str) -> str:
    return str(triton_binary(server, audio, {"privacy": method})["parameters"]["privacy_method"])


def send_v2_json(server: RunningServer, audio: bytes, method: str) -> str:
    return str(triton_json(server, audio, {"privacy": method})["parameters"]["privacy_method"])


def send_sifis(server: RunningServer, audio: bytes, method: str) -> str:
    response = sifis_post(server, audio, method="nothing" if method == "none" else method)
    assert response.status_code == 200, response.text
    return str(response.json()["privacy_method"])


CLIENTS: dict[str, Callable[[RunningServer, bytes, str], str]] = {
    "v2-binary": send_v2_binary,
    "v2-json-base64": send_v2_json,
    "sifis-multipart": send_sifis,
}


# --- tests ------------------------------------------------------------------------------------------


def test_detectors_report_planted_audio(
    fingerprints: AudioFingerprints, recording: bytes, tmp_path: Path
) -> None:
    """Control: each detector flags each kind of planted copy, so the real test can fail."""
    # planted pieces cover one of the fingerprinted places (a leak copies the whole file)
    offset = fingerprints.encoded_offsets[3]
    wav_chunk = recording[offset - 50 : offset + 250]
    # a spooled upload: an unlinked file, visible only while open; found and read via /proc
    with (
        OpenFileWatcher(lambda: [os.getpid()], fingerprints) as watcher,
        tempfile.TemporaryFile(dir=tmp_path) as spool,
    ):
        spool.write(b"--boundary\r\n" + wav_chunk)
        spool.flush()
        deadline = time.monotonic() + 10
        while not watcher.findings and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any(f.deleted for f in watcher.suspicious())
    assert any("encoded file bytes" in f.kind for f in watcher.findings), watcher.findings

    waveform = fingerprints.mono_16k
    start = round(2.5 * 16_000)
    planted: dict[str, bytes] = {
        "raw bytes": wav_chunk,
        "base64 at an odd offset": base64.b64encode(recording[offset - 101 : offset + 200]),
        "hex": recording[offset - 7 : offset + 100].hex().encode(),
        "repr of bytes": repr(recording[offset : offset + 1000]).encode(),
        "float32 waveform": waveform[start - 5 : start + 60].astype("<f4").tobytes(),
        "float64 waveform in base64": base64.b64encode(
            b"x" + waveform[start - 3 : start + 64].astype("<f8").tobytes()
        ),
        "numpy printing": f"samples: {waveform[1000:1010]}".encode(),
        "repr of floats": repr(waveform[4000:4006].tolist()).encode(),
        "3 decimals": ", ".join(f"{v:.3f}" for v in waveform[7000:7006]).encode(),
        "int16 printing": str(np.round(waveform[9000:9008] * 32768).astype(np.int16)).encode(),
        "sha256 in an id": b"analysis_id=host2026-12-03T10:00:00Z"
        + hashlib.sha256(recording).hexdigest().encode(),
    }
    for name, data in planted.items():
        assert fingerprints.find(b"INFO something\n" + data + b"\n", name), f"{name} not detected"
    # a file left behind and a line in a log are found by the scans the real test uses
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "left.bin").write_bytes(planted["float32 waveform"])
    handler = logging.FileHandler(tmp_path / "service.log")
    planted_logger = logging.getLogger("leak-control")
    planted_logger.addHandler(handler)
    planted_logger.warning("decoded %s", waveform[1000:1010])
    handler.close()
    planted_logger.removeHandler(handler)
    found = {Path(f.where).name for f in scan_files(files_under([tmp_path]), fingerprints)}
    assert found == {"left.bin", "service.log"}
    # and harmless output is not flagged
    harmless = b"2026-11-24 17:27:40.123 4242 kserve INFO probability 0.51234567 0.0 1.0 [0.25, 0.5, 0.75]"
    assert fingerprints.find(harmless, "harmless") == []


def test_predictor_accepts_only_embeddings(deployment: Deployment) -> None:
    metadata = requests.get(f"{deployment.predictor.server.http_url}/v2/models/{MODEL}", timeout=10).json()
    assert metadata["inputs"] == [{"name": "embeddings", "datatype": "UINT8", "shape": [-1, 10, 128]}]


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_no_audio_in_logs_files_or_traffic(
    deployment: Deployment, recording: bytes, fingerprints: AudioFingerprints, kind: str
) -> None:
    transformer = deployment.transformers[kind]
    relay = deployment.predictor_relays[kind]
    services = deployment.services()
    applied: dict[tuple[str, str], str] = {}
    predictor_bytes: dict[tuple[str, str], int] = {}

    def all_pids() -> list[int]:
        return [pid for service in services for pid in service.pids()]

    with OpenFileWatcher(all_pids, fingerprints) as watcher:
        for client_name, send in CLIENTS.items():
            for method in METHODS:
                before = relay.sent_count()
                applied[(client_name, method)] = send(transformer.server, recording, method)
                predictor_bytes[(client_name, method)] = relay.sent_count() - before

    # the requests were served as asked, and each sent the predictor a few KiB at most
    assert applied == {key: key[1] for key in applied}
    assert all(0 < size <= MAX_PREDICTOR_BYTES_PER_REQUEST for size in predictor_bytes.values()), (
        predictor_bytes
    )
    assert watcher.polls > 100

    findings: list[Finding] = sorted(watcher.findings, key=str)
    # opened while the requests ran: nothing deleted (spool) and nothing written but the outbox
    suspicious = watcher.suspicious()
    unexpected = [f for f in suspicious if f.deleted or not Path(f.target).name.startswith("outbox.sqlite3")]
    assert not unexpected, f"files opened for writing or deleted while open: {unexpected}"
    # every log line of every process
    for service in services:
        findings += fingerprints.find(read_bounded(service.server.logs), f"log of {service.name}")
    # every file in every process's HOME, TMPDIR and cwd (the outbox included)
    written = list(files_under(d for service in services for d in service.dirs))
    assert any(path.name == "outbox.sqlite3" for path in written), written
    findings += scan_files(written, fingerprints)
    # what appeared meanwhile in the shared temporary directories
    for directory, baseline in deployment.shared_baseline.items():
        findings += scan_files(files_under(new_entries(directory, baseline)), fingerprints)
    # everything the transformers sent to the predictor and to the DHT
    for name, sent in {
        "predictor-bound traffic (gRPC)": deployment.predictor_relays["grpc"].sent(),
        "predictor-bound traffic (REST)": deployment.predictor_relays["rest"].sent(),
        "DHT-bound traffic": deployment.dht_relay.sent(),
    }.items():
        findings += fingerprints.find(sent, name)
    assert deployment.dht_relay.sent_count() > 0
    assert not findings, "audio found:\n" + "\n".join(map(str, findings))


def test_audio_sent_to_every_port_comes_back_nowhere(
    deployment: Deployment, recording: bytes, fingerprints: AudioFingerprints
) -> None:
    """The recording sent to every REST and gRPC port of both services, the right ones and the
    wrong ones (a user pointing the client at the predictor): no answer and no log holds it."""
    answers: list[tuple[str, bytes]] = []
    for service in deployment.services():
        server = service.server
        where = f"{service.name} REST"
        tensor = triton_http_module.InferInput("audio", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([recording], dtype=np.object_), binary_data=True)
        body, json_length = triton_http_module.InferenceServerClient.generate_request_body([tensor])
        posts = {
            "v2 binary": (body, {"Inference-Header-Content-Length": str(json_length)}),
            "the file as the body": (recording, {"Content-Type": "audio/wav"}),
            "v2 JSON base64": (
                json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "audio",
                                "shape": [1],
                                "datatype": "BYTES",
                                "data": [base64.b64encode(recording).decode()],
                                "parameters": {"content_encoding": "base64"},
                            }
                        ]
                    }
                ).encode(),
                {"Content-Type": "application/json"},
            ),
        }
        for kind, (data, headers) in posts.items():
            answer = requests.post(
                f"{server.http_url}/v2/models/{MODEL}/infer", data=data, headers=headers, timeout=60
            )
            answers.append((f"{where} {kind} ({answer.status_code})", answer.content))
        sifis = sifis_post(server, recording)
        answers.append((f"{where} SIFIS ({sifis.status_code})", sifis.content))
        try:
            grpc_answer = json.dumps(kserve_grpc(server, recording, {})).encode()
            answers.append((f"{service.name} gRPC (OK)", grpc_answer))
        except grpc.RpcError as error:
            code, details = error.code().name, (error.details() or "")  # type: ignore[attr-defined]
            answers.append((f"{service.name} gRPC ({code})", details.encode()))
    by_place = dict(answers)
    # the predictor refused every form of audio with a 400 / INVALID_ARGUMENT naming the problem
    predictor_answers = {place: text for place, text in by_place.items() if place.startswith("predictor")}
    refused = ("(400)", "(404)", "(INVALID_ARGUMENT)")
    assert all(any(mark in place for mark in refused) for place in predictor_answers), predictor_answers
    findings = [finding for place, text in answers for finding in fingerprints.find(text, place)]
    for service in deployment.services():
        findings += fingerprints.find(service.server.logs.read_bytes(), f"{service.name} log")
    assert not findings, "audio found:\n" + "\n".join(map(str, findings))
