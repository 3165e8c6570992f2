"""Which interface the services listen on (KServe 0.21 hard-codes every interface).

KServe binds REST to ``0.0.0.0`` and gRPC to ``[::]``. In a container that is
right (the pod network reaches it); on a workstation or a home gateway it
exposes the model servers to the whole network. ``listen_on(host)``, called
before ``ModelServer.start``, makes both listen on ``host`` instead.
"""

from __future__ import annotations

from typing import Any

from grpc import aio
from kserve.protocol.grpc import server as kserve_grpc_server
from kserve.protocol.rest import server as kserve_rest_server

from contract.constants import ALL_INTERFACES


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
    (``0.0.0.0``: every interface, KServe's own behaviour)."""
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
