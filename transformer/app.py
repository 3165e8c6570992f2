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
- answers every readiness probe (REST v1 and v2, gRPC) from the model's own
  readiness (``answer_readiness``): its weights, and whether its predictor
  serves the model it asks for (``transformer.predictor_link``; with
  ``--enable_predictor_health_check`` also whether the predictor is up); a
  REST probe's 503 says why;
- maps predictor transport failures met outside a request to 503 instead of
  500, one WARNING line a minute;
- keeps a failing predictor call to the one line our handlers write: KServe's
  gRPC client logs each failed call at ERROR with a traceback on
  ``kserve.trace``; ``PredictorCallLogFilter`` turns those records into DEBUG
  ones (our handlers, the monitor and the predictor link name the failure);
- answers ``GET /v1/monitor`` with the live sources' status (``--sources_file``) and
  ``PUT /v1/monitor/mode`` with a mode change (``transformer.analysis.modes``);
- serves the web page ``/ui`` and its data endpoints (``transformer.ui.routes``), open on a
  loopback-only server, behind a token or basic-auth pair otherwise (``transformer.ui.auth``);
- adds a lifespan hook that connects to the predictor and runs the DHT
  outbox sender (and the live sources) for as long as the server runs.

``bind_model(model)`` tells the routes which model they serve.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import grpc
import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from kserve.errors import ModelNotFound
from kserve.logging import KSERVE_TRACE_LOGGER_NAME
from kserve.model_server import app
from kserve.protocol.dataplane import DataPlane

from contract import kserve_compat
from contract.availability import set_not_ready_reason
from contract.errors import InvalidParameter, upload_too_large
from contract.kserve_compat import install_service_patches
from contract.log_limit import RateLimitedLog
from contract.service_logs import announce_lifecycle
from contract.v2_routes import ServedModel, add_v2_routes, serve_model
from transformer.model import AudioTransformer
from transformer.predictor_client import PREDICTOR_RETRY_AFTER_SECONDS
from transformer.protocol import sifis
from transformer.protocol.v2_response import OUTPUT_NAMES
from transformer.ui.auth import UiAccess
from transformer.ui.routes import install_ui

logger = logging.getLogger(__name__)

MONITOR_PATH: Final = "/v1/monitor"
MONITOR_MODE_PATH: Final = "/v1/monitor/mode"
NOVELTY_RESET_PATH: Final = "/v1/monitor/unusual_sound/reset"
#: Room for the JSON around the tensor; base64 makes the audio 4/3 larger.
JSON_OVERHEAD_BYTES: Final = 64 * 1024


def bind_model(model: AudioTransformer, target: FastAPI = app) -> None:
    """Serve ``model`` from the v2 routes, the SIFIS routes, the monitor route and the lifespan hook."""
    # the SIFIS routes (protocol/sifis.py) and the hooks below find it here
    target.state.audio_transformer = model
    settings = model.settings
    target.state.ui_access = UiAccess(
        settings.ui_open, settings.ui_token, settings.ui_username, settings.ui_password
    )
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


NO_LIVE_SOURCES: Final = "this transformer listens to no live source (start it with --sources_file)"


async def _json_body(request: Request, what: str, empty: bytes = b"") -> object:
    """The request's JSON body (``empty`` stands for none); InvalidParameter when it is not JSON."""
    try:
        return json.loads(await request.body() or empty)
    except ValueError:
        raise InvalidParameter(f"the body of {what} must be JSON") from None


async def monitor_status(request: Request) -> Response:
    """GET /v1/monitor: each live source's state, last audio, level, restarts, drops, open events,
    and one line per delivery sink (404 when the service listens to no source)."""
    model = bound_model(request.app)
    if model is None or model.monitor is None:
        return JSONResponse({"error": NO_LIVE_SOURCES}, status_code=404)
    sinks = [] if model.delivery is None else await asyncio.to_thread(model.delivery.sink_status)
    return JSONResponse({**model.monitor.status(), "sinks": sinks})


async def set_monitor_mode(request: Request) -> Response:
    """PUT /v1/monitor/mode ``{"mode": "away", "source": "hall"}`` (no source: every source): the
    changes made, recorded before the answer, and every source's mode (400 naming a bad field,
    404 without live sources)."""
    model = bound_model(request.app)
    if model is None or model.monitor is None:
        return JSONResponse({"error": NO_LIVE_SOURCES}, status_code=404)
    return JSONResponse(await model.monitor.set_mode(await _json_body(request, "a mode request"), "api"))


async def reset_novelty(request: Request) -> Response:
    """POST /v1/monitor/unusual_sound/reset ``{"source": "hall"}`` (``{}``: every source): forget
    what the source learnt of its normal sounds; its state after (400 naming the problem)."""
    model = bound_model(request.app)
    if model is None or model.monitor is None:
        return JSONResponse({"error": NO_LIVE_SOURCES}, status_code=404)
    body = await _json_body(request, "a reset request", empty=b"{}")
    return JSONResponse(await model.monitor.reset_novelty(body))


def rest_body_limit(model: AudioTransformer) -> int:
    """Largest v2 body read: the audio limit as base64 plus the JSON around it."""
    return model.sifis.max_upload_bytes * 4 // 3 + JSON_OVERHEAD_BYTES


#: At most one WARNING per this many seconds while the predictor stays unreachable.
OUTAGE_WARNING_INTERVAL_SECONDS: Final = 60.0
_outage = RateLimitedLog(logger, OUTAGE_WARNING_INTERVAL_SECONDS)


async def predictor_unavailable_handler(request: Request, error: Exception) -> JSONResponse:
    """503 for a predictor transport failure that escaped a handler: one WARNING line a minute,
    DEBUG in between."""
    _outage.log(
        logging.WARNING,
        "outage",
        "predictor unreachable on %s %s: %s",
        request.method,
        request.url.path,
        type(error).__name__,
    )
    return JSONResponse(
        status_code=503,
        content={"error": "the predictor is unavailable"},
        headers={"Retry-After": str(PREDICTOR_RETRY_AFTER_SECONDS)},
    )


class PredictorCallLogFilter(logging.Filter):
    """KServe client records of a failed predictor call (a gRPC or HTTP error) become DEBUG ones.

    Whoever made the call logs the failure in one line (the request's handler, the monitor's
    rate-limited line, the predictor link's change of state); KServe's ERROR record would add a
    multi-line traceback per call, per hop of a live source. At DEBUG it is still written.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, grpc.RpcError | httpx.HTTPError):
            return True
        if not logging.getLogger("transformer").isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def answer_readiness(dataplane: DataPlane, model: AudioTransformer, target: FastAPI = app) -> None:
    """Every readiness probe answers ``model``'s readiness (``AudioTransformer.check_ready``);
    a REST probe's 503 carries ``model.not_ready_reason()``."""
    registry = dataplane.model_registry

    async def server_ready() -> bool:
        return await model.check_ready()

    async def model_ready(name: str, disable_predictor_health_check: bool) -> bool:
        if registry.get_model(name) is None:
            raise ModelNotFound(name)
        if disable_predictor_health_check:  # KServe's infer path: loaded is enough, no check per request
            return bool(await registry.is_model_ready(name))
        return await model.check_ready()

    kserve_compat.answer_readiness(dataplane, server_ready, model_ready)
    set_not_ready_reason(target, model.not_ready_reason)


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
    target.add_api_route(
        MONITOR_MODE_PATH, set_monitor_mode, methods=["PUT"], response_model=None, tags=["monitor"]
    )
    target.add_api_route(
        NOVELTY_RESET_PATH, reset_novelty, methods=["POST"], response_model=None, tags=["monitor"]
    )
    target.include_router(sifis.router)
    install_ui(target)
    target.add_exception_handler(grpc.RpcError, predictor_unavailable_handler)
    target.add_exception_handler(httpx.TransportError, predictor_unavailable_handler)
    trace_logger = logging.getLogger(KSERVE_TRACE_LOGGER_NAME)
    if not any(isinstance(f, PredictorCallLogFilter) for f in trace_logger.filters):
        trace_logger.addFilter(PredictorCallLogFilter())
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
