"""One connection to the MQTT broker: paho-mqtt in a network thread, awaitable from asyncio.

paho's own reconnection is off: the sender (``transformer.mqtt.sender``) opens a fresh
connection after a loss, paced by the one backoff rule, and publishes again from its first
unacknowledged row. ``publish`` returns a future that resolves on the broker's PUBACK; the
acknowledgement comes in on paho's thread and is handed to the event loop with
``call_soon_threadsafe``, which runs after ``publish`` registered the future: no race.
A loss (socket closed, keep-alive unanswered, a ``close``) fails every waiting future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from contract.errors import DeliveryError
from transformer.mqtt.config import MqttConfig
from transformer.mqtt.topics import OFFLINE, STATUS_TOPIC, full_topic

logger = logging.getLogger(__name__)

#: publishes sent before their acknowledgements come back (paho queues the rest, in order)
MAX_INFLIGHT = 64
OnMessage = Callable[[str, bytes], None]


class BrokerConnection:
    """A connected session; ``lost`` is set when it ends (see the module docstring)."""

    def __init__(self, config: MqttConfig, on_message: OnMessage | None = None) -> None:
        self.config = config
        self.lost = asyncio.Event()
        self.reason = ""
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=True,
            transport=config.transport,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(MAX_INFLIGHT)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(
                ca_certs=None if config.ca_file is None else str(config.ca_file),
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if config.transport == "websockets":
            client.ws_set_options(path=config.ws_path)
        client.will_set(full_topic(config.prefix, STATUS_TOPIC), OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_paho_message
        self._client = client

    # --- opening and closing ----------------------------------------------------------------

    async def open(self) -> None:
        """Connect and wait for the broker's CONNACK.

        Raises:
            DeliveryError: unreachable, TLS refused, credentials refused, or no answer in time.
        """
        config = self.config
        try:
            async with asyncio.timeout(config.timeout):
                await asyncio.to_thread(self._client.connect, config.host, config.port, config.keepalive)
        except TimeoutError:
            raise DeliveryError(
                f"MQTT {config.address}: no connection within {config.timeout:g} s", reason="timeout"
            ) from None
        except ssl.SSLError as error:
            raise DeliveryError(
                f"MQTT {config.address}: TLS failed: {error.reason or error}", reason="tls"
            ) from None
        except OSError as error:
            raise DeliveryError(
                f"MQTT {config.address} unreachable: {error.strerror or error}", reason="connection"
            ) from None
        self._thread = threading.Thread(target=self._network, name="mqtt-network", daemon=True)
        self._thread.start()
        try:
            async with asyncio.timeout(config.timeout):
                await asyncio.shield(self._connected)
        except TimeoutError:
            await self.close()
            raise DeliveryError(
                f"MQTT {config.address}: no CONNACK within {config.timeout:g} s", reason="timeout"
            ) from None
        except DeliveryError:
            await self.close()
            raise

    def _network(self) -> None:
        """paho's network loop until a loss or ``close`` (paho's keep-alive runs in it)."""
        while not self._stop.is_set():
            if self._client.loop(timeout=0.2) != paho.MQTT_ERR_SUCCESS:
                break
        self._call(self._ended, self.reason or "connection lost")

    async def close(self) -> None:
        """End the session (a clean DISCONNECT: the broker sends no will)."""
        self.reason = self.reason or "closed"
        self._stop.set()
        self._client.disconnect()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._ended(self.reason)

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: str, *, retain: bool, qos: int = 1) -> asyncio.Future[None]:
        """Send ``payload`` to ``topic`` under the prefix; the future resolves on the PUBACK (QoS 1)
        or at once (QoS 0), and fails with DeliveryError if the connection is lost first."""
        return self.publish_full(full_topic(self.config.prefix, topic), payload, retain=retain, qos=qos)

    def publish_full(self, topic: str, payload: str, *, retain: bool, qos: int = 1) -> asyncio.Future[None]:
        """``publish`` to a topic named in full (no prefix added)."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.lost.is_set():
            future.set_exception(DeliveryError(f"MQTT {self.config.address}: {self.reason}"))
            return future
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_QUEUE_SIZE:
            future.set_exception(
                DeliveryError(f"MQTT {self.config.address}: publish failed ({paho.error_string(info.rc)})")
            )
        elif qos == 0:
            future.set_result(None)
        else:
            self._acks[info.mid] = future
        return future

    async def subscribe(self, topic: str) -> None:
        """Subscribe to a full topic filter (QoS 1); messages go to ``on_message``."""
        result, _ = self._client.subscribe(topic, qos=1)
        if result != paho.MQTT_ERR_SUCCESS:
            raise DeliveryError(f"MQTT {self.config.address}: subscribe failed ({paho.error_string(result)})")

    def unsubscribe(self, topic: str) -> None:
        self._client.unsubscribe(topic)

    # --- paho's callbacks (its network thread) --------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(callback, *args)

    def _on_connect(
        self, _client: paho.Client, _userdata: object, _flags: object, code: object, _props: object
    ) -> None:
        self._call(self._connack, code)

    def _on_disconnect(
        self, _client: paho.Client, _userdata: object, _flags: object, code: object, _props: object
    ) -> None:
        self.reason = self.reason or f"disconnected ({code})"

    def _on_publish(
        self, _client: paho.Client, _userdata: object, mid: int, _code: object, _props: object
    ) -> None:
        self._call(self._acked, mid)

    def _on_paho_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._call(self._on_message, message.topic, bytes(message.payload))

    # --- back on the event loop -------------------------------------------------------------------

    def _connack(self, code: object) -> None:
        if self._connected.done():
            return
        if getattr(code, "is_failure", False):
            self.reason = f"the broker refused the connection: {code}"
            reason = (
                "auth" if "authori" in str(code).lower() or "password" in str(code).lower() else "refused"
            )
            self._connected.set_exception(
                DeliveryError(f"MQTT {self.config.address}: {self.reason}", reason=reason)
            )
        else:
            self._connected.set_result(None)

    def _acked(self, mid: int) -> None:
        future = self._acks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _ended(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.reason = reason
        self.lost.set()
        error = DeliveryError(f"MQTT {self.config.address}: {reason}")
        if not self._connected.done():
            self._connected.set_exception(error)
            self._connected.exception()  # retrieved: open() may have given up on it already
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._acks.clear()
