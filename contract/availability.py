"""A model not served here, a service not ready: the answer names why, the log has one line.

KServe 0.21 answers a model name nobody serves with "Model with name X does not exist." and a
service or model not ready with "Server is not ready." / "Model with name X is not ready.", and
its REST and gRPC handlers log each of them at ERROR with a traceback: a readiness probe every
few seconds, or a transformer started with another model name than its predictor's, then
writes a traceback per probe or per hop. Here instead:

- 404 / NOT_FOUND names the models this server does serve (``not_served_message``; the
  transformer reads them back with ``served_names_in`` to say which name its predictor
  expects), and is logged at most once a minute per name (``contract.log_limit``);
- 503 / UNAVAILABLE for "not ready" carries the service's own reason when it has one
  (``set_not_ready_reason``: the transformer's "the predictor does not serve model X"),
  logged at DEBUG for probes (the state change is logged once by whoever knows it).

``contract.kserve_compat`` makes KServe's REST server use the handlers below and its gRPC
server the mapping in ``contract.grpc_status`` (which calls ``log_not_served`` too).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from kserve.errors import ModelNotFound, ModelNotReady, ServerNotReady

from contract.log_limit import RateLimitedLog
from contract.service_logs import is_probe

logger = logging.getLogger(__name__)

_SERVES: Final = "this server serves "
_NAME: Final = re.compile(r"'((?:[^'\\]|\\.)*)'")
_STATE_KEY: Final = "audioguard_not_ready_reason"
#: where ``contract.v2_routes.serve_model`` keeps an app's served models (by name)
SERVED_MODELS_KEY: Final = "audioguard_served_models"
_not_served = RateLimitedLog(logger)

#: ``reason()``: why the service is not ready, None when it is (as far as it knows)
NotReadyReason = Callable[[], str | None]


def not_served_message(name: str, served: Iterable[str]) -> str:
    """The 404 text for model ``name``: it and the names this server does serve."""
    names = sorted(served)
    listed = ", ".join(repr(n) for n in names) if names else "no model"
    return f"model {name!r} is not served here; {_SERVES}{listed}"


def starting_message(name: str) -> str:
    """The "not ready" text for a model this server serves but has not registered yet."""
    return f"model {name!r} is not ready: the server is still starting"


def served_names_in(message: str) -> tuple[str, ...] | None:
    """The served names a ``not_served_message`` lists (empty: none); None for another text
    (a server that is not audioguard's)."""
    _, found, listed = message.partition(_SERVES)
    if not found:
        return None
    return tuple(match.group(1) for match in _NAME.finditer(listed))


def served_model_names(app: FastAPI) -> list[str]:
    """The names ``app``'s models answer to (``contract.v2_routes.serve_model``)."""
    return sorted(getattr(app.state, SERVED_MODELS_KEY, None) or {})


def log_not_served(name: str, served: Iterable[str], where: str) -> None:
    """One WARNING line a minute per model name asked for and not served here."""
    _not_served.log(
        logging.WARNING,
        name,
        "%s: %s (a caller uses another model name)",
        where,
        not_served_message(name, served),
    )


def set_not_ready_reason(app: FastAPI, reason: NotReadyReason) -> None:
    """Let the "not ready" answers of ``app`` say ``reason()``."""
    setattr(app.state, _STATE_KEY, reason)


def not_ready_reason(app: FastAPI) -> str | None:
    """The reason ``set_not_ready_reason`` gave ``app``, None without one."""
    reason: NotReadyReason | None = getattr(app.state, _STATE_KEY, None)
    return None if reason is None else reason()


def _log_not_ready(request: Request, message: str) -> None:
    level = logging.DEBUG if is_probe(request.url.path) else logging.WARNING
    logger.log(level, "%s %s: 503 %s", request.method, request.url.path, message)


async def model_not_found_handler(request: Request, error: Exception) -> JSONResponse:
    """404 naming the models served here; one line a minute per name, no traceback."""
    assert isinstance(error, ModelNotFound)
    name = str(request.path_params.get("model_name", "?"))
    served = served_model_names(request.app)
    if name in served:  # named here but not registered with KServe yet: starting, not a wrong name
        message = starting_message(name)
        _log_not_ready(request, message)
        return JSONResponse(status_code=503, content={"error": message})
    log_not_served(name, served, f"{request.method} {request.url.path}")
    return JSONResponse(status_code=404, content={"error": not_served_message(name, served)})


async def model_not_ready_handler(request: Request, error: Exception) -> JSONResponse:
    """503 for a model not ready, with the service's reason; DEBUG for probes."""
    assert isinstance(error, ModelNotReady)
    reason = not_ready_reason(request.app)
    message = f"model {error.model_name!r} is not ready" + (f": {reason}" if reason else "")
    _log_not_ready(request, message)
    return JSONResponse(status_code=503, content={"error": message})


async def server_not_ready_handler(request: Request, error: Exception) -> JSONResponse:
    """503 for the server not ready, with the service's reason; DEBUG for probes."""
    assert isinstance(error, ServerNotReady)
    message = not_ready_reason(request.app) or "the server is not ready"
    _log_not_ready(request, message)
    return JSONResponse(status_code=503, content={"error": message})
