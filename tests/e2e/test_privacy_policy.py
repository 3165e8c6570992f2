"""The operator's privacy minimum over real HTTP/gRPC: upgrade or reject (403), on every path.

A request that names no method gets the minimum in both modes; only an explicit
weaker method is upgraded or refused.

One predictor and two transformers with ``privacy_minimum=scramble``, one set to
``upgrade`` and one to ``reject``, configured through the environment as an
operator (or the Helm chart) would.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests

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

MINIMUM = "scramble"


@dataclass(frozen=True)
class PolicyServers:
    upgrade: RunningServer
    reject: RunningServer


@pytest.fixture(scope="module")
def servers(synthetic_model_dir: Path) -> Iterator[PolicyServers]:
    predictor = start_server("predictor", ["--model_name", MODEL, "--model_dir", str(synthetic_model_dir)])

    def launch(enforcement: str) -> RunningServer:
        args = transformer_args(synthetic_model_dir, predictor.grpc_address)
        env = {"AUDIOGUARD_PRIVACY_MINIMUM": MINIMUM, "AUDIOGUARD_PRIVACY_ENFORCEMENT": enforcement}
        return start_server("transformer", args, env)

    try:
        with ThreadPoolExecutor(2) as pool:
            upgrade, reject = pool.map(launch, ["upgrade", "reject"])
        yield PolicyServers(upgrade, reject)
        upgrade.stop()
        reject.stop()
    finally:
        predictor.stop()


@pytest.mark.parametrize("requested", ["none", "dp_noise"])
def test_weaker_request_is_upgraded_and_says_so(servers: PolicyServers, requested: str) -> None:
    result = triton_binary(servers.upgrade, clip(31), {"privacy": requested})
    assert result["parameters"]["privacy_method"] == MINIMUM
    assert result["parameters"]["privacy_requested"] == requested
    body = sifis_post(servers.upgrade, clip(31), method="nothing").json()
    assert body["status"] == "ok" and body["privacy_method"] == MINIMUM


def test_a_request_naming_no_method_gets_the_minimum_in_both_modes(servers: PolicyServers) -> None:
    """Not a 403 even with ``reject``: it did not ask for less than the minimum."""
    for server in (servers.upgrade, servers.reject):
        for result in (triton_binary(server, clip(34), {}), kserve_grpc(server, clip(34), {"top_k": 3})):
            assert result["parameters"]["privacy_method"] == MINIMUM
            assert result["parameters"]["privacy_requested"] == MINIMUM  # the default it asked for


def test_stronger_request_is_kept(servers: PolicyServers) -> None:
    for server in (servers.upgrade, servers.reject):
        result = triton_binary(server, clip(32), {"privacy": "speech_mask"})
        assert result["parameters"]["privacy_method"] == "speech_mask"


def test_weaker_request_is_rejected_with_403_on_every_path(servers: PolicyServers) -> None:
    audio = clip(33)
    url = f"{servers.reject.http_url}/v2/models/{MODEL}/infer"
    text = base64.b64encode(audio).decode()
    document = {
        "inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [text]}],
        "parameters": {"privacy": "none", "content_encoding": "base64"},
    }
    response = requests.post(url, json=document, timeout=60)
    assert response.status_code == 403, response.text
    assert MINIMUM in response.text and "none" in response.text

    sifis = sifis_post(servers.reject, audio, method="nothing")
    assert sifis.status_code == 403, sifis.text
    assert sifis.json()["status"] == "error" and MINIMUM in sifis.json()["message"]

    # gRPC: the policy refusal is PERMISSION_DENIED, like the REST 403.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        kserve_grpc(servers.reject, audio, {"privacy": "dp_noise"})
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert MINIMUM in str(caught.value.details()) and "dp_noise" in str(caught.value.details())

    # ...and the service is still up and answers an acceptable request.
    accepted = triton_binary(servers.reject, audio, {"privacy": MINIMUM})
    assert accepted["parameters"]["privacy_method"] == MINIMUM
