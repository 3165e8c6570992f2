"""HTTP pieces both KServe services need (KServe 0.21 / FastAPI >= 0.132).

- ``InferContentTypeMiddleware``: FastAPI rejects an ``/infer`` POST whose
  Content-Type is missing or not JSON, which breaks ``tritonclient.http``
  JSON-only requests and ``curl -d``; KServe's own REST forwarding sends two
  Content-Type headers. The middleware leaves exactly one: octet-stream when the
  binary tensor extension is used (``Inference-Header-Content-Length``), JSON
  otherwise.
- ``ErrorBoundaryMiddleware``: an exception nobody handled becomes a plain 500
  JSON answer here instead of in Starlette's outermost layer, which re-raises
  it and makes uvicorn drop the keep-alive connection. Its message is not
  echoed (it may quote request bytes).
- Error handlers: our ``AudioGuardError`` with its status; our 503
  (``ServiceUnavailableError``) as one WARNING line, where KServe's handler for
  its base class logs an ERROR traceback on every request; server faults
  (``ServerFaultError``, KServe's ``InferenceError``, a bare ValueError) as 500
  without echoing KServe's messages; FastAPI's 422 without echoing the body back.
- ``to_kserve_error``: our typed errors as exceptions KServe maps to the right
  status on REST and gRPC.

``install_http_fixes(app)`` adds them to an app; the services install it through
``contract.kserve_compat.install_service_patches(kserve.model_server.app)`` at
module top level, which also makes KServe's own ``InferenceError`` handler ours.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import errors as kserve_errors
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.errors import AudioGuardError
from contract.service_logs import RequestLogMiddleware, is_probe

logger = logging.getLogger(__name__)

BINARY_HEADER_LENGTH: Final = b"inference-header-content-length"
_CONTENT_TYPE: Final = b"content-type"
_JSON: Final = b"application/json"
_OCTET_STREAM: Final = b"application/octet-stream"


def is_infer_post(scope: Scope) -> bool:
    """True for ``POST .../infer`` (v2 inference, any model or version)."""
    return (
        scope["type"] == "http"
        and scope.get("method") == "POST"
        and scope.get("path", "").rstrip("/").endswith("/infer")
    )


class InferContentTypeMiddleware:
    """Give every v2 ``/infer`` POST exactly one Content-Type that FastAPI accepts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_infer_post(scope):
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != _CONTENT_TYPE]
            binary = any(k.lower() == BINARY_HEADER_LENGTH for k, _ in headers)
            headers.append((_CONTENT_TYPE, _OCTET_STREAM if binary else _JSON))
            scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


class ErrorBoundaryMiddleware:
    """Answer 500 ``{"error": ...}`` for an exception that escaped every handler.

    Logs the exception type and the traceback frames, never its message: the
    message of some KServe errors quotes the request payload.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            logger.error(
                "unhandled %s on %s %s at\n%s",
                type(error).__name__,
                scope.get("method"),
                scope.get("path"),
                "".join(traceback.format_tb(error.__traceback__)),
            )
            if started:
                raise
            body = json.dumps({"error": f"internal server error ({type(error).__name__})"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(_CONTENT_TYPE, _JSON), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


class ClientRequestError(kserve_errors.InvalidInput):
    """A 4xx ``AudioGuardError`` in KServe's clothes.

    As a ``kserve.errors.InvalidInput`` gRPC answers INVALID_ARGUMENT; over REST
    the handler installed by ``install_http_fixes`` keeps the precise status
    (400, 403, 413).
    """

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServerFaultError(kserve_errors.InferenceError):
    """A 5xx ``AudioGuardError`` (not 503) in KServe's clothes: REST 500 and gRPC INTERNAL,
    with our message (ours never quote payload, unlike some of KServe's)."""

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServiceUnavailableError(kserve_errors.ServerNotReady):
    """A 503: REST 503 (with ``Retry-After`` when known) and gRPC UNAVAILABLE with our message."""

    def __init__(self, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__()
        self.error_msg = message
        self.retry_after_seconds = retry_after_seconds
        # KServe's gRPC interceptor reads ``reason``, which ServerNotReady lacks.
        self.reason = message


def retry_after(error: object) -> int | None:
    """Seconds a 503 tells the caller to wait (``Overloaded``), None when unknown."""
    seconds = getattr(error, "retry_after_seconds", None)
    return seconds if isinstance(seconds, int) else None


def retry_headers(error: object) -> dict[str, str]:
    """``{"Retry-After": seconds}`` for an error that knows them, else nothing."""
    seconds = retry_after(error)
    return {} if seconds is None else {"Retry-After": str(seconds)}


def to_kserve_error(error: AudioGuardError) -> Exception:
    """The exception to raise from a ``kserve.Model`` handler for ``error``."""
    if 400 <= error.status_code < 500:
        return ClientRequestError(error.message, error.status_code)
    if error.status_code == 503:
        return ServiceUnavailableError(error.message, retry_after(error))
    return ServerFaultError(error.message, error.status_code)


async def client_request_error_handler(_: Request, error: Exception) -> JSONResponse:
    """REST answer for ``ClientRequestError``: its own status, KServe's body shape."""
    assert isinstance(error, ClientRequestError)
    return JSONResponse(status_code=error.status_code, content={"error": error.reason})


async def service_unavailable_handler(request: Request, error: Exception) -> JSONResponse:
    """REST answer for ``ServiceUnavailableError``: 503, one WARNING line, no traceback.

    An expected state (weights loading, predictor down), logged once per
    request (at DEBUG for readiness probes) instead of KServe's ``server_not_ready_handler``
    traceback.
    """
    assert isinstance(error, ServiceUnavailableError)
    # a probe's "not ready" is a state, logged once where it changes, not per probe
    level = logging.DEBUG if is_probe(request.url.path) else logging.WARNING
    logger.log(level, "%s %s: 503 %s", request.method, request.url.path, error.error_msg)
    return JSONResponse(status_code=503, content={"error": error.error_msg}, headers=retry_headers(error))


def _log_fault(request: Request, error: Exception) -> None:
    """Type and traceback frames of a server fault, never its message (it may quote payload)."""
    logger.error(
        "%s on %s %s at\n%s",
        type(error).__name__,
        request.method,
        request.url.path,
        "".join(traceback.format_tb(error.__traceback__)),
    )


async def value_error_handler(request: Request, error: Exception) -> JSONResponse:
    """A bare ValueError is a server fault (500): both services decode ``/infer`` bodies
    themselves (``contract.v2_rest``) and answer every client mistake with a typed 4xx."""
    _log_fault(request, error)
    return JSONResponse(status_code=500, content={"error": f"internal server error ({type(error).__name__})"})


async def inference_error_handler(request: Request, error: Exception) -> JSONResponse:
    """REST answer for KServe's ``InferenceError``: 500; ours keep their message, KServe's
    own (``Failed to encode b'RIFF...'``) are logged by type and answered without it."""
    if isinstance(error, ServerFaultError):
        logger.error("%s %s: %d %s", request.method, request.url.path, error.status_code, error.reason)
        return JSONResponse(status_code=error.status_code, content={"error": error.reason})
    _log_fault(request, error)
    return JSONResponse(status_code=500, content={"error": f"internal server error ({type(error).__name__})"})


async def request_validation_error_handler(_: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 without the ``input`` echo (it would return the request body, e.g. audio)."""
    assert isinstance(error, RequestValidationError)
    details = [
        {key: value for key, value in item.items() if key in ("type", "loc", "msg")}
        for item in error.errors()
    ]
    return JSONResponse(
        status_code=422, content={"error": "request body does not match the v2 schema", "detail": details}
    )


async def audioguard_error_handler(_: Request, error: Exception) -> JSONResponse:
    """REST answer for an ``AudioGuardError`` raised outside a model (routes)."""
    assert isinstance(error, AudioGuardError)
    return JSONResponse(
        status_code=error.status_code, content={"error": error.message}, headers=retry_headers(error)
    )


def install_http_fixes(app: FastAPI) -> None:
    """Add the middlewares and error handlers above to a KServe FastAPI app (once).

    KServe registers its own ``InferenceError`` handler when its server starts;
    ``contract.kserve_compat.use_our_rest_inference_error_handler`` makes that one ours too.
    """
    if getattr(app.state, "audioguard_http_fixes", False):
        return
    app.state.audioguard_http_fixes = True
    app.add_middleware(ErrorBoundaryMiddleware)
    # Added after it: the header is fixed before anything reads the body.
    app.add_middleware(InferContentTypeMiddleware)
    app.add_exception_handler(ClientRequestError, client_request_error_handler)
    app.add_exception_handler(ServiceUnavailableError, service_unavailable_handler)
    app.add_exception_handler(AudioGuardError, audioguard_error_handler)
    app.add_exception_handler(ValueError, value_error_handler)
    app.add_exception_handler(kserve_errors.InferenceError, inference_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_error_handler)
    # outermost of all: one line per request, after its answer went out
    app.add_middleware(RequestLogMiddleware)
