"""The predictor's REST routes, ahead of KServe's: infer, metadata with ``parameters``, readiness.

- ``POST /v2/models/{name}/infer`` is decoded by ``contract.v2_rest``, as on the
  transformer: KServe 0.21's decoder answers a BYTES tensor (an audio file sent
  to the wrong port) with a 500 that quotes the file. Here anything that is not
  the ``embeddings`` tensor is a 400 naming the problem, payload never quoted.
- KServe's metadata response model has no ``parameters`` field, so the REST
  route is replaced; gRPC keeps KServe's handler (its proto has no such field
  either). Extra JSON keys are ignored by v2 clients.
- KServe's server readiness is always true; ours waits until every served model
  has its weights, which matters for ``--workers > 1`` where worker copies load
  after the server listens.

Models (ours, or a RayModel in front of ours) join with ``register_served_model``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model import InferenceModel

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, SCORES_TENSOR
from contract.errors import RequestTooLarge
from contract.http import ServiceUnavailableError
from contract.service_logs import announce_lifecycle
from contract.v2_rest import INFERENCE_HEADER, decode_rest_body, read_bounded_body, rest_response
from contract.weights_status import WEIGHTS_OFFICIAL

#: Longest JSON text of one FP32 value with its separator ("2.5500000000000000e+02, ").
_JSON_CHARS_PER_VALUE: Final = 24
_JSON_OVERHEAD_BYTES: Final = 64 * 1024

ParametersSource = Callable[[], dict[str, object]]


@dataclass(frozen=True)
class ServedModel:
    model: InferenceModel
    parameters: ParametersSource
    max_request_windows: int


_SERVED_MODELS: dict[str, ServedModel] = {}


def register_served_model(
    model: InferenceModel, parameters: ParametersSource, max_request_windows: int
) -> None:
    """Let ``model`` answer the infer, metadata and readiness routes."""
    _SERVED_MODELS[model.name] = ServedModel(model, parameters, max_request_windows)


def max_body_bytes(max_request_windows: int) -> int:
    """Largest infer body read: ``max_request_windows`` windows as JSON text, plus framing."""
    values = max_request_windows * EMBEDDINGS_PER_WINDOW * EMBEDDING_SIZE
    return values * _JSON_CHARS_PER_VALUE + _JSON_OVERHEAD_BYTES


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _served(model_name: str) -> ServedModel:
    entry = _SERVED_MODELS.get(model_name)
    if entry is None:
        raise ModelNotFound(model_name)
    return entry


async def infer(model_name: str, request: Request) -> Response:
    """v2 inference, the body decoded by ``contract.v2_rest`` (typed 400s, no payload echoed)."""
    served = _served(model_name)
    if not served.model.ready:
        raise ModelNotReady(model_name)
    limit = max_body_bytes(served.max_request_windows)
    body = await read_bounded_body(
        request,
        limit,
        lambda: RequestTooLarge(
            f"the request body exceeds {limit} bytes, the most {served.max_request_windows} windows "
            "of embeddings take (max_request_windows)"
        ),
    )
    infer_request = decode_rest_body(
        body, request.headers.get(INFERENCE_HEADER), model_name, output_names=(SCORES_TENSOR,)
    )
    response, response_headers = await served.model(infer_request, headers=dict(request.headers))
    return rest_response(response, response_headers)


async def model_metadata(model_name: str) -> dict[str, object]:
    """GET /v2/models/{model_name}: the v2 metadata plus our ``parameters``."""
    served = _served(model_name)
    return {
        "name": model_name,
        "versions": None,
        "platform": "",
        "inputs": await _maybe_await(served.model.get_input_types()),
        "outputs": await _maybe_await(served.model.get_output_types()),
        "parameters": served.parameters(),
    }


async def server_ready() -> dict[str, bool]:
    """GET /v2/health/ready: 200 once every served model is loaded, 503 before."""
    loading = [name for name, served in _SERVED_MODELS.items() if not served.model.ready]
    if loading:
        raise ServiceUnavailableError(f"model(s) {', '.join(loading)} still loading their weights")
    return {"ready": True}


def install_model_routes(app: FastAPI) -> None:
    """Route infer, metadata and server readiness to the handlers above, ahead of KServe's."""
    app.add_api_route(
        "/v2/models/{model_name}/infer", infer, methods=["POST"], response_model=None, tags=["V2"]
    )
    app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"], tags=["V2"])
    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"], tags=["V2"])
    announce_lifecycle(app, "predictor", describe_served_models)


def describe_served_models() -> str:
    """The start line's detail: each model's name and whether its weights are the official ones."""
    parts = []
    for name, served in _SERVED_MODELS.items():
        official = bool(served.parameters().get(WEIGHTS_OFFICIAL, False))
        parts.append(f"model {name!r} (weights {'official' if official else 'NOT official'})")
    return ", ".join(parts) or "no model"
