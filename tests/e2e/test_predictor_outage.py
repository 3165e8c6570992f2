"""A transformer whose predictor is down: 503 / UNAVAILABLE answers, one WARNING line each.

A real ``python -m transformer`` process on loopback points at a port where
nothing listens, over gRPC v2 and over REST v2. Kubernetes probes it every
few seconds during an outage, so each probe and each request must log one
WARNING line, not KServe's ERROR records with multi-line tracebacks.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import soundfile as sf
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.serverutil import RunningServer, free_port, start_server
from transformer.app import PredictorOutageLogFilter

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
        assert requests.get(f"{server.http_url}/v2/health/ready", timeout=10).status_code == 503
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

    events = PROBES + 3
    lines = server.log_text().splitlines()[logged_before:]
    log = "\n".join(lines)
    assert "Traceback" not in log, log
    assert not [line for line in lines if " ERROR " in line], log
    # each failed request is one WARNING; readiness probes during the outage at most one a minute
    # (a predictor that takes a minute to load must not write a warning per probe)
    probe_warnings = sum(" WARNING " in line and "/v2/health/ready" in line for line in lines)
    assert probe_warnings <= 1, log
    assert sum(" WARNING " in line for line in lines) - probe_warnings == 3, log
    assert len(lines) <= MAX_LINES_PER_EVENT * events, log


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
    ("error", "kept"),
    [
        (_rpc_error(grpc.StatusCode.UNAVAILABLE), False),
        (_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), False),
        # a real fault of the predictor keeps KServe's ERROR record and traceback
        (_rpc_error(grpc.StatusCode.INTERNAL), True),
        (_rpc_error(grpc.StatusCode.INVALID_ARGUMENT), True),
        (RuntimeError("boom"), True),
    ],
    ids=["unavailable", "deadline", "internal", "invalid_argument", "not_grpc"],
)
def test_outage_filter_drops_only_outage_records(error: BaseException, kept: bool) -> None:
    assert PredictorOutageLogFilter().filter(_record_with(error)) is kept
    plain = logging.LogRecord("kserve.trace", logging.INFO, __file__, 1, "timing", (), None)
    assert PredictorOutageLogFilter().filter(plain) is True
