"""Routes, middleware and error mapping on KServe's FastAPI app (done at import).

KServe 0.21 wants custom routes and middleware on ``kserve.model_server.app``
at module top level, before ``ModelServer.start``. Importing this module:

- installs every KServe patch both services need
  (``contract.kserve_compat.install_service_patches``, which checks the KServe
  version first): the Content-Type fix, the 500 boundary and the typed-error
  handlers of ``contract.http`` (every ``AudioGuardError`` answers its own
  status with ``{"error": message}``) and the gRPC status mapping;
- adds the v2 infer and metadata routes both services share
  (``contract.v2_routes``): binary BYTES stay bytes, the request is admitted
  (``model.admitted``) before its body is read, and the metadata carries
  ``parameters`` (official or synthetic weights, limits, privacy methods);
- adds the SIFIS routes (``transformer.protocol.sifis``);
- maps predictor transport failures met outside a request (the readiness
  probe with ``--enable_predictor_health_check``) to 503 instead of 500;
- keeps an unreachable predictor to one WARNING line per request or probe:
  KServe's gRPC client logs each failed call at ERROR with a traceback on
  ``kserve.trace``; ``PredictorOutageLogFilter`` drops those records for the
  outage codes only (our handlers log the event), other failures keep theirs;
- answers ``GET /v1/monitor`` with the live sources' status (``--sources_file``);
- adds a lifespan hook that connects to the predictor and runs the DHT
  outbox sender (and the live sources) for as long as the server runs.

``bind_model(model)`` tells the routes which model they serve.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import grpc
import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from kserve.logging import KSERVE_TRACE_LOGGER_NAME
from kserve.model_server import app

from contract.errors import upload_too_large
from contract.kserve_compat import install_service_patches
from contract.service_logs import announce_lifecycle
from contract.v2_routes import ServedModel, add_v2_routes, serve_model
from transformer.model import AudioTransformer
from transformer.predictor_client import is_predictor_outage
from transformer.protocol import sifis
from transformer.protocol.v2_response import OUTPUT_NAMES

logger = logging.getLogger(__name__)

MONITOR_PATH: Final = "/v1/monitor"
#: Room for the JSON around the tensor; base64 makes the audio 4/3 larger.
JSON_OVERHEAD_BYTES: Final = 64 * 1024


def bind_model(model: AudioTransformer, target: FastAPI = app) -> None:
    """Serve ``model`` from the v2 routes, the SIFIS routes, the monitor route and the lifespan hook."""
    # the SIFIS routes (protocol/sifis.py) and the hooks below find it here
    target.state.audio_transformer = model
    mb = model.sifis.max_upload_mb
    serve_model(
        target,
        ServedModel(
            model,
            model.metadata_parameters,
            rest_body_limit(model),
            lambda: upload_too_large(mb),
            output_names=OUTPUT_NAMES,
            admit=model.admitted,
        ),
    )


def bound_model(target: FastAPI) -> AudioTransformer | None:
    """The model ``bind_model`` gave ``target``, None before."""
    model: AudioTransformer | None = getattr(target.state, "audio_transformer", None)
    return model


async def monitor_status(request: Request) -> Response:
    """GET /v1/monitor: each live source's state, last audio, level, restarts, drops, open events
    (404 when the service listens to no source)."""
    model = bound_model(request.app)
    if model is None or model.monitor is None:
        return JSONResponse(
            {"error": "this transformer listens to no live source (start it with --sources_file)"},
            status_code=404,
        )
    return JSONResponse(model.monitor.status())


def rest_body_limit(model: AudioTransformer) -> int:
    """Largest v2 body read: the audio limit as base64 plus the JSON around it."""
    return model.sifis.max_upload_bytes * 4 // 3 + JSON_OVERHEAD_BYTES


#: At most one WARNING per this many seconds while the predictor stays unreachable
#: (readiness is probed every few seconds: a predictor that takes a minute to load
#: would otherwise write a warning per probe).
OUTAGE_WARNING_INTERVAL_SECONDS: Final = 60.0
_outage = {"warned_at": -OUTAGE_WARNING_INTERVAL_SECONDS}


async def predictor_unavailable_handler(request: Request, error: Exception) -> JSONResponse:
    """503 for a predictor transport failure that escaped a handler (readiness probes): one WARNING
    line a minute, DEBUG in between."""
    now = time.monotonic()
    level = logging.DEBUG
    if now - _outage["warned_at"] >= OUTAGE_WARNING_INTERVAL_SECONDS:
        _outage["warned_at"], level = now, logging.WARNING
    logger.log(
        level, "predictor unreachable on %s %s: %s", request.method, request.url.path, type(error).__name__
    )
    return JSONResponse(status_code=503, content={"error": "the predictor is unavailable"})


class PredictorOutageLogFilter(logging.Filter):
    """Drop KServe client records whose exception is a predictor outage (UNAVAILABLE, timeout).

    The request or probe that met the outage answers 503 and logs one WARNING
    line itself; KServe's record would add a multi-line traceback per call.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not is_predictor_outage(error)


@asynccontextmanager
async def _serving_lifespan(target: FastAPI) -> AsyncIterator[None]:
    model = bound_model(target)
    if model is None:
        yield
        return
    model.connect_predictor()
    await model.start_background()
    try:
        yield
    finally:
        await model.stop_background()


def _chain_lifespan(target: FastAPI) -> None:
    previous = target.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with previous(app_) as state, _serving_lifespan(target):
            yield state

    target.router.lifespan_context = lifespan


def install(target: FastAPI) -> None:
    """Everything this module adds, on ``target`` (KServe's app at import)."""
    install_service_patches(target)
    add_v2_routes(target)
    target.add_api_route(MONITOR_PATH, monitor_status, methods=["GET"], response_model=None, tags=["monitor"])
    target.include_router(sifis.router)
    target.add_exception_handler(grpc.RpcError, predictor_unavailable_handler)
    target.add_exception_handler(httpx.TransportError, predictor_unavailable_handler)
    trace_logger = logging.getLogger(KSERVE_TRACE_LOGGER_NAME)
    if not any(isinstance(f, PredictorOutageLogFilter) for f in trace_logger.filters):
        trace_logger.addFilter(PredictorOutageLogFilter())
    _chain_lifespan(target)
    announce_lifecycle(target, "transformer", lambda: describe_model(target))


def describe_model(target: FastAPI) -> str:
    """The start line's detail: model name, VGGish runtime and whether the weights are official."""
    model = bound_model(target)
    if model is None:
        return "no model"
    official = "official" if model.assets.get("official", False) else "NOT official"
    listening = "" if model.monitor is None else f", listening to {len(model.monitor.sources)} source(s)"
    return f"model {model.name!r}, weights {official}, {model.summary}{listening}"


install(app)
