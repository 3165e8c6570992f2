"""Clients that post persistent messages to the SIFIS-Home DHT broker.

Two transports, same contract (``DhtClient.post_persistent``): return only once
the broker has the message, raise ``DeliveryError`` otherwise (the outbox then
keeps the message and retries).

- REST: ``POST {base}/topic_name/{tn}/topic_uuid/{tu}`` with the bare JSON
  value; success is HTTP 200 (the broker echoes the value). Another 4xx (but
  408/425/429) is a permanent refusal of this message (``DeliveryError.permanent``).
- WebSocket: ``{"RequestPostTopicUUID": {topic_name, topic_uuid, value}}`` on
  ``ws://host:port/ws``. The broker sends no acknowledgement of its own; it
  broadcasts every write to every client, the writer included, as
  ``{"Persistent": {topic_name, topic_uuid, value, deleted}}``. That echo of
  our own write is the acknowledgement. A dropped or silent socket is closed
  and re-opened on the next post; the outbox sender's exponential backoff
  paces those reconnection attempts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from contract.errors import DeliveryError

logger = logging.getLogger(__name__)

#: 4xx answers that mean "not now" (timeout, too early, too many requests): retried
TRANSIENT_REFUSALS: Final = frozenset({408, 425, 429})
#: echoes of other clients' large values must not kill our socket (1 MiB default)
_MAX_FRAME_BYTES: Final = 64 * 1024 * 1024


class DhtClient(Protocol):
    """What the outbox sender needs from a DHT transport."""

    async def post_persistent(self, topic_name: str, topic_uuid: str, value: Any) -> None:
        """Store ``value`` under (topic_name, topic_uuid); raise DeliveryError unless acknowledged."""

    async def aclose(self) -> None:
        """Release connections (the client may be used again afterwards)."""


def topic_path(topic_name: str, topic_uuid: str) -> str:
    """``/topic_name/{tn}/topic_uuid/{tu}`` with ``:`` left unescaped, as SIFIS clients send it."""
    return f"/topic_name/{quote(topic_name, safe=':')}/topic_uuid/{quote(topic_uuid, safe=':')}"


def websocket_url(url: str) -> str:
    """The broker's WebSocket endpoint for a base URL.

    ``http://h:3000`` -> ``ws://h:3000/ws`` (``https`` -> ``wss``); a ``ws``/``wss``
    URL is kept, with ``/ws`` added when it has no path.
    """
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"DHT URL must start with http://, https://, ws:// or wss://, got {url!r}")
    if parts.scheme in ("http", "https"):
        path = parts.path.rstrip("/") + "/ws"
    elif parts.path in ("", "/"):
        path = "/ws"
    else:
        path = parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def same_json(expected: Any, received: Any) -> bool:
    """Structural JSON equality, floats compared to 1e-12 relative.

    The broker re-serialises values with serde_json, whose default float parsing
    may differ from ours in the last bit; an exact comparison could leave an
    acknowledged message unrecognised and retried forever.
    """
    if isinstance(expected, bool) or isinstance(received, bool):
        return expected is received
    if isinstance(expected, int | float) and isinstance(received, int | float):
        return math.isclose(expected, received, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(expected, dict) and isinstance(received, dict):
        return expected.keys() == received.keys() and all(
            same_json(expected[key], received[key]) for key in expected
        )
    if isinstance(expected, list) and isinstance(received, list):
        return len(expected) == len(received) and all(
            same_json(a, b) for a, b in zip(expected, received, strict=True)
        )
    return bool(expected == received)


class DhtRestClient:
    """Persistent posts over the broker's REST API (httpx, async)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        """
        Args:
            base_url: e.g. ``http://localhost:3000`` (no trailing path needed).
            timeout: seconds for connecting and for the whole answer.
        """
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _session(self) -> httpx.AsyncClient:
        # created on first use so it binds to the sender's event loop; no proxy
        # from the environment: the broker runs on the home network
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), trust_env=False)
        return self._client

    async def post_persistent(self, topic_name: str, topic_uuid: str, value: Any) -> None:
        url = self.base_url + topic_path(topic_name, topic_uuid)
        body = json.dumps(value, allow_nan=False).encode("utf-8")
        try:
            # wait_for bounds a server that accepts but trickles its answer
            response = await asyncio.wait_for(
                self._session().post(url, content=body, headers={"Content-Type": "application/json"}),
                timeout=self.timeout * 2,
            )
        except (httpx.TimeoutException, TimeoutError):
            raise DeliveryError(
                f"DHT POST {url} timed out after {self.timeout:g} s", reason="timeout"
            ) from None
        except httpx.HTTPError as error:
            raise DeliveryError(
                f"DHT POST {url} failed: {type(error).__name__}: {error}", reason="connection"
            ) from None
        if response.status_code != 200:
            status = response.status_code
            raise DeliveryError(
                f"DHT POST {url} answered HTTP {status}: {response.text[:200]}",
                reason="status",
                permanent=400 <= status < 500 and status not in TRANSIENT_REFUSALS,
            )

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


@dataclass(eq=False)
class _Waiter:
    """A post waiting for the broker's broadcast of it."""

    expected: Any
    echoed: asyncio.Future[None]
    connection: ClientConnection


class DhtWebSocketClient:
    """Persistent posts over the broker's WebSocket; the broadcast echo is the acknowledgement."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        """
        Args:
            ws_url: e.g. ``ws://localhost:3000/ws`` (see ``websocket_url``).
            timeout: seconds for connecting and for the echo of one post.
        """
        self.ws_url = ws_url
        self.timeout = timeout
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        # (topic_name, topic_uuid) -> posts waiting for their echo
        self._waiters: dict[tuple[str, str], list[_Waiter]] = {}

    async def _connected(self) -> ClientConnection:
        async with self._connect_lock:
            if self._connection is not None:
                return self._connection
            try:
                connection = await connect(
                    self.ws_url,
                    open_timeout=self.timeout,
                    ping_timeout=self.timeout,
                    close_timeout=self.timeout,
                    max_size=_MAX_FRAME_BYTES,
                    proxy=None,
                )
            except TimeoutError:
                raise DeliveryError(
                    f"DHT WebSocket {self.ws_url}: no handshake within {self.timeout:g} s", reason="timeout"
                ) from None
            except (OSError, InvalidHandshake, InvalidURI) as error:
                raise DeliveryError(
                    f"DHT WebSocket {self.ws_url} unreachable: {type(error).__name__}: {error}",
                    reason="connection",
                ) from None
            self._connection = connection
            self._reader = asyncio.create_task(self._read(connection), name="dht-ws-reader")
            logger.info("connected to the DHT WebSocket %s", self.ws_url)
            return connection

    async def _read(self, connection: ClientConnection) -> None:
        """Resolve waiting posts from the broker's broadcasts until the socket closes."""
        try:
            async for frame in connection:
                self._acknowledge(frame)
        except ConnectionClosed:
            pass
        finally:
            if self._connection is connection:
                self._connection = None
            self._fail_waiters(connection)

    def _acknowledge(self, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            logger.warning("DHT WebSocket sent a frame that is not JSON; ignored")
            return
        persistent = message.get("Persistent") if isinstance(message, dict) else None
        if not isinstance(persistent, dict) or persistent.get("deleted"):
            return
        key = (str(persistent.get("topic_name")), str(persistent.get("topic_uuid")))
        for waiter in self._waiters.get(key, []):
            if not waiter.echoed.done() and same_json(waiter.expected, persistent.get("value")):
                waiter.echoed.set_result(None)
                return

    def _fail_waiters(self, connection: ClientConnection) -> None:
        """Posts sent on a closed socket will never see their echo."""
        error = DeliveryError(f"DHT WebSocket {self.ws_url} closed", reason="connection")
        for waiters in self._waiters.values():
            for waiter in waiters:
                if waiter.connection is connection and not waiter.echoed.done():
                    waiter.echoed.set_exception(error)

    async def post_persistent(self, topic_name: str, topic_uuid: str, value: Any) -> None:
        frame = json.dumps(
            {"RequestPostTopicUUID": {"topic_name": topic_name, "topic_uuid": topic_uuid, "value": value}},
            allow_nan=False,
        )
        connection = await self._connected()
        key = (topic_name, topic_uuid)
        waiter = _Waiter(
            # compare the echo with what JSON makes of our value (tuples -> lists, ...)
            expected=json.loads(frame)["RequestPostTopicUUID"]["value"],
            echoed=asyncio.get_running_loop().create_future(),
            connection=connection,
        )
        self._waiters.setdefault(key, []).append(waiter)
        try:
            await asyncio.wait_for(
                self._send_and_wait(connection, frame, waiter.echoed), timeout=self.timeout
            )
        except TimeoutError:
            # a broker that stays silent is as good as gone: start afresh next time
            await self._drop(connection)
            raise DeliveryError(
                f"DHT WebSocket {self.ws_url}: no echo of {topic_name}/{topic_uuid} "
                f"within {self.timeout:g} s",
                reason="timeout",
            ) from None
        except ConnectionClosed:
            await self._drop(connection)
            raise DeliveryError(
                f"DHT WebSocket {self.ws_url} closed while posting", reason="connection"
            ) from None
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(key, None)

    @staticmethod
    async def _send_and_wait(connection: ClientConnection, frame: str, echoed: asyncio.Future[None]) -> None:
        await connection.send(frame)
        await echoed

    async def _drop(self, connection: ClientConnection) -> None:
        if self._connection is connection:
            self._connection = None
        await connection.close()

    async def aclose(self) -> None:
        connection, reader = self._connection, self._reader
        self._connection = self._reader = None
        if connection is not None:
            await connection.close()
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)


def make_dht_client(url: str, transport: str, timeout: float) -> DhtClient:
    """The configured client: ``transport`` is ``rest`` or ``websocket`` (settings ``dht_transport``)."""
    if transport == "rest":
        return DhtRestClient(url, timeout)
    if transport == "websocket":
        return DhtWebSocketClient(websocket_url(url), timeout)
    raise ValueError(f"unknown DHT transport {transport!r} (rest or websocket)")
