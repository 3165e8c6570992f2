"""What a client reads from the real services: numbers as the README promises, typed parameters,
and the client naming a port mix-up.

A real predictor and transformer (synthetic weights) answer over v2 REST and
gRPC. The REST text is read as written (``json.loads(parse_float=str)``): each
FP32 element must be the shortest decimal of its float32 (``1.92``, not
``1.9199999570846558``), each time at most three decimals, and the seconds
parameters JSON numbers; gRPC carries the same float32 values, and the seconds
as text (KServe's gRPC parameters have no double).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.support.cli import run_audioguard
from tests.support.service_clients import MODEL, Services, clip, kserve_grpc, running_services

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(synthetic_model_dir: Path) -> Iterator[Services]:
    with running_services(synthetic_model_dir) as running:
        yield running


def binary_body(audio: bytes, parameters: dict[str, Any]) -> tuple[bytes, int]:
    """A v2 body with the audio as one binary BYTES element (JSON outputs: none asked binary)."""
    element = len(audio).to_bytes(4, "little") + audio
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "audio",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(element)},
                }
            ],
            "parameters": parameters,
        }
    ).encode()
    return header + element, len(header)


def as_written(text: str) -> dict[str, list[str]]:
    """Each output's data elements exactly as the JSON text writes them, by output name."""
    document = json.loads(text, parse_float=str, parse_int=str)
    return {o["name"]: o["data"] for o in document["outputs"]}


def assert_shortest_float32(texts: list[str]) -> None:
    for text in texts:
        shortest = np.format_float_positional(np.float32(float(text)), unique=True, trim="-")
        assert Decimal(text).as_tuple().digits == Decimal(shortest).as_tuple().digits, (text, shortest)


def test_rest_numbers_are_shortest_float32_and_times_milliseconds(services: Services) -> None:
    audio = clip(11, seconds=12.5)
    parameters = {"all_windows": True, "top_k": 5, "start_time": 1.0}
    body, json_length = binary_body(audio, parameters)
    answer = requests.post(
        f"{services.transformer.http_url}/v2/models/{MODEL}/infer",
        data=body,
        headers={"Inference-Header-Content-Length": str(json_length)},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    written = as_written(answer.text)

    assert_shortest_float32(written["probability"])
    for name in ("window_start_seconds", "window_end_seconds"):
        assert_shortest_float32(written[name])
        assert all(Decimal(t).as_tuple().exponent >= -3 for t in written[name]), written[name]
    # from 1 s: the first window starts at the second 0.96-s example (float32: 1.9199999570846558 ends it)
    assert written["window_start_seconds"][0] == "0.96"
    assert "1.9199999" not in answer.text and "0.9599999" not in answer.text

    typed = answer.json()["parameters"]
    assert typed["duration_seconds"] == 12.5
    assert isinstance(typed["anomaly_scan_start_seconds"], float)
    assert isinstance(typed["anomaly_scan_end_seconds"], float)
    assert isinstance(typed["anomaly_count"], int) and typed["weights_official"] is False

    # gRPC: the same float32 values; the seconds as their text
    over_grpc = kserve_grpc(services.transformer, audio, parameters)
    rest_windows = answer.json()["outputs"]
    starts = next(o["data"] for o in rest_windows if o["name"] == "window_start_seconds")
    assert [np.float32(s) for s in starts] == [np.float32(w["start_seconds"]) for w in over_grpc["windows"]]
    probabilities = next(o["data"] for o in rest_windows if o["name"] == "probability")
    grpc_probabilities = [p["probability"] for w in over_grpc["windows"] for p in w["top"]]
    assert [np.float32(p) for p in probabilities] == [np.float32(p) for p in grpc_probabilities]
    assert over_grpc["parameters"]["duration_seconds"] == "12.500"


def test_predictor_scores_are_shortest_float32(services: Services) -> None:
    embeddings = np.random.default_rng(3).integers(0, 256, size=(2, 10, 128))
    request = {
        "inputs": [
            {
                "name": "embeddings",
                "shape": [2, 10, 128],
                "datatype": "UINT8",
                "data": embeddings.reshape(-1).tolist(),
            }
        ]
    }
    answer = requests.post(
        f"{services.predictor.http_url}/v2/models/{MODEL}/infer", json=request, timeout=120
    )
    assert answer.status_code == 200, answer.text
    scores = as_written(answer.text)["scores"]
    assert len(scores) == 2 * 527
    assert_shortest_float32(scores)


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return run_audioguard("client", *args, timeout=120)


def test_client_names_the_port_mix_up_with_the_real_service(services: Services, tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(clip(4))
    rest_port = services.transformer.http_url.removeprefix("http://")
    grpc_port = services.transformer.grpc_address

    wrong_grpc = run_client("--grpc", "--url", rest_port, str(audio))
    assert wrong_grpc.returncode == 1
    assert wrong_grpc.stderr.splitlines() == [
        f"{audio}: error: {rest_port} speaks HTTP/1.1, not gRPC: it is the service's REST port; gRPC is "
        "on port 5001 by default (audioguard serve prints both), or leave out --grpc"
    ]
    wrong_rest = run_client("--url", grpc_port, str(audio))
    assert wrong_rest.returncode == 1
    assert wrong_rest.stderr.splitlines() == [
        f"{audio}: error: http://{grpc_port} speaks gRPC (HTTP/2), not REST: it is the service's gRPC "
        "port; REST is on port 5000 by default (audioguard serve prints both), or add --grpc"
    ]
    # the right ports answer
    assert run_client("--grpc", "--url", grpc_port, str(audio)).returncode == 0
    assert run_client("--url", rest_port, str(audio)).returncode == 0
