"""A client that hangs up mid-analysis stops the work it asked for (real servers, real sockets).

A real predictor and transformer; a client sends a 10-minute recording (about
ten VGGish calls of 64 examples, a second each on the test machines), waits
until ``/metrics`` shows the first VGGish call done (the analysis is under way,
its body read), then goes: a raw HTTP client closes its socket (v2 and SIFIS
routes), or ``audioguard client`` gets Ctrl-C (REST and gRPC) and must exit 130
at once without a traceback. The transformer must stop: the remaining VGGish
calls never run, the predictor is never called, the admission slot is free
again, the request is logged (499 over HTTP) and the service answers the next
request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audioguard.client import BINARY_HEADER, rest_body
from tests.support.interrupts import EXIT_BOUND_S, interrupt, start
from tests.support.serverutil import RunningServer
from tests.support.service_clients import (
    MODEL,
    Services,
    metric_value,
    running_services,
    sifis_post,
    wav_bytes,
)
from transformer.settings import TransformerSettings

pytestmark = pytest.mark.slow

SECONDS = 600.0
EXAMPLES = 624  # 0.96-s examples in SECONDS (the last 0.975-s frame needs a full example)
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def pair(synthetic_model_dir: Path) -> Iterator[Services]:
    with running_services(synthetic_model_dir) as services:
        yield services


@pytest.fixture(scope="module")
def long_recording() -> bytes:
    rng = np.random.default_rng(5)
    return wav_bytes(np.clip(0.2 * rng.standard_normal(int(SECONDS * 16000)), -1, 1))


def metric(server: RunningServer, name: str, **labels: str) -> float:
    return metric_value(server, name, **labels) or 0.0


def vggish_examples(server: RunningServer) -> float:
    return metric(server, "audioguard_transformer_vggish_batch_examples_sum", model_name=MODEL)


def vggish_calls(server: RunningServer) -> float:
    return metric(server, "audioguard_transformer_vggish_batch_examples_count", model_name=MODEL)


def scored_windows(predictor: RunningServer) -> float:
    return metric(predictor, "audioguard_predictor_batch_windows_count", model_name=MODEL)


def v2_request(audio: bytes) -> bytes:
    body, json_length = rest_body(audio, {})
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\n{BINARY_HEADER}: {json_length}\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: leaves-early\r\n\r\n"
    )
    return head.encode() + body


def sifis_request(audio: bytes) -> bytes:
    boundary = "audioguard-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="long.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        "POST /model/predict/anonymized_audio/nothing/nssd/NSSD/r1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: leaves-early\r\n\r\n"
    )
    return head.encode() + body


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("route", "request_bytes", "path"),
    [
        ("v2", v2_request, f"/v2/models/{MODEL}/infer"),
        ("sifis", sifis_request, "/model/predict/anonymized_audio/nothing/nssd/NSSD/r1"),
    ],
)
def test_a_client_that_hangs_up_mid_analysis_stops_the_work(
    pair: Services, long_recording: bytes, route: str, request_bytes: object, path: str
) -> None:
    transformer, predictor = pair.transformer, pair.predictor
    examples_before = vggish_examples(transformer)
    calls_before = vggish_calls(transformer)
    scored_before = scored_windows(predictor)
    abandoned_before = metric(transformer, "audioguard_requests_abandoned_total", route=route)
    port = int(transformer.http_url.rsplit(":", 1)[1])

    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(request_bytes(long_recording))  # type: ignore[operator]
        # under way: the body was read and the first VGGish call is done, nine are left
        wait_for(lambda: vggish_calls(transformer) > calls_before, "the analysis never started")
    # the client has gone: the transformer logs the request as 499 once its work has stopped
    wait_for(lambda: f"POST {path} 499" in transformer.log_text(), "no 499 line for the abandoned request")
    assert metric(transformer, "audioguard_requests_abandoned_total", route=route) == abandoned_before + 1
    assert_the_work_stopped(pair, examples_before, scored_before)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_ctrl_c_in_the_client_during_a_request_exits_130_and_stops_the_work(
    pair: Services, long_recording: bytes, transport: str, tmp_path: Path
) -> None:
    transformer, predictor = pair.transformer, pair.predictor
    recording = tmp_path / "long.wav"
    recording.write_bytes(long_recording)
    examples_before, calls_before = vggish_examples(transformer), vggish_calls(transformer)
    scored_before = scored_windows(predictor)
    log_lines_before = len(transformer.log_text().splitlines())
    url = transformer.grpc_address if transport == "grpc" else transformer.http_url
    client = start(["client", "--url", url, *(["--grpc"] if transport == "grpc" else []), str(recording)])
    try:
        wait_for(lambda: vggish_calls(transformer) > calls_before, "the analysis never started")
        code, seconds = interrupt(client)
    finally:
        client.kill()
    assert code == 130
    assert seconds < EXIT_BOUND_S
    assert client.stderr() == "" and client.stdout() == ""  # quiet: no traceback, no half answer

    # the call's one log line is written once the transformer has stopped its work
    logged = {
        "rest": f"POST /v2/models/{MODEL}/infer 499",
        "grpc": "gRPC /inference.GRPCInferenceService/ModelInfer CANCELLED",
    }[transport]
    wait_for(
        lambda: any(logged in line for line in transformer.log_text().splitlines()[log_lines_before:]),
        "no log line for the abandoned call",
    )
    assert_the_work_stopped(pair, examples_before, scored_before)


def assert_the_work_stopped(pair: Services, examples_before: float, scored_before: float) -> None:
    """Some VGGish calls ran, not all; the predictor never scored; nothing is held; the service
    answers the next request."""
    transformer, predictor = pair.transformer, pair.predictor
    done = vggish_examples(transformer) - examples_before
    assert 0 < done < EXAMPLES, f"{done:g} of {EXAMPLES} examples embedded: the work went on"
    assert scored_windows(predictor) == scored_before
    assert metric(transformer, "audioguard_admission_inflight", budget="analyses") == 0
    assert metric(transformer, "audioguard_admission_inflight", budget="memory_bytes") == 0
    assert "Traceback" not in transformer.log_text()

    # the service is whole: the next requests are served and scored; and nothing more of the
    # abandoned one happens later than the one VGGish call that was running when the client left
    # (a native call is not interrupted): the first next request adds what the second adds, plus
    # at most that call's rows
    added = []
    for _ in range(2):
        before = vggish_examples(transformer)
        answer = sifis_post(transformer, wav_bytes(np.zeros(32000)))
        assert answer.status_code == 200, answer.text
        added.append(vggish_examples(transformer) - before)
    assert added[1] > 0 and 0 <= added[0] - added[1] <= TransformerSettings().vggish_batch_size, added
    wait_for(lambda: scored_windows(predictor) > scored_before, "the predictor never scored the next request")
