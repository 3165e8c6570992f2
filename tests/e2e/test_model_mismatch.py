"""A transformer asking its predictor for a model the predictor does not serve.

Real processes on loopback: a predictor serving ``audioguard`` and a transformer started as
the README's ``python -m transformer ... --sources_file`` command was, with another model
name (``--model_name other``; KServe's default is ``model``), listening to a recording played
at real time. Before, it reported ready and logged a KServe traceback for every hop of the
source. Now: every readiness probe says not ready and why (both names), requests answer 503
naming the mismatch, the log has one ERROR line about it and the failing hops one line a
minute, no traceback; the predictor logs one line about the name, not one per call.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.serverutil import RunningServer, start_server
from tests.support.service_clients import wav_bytes

pytestmark = [pytest.mark.slow]

#: long enough for several hops once the first 9.6-s window is due
SECONDS = 16.0
MISMATCH = re.compile(
    r"the predictor at 127\.0\.0\.1:\d+ does not serve model 'other' \(it serves 'audioguard'\): "
    r"give both services the same model name \(--model_name audioguard here, or --model_name other "
    r"on the predictor\)"
)


def mismatched_transformer(
    model_dir: Path, predictor: RunningServer, protocol: str, extra: list[str]
) -> RunningServer:
    host = predictor.grpc_address if protocol == "grpc-v2" else predictor.http_url.removeprefix("http://")
    args = [
        "--model_name", "other",
        "--model_dir", str(model_dir),
        "--predictor_host", host,
        "--predictor_protocol", protocol,
        *extra,
    ]  # fmt: skip
    return start_server("transformer", args, ready_path="/v2/health/live")


def wait_for(condition: object, what: str, server: RunningServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout:.0f} s\n--- log ---\n{server.log_text()[-4000:]}")


def assert_not_ready_naming_both(server: RunningServer) -> None:
    ready = requests.get(f"{server.http_url}/v2/health/ready", timeout=10)
    assert ready.status_code == 503 and MISMATCH.fullmatch(ready.json()["error"]), ready.text
    model_ready = requests.get(f"{server.http_url}/v2/models/other/ready", timeout=10)
    assert model_ready.status_code == 503
    assert MISMATCH.search(model_ready.json()["error"]), model_ready.text
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is False
        assert stub.ModelReady(pb.ModelReadyRequest(name="other"), timeout=10).ready is False


@pytest.mark.usefixtures("ffmpeg_installed")
def test_a_live_transformer_with_another_model_name_is_not_ready_and_says_so_once(
    predictor: RunningServer, synthetic_model_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(23)
    (tmp_path / "night.wav").write_bytes(
        wav_bytes(0.3 * rng.standard_normal(int(SECONDS * 16_000)).clip(-1, 1))
    )
    (tmp_path / "sources.yaml").write_text(
        f"sources:\n  - {{name: hall, url: 'file:{tmp_path / 'night.wav'}'}}\n"
    )
    predictor_lines_before = len(predictor.log_text().splitlines())
    server = mismatched_transformer(
        synthetic_model_dir,
        predictor,
        "grpc-v2",
        ["--sources_file", str(tmp_path / "sources.yaml"), "--ui_store_path", str(tmp_path / "ui.sqlite3")],
    )
    try:
        wait_for(lambda: "does not serve model 'other'" in server.log_text(), "no mismatch line", server)
        assert_not_ready_naming_both(server)
        # a request in that state: 503 naming the mismatch, not a 500 or a traceback
        answer = requests.post(
            f"{server.http_url}/model/predict/a.wav/nothing/u/user/r1",
            files={"audio": ("a.wav", wav_bytes(0.3 * rng.standard_normal(32_000).clip(-1, 1)), "audio/wav")},
            timeout=60,
        )
        assert answer.status_code == 503 and MISMATCH.fullmatch(answer.json()["message"]), answer.text

        def played_out() -> bool:
            status = requests.get(f"{server.http_url}/v1/monitor", timeout=10).json()
            return bool(status["sources"][0]["state"] == "finished" and status["failed_steps"] >= 5)

        # the recording plays at real time: every hop after the first window fails
        wait_for(played_out, "the source did not play out with failed hops", server, timeout=SECONDS + 60)
        status = requests.get(f"{server.http_url}/v1/monitor", timeout=10).json()
    finally:
        server.stop()
    log = server.log_text()
    lines = log.splitlines()
    assert "Traceback" not in log and "kserve.trace" not in log, log
    (error,) = [line for line in lines if " ERROR " in line]
    assert "transformer.predictor_link" in error and MISMATCH.search(error), error
    # the failing hops: one line (a minute has not passed), the count in the status
    failed = [line for line in lines if "not analysed" in line]
    assert len(failed) == 1 and MISMATCH.search(failed[0]), log
    assert status["failed_steps"] >= 5
    # the predictor: one line about the name, no traceback, no line per call
    answered = "\n".join(predictor.log_text().splitlines()[predictor_lines_before:])
    assert "Traceback" not in answered, answered
    assert answered.count("model 'other' is not served here") == 1, answered
    assert not re.search(r"gRPC /inference\.GRPCInferenceService/\w+ \w+ [\d.]+ ms", answered), answered


def test_the_rest_predictor_protocol_says_the_same(
    predictor: RunningServer, synthetic_model_dir: Path
) -> None:
    server = mismatched_transformer(synthetic_model_dir, predictor, "v2", ["--enable_predictor_health_check"])
    try:
        wait_for(lambda: "does not serve model 'other'" in server.log_text(), "no mismatch line", server)
        assert_not_ready_naming_both(server)
        audio = wav_bytes(0.3 * np.random.default_rng(5).standard_normal(32_000).clip(-1, 1))
        tensor = {
            "name": "audio",
            "shape": [1],
            "datatype": "BYTES",
            "parameters": {"content_encoding": "base64"},
            "data": [base64.b64encode(audio).decode()],
        }
        answer = requests.post(
            f"{server.http_url}/v2/models/other/infer", json={"inputs": [tensor]}, timeout=60
        )
        assert answer.status_code == 503 and MISMATCH.fullmatch(answer.json()["error"]), answer.text
    finally:
        server.stop()
    log = server.log_text()
    assert "Traceback" not in log, log
    assert len([line for line in log.splitlines() if " ERROR " in line]) == 1, log
