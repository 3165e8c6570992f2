"""A stand-in for the SIFIS-Home DHT broker (``sifis-dht-broker``), for the tests.

The real broker (Rust/axum, libp2p, needs a shared key and peers) cannot run
here. This is NOT that broker: it implements its documented protocol
(docs/reference/sifis.md, checked against the broker's public source) so
the clients, the outbox and the listener are tested against a real server on
127.0.0.1:

REST
- ``GET /get_all`` -> ``[{topic_name, topic_uuid, value}, ...]`` (sorted by name, uuid)
- ``GET /topic_name/{tn}`` -> that topic's entries, ``[]`` if none
- ``GET /topic_name/{tn}/topic_uuid/{tu}`` -> ``{topic_name, topic_uuid, value}`` or ``{}``
- ``POST /topic_name/{tn}/topic_uuid/{tu}`` (bare JSON value) -> echoes it; stores a
  persistent entry (overwriting the key) and broadcasts it
- ``DELETE /topic_name/{tn}/topic_uuid/{tu}`` -> ``{}``; broadcasts ``deleted: true``
- ``POST /pub`` -> echoes; broadcasts a volatile message, stores nothing
- JSON bodies need ``Content-Type: application/json`` (else 415); bad JSON is 400.

WebSocket ``/ws`` (JSON text frames, serde externally tagged)
- ``"RequestGetAll"``, ``{"RequestGetTopicName": {topic_name}}``,
  ``{"RequestGetTopicUUID": {topic_name, topic_uuid}}`` -> ``{"Response": {"value": ...}}``
  to the asker only
- ``{"RequestPostTopicUUID": {topic_name, topic_uuid, value}}``,
  ``{"RequestDeleteTopicUUID": {...}}``, ``{"RequestPubMessage": {value}}`` -> no answer;
  every write (REST or WebSocket) is broadcast to all clients, writer included, as
  ``{"Persistent": {value, topic_name, topic_uuid, deleted}}`` or ``{"Volatile": {value}}``
- a malformed frame closes that connection (the broker unwraps and drops it);
  a client whose 64-message queue overflows is disconnected.

Test controls: ``stop()``/``start()`` (down = connection refused; up again on
the same port; the store survives, as with the broker's ``--persistent``),
``fail_with(status, topic_name=None)`` (REST answers that status, a WebSocket
write closes the socket; nothing stored; optionally only for one topic),
``hang(True)`` (requests and WebSocket writes get no answer until released or
stopped). ``writes`` records every accepted persistent write in arrival order,
``raw_paths`` every REST request path exactly as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, Response

_CLIENT_QUEUE = 64
_HANG_POLL_SECONDS = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Write:
    """One accepted persistent write: ``via`` is ``rest`` or ``ws``."""

    topic_name: str
    topic_uuid: str
    value: Any
    via: str


class DhtStandIn:
    """The stand-in broker, served by uvicorn in a background thread."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._store: dict[tuple[str, str], Any] = {}
        self.writes: list[Write] = []
        self.raw_paths: list[bytes] = []
        self._fail_status: int | None = None
        self._fail_topic: str | None = None
        self._hang = False
        self._stopping = False
        self._clients: dict[WebSocket, asyncio.Queue[str | None]] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app = self._build_app()

    # --- addresses and state ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def get(self, topic_name: str, topic_uuid: str) -> Any:
        """The stored value, or None."""
        with self._lock:
            return self._store.get((topic_name, topic_uuid))

    def entries(self, topic_name: str) -> dict[str, Any]:
        """topic_uuid -> value of one topic."""
        with self._lock:
            return {uuid: value for (name, uuid), value in self._store.items() if name == topic_name}

    @property
    def websocket_clients(self) -> int:
        """WebSocket clients connected right now (a subscriber is listening once this counts it)."""
        return len(self._clients)

    def post(self, topic_name: str, topic_uuid: str, value: Any) -> Any:
        """Write over the REST API as another SIFIS client would; returns the echoed value."""
        request = urllib.request.Request(
            self.url + f"/topic_name/{topic_name}/topic_uuid/{urllib.parse.quote(topic_uuid)}",
            data=json.dumps(value).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # no proxy from the environment: the stand-in is on loopback
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as answer:
            return json.loads(answer.read())

    def writes_to(self, topic_name: str) -> list[Write]:
        with self._lock:
            return [write for write in self.writes if write.topic_name == topic_name]

    # --- controls ---------------------------------------------------------------------

    def fail_with(self, status: int | None, topic_name: str | None = None) -> None:
        """REST requests answer ``status``, WebSocket writes close the socket (None = healthy).

        With ``topic_name``, only requests and writes of that topic fail.
        """
        self._fail_status = status
        self._fail_topic = topic_name

    def _failing(self, topic_name: str | None) -> bool:
        return self._fail_status is not None and (self._fail_topic is None or self._fail_topic == topic_name)

    def hang(self, on: bool) -> None:
        """Requests and WebSocket writes get no answer while on."""
        self._hang = on

    def start(self) -> DhtStandIn:
        """Serve on ``self.port`` (again, after ``stop``)."""
        if self._thread is not None:
            return self
        self._stopping = False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"dht-standin-{self.port}", daemon=True
        )
        self._thread.start()
        wait_until(lambda: server.started or not self._thread_alive(), 10, "the stand-in DHT to start")
        if not server.started:
            raise RuntimeError(f"the stand-in DHT could not start on port {self.port}")
        return self

    def stop(self) -> None:
        """Go down: close every WebSocket, stop listening (clients then get connection refused)."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        self._stopping = True
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self._close_clients(), loop).result(timeout=5)
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        self._server = self._thread = self._loop = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> DhtStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- broker behaviour ---------------------------------------------------------------

    async def _stall(self) -> None:
        while self._hang and not self._stopping:
            await asyncio.sleep(_HANG_POLL_SECONDS)

    def _write(self, topic_name: str, topic_uuid: str, value: Any, via: str) -> None:
        with self._lock:
            self._store[(topic_name, topic_uuid)] = value
            self.writes.append(Write(topic_name, topic_uuid, value, via))
        self._broadcast(
            {
                "Persistent": {
                    "value": value,
                    "topic_name": topic_name,
                    "topic_uuid": topic_uuid,
                    "deleted": False,
                }
            }
        )

    def _delete(self, topic_name: str, topic_uuid: str) -> None:
        with self._lock:
            old = self._store.pop((topic_name, topic_uuid), None)
        self._broadcast(
            {
                "Persistent": {
                    "value": old,
                    "topic_name": topic_name,
                    "topic_uuid": topic_uuid,
                    "deleted": True,
                }
            }
        )

    def _all(self, topic_name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"topic_name": name, "topic_uuid": uuid, "value": value}
                for (name, uuid), value in sorted(self._store.items(), key=lambda item: item[0])
                if topic_name is None or name == topic_name
            ]

    def _one(self, topic_name: str, topic_uuid: str) -> dict[str, Any]:
        with self._lock:
            if (topic_name, topic_uuid) not in self._store:
                return {}
            return {
                "topic_name": topic_name,
                "topic_uuid": topic_uuid,
                "value": self._store[(topic_name, topic_uuid)],
            }

    def _broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for websocket, queue in list(self._clients.items()):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                self._clients.pop(websocket, None)
                queue.get_nowait()
                queue.put_nowait(None)

    async def _close_clients(self) -> None:
        for queue in list(self._clients.values()):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
        self._clients.clear()

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def controls(request: Request, call_next: Any) -> Response:
            self._loop = asyncio.get_running_loop()
            self.raw_paths.append(request.scope.get("raw_path", b""))
            await self._stall()
            parts = request.url.path.split("/")
            topic_name = parts[2] if len(parts) > 2 and parts[1] == "topic_name" else None
            if self._fail_status is not None and self._failing(topic_name):
                return PlainTextResponse("stand-in failure", status_code=self._fail_status)
            response: Response = await call_next(request)
            return response

        async def json_body(request: Request) -> Any:
            content_type = request.headers.get("content-type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                return PlainTextResponse(
                    "Expected request with `Content-Type: application/json`", status_code=415
                )
            try:
                return json.loads(await request.body())
            except ValueError as error:
                return PlainTextResponse(
                    f"Failed to parse the request body as JSON: {error}", status_code=400
                )

        @app.get("/get_all")
        async def get_all() -> Any:
            return self._all()

        @app.get("/topic_name/{topic_name}")
        async def get_topic(topic_name: str) -> Any:
            return self._all(topic_name)

        @app.get("/topic_name/{topic_name}/topic_uuid/{topic_uuid}")
        async def get_entry(topic_name: str, topic_uuid: str) -> Any:
            return self._one(topic_name, topic_uuid)

        @app.post("/topic_name/{topic_name}/topic_uuid/{topic_uuid}")
        async def post_entry(topic_name: str, topic_uuid: str, request: Request) -> Any:
            value = await json_body(request)
            if isinstance(value, Response):
                return value
            self._write(topic_name, topic_uuid, value, "rest")
            return JSONResponse(value)

        @app.delete("/topic_name/{topic_name}/topic_uuid/{topic_uuid}")
        async def delete_entry(topic_name: str, topic_uuid: str) -> Any:
            self._delete(topic_name, topic_uuid)
            return {}

        @app.post("/pub")
        async def pub(request: Request) -> Any:
            value = await json_body(request)
            if isinstance(value, Response):
                return value
            self._broadcast({"Volatile": {"value": value}})
            return JSONResponse(value)

        @app.websocket("/ws")
        async def websocket_endpoint(websocket: WebSocket) -> None:
            self._loop = asyncio.get_running_loop()
            await websocket.accept()
            queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_CLIENT_QUEUE)
            self._clients[websocket] = queue
            sender = asyncio.create_task(self._pump(websocket, queue))
            try:
                while True:
                    text = await websocket.receive_text()
                    if not await self._serve_frame(text, queue):
                        break
            except WebSocketDisconnect:
                pass
            finally:
                self._clients.pop(websocket, None)
                sender.cancel()
                with contextlib.suppress(Exception):
                    await websocket.close(code=1011)

        return app

    @staticmethod
    async def _pump(websocket: WebSocket, queue: asyncio.Queue[str | None]) -> None:
        """Send queued broadcasts to one client; None closes it."""
        while True:
            text = await queue.get()
            if text is None:
                with contextlib.suppress(Exception):
                    await websocket.close(code=1001)
                return
            await websocket.send_text(text)

    async def _serve_frame(self, text: str, queue: asyncio.Queue[str | None]) -> bool:
        """Handle one client frame; False closes the connection."""
        try:
            message = json.loads(text)
        except ValueError:
            return False
        if message == "RequestGetAll":
            queue.put_nowait(json.dumps({"Response": {"value": self._all()}}))
            return True
        if not isinstance(message, dict) or len(message) != 1:
            return False
        ((variant, body),) = message.items()
        if not isinstance(body, dict):
            return False
        try:
            if variant == "RequestGetTopicName":
                queue.put_nowait(json.dumps({"Response": {"value": self._all(body["topic_name"])}}))
            elif variant == "RequestGetTopicUUID":
                value = self._one(body["topic_name"], body["topic_uuid"])
                queue.put_nowait(json.dumps({"Response": {"value": value}}))
            elif variant == "RequestPostTopicUUID":
                await self._stall()
                if self._stopping:
                    return False
                if self._failing(body["topic_name"]):
                    return False
                self._write(body["topic_name"], body["topic_uuid"], body["value"], "ws")
            elif variant == "RequestDeleteTopicUUID":
                self._delete(body["topic_name"], body["topic_uuid"])
            elif variant == "RequestPubMessage":
                self._broadcast({"Volatile": {"value": body["value"]}})
            else:
                return False
        except KeyError:
            return False
        return True


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Async ``wait_until``: poll ``condition`` without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
