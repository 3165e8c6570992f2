"""The predictor end to end: a real ``python -m predictor`` on loopback, real v2 clients."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import numpy as np
import pytest
import requests
import tritonclient.http as triton
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from kserve.protocol.infer_type import InferInput, InferRequest

from contract.assets import CLASSIFIER_H5
from predictor.classifier import AttentionClassifier
from tests.support.serverutil import RunningServer, run_module, running_server, start_server

pytestmark = pytest.mark.slow

MODEL = "audioguard"
SCORE_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def predictor(synthetic_classifier_dir: Path) -> Iterator[RunningServer]:
    """One predictor for the module, started without waiting so start-up can be inspected."""
    server = start_server(
        "predictor",
        [
            "--model_name", MODEL,
            "--model_dir", str(synthetic_classifier_dir),
            "--max_batch_size", "32",
            "--max_batch_wait_ms", "20",
            "--max_request_windows", "64",
        ],
        ready_path=None,
    )  # fmt: skip
    try:
        server.wait_for_status("/v2/health/ready", 200)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reference(synthetic_classifier_dir: Path) -> AttentionClassifier:
    """The direct computation in the test process, to compare every served answer with."""
    return AttentionClassifier.from_file(synthetic_classifier_dir / CLASSIFIER_H5)


def random_windows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 10, 128), dtype=np.uint8)


def json_body(windows: np.ndarray, datatype: str = "UINT8") -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "embeddings",
                "shape": list(windows.shape),
                "datatype": datatype,
                "data": windows.ravel().tolist(),
            }
        ]
    }


def infer_url(server: RunningServer) -> str:
    return f"{server.http_url}/v2/models/{MODEL}/infer"


def scores_from_json(answer: requests.Response) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert (output["name"], output["datatype"]) == ("scores", "FP32")
    return np.asarray(output["data"], np.float32).reshape(output["shape"])


def batch_metrics(server: RunningServer) -> tuple[float, float]:
    """(classifier calls, request chunks) from the predictor's Prometheus histograms."""
    text = requests.get(f"{server.http_url}/metrics", timeout=10).text
    label = f'{{model_name="{MODEL}"}}'
    values = {}
    for suffix in ("count", "sum"):
        match = re.search(
            rf"^audioguard_predictor_batch_requests_{suffix}{re.escape(label)} (\S+)$", text, re.M
        )
        values[suffix] = float(match.group(1)) if match else 0.0
    return values["count"], values["sum"]


# --- start-up, health, metadata ------------------------------------------------------------


def test_ready_only_after_the_weights_loaded(predictor: RunningServer) -> None:
    log = predictor.log_text()
    loaded = log.index(f"model '{MODEL}' ready")
    listening = log.index("predictor serving: model '" + MODEL + "'")  # once the server listens
    assert loaded < listening
    assert "do NOT match the official sha512 sums" in log  # synthetic weights are flagged at start-up
    assert requests.get(f"{predictor.http_url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{predictor.http_url}/v2/models/{MODEL}/ready", timeout=5).json()["ready"] is True


def test_rest_metadata_has_tensors_and_weight_status(predictor: RunningServer) -> None:
    metadata = requests.get(f"{predictor.http_url}/v2/models/{MODEL}", timeout=5).json()
    assert metadata["name"] == MODEL
    assert metadata["inputs"] == [{"name": "embeddings", "datatype": "UINT8", "shape": [-1, 10, 128]}]
    assert metadata["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 527]}]
    assert metadata["parameters"]["weights_official"] is False
    assert metadata["parameters"]["max_batch_size"] == 32
    assert requests.get(f"{predictor.http_url}/v2/models/other", timeout=5).status_code == 404


def test_tritonclient_reads_metadata(predictor: RunningServer) -> None:
    client = triton.InferenceServerClient(urlsplit(predictor.http_url).netloc)
    assert client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["inputs"][0]["name"] == "embeddings"


def test_grpc_health_and_metadata(predictor: RunningServer) -> None:
    with grpc.insecure_channel(predictor.grpc_address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("embeddings", "UINT8", [-1, 10, 128])
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("scores", "FP32", [-1, 527])]


# --- inference over every client style -----------------------------------------------------


def test_rest_json_without_content_type(predictor: RunningServer, reference: AttentionClassifier) -> None:
    windows = random_windows(3, seed=1)
    # curl -d style: no Content-Type at all (FastAPI alone would answer 400).
    answer = requests.post(infer_url(predictor), data=json.dumps(json_body(windows)), timeout=30)
    np.testing.assert_allclose(scores_from_json(answer), reference.predict(windows), **SCORE_TOLERANCE)


def test_rest_json_fp32(predictor: RunningServer, reference: AttentionClassifier) -> None:
    windows = random_windows(2, seed=2)
    answer = requests.post(
        infer_url(predictor), json=json_body(windows.astype(np.float32), "FP32"), timeout=30
    )
    np.testing.assert_allclose(scores_from_json(answer), reference.predict(windows), **SCORE_TOLERANCE)


def test_rest_binary_extension(predictor: RunningServer, reference: AttentionClassifier) -> None:
    windows = random_windows(4, seed=3)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "embeddings",
                    "shape": [4, 10, 128],
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": windows.nbytes},
                }
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
    ).encode()
    answer = requests.post(
        infer_url(predictor),
        data=header + windows.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    json_length = int(answer.headers["inference-header-content-length"])
    meta = json.loads(answer.content[:json_length])
    [output] = meta["outputs"]
    assert output["shape"] == [4, 527]
    assert output["parameters"]["binary_data_size"] == 4 * 527 * 4
    scores = np.frombuffer(answer.content[json_length:], dtype="<f4").reshape(4, 527)
    np.testing.assert_allclose(scores, reference.predict(windows), **SCORE_TOLERANCE)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json-only"])
def test_tritonclient_http(predictor: RunningServer, reference: AttentionClassifier, binary: bool) -> None:
    windows = random_windows(2, seed=4)
    client = triton.InferenceServerClient(urlsplit(predictor.http_url).netloc)
    tensor = triton.InferInput("embeddings", list(windows.shape), "UINT8")
    tensor.set_data_from_numpy(windows, binary_data=binary)
    outputs = [triton.InferRequestedOutput("scores", binary_data=binary)]
    result = client.infer(MODEL, [tensor], outputs=outputs)
    np.testing.assert_allclose(result.as_numpy("scores"), reference.predict(windows), **SCORE_TOLERANCE)


async def test_kserve_rest_client(predictor: RunningServer, reference: AttentionClassifier) -> None:
    windows = random_windows(2, seed=5)
    tensor = InferInput("embeddings", list(windows.shape), "UINT8")
    tensor.set_data_from_numpy(windows, binary_data=False)
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        response = await client.infer(predictor.http_url, InferRequest(MODEL, [tensor]), model_name=MODEL)
    finally:
        await client.close()
    np.testing.assert_allclose(response.outputs[0].as_numpy(), reference.predict(windows), **SCORE_TOLERANCE)


async def test_kserve_grpc_client(predictor: RunningServer, reference: AttentionClassifier) -> None:
    windows = random_windows(3, seed=6)
    tensor = InferInput("embeddings", list(windows.shape), "UINT8")
    tensor.set_data_from_numpy(windows, binary_data=True)
    async with InferenceGRPCClient(predictor.grpc_address, timeout=30) as client:
        response = await client.infer(InferRequest(MODEL, [tensor], request_id="grpc-1"))
    assert response.id == "grpc-1"
    [output] = response.outputs
    assert (output.name, output.datatype, output.shape) == ("scores", "FP32", [3, 527])
    np.testing.assert_allclose(output.as_numpy(), reference.predict(windows), **SCORE_TOLERANCE)


def test_concurrent_distinct_requests_over_rest_and_grpc_are_batched_and_each_exact(
    predictor: RunningServer, reference: AttentionClassifier
) -> None:
    rng = np.random.default_rng(7)
    inputs = [random_windows(int(rng.integers(1, 6)), seed=1000 + i) for i in range(64)]
    calls_before, chunks_before = batch_metrics(predictor)

    def over_rest(windows: np.ndarray) -> np.ndarray:
        return scores_from_json(requests.post(infer_url(predictor), json=json_body(windows), timeout=60))

    def over_grpc(windows: np.ndarray) -> np.ndarray:
        with grpc.insecure_channel(predictor.grpc_address) as channel:
            request = pb.ModelInferRequest(
                model_name=MODEL,
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="embeddings", datatype="UINT8", shape=windows.shape
                    )
                ],
                raw_input_contents=[windows.tobytes()],
            )
            response = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
        return np.frombuffer(response.raw_output_contents[0], "<f4").reshape(list(response.outputs[0].shape))

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: (over_rest if i % 2 else over_grpc)(inputs[i]), range(len(inputs))))
    for windows, scores in zip(inputs, answers, strict=True):
        np.testing.assert_allclose(scores, reference.predict(windows), **SCORE_TOLERANCE)
    calls_after, chunks_after = batch_metrics(predictor)
    assert chunks_after - chunks_before == len(inputs)
    assert calls_after - calls_before < len(inputs)  # requests shared classifier calls


# --- errors ----------------------------------------------------------------------------------


def test_bad_requests_get_400_and_keep_the_connection(predictor: RunningServer) -> None:
    """Every client mistake is a 400 naming the problem, on one keep-alive connection."""
    good = json.dumps(json_body(random_windows(1, seed=8))).encode()
    header = json.dumps(
        {"inputs": [{"name": "embeddings", "shape": [2, 10, 128], "datatype": "UINT8",
                     "parameters": {"binary_data_size": 2560}}]}
    ).encode()  # fmt: skip
    bad_requests = [
        (json.dumps(json_body(np.zeros((1, 10, 64), np.uint8))).encode(), {}, "[N, 10, 128]"),
        (json.dumps(json_body(np.zeros((1, 10, 128), np.int32), "INT32")).encode(), {}, "UINT8"),
        (json.dumps(json_body(np.zeros((65, 10, 128), np.uint8))).encode(), {}, "at most 64"),
        (json.dumps(json_body(np.full((1, 10, 128), 256.0, np.float32), "FP32")).encode(), {}, "0..255"),
        # binary body shorter than binary_data_size; a header length that is no number
        (header + b"\x00" * 100, {"Inference-Header-Content-Length": str(len(header))}, "binary_data_size"),
        (header + b"\x00" * 2560, {"Inference-Header-Content-Length": "x"}, "must be an integer"),
        (
            b'{"inputs": [{"name": "embeddings", "shape": [1], "datatype": "FP32", "data": [NaN]}]}',
            {},
            "JSON",
        ),
    ]
    address = urlsplit(predictor.http_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        for body, headers, fragment in bad_requests:
            connection.request("POST", f"/v2/models/{MODEL}/infer", body=body, headers=headers)
            answer = connection.getresponse()
            text = answer.read().decode()
            assert answer.status == 400, text
            assert fragment in json.loads(text)["error"]
            assert answer.getheader("connection", "").lower() != "close"
            # The same socket answers a good request next: the server did not drop it.
            socket_before = connection.sock
            connection.request("POST", f"/v2/models/{MODEL}/infer", body=good)
            follow_up = connection.getresponse()
            follow_up.read()
            assert follow_up.status == 200
            assert connection.sock is socket_before
    finally:
        connection.close()


def audio_file() -> bytes:
    """A short WAV: what a user sends to the wrong port."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(5).uniform(-0.5, 0.5, 8000), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_audio_sent_to_the_predictor_is_a_400_that_quotes_nothing(predictor: RunningServer) -> None:
    """``audioguard client --url <predictor port>``: KServe alone answers 500 echoing the file."""
    audio = audio_file()
    tensor = triton.InferInput("audio", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([audio], dtype=np.object_), binary_data=True)
    body, json_length = triton.InferenceServerClient.generate_request_body([tensor])
    attempts = [
        (body, {"Inference-Header-Content-Length": str(json_length)}),  # the binary extension
        (audio, {"Content-Type": "audio/wav"}),  # the file as the whole body
    ]
    for data, headers in attempts:
        answer = requests.post(infer_url(predictor), data=data, headers=headers, timeout=30)
        assert answer.status_code == 400, answer.text
        assert "RIFF" not in answer.text and "Failed to encode" not in answer.text
        assert len(answer.content) < 1000
    log = predictor.logs.read_bytes()
    assert b"RIFF" not in log and b"Failed to encode" not in log


async def test_audio_sent_to_the_predictor_over_grpc_is_invalid_argument(predictor: RunningServer) -> None:
    tensor = InferInput("audio", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([audio_file()], dtype=np.object_), binary_data=True)
    async with InferenceGRPCClient(predictor.grpc_address, timeout=30) as client:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.infer(InferRequest(MODEL, [tensor]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details() or ""
    assert "embeddings" in details and "RIFF" not in details and len(details) < 1000


def test_schema_errors_do_not_echo_the_body(predictor: RunningServer) -> None:
    secret = "payload-marker-1234"
    answer = requests.post(infer_url(predictor), json={"wrong": secret}, timeout=10)
    # decoded by contract.v2_rest as on the transformer: a 400 naming what is missing
    assert answer.status_code == 400
    assert '"inputs"' in answer.json()["error"]
    assert secret not in answer.text


async def test_grpc_bad_request_is_invalid_argument(predictor: RunningServer) -> None:
    tensor = InferInput("embeddings", [1, 10, 64], "UINT8")
    tensor.set_data_from_numpy(np.zeros((1, 10, 64), np.uint8), binary_data=True)
    async with InferenceGRPCClient(predictor.grpc_address, timeout=30) as client:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.infer(InferRequest(MODEL, [tensor]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[N, 10, 128]" in raised.value.details()


def test_missing_weights_exit_with_a_clear_message(tmp_path: Path) -> None:
    finished = run_module("predictor", ["--model_dir", str(tmp_path), "--http_port", "0", "--grpc_port", "0"])
    assert finished.returncode != 0
    assert CLASSIFIER_H5 in finished.stderr
    assert "audioguard weights download" in finished.stderr
    assert "audioguard weights synthetic" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_invalid_setting_exits_with_a_clear_message(synthetic_classifier_dir: Path) -> None:
    finished = run_module(
        "predictor", ["--model_dir", str(synthetic_classifier_dir), "--max_batch_size", "0"]
    )
    assert finished.returncode != 0
    assert "max_batch_size" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_ray_replicas_serve_the_same_scores(
    synthetic_classifier_dir: Path, reference: AttentionClassifier
) -> None:
    args = ["--model_name", MODEL, "--model_dir", str(synthetic_classifier_dir), "--ray_replicas", "2",
            "--ray_cpus_per_replica", "0.5"]  # fmt: skip
    with running_server("predictor", args, timeout=240) as server:
        inputs = [random_windows(i + 1, seed=2000 + i) for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda w: requests.post(infer_url(server), json=json_body(w), timeout=60), inputs)
            )
        for windows, answer in zip(inputs, answers, strict=True):
            np.testing.assert_allclose(
                scores_from_json(answer), reference.predict(windows), **SCORE_TOLERANCE
            )
        metadata = requests.get(f"{server.http_url}/v2/models/{MODEL}", timeout=30).json()
        assert metadata["parameters"]["ray_replicas"] == 2
        assert metadata["inputs"][0]["name"] == "embeddings"
        assert "starting 2 Ray Serve replica(s)" in server.log_text()


def test_a_worker_that_cannot_load_the_weights_stops_the_server_non_zero(
    synthetic_classifier_dir: Path, tmp_path: Path
) -> None:
    """With --workers 2 each worker loads the weights again after the parent did. Once the parent
    has loaded them the file is broken, so the workers fail: the whole predictor must stop with a
    non-zero code (Kubernetes restarts it) instead of listening forever, unready."""
    import shutil
    import subprocess
    import time

    from tests.support.serverutil import free_port, module_command, service_env

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    h5 = model_dir / CLASSIFIER_H5
    shutil.copy(synthetic_classifier_dir / CLASSIFIER_H5, h5)
    log = tmp_path / "predictor.log"
    args = ["--model_name", MODEL, "--model_dir", str(model_dir), "--workers", "2"]
    args += ["--http_port", str(free_port()), "--grpc_port", str(free_port())]
    with log.open("wb") as output:
        process = subprocess.Popen(
            module_command("predictor", args), env=service_env(None), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while b"ready: max_batch_size" not in log.read_bytes():  # the parent has loaded the file
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        h5.write_bytes(b"not an HDF5 file any more")
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert code != 0, text
    assert "failed to load its weights in worker" in text
    assert "a worker process could not load the weights" in text
