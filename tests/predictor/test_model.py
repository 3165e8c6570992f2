"""ClassifierModel in process: v2 tensors, validation, batching, metadata, errors."""

from __future__ import annotations

import asyncio
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi import Request
from kserve import model_server
from kserve.errors import InvalidInput as KServeInvalidInput
from kserve.errors import ModelNotFound
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from contract import v2_routes
from contract.assets import CLASSIFIER_H5, sha512_of
from contract.errors import InvalidInput, MissingModelAsset, ServiceNotReady
from contract.http import ClientRequestError, ServiceUnavailableError, to_kserve_error
from predictor.classifier import AttentionClassifier
from predictor.model import ClassifierModel, windows_from_request
from predictor.routes import server_ready
from predictor.settings import PredictorSettings

#: The model's batcher binds to the loop of its first request: share one loop per module.
module_loop = pytest.mark.asyncio(loop_scope="module")

MODEL_NAME = "test-classifier"


def server_request() -> Request:
    """A request to KServe's app, where the predictor's models register."""
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "app": model_server.app})


async def model_metadata(model_name: str) -> dict[str, object]:
    """GET /v2/models/{model_name} as the route answers it (the shared route and its dependency)."""
    served = v2_routes.served_model(model_name, server_request())
    return await v2_routes.model_metadata(model_name, served)


def request_for(windows: np.ndarray, *, datatype: str = "UINT8", name: str = "embeddings") -> InferRequest:
    tensor = InferInput(name=name, shape=list(windows.shape), datatype=datatype)
    tensor.set_data_from_numpy(windows, binary_data=False)
    return InferRequest(model_name=MODEL_NAME, infer_inputs=[tensor], request_id="r1")


def random_windows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 10, 128), dtype=np.uint8)


@pytest.fixture(scope="module")
def settings(synthetic_classifier_dir: Path) -> PredictorSettings:
    return PredictorSettings(
        model_dir=synthetic_classifier_dir, max_batch_size=8, max_batch_wait_ms=2, max_request_windows=20
    )


@pytest.fixture(scope="module")
def model(settings: PredictorSettings) -> ClassifierModel:
    classifier_model = ClassifierModel(MODEL_NAME, settings)
    assert classifier_model.load() is True
    return classifier_model


@pytest.fixture(scope="module")
def reference(synthetic_classifier_dir: Path) -> AttentionClassifier:
    """A separate classifier instance: the direct, unbatched computation."""
    return AttentionClassifier.from_file(synthetic_classifier_dir / CLASSIFIER_H5)


# --- validation (no model needed) -------------------------------------------------------


@pytest.mark.parametrize(
    ("windows", "datatype", "name", "fragment"),
    [
        (np.zeros((1, 10, 127), np.uint8), "UINT8", "embeddings", "[N, 10, 128]"),
        (np.zeros((2, 128), np.uint8), "UINT8", "embeddings", "[N, 10, 128]"),
        (np.zeros((0, 10, 128), np.uint8), "UINT8", "embeddings", "N >= 1"),
        (np.zeros((1, 10, 128), np.int32), "INT32", "embeddings", "UINT8"),
        (np.zeros((1, 10, 128), np.uint8), "UINT8", "audio", "'embeddings'"),
        (np.zeros((21, 10, 128), np.uint8), "UINT8", "embeddings", "at most 20"),
        (np.full((1, 10, 128), 255.5, np.float32), "FP32", "embeddings", "0..255"),
        (np.full((1, 10, 128), np.nan, np.float32), "FP32", "embeddings", "0..255"),
    ],
)
def test_bad_tensors_are_rejected_with_the_expected_form(
    windows: np.ndarray, datatype: str, name: str, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        windows_from_request(request_for(windows, datatype=datatype, name=name), max_windows=20)
    assert fragment in raised.value.message


def test_data_that_does_not_fit_the_declared_shape_is_rejected() -> None:
    tensor = InferInput(name="embeddings", shape=[1, 10, 128], datatype="UINT8", data=[1] * 1279)
    with pytest.raises(InvalidInput, match="does not fit shape"):
        windows_from_request(InferRequest(MODEL_NAME, [tensor]), max_windows=20)


def test_out_of_range_uint8_json_values_are_rejected() -> None:
    tensor = InferInput(name="embeddings", shape=[1, 10, 128], datatype="UINT8", data=[300] * 1280)
    with pytest.raises(InvalidInput, match="does not fit shape"):
        windows_from_request(InferRequest(MODEL_NAME, [tensor]), max_windows=20)


def test_two_inputs_are_rejected() -> None:
    windows = np.zeros((1, 10, 128), np.uint8)
    request = request_for(windows)
    request.inputs.append(request_for(windows, name="extra").inputs[0])
    with pytest.raises(InvalidInput, match="exactly one input"):
        windows_from_request(request, max_windows=20)


def test_valid_tensors_pass_unchanged() -> None:
    windows = random_windows(3, seed=1)
    np.testing.assert_array_equal(windows_from_request(request_for(windows), max_windows=20), windows)
    as_float = windows.astype(np.float32)
    decoded = windows_from_request(request_for(as_float, datatype="FP32"), max_windows=20)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, as_float)


@pytest.mark.parametrize(
    ("error", "expected_type", "status"),
    [
        (InvalidInput("bad"), ClientRequestError, 400),
        (ServiceNotReady("later"), ServiceUnavailableError, 503),
        (MissingModelAsset("gone"), Exception, 500),
    ],
)
def test_errors_translate_to_kserve_errors(error, expected_type, status) -> None:
    translated = to_kserve_error(error)
    assert isinstance(translated, expected_type)
    assert str(translated).endswith(error.message)
    if status == 400:
        assert isinstance(translated, KServeInvalidInput)  # gRPC: INVALID_ARGUMENT
        assert translated.status_code == 400
    if status == 503:
        assert translated.reason == "later"  # KServe's gRPC interceptor reads .reason


# --- the loaded model ---------------------------------------------------------------------


def test_missing_weights_name_the_file_and_the_weights_command(tmp_path: Path) -> None:
    empty = ClassifierModel(MODEL_NAME, PredictorSettings(model_dir=tmp_path))
    with pytest.raises(MissingModelAsset) as raised:
        empty.load()
    assert CLASSIFIER_H5 in raised.value.message
    assert "audioguard weights download" in raised.value.message
    assert "audioguard weights synthetic" in raised.value.message
    assert empty.ready is False


@module_loop
async def test_predict_before_load_is_503(settings: PredictorSettings) -> None:
    unloaded = ClassifierModel("unloaded", settings)
    with pytest.raises(ServiceUnavailableError):
        await unloaded.predict(request_for(random_windows(1, seed=2)))


@module_loop
async def test_scores_match_the_direct_classifier(
    model: ClassifierModel, reference: AttentionClassifier
) -> None:
    windows = random_windows(5, seed=3)
    response = await model.predict(request_for(windows))
    assert response.id == "r1"
    assert response.model_name == MODEL_NAME
    [output] = response.outputs
    assert (output.name, output.datatype, output.shape) == ("scores", "FP32", [5, 527])
    scores = output.as_numpy()
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, reference.predict(windows), rtol=1e-5, atol=1e-6)
    # synthetic weights: every answer says so, over REST and gRPC alike
    assert response.parameters == {"weights_official": False}
    assert response.to_grpc().parameters["weights_official"].bool_param is False


@module_loop
async def test_fp32_input_gives_the_same_scores_as_uint8(model: ClassifierModel) -> None:
    windows = random_windows(2, seed=4)
    as_uint8 = (await model.predict(request_for(windows))).outputs[0].as_numpy()
    as_fp32 = (await model.predict(request_for(windows.astype(np.float32), datatype="FP32"))).outputs[0]
    np.testing.assert_allclose(as_fp32.as_numpy(), as_uint8, rtol=1e-6, atol=1e-7)


@module_loop
async def test_concurrent_distinct_requests_are_batched_and_split_exactly(
    model: ClassifierModel, reference: AttentionClassifier
) -> None:
    rng = np.random.default_rng(5)
    requests = [random_windows(int(rng.integers(1, 12)), seed=100 + i) for i in range(40)]
    before = model.batch_stats()
    responses = await asyncio.gather(*(model.predict(request_for(w)) for w in requests))
    after = model.batch_stats()
    for windows, response in zip(requests, responses, strict=True):
        np.testing.assert_allclose(
            response.outputs[0].as_numpy(), reference.predict(windows), rtol=1e-5, atol=1e-6
        )
    calls = after.calls - before.calls
    assert after.requests - before.requests == 40
    assert after.windows - before.windows == sum(len(w) for w in requests)
    assert calls < 40  # several requests shared classifier calls
    assert after.largest_batch <= 8


@module_loop
async def test_bad_request_in_a_crowd_fails_alone(model: ClassifierModel) -> None:
    good = [random_windows(2, seed=200 + i) for i in range(6)]
    bad = request_for(np.full((1, 10, 128), 300.0, np.float32), datatype="FP32")
    results = await asyncio.gather(
        *(model.predict(request_for(w)) for w in good[:3]),
        model.predict(bad),
        *(model.predict(request_for(w)) for w in good[3:]),
        return_exceptions=True,
    )
    assert isinstance(results[3], ClientRequestError)
    assert "0..255" in str(results[3])
    assert sum(isinstance(r, BaseException) for r in results) == 1


@module_loop
async def test_v1_payload_is_rejected_with_a_pointer_to_v2(model: ClassifierModel) -> None:
    with pytest.raises(ClientRequestError, match="/v2/models/test-classifier/infer"):
        await model.predict({"instances": [[1, 2]]})


@module_loop
async def test_requested_binary_output_is_kept_in_the_response(model: ClassifierModel) -> None:
    request = request_for(random_windows(1, seed=6))
    request.request_outputs = [RequestedOutput("scores", {"binary_data": True})]
    body, json_length = (await model.predict(request)).to_rest()
    assert isinstance(body, bytes)
    assert json_length is not None
    assert len(body) - json_length == 527 * 4


@module_loop
async def test_metadata_publishes_tensors_and_weight_checksums(
    model: ClassifierModel, synthetic_classifier_dir: Path
) -> None:
    metadata = await model_metadata(MODEL_NAME)
    assert metadata["inputs"] == [{"name": "embeddings", "datatype": "UINT8", "shape": [-1, 10, 128]}]
    assert metadata["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 527]}]
    parameters = metadata["parameters"]
    assert parameters["weights_official"] is False  # synthetic weights never pass as official
    file_status = parameters["assets"]["files"][CLASSIFIER_H5]
    assert file_status["sha512"] == sha512_of(synthetic_classifier_dir / CLASSIFIER_H5)
    assert parameters["max_batch_size"] == 8
    assert parameters["max_request_windows"] == 20
    with pytest.raises(ModelNotFound):
        await model_metadata("no-such-model")


@module_loop
async def test_server_readiness_is_503_until_the_weights_load(
    settings: PredictorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /v2/health/ready: 503 naming the loading model, 200 once its weights are in."""
    monkeypatch.setattr(model_server.app.state, v2_routes._STATE_KEY, {}, raising=False)
    loading = ClassifierModel("loading-classifier", settings)
    with pytest.raises(ServiceUnavailableError) as raised:
        await server_ready(server_request())
    assert "loading-classifier" in raised.value.reason
    # metadata is served while loading; it cannot claim official weights yet
    metadata = await model_metadata("loading-classifier")
    assert metadata["parameters"]["weights_official"] is False
    loading.load()
    assert await server_ready(server_request()) == {"ready": True}


@module_loop
async def test_pickled_copy_reloads_and_answers_the_same(model: ClassifierModel) -> None:
    copy = pickle.loads(pickle.dumps(model))
    deadline = time.monotonic() + 60
    while not copy.ready:  # it loads in a background thread
        assert time.monotonic() < deadline, "the unpickled model never became ready"
        await asyncio.sleep(0.05)
    windows = random_windows(3, seed=7)
    original = (await model.predict(request_for(windows))).outputs[0].as_numpy()
    copied = (await copy.predict(request_for(windows))).outputs[0].as_numpy()
    np.testing.assert_array_equal(copied, original)
