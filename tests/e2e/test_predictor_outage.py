"""A transformer whose predictor is down: 503 / UNAVAILABLE answers, one WARNING line each.

A real ``python -m transformer`` process on loopback points at a port where
nothing listens, over gRPC v2 and over REST v2. Kubernetes probes it every
few seconds during an outage: the probes answer 503 with the reason and log
nothing beyond one INFO line "waiting for the predictor" (it has never
answered), each request logs one WARNING line, and nothing is KServe's ERROR
records with multi-line tracebacks.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import requests
import soundfile as sf
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.serverutil import RunningServer, free_port, start_server
from transformer.app import PredictorCallLogFilter
from transformer.predictor_client import PREDICTOR_RETRY_AFTER_SECONDS

MODEL = "audioguard"
PROBES = 7
#: KServe's access and timing lines plus ours; a traceback alone is 15+ lines.
MAX_LINES_PER_EVENT = 5


def wav_clip(seconds: float = 2.0) -> bytes:
    samples = np.random.default_rng(40).uniform(-0.5, 0.5, int(seconds * 16000))
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(params=["grpc-v2", "v2"])
def orphan_transformer(request: pytest.FixtureRequest, synthetic_model_dir: Path) -> Iterator[RunningServer]:
    """A transformer (predictor health check on) whose predictor port has no listener."""
    args = [
        "--model_name", MODEL,
        "--model_dir", str(synthetic_model_dir),
        "--predictor_host", f"127.0.0.1:{free_port()}",
        "--predictor_protocol", request.param,
        "--enable_predictor_health_check",
        "--predictor_request_timeout_seconds", "10",
    ]  # fmt: skip
    server = start_server("transformer", args, ready_path="/v2/health/live")
    try:
        server.wait_for_status("/v2/health/ready", 503)
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_outage_answers_503_with_one_warning_line_per_event(orphan_transformer: RunningServer) -> None:
    server = orphan_transformer
    audio = wav_clip()
    logged_before = len(server.log_text().splitlines())

    for _ in range(PROBES):
        probe = requests.get(f"{server.http_url}/v2/health/ready", timeout=10)
        assert probe.status_code == 503
        assert re.fullmatch(
            r"the predictor at 127\.0\.0\.1:\d+ is unreachable \(\w+\)", probe.json()["error"]
        )
    body = {
        "inputs": [
            {
                "name": "audio",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_encoding": "base64"},
                "data": [base64.b64encode(audio).decode()],
            }
        ]
    }
    response = requests.post(f"{server.http_url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert response.status_code == 503 and "predictor is unavailable" in response.json()["error"]
    # the caller is told when to try again (a restarted predictor pod is back within seconds)
    assert response.headers.get("Retry-After") == str(PREDICTOR_RETRY_AFTER_SECONDS)
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="audio", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[audio])
    )
    with grpc.insecure_channel(server.grpc_address) as channel, pytest.raises(grpc.RpcError) as caught:
        GRPCInferenceServiceStub(channel).ModelInfer(
            pb.ModelInferRequest(model_name=MODEL, inputs=[tensor]), timeout=30
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "predictor is unavailable" in (caught.value.details() or "")
    response = requests.post(
        f"{server.http_url}/model/predict/a.wav/nothing/u/user/r1",
        files={"audio": ("a.wav", audio, "audio/wav")},
        timeout=30,
    )
    assert response.status_code == 503 and response.json()["status"] == "error"
    assert response.headers.get("Retry-After") == str(PREDICTOR_RETRY_AFTER_SECONDS)

    events = PROBES + 3
    lines = server.log_text().splitlines()[logged_before:]
    log = "\n".join(lines)
    assert "Traceback" not in log, log
    assert not [line for line in lines if " ERROR " in line], log
    # each failed request is one WARNING; readiness probes during the outage none (a predictor
    # that takes a minute to load must not write a warning per probe): the link said once that
    # it waits for the predictor, and warns only after a minute of it
    assert not [line for line in lines if " WARNING " in line and "/v2/health/ready" in line], log
    assert sum(" WARNING " in line for line in lines) == 3, log
    assert len(lines) <= MAX_LINES_PER_EVENT * events, log
    whole = server.log_text()
    assert whole.count("waiting for the predictor at 127.0.0.1:") == 1, whole
    assert "predictor unreachable" not in whole, whole


def _record_with(error: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        "kserve.trace",
        logging.ERROR,
        __file__,
        1,
        "Failed to infer: %s",
        (error,),
        (type(error), error, None),
    )


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="test")


@pytest.mark.parametrize(
    ("error", "predictor_call"),
    [
        (_rpc_error(grpc.StatusCode.UNAVAILABLE), True),
        (_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), True),
        (_rpc_error(grpc.StatusCode.NOT_FOUND), True),
        # a fault of the predictor too: the request's handler logs it in one ERROR line
        (_rpc_error(grpc.StatusCode.INTERNAL), True),
        (httpx.ConnectError("refused"), True),
        (RuntimeError("boom"), False),
    ],
    ids=["unavailable", "deadline", "not_found", "internal", "rest", "not_a_call"],
)
def test_kserves_record_of_a_failed_predictor_call_is_debug_only(
    error: BaseException, predictor_call: bool
) -> None:
    """Whoever made the call logs it in one line; KServe's record (a traceback) only at DEBUG."""
    service = logging.getLogger("transformer")
    level = service.level
    try:
        service.setLevel(logging.INFO)
        record = _record_with(error)
        assert PredictorCallLogFilter().filter(record) is not predictor_call
        assert record.levelno == logging.ERROR
        service.setLevel(logging.DEBUG)
        record = _record_with(error)
        assert PredictorCallLogFilter().filter(record) is True
        assert record.levelno == (logging.DEBUG if predictor_call else logging.ERROR)
    finally:
        service.setLevel(level)
    plain = logging.LogRecord("kserve.trace", logging.INFO, __file__, 1, "timing", (), None)
    assert PredictorCallLogFilter().filter(plain) is True
