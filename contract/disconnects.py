"""No work for an HTTP client that has left: its request's work is cancelled.

Uvicorn lets a request's handler run to its end after the client has hung up
(Ctrl-C in ``audioguard client``, a timeout), then throws the answer away: a
long recording would still be embedded, sent to the predictor and scored, and
hold its admission ticket all along. ``while_connected`` runs the work (after
the body has been read) in a task of its own and watches the connection; when
the client goes first, the task is cancelled and ``ClientGone`` raised. What the
cancellation stops: the steps not started yet (the transformer's call to the
predictor, a worker-pool job, rows queued for a batched VGGish or classifier
call), and the step in progress before its next stage (the embedding front end,
``transformer.audio.worker``); the admission ticket goes back once it has.

The route then answers 499 (nginx's "client closed request"), which nobody
receives: it is for the request's log line. ``audioguard_requests_abandoned_total``
counts these requests. gRPC needs none of this: grpc.aio cancels the handler of
a call whose client has gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, TypeVar

from prometheus_client import Counter
from starlette.requests import Request

#: nginx's status for a request whose client closed the connection first (only ever logged)
CLIENT_CLOSED_REQUEST: Final = 499
ABANDONED: Final = Counter(
    "audioguard_requests_abandoned_total",
    "Requests whose HTTP client disconnected before the answer; the work left was stopped, "
    "by route (v2|sifis).",
    ["route"],
)

T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client disconnected before its answer was ready (its work was stopped)."""


async def _disconnected(request: Request) -> None:
    """Return once the client has disconnected (ASGI ``http.disconnect``).

    Only after the body has been read: until then ``receive`` hands out the body's chunks.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def while_connected(request: Request, work: Awaitable[T], route: str) -> T:
    """``work``'s result, or ``ClientGone`` once its work has stopped if the client left first.

    Call after the request body has been read. ``work`` runs in a task of its own (with a copy
    of the current context: an admission ticket in a context variable is seen there).
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server is stopping: neither outlives the request
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        return task.result()
    watcher.exception()  # (None: a disconnect; read either way, so that nothing is left unread)
    task.cancel()
    # its clean-up (a worker thread finishing its stage) ends before the request does, so
    # that the admission ticket, released after, never counts memory still in use
    await asyncio.wait({task})
    ABANDONED.labels(route=route).inc()
    raise ClientGone
