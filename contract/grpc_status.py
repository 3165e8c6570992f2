"""gRPC status codes that keep the meaning of our HTTP statuses (KServe 0.21).

KServe's gRPC server turns every ``kserve.errors.InvalidInput`` into
INVALID_ARGUMENT, so a request refused by the privacy policy (HTTP 403) or for
its size (413) looked like a malformed one, and it logs each of them at ERROR
with a traceback. ``StatusMappingInterceptor`` answers our ``ClientRequestError``
with the code that matches its HTTP status and logs one line without traceback
(messages never contain audio); our ``ServiceUnavailableError`` (503: not
ready, predictor down) becomes UNAVAILABLE with one WARNING line, since an
outage would otherwise log a traceback per request; KServe's "model not found"
is NOT_FOUND naming the models served here and its "not ready" UNAVAILABLE with
the service's reason, without KServe's traceback (``contract.availability``); a server fault
(``ServerFaultError``, KServe's ``InferenceError``) is INTERNAL, where KServe
says INVALID_ARGUMENT and blames the client; everything else goes to KServe's
own mapping.

413 maps to RESOURCE_EXHAUSTED because that is what gRPC itself answers when
a message exceeds ``grpc_max_receive_message_length``: a client sees one code
for "too large" wherever the limit was hit.

KServe's gRPC server uses this interceptor once
``contract.kserve_compat.use_our_grpc_interceptors`` has run (both services do
at import).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from grpc import StatusCode
from grpc.aio import ServicerContext
from kserve import model_server
from kserve.errors import InferenceError, ModelNotFound, ModelNotReady, ServerNotReady
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor

from contract.availability import (
    log_not_served,
    not_ready_reason,
    not_served_message,
    served_model_names,
    starting_message,
)
from contract.http import ClientRequestError, ServerFaultError, ServiceUnavailableError

logger = logging.getLogger(__name__)

#: HTTP status of a client error -> gRPC status code; other 4xx are INVALID_ARGUMENT.
GRPC_CODE_FOR_HTTP_STATUS: Final[dict[int, StatusCode]] = {
    400: StatusCode.INVALID_ARGUMENT,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.NOT_FOUND,
    413: StatusCode.RESOURCE_EXHAUSTED,
}


def _requested_model(request: Any) -> str:
    """The model a v2 gRPC request names (``ModelInfer``: ``model_name``; the others: ``name``)."""
    return str(getattr(request, "model_name", "") or getattr(request, "name", "") or "?")


def grpc_code_for(http_status: int) -> StatusCode:
    """The gRPC status code for a 4xx HTTP status."""
    return GRPC_CODE_FOR_HTTP_STATUS.get(http_status, StatusCode.INVALID_ARGUMENT)


class StatusMappingInterceptor(ExceptionToStatusInterceptor):
    """KServe's exception interceptor with our client errors mapped by their HTTP status, 503 quiet."""

    async def handle_exception(
        self, ex: Exception, request_or_iterator: Any, context: ServicerContext, method_name: str
    ) -> None:
        if isinstance(ex, ServiceUnavailableError):
            logger.warning("gRPC %s unavailable: %s", method_name, ex.error_msg)
            await context.abort(StatusCode.UNAVAILABLE, ex.error_msg)
        elif isinstance(ex, ClientRequestError):
            code = grpc_code_for(ex.status_code)
            logger.info("gRPC %s refused: %s %s", method_name, code.name, ex.reason)
            await context.abort(code, ex.reason)
        elif isinstance(ex, ServerFaultError):
            logger.error("gRPC %s failed: %s", method_name, ex.reason)
            await context.abort(StatusCode.INTERNAL, ex.reason)
        elif isinstance(ex, ModelNotFound):
            # KServe's message lacks what the caller needs: the names served here
            name = _requested_model(request_or_iterator)
            served = served_model_names(model_server.app)
            if name in served:  # named here but not registered with KServe yet: starting
                logger.debug("gRPC %s unavailable: %s", method_name, starting_message(name))
                await context.abort(StatusCode.UNAVAILABLE, starting_message(name))
            log_not_served(name, served, f"gRPC {method_name}")
            await context.abort(StatusCode.NOT_FOUND, not_served_message(name, served))
        elif isinstance(ex, (ModelNotReady, ServerNotReady)):
            reason = not_ready_reason(model_server.app)
            message = str(ex) + (f" {reason}" if reason else "")
            logger.debug("gRPC %s unavailable: %s", method_name, message)
            await context.abort(StatusCode.UNAVAILABLE, message)
        elif isinstance(ex, InferenceError):
            # KServe's own may quote the payload: the type only, in the log and the answer
            logger.error("gRPC %s failed: %s", method_name, type(ex).__name__)
            await context.abort(StatusCode.INTERNAL, f"internal server error ({type(ex).__name__})")
        else:
            await super().handle_exception(ex, request_or_iterator, context, method_name)
