"""What a service writes to its log: a start and a stop line, one line per request, probes quiet.

KServe and uvicorn log three lines per request (uvicorn's access line and two
``kserve.trace`` timings), three per health probe, a dozen at start-up and
"(Press CTRL+C to quit)" from each server; TensorFlow prints native banners on
import. Here instead:

- one INFO line per REST or gRPC request: method, path, status, latency and the
  caller's request id (never the payload, never the query string); health and
  readiness probes get the same line at DEBUG. A service whose callers log their
  own requests (the predictor: the transformer calls it every hop of a live
  source) calls ``summarize_requests``: each request at DEBUG, and at INFO one
  summary line at most every ``REQUEST_SUMMARY_SECONDS`` and at stop;
- KServe's and uvicorn's own per-request and start-up lines are dropped unless
  the service logs at DEBUG (warnings and errors always pass);
- ``announce_lifecycle`` adds "<service> serving ..." once it listens and
  "<service> stopped" when it has shut down;
- ``native_stderr_to_debug`` turns what a native library prints while it is
  imported into DEBUG records, ``quiet_native_logs`` keeps TensorFlow's C++ INFO
  and WARNING lines off afterwards (both in ``contract.native_logs``, which the
  CLI imports without gRPC; the entry points call ``quiet_native_logs`` first);
- ``configure_service_logging`` sends our loggers to KServe's handlers, in its format.

``GrpcRequestLogInterceptor`` replaces KServe's gRPC logging interceptor through
``contract.kserve_compat``. KServe is imported only when logging is configured:
the ``audioguard`` CLI uses this module without a model server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import grpc
from grpc.aio import ServerInterceptor

# re-exported: the services' log level and the native banners' capture live with the CLI's needs
# LOG_LEVEL_ENV and native_stderr_to_debug live in contract.native_logs (no gRPC for the CLI);
# named here too, where callers have always found them
from contract.native_logs import LOG_LEVEL_ENV as LOG_LEVEL_ENV
from contract.native_logs import native_stderr_to_debug as native_stderr_to_debug

logger = logging.getLogger("contract.requests")

#: Liveness / readiness probes (KServe's v1 and v2 paths and its root): DEBUG, not INFO.
PROBE_PATH: Final = re.compile(r"^/(?:|v2/health/(?:live|ready)|v2/models/[^/]+/ready|v1/models/[^/]+)$")
PROBE_GRPC_METHODS: Final = frozenset({"ServerLive", "ServerReady", "ModelReady"})
#: Our packages' loggers, shown next to KServe's with its format.
SERVICE_LOGGERS: Final = ("contract", "predictor", "transformer")
#: Shortest time between two request summaries (``summarize_requests``).
REQUEST_SUMMARY_SECONDS: Final = 300.0
#: (logger, message pattern) of KServe's and uvicorn's INFO records replaced by the lines above.
_REPLACED: Final = (
    ("uvicorn.access", re.compile("")),
    ("kserve.trace", re.compile("")),
    ("kserve", re.compile(r"^grpc method: ")),
    (
        "kserve",
        re.compile(
            r"^(Registering model|Setting max asyncio worker threads|OpenAI endpoints not registered"
            r"|Time series endpoints not registered|Starting uvicorn with|Starting gRPC server"
            r"|Stopping the grpc server|Stopping the rest server|Shutting down|Stopping the model server"
            r"|Waiting for gRPC server shutdown|gRPC server shutdown complete)"
        ),
    ),
    (
        "uvicorn.error",
        re.compile(
            r"^(Started server process|Waiting for application (startup|shutdown)"
            r"|Application (startup|shutdown) complete|Uvicorn running on|Shutting down"
            r"|Finished server process)"
        ),
    ),
)


def is_probe(path: str) -> bool:
    return PROBE_PATH.match(path) is not None


class ReplacedRecords(logging.Filter):
    """Drop KServe's and uvicorn's routine INFO records (kept when the service logs at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or logger.isEnabledFor(logging.DEBUG):
            return True
        message = record.getMessage()
        return not any(
            (record.name == name or record.name.startswith(f"{name}.")) and pattern.search(message)
            for name, pattern in _REPLACED
        )


def quiet_server_records(handlers: list[logging.Handler]) -> None:
    """Install ``ReplacedRecords`` on the loggers it governs and on the service's handlers."""
    replaced = ReplacedRecords()
    for name in {name for name, _ in _REPLACED}:
        target = logging.getLogger(name)
        if not any(isinstance(f, ReplacedRecords) for f in target.filters):
            target.addFilter(replaced)
    for handler in handlers:  # records of child loggers skip their parents' filters
        if not any(isinstance(f, ReplacedRecords) for f in handler.filters):
            handler.addFilter(replaced)


def configure_service_logging(log_config_file: str | None = None, level: int | None = None) -> None:
    """Configure KServe's loggers (as ModelServer would) and route ours to KServe's handlers.

    ``level`` (default ``AUDIOGUARD_LOG_LEVEL``, else INFO) is the services' own; at DEBUG the
    probes' request lines and KServe's and uvicorn's routine records are written too.
    """
    from kserve import logging as kserve_logging

    if level is None:
        name = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
        level = logging.getLevelName(name) if isinstance(logging.getLevelName(name), int) else logging.INFO
    kserve_logging.configure_logging(log_config_file)
    handlers = logging.getLogger(kserve_logging.KSERVE_LOGGER_NAME).handlers
    quiet_server_records(list(handlers))
    for name in SERVICE_LOGGERS:
        service_logger = logging.getLogger(name)
        service_logger.setLevel(level)
        service_logger.propagate = False
        for handler in handlers:
            if handler not in service_logger.handlers:
                service_logger.addHandler(handler)


class RequestSummary:
    """The requests since the last summary line, by status; a line once ``interval_seconds``
    have passed since the last one (written by the request that finds it due, or at stop)."""

    def __init__(
        self,
        service: str,
        interval_seconds: float = REQUEST_SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._since = clock()
        self._statuses: dict[str, int] = {}
        self._total_seconds = self._slowest = 0.0

    def add(self, status: int | str, seconds: float) -> None:
        self._statuses[str(status)] = self._statuses.get(str(status), 0) + 1
        self._total_seconds += seconds
        self._slowest = max(self._slowest, seconds)
        if self._clock() - self._since >= self.interval_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the summary of what was counted (nothing if nothing was) and start again."""
        now = self._clock()
        count = sum(self._statuses.values())
        if count:
            by_status = sorted(self._statuses.items(), key=lambda item: -item[1])
            logger.info(
                "%s: %d request(s) in the last %.0f s: %s; mean %.1f ms, slowest %.1f ms (each at DEBUG)",
                self.service,
                count,
                now - self._since,
                ", ".join(f"{n} {status}" for status, n in by_status),
                self._total_seconds / count * 1000,
                self._slowest * 1000,
            )
        self._since, self._statuses = now, {}
        self._total_seconds = self._slowest = 0.0


#: set by ``summarize_requests``: this process's requests are summarized, not logged one by one
_summary: RequestSummary | None = None


def summarize_requests(service: str, interval_seconds: float = REQUEST_SUMMARY_SECONDS) -> None:
    """Log this process's requests at DEBUG and a summary at INFO (see the module)."""
    global _summary
    if _summary is None or _summary.service != service:
        _summary = RequestSummary(service, interval_seconds)


def flush_request_summary() -> None:
    """Write the pending request summary now (the service stops)."""
    if _summary is not None:
        _summary.flush()


def log_request(method: str, path: str, status: int | str, seconds: float, request_id: str | None) -> None:
    """The request line; ``path`` is the URL path, or the gRPC method's full name."""
    probe = is_probe(path) or path.rsplit("/", 1)[-1] in PROBE_GRPC_METHODS
    level = logging.DEBUG if probe or _summary is not None else logging.INFO
    logger.log(level, "%s %s %s %.1f ms id=%s", method, path, status, seconds * 1000, request_id or "-")
    if _summary is not None and not probe:
        _summary.add(status, seconds)


class RequestLogMiddleware:
    """ASGI middleware: the one line per HTTP request (after the response has been sent)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            headers = dict(scope.get("headers") or [])
            request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or None
            log_request(
                scope["method"],
                scope["path"],
                status[0] if status else 500,
                time.perf_counter() - started,
                request_id,
            )


class GrpcRequestLogInterceptor(ServerInterceptor):  # type: ignore[misc]
    """The one line per gRPC call (method, status code, latency, the request's id); replaces
    KServe's "grpc method: ..." line, written before the call and without its outcome."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method

        async def logged(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            outcome = "UNKNOWN"
            try:
                answer = await inner(request, context)
                outcome = "OK"
                return answer
            except asyncio.CancelledError:  # the client went away: grpc.aio cancelled the call
                outcome = "CANCELLED"
                raise
            finally:
                code = context.code() if hasattr(context, "code") else None
                name = code.name if isinstance(code, grpc.StatusCode) else outcome
                log_request("gRPC", method, name, time.perf_counter() - started, getattr(request, "id", None))

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def announce_lifecycle(app: Any, service: str, describe: Callable[[], str]) -> None:
    """Log "<service> serving: <describe()>" once the app has started, "<service> stopped" at the end."""
    if getattr(app.state, "audioguard_lifecycle_announced", False):
        return
    app.state.audioguard_lifecycle_announced = True
    previous = app.router.lifespan_context
    service_logger = logging.getLogger(service)

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with previous(app_) as state:
            service_logger.info("%s serving: %s", service, describe())
            try:
                yield state
            finally:
                flush_request_summary()
                service_logger.info("%s stopped", service)

    app.router.lifespan_context = lifespan
