"""contract.v2_routes: the v2 infer and metadata routes both services serve, and how they find the model."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from kserve import model_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest import server as kserve_rest_server

from contract import v2_routes
from contract.errors import Overloaded, RequestTooLarge
from contract.kserve_compat import install_service_patches

MODEL = "fake"
INFER = f"/v2/models/{MODEL}/infer"
BODY = json.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}).encode()


class FakeModel:
    """Just what the routes use of a ``kserve.Model``."""

    def __init__(self) -> None:
        self.name = MODEL
        self.ready = True
        self.requests: list[InferRequest] = []

    async def __call__(self, request: InferRequest, headers: dict[str, str]) -> tuple[InferResponse, dict]:
        self.requests.append(request)
        output = InferOutput(name="y", shape=[1], datatype="FP32", data=[0.5])
        return InferResponse(response_id="r1", model_name=MODEL, infer_outputs=[output]), {"x-answer": "yes"}

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": "x", "datatype": "FP32", "shape": [-1]}]

    async def get_output_types(self) -> list[dict[str, Any]]:  # RayModel's are coroutines
        return [{"name": "y", "datatype": "FP32", "shape": [-1]}]


class Gate:
    """An admission check that records what it was asked and can refuse."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.declared: list[int] = []

    @contextlib.contextmanager
    def __call__(self, declared: int) -> Iterator[None]:
        self.declared.append(declared)
        if self.refuse:
            raise Overloaded("too many analyses in flight", retry_after_seconds=7)
        yield


def serving_app(model: FakeModel, *, limit: int = 4096, gate: Gate | None = None) -> TestClient:
    """A service app as KServe starts it: our patches and routes first, KServe's handlers after."""
    app = FastAPI()
    install_service_patches(app)
    v2_routes.add_v2_routes(app)
    v2_routes.serve_model(
        app,
        v2_routes.ServedModel(
            model,  # type: ignore[arg-type]
            lambda: {"weights_official": False},
            limit,
            lambda: RequestTooLarge(f"the body exceeds {limit} bytes"),
            output_names=("y",),
            admit=gate or v2_routes._admit_all,
        ),
    )
    kserve_rest_server.RESTServer._add_exception_handlers(None, app)  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


def test_infer_decodes_runs_the_model_and_answers_its_response() -> None:
    model = FakeModel()
    answer = serving_app(model).post(INFER, content=BODY, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == [0.5]
    assert answer.headers["x-answer"] == "yes"
    assert [tensor.name for tensor in model.requests[0].inputs] == ["x"]


def test_an_unknown_model_is_404_and_an_unloaded_one_503() -> None:
    model = FakeModel()
    client = serving_app(model)
    assert client.post("/v2/models/other/infer", content=BODY).status_code == 404
    assert client.get("/v2/models/other").status_code == 404
    model.ready = False
    assert client.post(INFER, content=BODY).status_code == 503
    assert model.requests == []


def test_the_request_is_admitted_from_its_declared_length_before_the_model_runs() -> None:
    model, gate = FakeModel(), Gate(refuse=True)
    answer = serving_app(model, gate=gate).post(INFER, content=BODY)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"
    assert answer.json() == {"error": "too many analyses in flight"}
    assert gate.declared == [len(BODY)]
    assert model.requests == []


def test_a_body_above_the_limit_is_the_models_413() -> None:
    model = FakeModel()
    answer = serving_app(model, limit=len(BODY) - 1).post(INFER, content=BODY)
    assert answer.status_code == 413
    assert answer.json() == {"error": f"the body exceeds {len(BODY) - 1} bytes"}
    assert model.requests == []


def test_an_unknown_output_is_a_400_naming_the_outputs() -> None:
    body = json.dumps({**json.loads(BODY), "outputs": [{"name": "z"}]}).encode()
    answer = serving_app(FakeModel()).post(INFER, content=body)
    assert answer.status_code == 400
    assert "this model outputs y" in answer.json()["error"]


def test_metadata_adds_the_models_parameters() -> None:
    assert serving_app(FakeModel()).get(f"/v2/models/{MODEL}").json() == {
        "name": MODEL,
        "versions": None,
        "platform": "",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        "parameters": {"weights_official": False},
    }


# --- both services serve these routes --------------------------------------------------------


def v2_endpoints(app: FastAPI) -> dict[tuple[str, str], Any]:
    """(method, path) -> endpoint of the first route that answers it."""
    endpoints: dict[tuple[str, str], Any] = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                endpoints.setdefault((method, route.path), route.endpoint)
    return endpoints


SHARED = {
    ("POST", v2_routes.INFER_PATH): v2_routes.infer,
    ("GET", v2_routes.METADATA_PATH): v2_routes.model_metadata,
}


def test_the_transformer_serves_the_shared_routes() -> None:
    from transformer import app as transformer_app

    app = FastAPI()
    transformer_app.install(app)
    endpoints = v2_endpoints(app)
    assert {key: endpoints.get(key) for key in SHARED} == SHARED


def test_the_predictor_serves_the_shared_routes() -> None:
    from predictor import routes as predictor_routes

    app = FastAPI()
    predictor_routes.install_model_routes(app)
    endpoints = v2_endpoints(app)
    assert {key: endpoints.get(key) for key in SHARED} == SHARED


@pytest.mark.parametrize("service", ["transformer.app", "predictor.model"])
def test_kserves_app_answers_v2_with_the_shared_routes_once_a_service_is_imported(service: str) -> None:
    __import__(service)
    endpoints = v2_endpoints(model_server.app)
    assert {key: endpoints.get(key) for key in SHARED} == SHARED
