"""Server faults are reported as server faults: 500 / INTERNAL, never a client's 4xx.

A real misconfiguration produces one: the predictor accepts fewer windows per request
(``--max_request_windows 1``) than the transformer sends for a recording of a few windows, so
the predictor refuses the transformer's call (gRPC INVALID_ARGUMENT, HTTP 400). That is not
the caller's mistake and not an outage: v2 REST answers 500, v2 gRPC INTERNAL, the SIFIS
endpoint 500 in its own format, each naming the predictor's failure. (KServe 0.21 answered
INVALID_ARGUMENT on gRPC.) A predictor serving another model name is not a fault but a
transformer that is not ready (503; tests/e2e/test_model_mismatch.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import tritonclient.http as triton_http

from tests.support.serverutil import RunningServer, start_server
from tests.support.service_clients import (
    MODEL,
    clip,
    kserve_grpc,
    sifis_post,
    transformer_args,
    triton_binary,
)

pytestmark = pytest.mark.slow

#: several windows (one per 0.96 s once the first 9.6 s are in): more than the predictor takes
SECONDS = 14.0


@pytest.fixture(scope="module")
def transformers(synthetic_model_dir: Path) -> Iterator[dict[str, RunningServer]]:
    narrow = ["--model_name", MODEL, "--model_dir", str(synthetic_model_dir), "--max_request_windows", "1"]
    predictor = start_server("predictor", narrow)
    servers: dict[str, RunningServer] = {}
    try:
        for protocol, host in (
            ("grpc-v2", predictor.grpc_address),
            ("v2", predictor.http_url.removeprefix("http://")),
        ):
            args = transformer_args(synthetic_model_dir, host, protocol)
            servers[protocol] = start_server("transformer", args)
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        predictor.stop()


@pytest.mark.parametrize("protocol", ["grpc-v2", "v2"])
def test_a_failing_predictor_is_a_500_on_rest_and_sifis(
    transformers: dict[str, RunningServer], protocol: str
) -> None:
    server = transformers[protocol]
    audio = clip(801, SECONDS)
    with pytest.raises(triton_http.InferenceServerException) as caught:
        triton_binary(server, audio, {})
    assert caught.value.status() == "500"
    assert "predictor failed" in str(caught.value.message())
    answer = sifis_post(server, audio)
    assert answer.status_code == 500
    assert answer.json()["status"] == "error" and "predictor failed" in answer.json()["message"]


def test_a_failing_predictor_is_internal_on_grpc(transformers: dict[str, RunningServer]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        kserve_grpc(transformers["grpc-v2"], clip(802, SECONDS), {})
    assert caught.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert "predictor failed" in (caught.value.details() or "")  # type: ignore[attr-defined]
