"""The v2 REST routes both services put ahead of KServe's: infer, and metadata with ``parameters``.

- ``POST /v2/models/{name}/infer``: KServe 0.21's REST decoder re-encodes a
  binary BYTES tensor as UTF-8 text, so an audio file fails with a 500 that
  quotes the file. Here the body is read up to the model's limit (a larger one
  is the model's 413 before it is read in full), decoded by ``contract.v2_rest``
  (binary BYTES stay bytes, every malformed body is a 400 naming the problem,
  no payload quoted), and the model then runs exactly as under KServe. A model
  with an admission check (the transformer's budgets) admits the request from
  its declared length *before* the body is read, so a refused upload never
  occupies memory. A client that disconnects before the answer stops the work
  (``contract.disconnects``).
- ``GET /v2/models/{name}``: KServe's metadata response model has no
  ``parameters`` field; ours adds the model's (weights, limits, ...). v2
  clients ignore the extra key. gRPC keeps KServe's handler (its proto has no
  such field either).

A service registers each model it serves with ``serve_model(app, ServedModel(...))``
(on the app's state, so worker processes that build their app again register
again); the routes find it through the one dependency ``served_model``:
404 (KServe's ``ModelNotFound``) for a name nobody serves, 503
(``ModelNotReady``) on infer before the model has loaded.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request, Response
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model import InferenceModel

from contract.availability import SERVED_MODELS_KEY
from contract.disconnects import CLIENT_CLOSED_REQUEST, ClientGone, while_connected
from contract.errors import AudioGuardError
from contract.v2_rest import (
    INFERENCE_HEADER,
    declared_length,
    decode_rest_body,
    off_the_loop_if_large,
    read_bounded_body,
    rest_response,
)

INFER_PATH: Final = "/v2/models/{model_name}/infer"
METADATA_PATH: Final = "/v2/models/{model_name}"
#: where ``serve_model`` keeps an app's served models (``contract.availability`` reads the names)
_STATE_KEY: Final = SERVED_MODELS_KEY

ParametersSource = Callable[[], dict[str, object]]
#: ``admit(declared_body_bytes)``: a context held while the request runs (raises to refuse it)
Admission = Callable[[int], AbstractContextManager[object]]


def _admit_all(_: int) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class ServedModel:
    """What the shared routes need of a served model."""

    #: our ``kserve.Model``, or a ``RayModel`` in front of it
    model: InferenceModel
    #: the metadata's ``parameters`` object
    parameters: ParametersSource
    #: the largest infer body read, in bytes
    max_body_bytes: int
    #: the error for a body above ``max_body_bytes`` (a 413 in the model's words)
    too_large: Callable[[], AudioGuardError]
    #: the model's outputs; a request for another is a 400
    output_names: Collection[str]
    admit: Admission = field(default=_admit_all)


def served_models(app: FastAPI) -> dict[str, ServedModel]:
    """The models ``app`` serves, by name (empty before any ``serve_model``)."""
    models: dict[str, ServedModel] | None = getattr(app.state, _STATE_KEY, None)
    if models is None:
        models = {}
        setattr(app.state, _STATE_KEY, models)
    return models


def serve_model(app: FastAPI, served: ServedModel) -> None:
    """Let ``served.model`` answer ``app``'s infer and metadata routes (replaces one of the same name)."""
    served_models(app)[served.model.name] = served


def served_model(model_name: str, request: Request) -> ServedModel:
    """The FastAPI dependency of the routes: the model named in the path.

    Raises:
        ModelNotFound: no model of that name is served (404).
    """
    served = served_models(request.app).get(model_name)
    if served is None:
        raise ModelNotFound(model_name)
    return served


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


#: a route parameter holding the model named in the path
Served = Annotated[ServedModel, Depends(served_model)]


async def infer(model_name: str, request: Request, served: Served) -> Response:
    """v2 inference, the body decoded by ``contract.v2_rest`` (binary BYTES kept as bytes)."""
    if not served.model.ready:
        raise ModelNotReady(model_name)
    limit = served.max_body_bytes
    # admitted before the body is read: a refused upload never occupies memory
    with served.admit(declared_length(request, limit)):
        body = await read_bounded_body(request, limit, served.too_large)
        infer_request = await off_the_loop_if_large(
            len(body),
            decode_rest_body,
            body,
            request.headers.get(INFERENCE_HEADER),
            model_name,
            output_names=served.output_names,
        )
        # a client that hangs up stops the work (``contract.disconnects``)
        try:
            response, response_headers = await while_connected(
                request, served.model(infer_request, headers=dict(request.headers)), "v2"
            )
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
    return rest_response(response, response_headers)


async def model_metadata(model_name: str, served: Served) -> dict[str, object]:
    """GET /v2/models/{model_name}: the v2 metadata plus the model's ``parameters``."""
    return {
        "name": model_name,
        "versions": None,
        "platform": "",
        "inputs": await _maybe_await(served.model.get_input_types()),
        "outputs": await _maybe_await(served.model.get_output_types()),
        "parameters": served.parameters(),
    }


def add_v2_routes(app: FastAPI) -> None:
    """Route v2 infer and model metadata to the handlers above.

    Call at import, before ``ModelServer.start`` adds KServe's routes for the
    same paths: the first route that matches answers.
    """
    app.add_api_route(INFER_PATH, infer, methods=["POST"], response_model=None, tags=["V2"])
    app.add_api_route(METADATA_PATH, model_metadata, methods=["GET"], tags=["V2"])
