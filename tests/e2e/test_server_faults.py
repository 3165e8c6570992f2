"""Server faults are reported as server faults: 500 / INTERNAL, never a client's 4xx.

A real misconfiguration produces one: the predictor serves another model name,
so every call the transformer makes to it fails (gRPC NOT_FOUND, HTTP 404).
That is not the caller's mistake and not an outage: v2 REST answers 500, v2
gRPC INTERNAL, the SIFIS endpoint 500 in its own format, each naming the
predictor's failure. (KServe 0.21 answered INVALID_ARGUMENT on gRPC.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import tritonclient.http as triton_http

from tests.support.serverutil import RunningServer, start_server
from tests.support.service_clients import (
    clip,
    kserve_grpc,
    sifis_post,
    transformer_args,
    triton_binary,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transformers(synthetic_model_dir: Path) -> Iterator[dict[str, RunningServer]]:
    misnamed = ["--model_name", "another-model", "--model_dir", str(synthetic_model_dir)]
    predictor = start_server("predictor", misnamed)
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
    audio = clip(801, 2.0)
    with pytest.raises(triton_http.InferenceServerException) as caught:
        triton_binary(server, audio, {})
    assert caught.value.status() == "500"
    assert "predictor failed" in str(caught.value.message())
    answer = sifis_post(server, audio)
    assert answer.status_code == 500
    assert answer.json()["status"] == "error" and "predictor failed" in answer.json()["message"]


def test_a_failing_predictor_is_internal_on_grpc(transformers: dict[str, RunningServer]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        kserve_grpc(transformers["grpc-v2"], clip(802, 2.0), {})
    assert caught.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert "predictor failed" in (caught.value.details() or "")  # type: ignore[attr-defined]
