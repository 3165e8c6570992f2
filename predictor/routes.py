"""The predictor's REST routes ahead of KServe's: v2 infer and metadata (shared), readiness.

- ``POST /v2/models/{name}/infer`` and ``GET /v2/models/{name}`` are the
  routes both services share (``contract.v2_routes``): KServe 0.21's decoder
  answers a BYTES tensor (an audio file sent to the wrong port) with a 500 that
  quotes the file; here anything that is not the ``embeddings`` tensor is a 400
  naming the problem, payload never quoted, and the metadata has ``parameters``.
- KServe's server readiness is always true; ours waits until every served model
  has its weights, which matters for ``--workers > 1`` where worker copies load
  after the server listens.

Its requests come from the transformer, every hop of every live source: each is
logged at DEBUG only, with a summary line at INFO every few minutes
(``contract.service_logs.summarize_requests``).

Models (ours, or a RayModel in front of ours) join with ``register_served_model``.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from kserve import model_server
from kserve.model import InferenceModel

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, SCORES_TENSOR
from contract.errors import RequestTooLarge
from contract.http import ServiceUnavailableError
from contract.service_logs import announce_lifecycle, summarize_requests
from contract.v2_routes import ParametersSource, ServedModel, add_v2_routes, serve_model, served_models
from contract.weights_status import WEIGHTS_OFFICIAL

#: Longest JSON text of one FP32 value with its separator ("2.5500000000000000e+02, ").
_JSON_CHARS_PER_VALUE: Final = 24
_JSON_OVERHEAD_BYTES: Final = 64 * 1024


def max_body_bytes(max_request_windows: int) -> int:
    """Largest infer body read: ``max_request_windows`` windows as JSON text, plus framing."""
    values = max_request_windows * EMBEDDINGS_PER_WINDOW * EMBEDDING_SIZE
    return values * _JSON_CHARS_PER_VALUE + _JSON_OVERHEAD_BYTES


def register_served_model(
    model: InferenceModel,
    parameters: ParametersSource,
    max_request_windows: int,
    app: FastAPI = model_server.app,
) -> None:
    """Let ``model`` answer the infer, metadata and readiness routes of ``app`` (KServe's)."""
    limit = max_body_bytes(max_request_windows)

    def too_large() -> RequestTooLarge:
        return RequestTooLarge(
            f"the request body exceeds {limit} bytes, the most {max_request_windows} windows "
            "of embeddings take (max_request_windows)"
        )

    serve_model(app, ServedModel(model, parameters, limit, too_large, output_names=(SCORES_TENSOR,)))


async def server_ready(request: Request) -> dict[str, bool]:
    """GET /v2/health/ready: 200 once every served model is loaded, 503 before."""
    loading = [name for name, served in served_models(request.app).items() if not served.model.ready]
    if loading:
        raise ServiceUnavailableError(f"model(s) {', '.join(loading)} still loading their weights")
    return {"ready": True}


def install_model_routes(app: FastAPI) -> None:
    """Route infer, metadata and server readiness to our handlers, ahead of KServe's; the
    requests (the transformer's, which logs its own) summarized, one at a time only at DEBUG."""
    add_v2_routes(app)
    summarize_requests("predictor")
    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"], tags=["V2"])
    announce_lifecycle(app, "predictor", lambda: describe_served_models(app))


def describe_served_models(app: FastAPI) -> str:
    """The start line's detail: each model's name and whether its weights are the official ones."""
    parts = []
    for name, served in served_models(app).items():
        official = bool(served.parameters().get(WEIGHTS_OFFICIAL, False))
        parts.append(f"model {name!r} (weights {'official' if official else 'NOT official'})")
    return ", ".join(parts) or "no model"
