"""The background task that publishes the MQTT sink's outbox rows, and the bus's live topics.

Per connection: ``online`` (retained) on the status topic, whose last will is ``offline``;
the Home Assistant discovery configs (``transformer.mqtt.discovery``); the retained states this
run published so far, again (a broker restarted without persistence forgot them); then the rows of
``MqttQueue`` strictly in order, up to ``MAX_INFLIGHT`` at a time, each row deleted only
after its PUBACK. A lost connection, a refused one, a broker that stops acknowledging
(frozen: no PUBACK within ``timeout``) closes the session; the next one starts from the
first unacknowledged row after ``Backoff.delay(failures)`` (0.5 s doubling up to 60 s),
forever. The DHT's sender is another task on another table: neither waits for the other.

At ``start``, every configured source's groups get a durable ``OFF`` state, after whatever a
previous run left: a run killed during an event leaves no state stuck ON. A source that stops
delivering audio gets the same within ``HOUSEKEEPING_SECONDS`` (``_sources_gone``), and an
incident's one message (``transformer.mqtt.incidents``) is stored when its window has passed. Between those,
``<prefix>/<source>/level`` carries each live source's level every ``level_seconds`` (QoS 0,
not kept: a level is only worth its present).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from contract.errors import DeliveryError
from transformer.dht.backoff import Backoff
from transformer.dht.outbox import Outbox
from transformer.metrics import (
    SINK_CONNECTED,
    SINK_DELIVERED,
    SINK_FAILURES,
    SINK_LATENCY,
    SINK_OLDEST,
    SINK_PENDING,
    at_scrape,
    observe_onset_to_delivery,
)
from transformer.mqtt.config import MqttConfig
from transformer.mqtt.connection import MAX_INFLIGHT, BrokerConnection
from transformer.mqtt.discovery import Discovery, SourceEntities
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.topics import OFF, OFFLINE, ONLINE, STATUS_TOPIC, MqttMessage, level_topic, state_topic

logger = logging.getLogger(__name__)

#: each live source's level in dBFS, None when it has none yet
Levels = Callable[[], Mapping[str, float | None]]
_SINK = "mqtt"
#: how often the sources' states (a source gone offline: its states OFF) and the incidents are looked at
HOUSEKEEPING_SECONDS = 0.5


class MqttSender:
    """Background asyncio task delivering ``queue`` to the broker (see the module docstring)."""

    def __init__(
        self,
        config: MqttConfig,
        outbox: Outbox,
        queue: MqttQueue,
        *,
        sources: Sequence[SourceEntities] = (),
        levels: Levels | None = None,
        backoff: Backoff | None = None,
        poll_seconds: float = 5.0,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.queue = queue
        self.sources = tuple(sources)
        self.levels = levels
        self.backoff = backoff or Backoff(0.5, 60.0)
        self.poll_seconds = poll_seconds
        self.discovery = Discovery(config, self.sources)
        self.connected = False
        self.delivered = self.failures = 0
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._connection: BrokerConnection | None = None
        self._states: dict[str, str] = {}  # retained topic -> the last payload acknowledged
        self._stopping = False

    async def start(self) -> None:
        """Store the OFF states (after any backlog), then connect and publish in the background."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        resets = [
            MqttMessage(state_topic(source.name, group.name), OFF, retain=True)
            for source in self.sources
            for group in source.groups
        ]
        await asyncio.to_thread(self.queue.enqueue, resets)
        self.outbox.add_listener(self.notify)
        # read at each scrape, so the age grows while nothing is published
        SINK_PENDING.labels(sink=_SINK).set_function(lambda: at_scrape(lambda: self.queue.backlog()[0]))
        SINK_OLDEST.labels(sink=_SINK).set_function(lambda: at_scrape(self._oldest_pending_seconds))
        self._task = asyncio.create_task(self._run(), name="mqtt-sender")
        self._watcher = asyncio.create_task(self._housekeeping(), name="mqtt-housekeeping")

    async def stop(self) -> None:
        """Publish what is waiting (for up to ``timeout``), say ``offline``, disconnect, close the
        table; rows not acknowledged stay for the next start."""
        self.outbox.remove_listener(self.notify)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.timeout):
                while self.connected and (await asyncio.to_thread(self.queue.backlog))[0]:
                    self.notify()
                    await asyncio.sleep(0.05)
        connection = self._connection
        if connection is not None and not connection.lost.is_set():
            # a clean DISCONNECT sends no will: say offline first
            with contextlib.suppress(DeliveryError, TimeoutError):
                async with asyncio.timeout(self.config.timeout):
                    await connection.publish(STATUS_TOPIC, OFFLINE, retain=True)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._task is not None:
            self._stopping = True  # ends the loop even if a cancellation is swallowed (see _run)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._set_connected(False)
        SINK_PENDING.labels(sink=_SINK).set_function(lambda: 0.0)  # the table closes next
        SINK_OLDEST.labels(sink=_SINK).set_function(lambda: 0.0)
        await asyncio.to_thread(self.queue.close)

    def notify(self) -> None:
        """Wake the sender (thread-safe): something was enqueued."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    def status(self) -> dict[str, Any]:
        """One line for ``GET /v1/monitor``: the broker (no credential), connected, backlog, errors."""
        pending, oldest = self.queue.backlog()
        return {
            "sink": _SINK,
            "broker": self.config.address,
            "connected": self.connected,
            "pending": pending,
            "oldest_pending_seconds": None if oldest is None else round(max(0.0, time.time() - oldest), 3),
            "delivered": self.delivered,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def event_delivery(self, event_id: str) -> dict[str, Any]:
        """This sink's state for one event, and its incident (``MqttQueue.event_state``)."""
        return {"sink": _SINK, **self.queue.event_state(event_id)}

    # --- the session loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        attempts = 0
        # Python 3.11's wait_for (and so a library's) can swallow a cancellation that arrives as
        # its inner call finishes: the flag ends the loop anyway (the CI once hung on it here)
        while not self._stopping:
            connection = BrokerConnection(self.config, on_message=self.discovery.heard)
            try:
                await connection.open()
                self._connection = connection
                self._set_connected(True)
                if attempts:
                    logger.info("MQTT %s: connected again after %d failure(s)", self.config.address, attempts)
                else:
                    logger.info("MQTT %s: connected", self.config.address)
                attempts = 0
                await self._session(connection)
            except DeliveryError as error:
                attempts += 1
                self._failed(error, attempts)
            except Exception as error:  # the outbox file or a bug: this session ends, delivery goes on
                logger.exception("MQTT session failed")
                attempts += 1
                self._failed(DeliveryError(f"{type(error).__name__}: {error}", reason="protocol"), attempts)
            finally:
                self._set_connected(False)
                if self._connection is connection:
                    self._connection = None
                await connection.close()
            await asyncio.sleep(self.backoff.delay(max(attempts, 1)))

    async def _session(self, connection: BrokerConnection) -> None:
        """Online, discovery, then the rows in order until the connection is lost."""
        await self._acknowledged(connection, [connection.publish(STATUS_TOPIC, ONLINE, retain=True)])
        await self.discovery.publish(connection, self._acknowledged)
        # the states this run published, again: a broker restarted without persistence forgot them
        await self._acknowledged(
            connection,
            [connection.publish(topic, state, retain=True) for topic, state in self._states.items()],
        )
        assert self._wake is not None
        next_level = time.monotonic()
        while True:
            self._wake.clear()
            rows = await asyncio.to_thread(self.queue.next_rows, 0, MAX_INFLIGHT)
            if rows:
                acks = [
                    connection.publish(row.message.topic, row.message.payload, retain=row.message.retain)
                    for row in rows
                ]
                await self._acknowledged(connection, acks)
                await asyncio.to_thread(self.queue.mark_published, [row.id for row in rows])
                self._states.update(
                    (row.message.topic, row.message.payload) for row in rows if row.message.retain
                )
                now = time.time()
                for row in rows:
                    SINK_LATENCY.labels(sink=_SINK).observe(max(0.0, now - row.created_at))
                    observe_onset_to_delivery(_SINK, row.message.payload, now)
                self.delivered += len(rows)
                SINK_DELIVERED.labels(sink=_SINK).inc(len(rows))
            if time.monotonic() >= next_level:
                next_level = time.monotonic() + (self.config.level_seconds or float("inf"))
                self._publish_levels(connection)
            if rows:
                continue
            wait = min(self.poll_seconds, max(0.0, next_level - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await _first(self._wake.wait(), connection.lost.wait())
            if connection.lost.is_set():
                raise DeliveryError(f"MQTT {self.config.address}: {connection.reason}")

    async def _acknowledged(self, connection: BrokerConnection, acks: Sequence[asyncio.Future[None]]) -> None:
        """Wait for every PUBACK; a broker silent past ``timeout`` ends the session."""
        try:
            async with asyncio.timeout(self.config.timeout):
                await asyncio.gather(*acks)
        except TimeoutError:
            connection.reason = f"no acknowledgement within {self.config.timeout:g} s"
            raise DeliveryError(
                f"MQTT {self.config.address}: {connection.reason}", reason="timeout"
            ) from None
        finally:
            for ack in acks:  # a failed gather leaves the others' exceptions unretrieved
                if ack.done() and not ack.cancelled():
                    ack.exception()

    async def _housekeeping(self) -> None:
        """Every ``HOUSEKEEPING_SECONDS``, durably: the OFF states of sources gone offline
        (``_sources_gone``) and the messages of the incidents whose window has passed."""
        groups = {source.name: [group.name for group in source.groups] for source in self.sources}
        online: set[str] = set()
        while True:
            rows = self.queue.incidents.due()
            if self.levels is not None:
                now_online = set(self.levels())
                rows += self._sources_gone(sorted((online - now_online) & set(groups)), groups)
                online = now_online
            if rows:
                try:
                    await asyncio.to_thread(self.queue.enqueue, rows)
                except sqlite3.Error as error:  # said, and the rest of the sink goes on
                    logger.error("MQTT: cannot store %d message(s) in the outbox: %s", len(rows), error)
                self.notify()
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    def _sources_gone(self, gone: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[MqttMessage]:
        """A source that stops delivering audio (reconnecting, failed, finished) gets an OFF for each
        of its states left ON at once: its open events end only when it comes back, and a camera
        that stays off must not leave a sensor ON meanwhile. Its end records follow as usual."""
        if gone:
            logger.info("MQTT: %s stopped delivering audio: its states ON set OFF", ", ".join(gone))
        topics = [state_topic(name, group) for name in gone for group in groups[name]]
        return [MqttMessage(topic, OFF, retain=True) for topic in topics if self.queue.is_on(topic)]

    def _publish_levels(self, connection: BrokerConnection) -> None:
        if self.levels is None or not self.config.level_seconds:
            return
        for source, level in self.levels().items():
            if level is not None:
                connection.publish(level_topic(source), f"{level:.1f}", retain=False, qos=0)

    def _oldest_pending_seconds(self) -> float:
        oldest = self.queue.backlog()[1]
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        SINK_CONNECTED.labels(sink=_SINK).set(int(connected))

    def _failed(self, error: DeliveryError, attempts: int) -> None:
        self.failures += 1
        self.last_error = error.message
        SINK_FAILURES.labels(sink=_SINK, reason=error.reason).inc()
        # the first failure and then every 10th: an outage must not flood the log
        log = logger.warning if attempts == 1 or attempts % 10 == 0 else logger.debug
        log("MQTT delivery failed (attempt %d, retrying with backoff): %s", attempts, error.message)


async def _first(*waits: Any) -> None:
    """Return when the first of ``waits`` (coroutines) returns; cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
