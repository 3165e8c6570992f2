"""Every place audioguard patches KServe or reaches into its internals, and the KServe it was tested with.

KServe's model server is built from module globals: flags parsed at import
(``model_server.args``), one FastAPI app (``model_server.app``), and classes
its REST and gRPC servers look up in their own modules when they start. Some
of its behaviours can only be changed by replacing names inside those modules
or by touching private attributes. This module is the only place that does
so. Each function names the KServe 0.21 behaviour it works around; the code it
installs (middlewares, handlers, interceptors) stays in the module of its
concern (``contract.http``, ``contract.grpc_status``, ``contract.service_logs``).

The entry points, who calls them, and the KServe internals they touch:

- ``install_service_patches(app)`` (both services, at import): the REST
  server's ``inference_error_handler``, ``model_not_found_handler``,
  ``model_not_ready_handler`` and ``server_not_ready_handler``, the gRPC server's
  ``ExceptionToStatusInterceptor`` and ``LoggingInterceptor`` (module globals),
  the ORJSONResponse warning; also adds ``contract.http``'s middlewares and
  handlers to the app;
- ``listen_on(host)`` (both ``__main__``): ``RESTServer.__init__`` and the gRPC
  server module's ``aio``;
- ``set_grpc_max_receive_message_length(n)`` (transformer ``__main__``):
  ``model_server.args``;
- ``answer_readiness(dataplane, ...)`` (transformer ``__main__``): the
  ``ready`` and ``model_ready`` methods of the server's ``DataPlane`` instance;
- ``connect_predictor_grpc`` / ``predictor_grpc_client_of`` (the transformer
  model's ``connect_predictor`` and ``_grpc_client`` override): KServe's private
  ``Model._grpc_client`` property and its ``_grpc_client_stub`` cache;
- ``raw_data`` / ``set_raw_data`` (``contract.v2_rest``,
  ``transformer.protocol.v2_request``): ``InferInput._raw_data``.

Every entry point that patches first runs ``check_kserve_version``: on a
KServe whose version is not in ``TESTED_KSERVE`` start-up fails with
``UntestedKServeVersion`` unless ``AUDIOGUARD_ALLOW_UNTESTED_KSERVE=1``, which
turns the error into a WARNING. After an upgrade: run the whole test suite
(``tests/contract/test_kserve_compat.py`` checks that each patched name still
exists), then add the version here.

KServe 0.21 behaviours worked around without patching (public API only, listed
so an upgrade reviews them too): the transformer runs one worker (extra workers
lack the predictor config and answer 501, ``transformer/__main__.py``); the v2
infer and metadata routes of both services (``contract.v2_routes``: KServe
re-encodes binary BYTES as UTF-8 and has no metadata ``parameters``); REST
forwarding to the predictor uses JSON (binary tensors get two Content-Types,
``transformer/model.py``); the predictor's model re-registers after unpickling
(``predictor/model.py``); KServe's routine log lines are filtered by their text
(``contract.service_logs``) and its client's records of failed predictor calls by
their exception (``transformer.app.PredictorCallLogFilter``); ``kserve.model_server``
parses ``sys.argv`` at import, so the commands that are not KServe servers import it
through ``contract.kserve_import``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import FastAPIDeprecationWarning
from grpc import aio
from kserve import Model, model_server
from kserve.inference_client import InferenceGRPCClient
from kserve.predictor_config import PredictorConfig
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import server as kserve_grpc_server
from kserve.protocol.infer_type import InferInput
from kserve.protocol.rest import server as kserve_rest_server
from kserve.utils.inference_client_factory import InferenceClientFactory

from contract import availability
from contract.constants import ALL_INTERFACES
from contract.grpc_status import StatusMappingInterceptor
from contract.http import inference_error_handler, install_http_fixes
from contract.service_logs import GrpcRequestLogInterceptor

logger = logging.getLogger(__name__)

#: KServe releases (major.minor) the patches below were written and tested against.
TESTED_KSERVE: Final = ("0.21",)
#: Set to 1 to start on an untested KServe anyway (a WARNING instead of the error).
ALLOW_UNTESTED_ENV: Final = "AUDIOGUARD_ALLOW_UNTESTED_KSERVE"


#: untested versions already warned about (with the override set)
_warned_about: set[str] = set()


class UntestedKServeVersion(RuntimeError):
    """The installed KServe is not one the patches were tested with."""


# --- the version gate ---------------------------------------------------------------------


def kserve_version() -> str:
    """The installed KServe's version ("unknown" without package metadata; kserve has no
    ``__version__``)."""
    try:
        return importlib.metadata.version("kserve")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def is_tested(version: str) -> bool:
    """True when ``version`` (e.g. "0.21.0", "0.21.1rc1") is of a release in ``TESTED_KSERVE``."""
    return ".".join(version.split(".")[:2]) in TESTED_KSERVE


def check_kserve_version() -> str:
    """The installed KServe's version, after checking it is a tested one.

    Raises:
        UntestedKServeVersion: another version, unless ``AUDIOGUARD_ALLOW_UNTESTED_KSERVE=1``
            (then a WARNING is logged instead).
    """
    found = kserve_version()
    if is_tested(found):
        return found
    message = (
        f"KServe {found} is installed, but audioguard's KServe patches (contract/kserve_compat.py) "
        f"were tested with KServe {', '.join(TESTED_KSERVE)} only; they replace KServe internals "
        f"that may have changed. Install kserve=={TESTED_KSERVE[-1]}.*, or set "
        f"{ALLOW_UNTESTED_ENV}=1 to start anyway"
    )
    if os.environ.get(ALLOW_UNTESTED_ENV) == "1":
        if found not in _warned_about:  # once per process, not per patch
            _warned_about.add(found)
            logger.warning("%s. Starting anyway: %s=1", message, ALLOW_UNTESTED_ENV)
        return found
    raise UntestedKServeVersion(message)


# --- the services' app and servers (at import, before ModelServer.start) --------------------


def install_service_patches(app: FastAPI) -> None:
    """Everything both services change in KServe's server; call at module top level.

    KServe 0.21's worker processes (``--workers > 1``) import
    ``kserve.model_server:app`` afresh and unpickle the models (which imports the
    service's modules): anything added only under ``if __name__ == "__main__"``
    is missing there.
    """
    check_kserve_version()
    install_http_fixes(app)
    use_our_rest_inference_error_handler()
    use_our_grpc_interceptors()
    # KServe 0.21 answers with ORJSONResponse, which FastAPI >= 0.13x flags as deprecated on
    # every worker's first request: KServe's to fix, not the operator's to read.
    warnings.filterwarnings(
        "ignore", message="ORJSONResponse is deprecated", category=FastAPIDeprecationWarning
    )


def use_our_rest_inference_error_handler() -> None:
    """Answer KServe's ``InferenceError``, ``ModelNotFound``, ``ModelNotReady`` and
    ``ServerNotReady`` with our handlers (``contract.http``, ``contract.availability``).

    KServe 0.21's REST server registers its own handlers for them when the server
    starts, after ours: its ``InferenceError`` one echoes the message (which may
    quote the request's audio), and all four log an ERROR traceback per call (a
    readiness probe every few seconds). It looks the handlers up by name in
    ``kserve.protocol.rest.server``, so the names are replaced there.
    """
    kserve_rest_server.inference_error_handler = inference_error_handler  # type: ignore[assignment]
    kserve_rest_server.model_not_found_handler = availability.model_not_found_handler  # type: ignore[assignment]
    kserve_rest_server.model_not_ready_handler = availability.model_not_ready_handler  # type: ignore[assignment]
    kserve_rest_server.server_not_ready_handler = availability.server_not_ready_handler  # type: ignore[assignment]


#: ``model_ready(model_name, disable_predictor_health_check)``, as KServe's ``DataPlane.model_ready``
ModelReady = Callable[[str, bool], Awaitable[bool]]


def answer_readiness(
    dataplane: DataPlane, server_ready: Callable[[], Awaitable[bool]], model_ready: ModelReady
) -> None:
    """Make every readiness probe of a server ask ``server_ready`` / ``model_ready``.

    KServe 0.21's REST v1 and v2 and gRPC probes all call the server's
    ``DataPlane.ready`` and ``DataPlane.model_ready``; with a predictor they only
    ask whether the predictor *server* is up (and only with
    ``--enable_predictor_health_check``), never whether it serves the model the
    transformer will ask for. Replacing the two methods on the instance covers every probe.
    """
    check_kserve_version()
    dataplane.ready = server_ready  # type: ignore[method-assign]

    async def model_ready_(model_name: str, disable_predictor_health_check: bool = False) -> bool:
        return await model_ready(model_name, disable_predictor_health_check)

    dataplane.model_ready = model_ready_  # type: ignore[method-assign]


def use_our_grpc_interceptors() -> None:
    """Make KServe's gRPC server use our status mapping and our one-line request log.

    KServe 0.21's ``GRPCServer.start`` builds its server with
    ``(LoggingInterceptor(), ExceptionToStatusInterceptor())``, looked up in
    ``kserve.protocol.grpc.server`` when it starts. Its exception interceptor
    turns every ``InvalidInput`` into INVALID_ARGUMENT (403 and 413 lose their
    meaning) and logs each with a traceback (``contract.grpc_status``); its
    logging interceptor writes "grpc method: ..." before each call, without the
    outcome (``contract.service_logs``).
    """
    kserve_grpc_server.ExceptionToStatusInterceptor = StatusMappingInterceptor  # type: ignore[misc]
    kserve_grpc_server.LoggingInterceptor = GrpcRequestLogInterceptor  # type: ignore[misc]


# --- which interface the servers listen on ------------------------------------------------


class _BoundGrpcServer:
    """A grpc.aio server whose ``add_insecure_port("[::]:P")`` listens on ``host:P``."""

    def __init__(self, server: Any, host: str) -> None:
        self._server = server
        self._host = f"[{host}]" if ":" in host and not host.startswith("[") else host

    def add_insecure_port(self, address: str) -> int:
        port = address.rsplit(":", 1)[1]
        return int(self._server.add_insecure_port(f"{self._host}:{port}"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class _GrpcModule:
    """Stands in for ``grpc.aio`` inside KServe's gRPC server module."""

    def __init__(self, host: str) -> None:
        self._host = host

    def server(self, *args: Any, **kwargs: Any) -> _BoundGrpcServer:
        return _BoundGrpcServer(aio.server(*args, **kwargs), self._host)

    def __getattr__(self, name: str) -> Any:
        return getattr(aio, name)


def listen_on(host: str) -> None:
    """Make KServe's REST and gRPC servers of this process listen on ``host`` only
    (``0.0.0.0``: every interface, KServe's own behaviour); call before ``ModelServer.start``.

    KServe 0.21 hard-codes the interfaces: ``RESTServer`` binds uvicorn to
    ``0.0.0.0`` and ``GRPCServer.start`` calls ``add_insecure_port("[::]:P")``.
    Right in a container; on a workstation or a home gateway it exposes the model
    servers to the whole network. So ``RESTServer.__init__`` is wrapped to set
    the uvicorn host, and the ``aio`` module KServe's gRPC server uses is
    replaced by one whose servers bind ``host``.
    """
    check_kserve_version()
    if host == ALL_INTERFACES:
        return
    rest_init = kserve_rest_server.RESTServer.__init__

    def bound_init(self: Any, *args: Any, **kwargs: Any) -> None:
        rest_init(self, *args, **kwargs)
        self.config.host = host

    if not getattr(rest_init, "_audioguard_bound", False):
        bound_init._audioguard_bound = True  # type: ignore[attr-defined]
        kserve_rest_server.RESTServer.__init__ = bound_init  # type: ignore[method-assign]
    kserve_grpc_server.aio = _GrpcModule(host)  # type: ignore[assignment]


# --- flags KServe parsed at import ----------------------------------------------------------


def set_grpc_max_receive_message_length(limit_bytes: int) -> None:
    """Set the gRPC server's receive limit (``--grpc_max_receive_message_length``).

    KServe 0.21 parses its flags once, at import, into ``model_server.args`` and
    hands ``vars(args)`` to its gRPC server: a limit computed from our own
    settings can only be given there.
    """
    check_kserve_version()
    model_server.args.grpc_max_receive_message_length = limit_bytes


# --- the transformer's gRPC client to the predictor ---------------------------------------


def predictor_grpc_client(
    config: PredictorConfig | None, channel_args: Sequence[tuple[str, Any]]
) -> InferenceGRPCClient | None:
    """KServe's gRPC client to the predictor, with our channel options; None unless
    ``config`` names a predictor spoken to over ``grpc-v2``.

    KServe 0.21 builds the client lazily in ``Model._grpc_client`` without
    channel options, so gRPC's reconnect backoff grows to 120 s and a restarted
    predictor stays unused for up to two minutes. ``InferenceClientFactory`` is
    a singleton that keeps the first client it makes (its readiness check with
    ``--enable_predictor_health_check`` shares it), so create this one first, on
    the server's event loop.
    """
    if config is None or not config.predictor_host or config.protocol != "grpc-v2":
        return None
    return InferenceClientFactory().get_grpc_client(
        url=config.predictor_host,
        use_ssl=config.use_ssl,
        timeout=config.timeout,
        retries=config.retries,
        channel_args=list(channel_args),
    )


def connect_predictor_grpc(model: Model, channel_args: Sequence[tuple[str, Any]]) -> None:
    """Give ``model`` the client of ``predictor_grpc_client`` in KServe's private cache
    (``Model._grpc_client_stub``, which ``Model._grpc_client`` returns); nothing to do
    unless the predictor is spoken to over gRPC."""
    client = predictor_grpc_client(model.predictor_config, channel_args)
    if client is not None:
        model._grpc_client_stub = client


def predictor_grpc_client_of(model: Model, channel_args: Sequence[tuple[str, Any]]) -> InferenceGRPCClient:
    """What a ``Model._grpc_client`` override returns: the cached client, made with
    ``channel_args`` on first use (KServe's own property would make one without them)."""
    if model._grpc_client_stub is None:
        connect_predictor_grpc(model, channel_args)
    return model._grpc_client_stub


# --- raw tensor contents --------------------------------------------------------------------


def raw_data(infer_input: InferInput) -> bytes | None:
    """The serialized contents of a tensor that came as raw bytes (gRPC ``raw_input_contents``,
    or the REST binary extension decoded by ``contract.v2_rest``), else None.

    KServe 0.21 keeps them in the private ``InferInput._raw_data`` and has no
    public accessor that returns BYTES elements as bytes.
    """
    raw: bytes | None = infer_input._raw_data
    return raw


def set_raw_data(infer_input: InferInput, data: bytes) -> None:
    """Store a tensor's serialized contents as KServe's gRPC path does (``InferInput._raw_data``):
    KServe 0.21's REST decoder would re-encode BYTES as UTF-8 text instead."""
    infer_input._raw_data = data
