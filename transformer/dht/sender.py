"""The background task that empties the outbox into the DHT.

Each topic's head is posted; on the broker's acknowledgement the row is
deleted and the next one of that topic follows, one post at a time (``max_in_flight``: the pinned
SIFIS broker deadlocks under concurrent REST posts, never answering again: two clients posting at once
hung it after ~64 posts, one client posted 3000 in 8 s; docs/deploy.md); on a transient failure the row waits
``Backoff.delay(attempts)`` and is retried, forever; a permanent refusal (a 4xx
for this very message) moves it to the dead letters, kept and re-sendable, so
one poison message cannot hold back every later anomaly of its topic. Topics are independent: a
failing topic waits out its backoff while the others go on (a hanging post holds them up to the
client's timeout). Undelivered rows survive a restart
in the outbox (``transformer.dht.outbox``) and are sent first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time

from contract.errors import DeliveryError
from transformer.dht.backoff import Backoff
from transformer.dht.clients import DhtClient
from transformer.dht.outbox import Outbox, StoredMessage
from transformer.metrics import (
    DELIVERY_FAILURES,
    DELIVERY_LATENCY,
    REQUEST_SECONDS,
    SINK_CONNECTED,
    SINK_DELIVERED,
    SINK_FAILURES,
    SINK_OLDEST,
    SINK_PENDING,
    at_scrape,
    observe_onset_to_delivery,
)

logger = logging.getLogger(__name__)


class OutboxSender:
    """Background asyncio task delivering the outbox to the DHT (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        client: DhtClient,
        *,
        backoff: Backoff | None = None,
        poll_seconds: float = 5.0,
        max_in_flight: int = 1,
    ) -> None:
        """
        Args:
            outbox: the messages to deliver.
            client: the DHT transport (``transformer.dht.clients``).
            backoff: retry delays (default: 0.5 s doubling up to 60 s).
            poll_seconds: longest idle wait before looking at the outbox again
                (enqueues in this process wake the sender at once).
            max_in_flight: posts awaiting the broker at once, across topics (see the module).
        """
        self.outbox = outbox
        self.client = client
        self.backoff = backoff or Backoff(0.5, 60.0)
        self.poll_seconds = poll_seconds
        self.max_in_flight = max_in_flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        # the sink's status line (``DeliveryService.sink_status``): None until a first post
        self.connected: bool | None = None
        self.delivered = self.failures = 0
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start delivering on the running event loop (undelivered rows of a previous run first)."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        await asyncio.to_thread(self.outbox.reschedule_all, 0.0)
        self.outbox.add_listener(self.notify)
        # read at each scrape, so the age grows while nothing is delivered
        SINK_PENDING.labels(sink="dht").set_function(lambda: at_scrape(lambda: len(self.outbox)))
        SINK_OLDEST.labels(sink="dht").set_function(lambda: at_scrape(self.oldest_pending_seconds))
        self._task = asyncio.create_task(self._run(), name="dht-outbox-sender")

    async def stop(self) -> None:
        """Stop sending; undelivered messages stay in the outbox for the next start."""
        self.outbox.remove_listener(self.notify)
        self._stopping = True  # ends the loop even if a cancellation is lost
        tasks = [task for task in (self._task, *self._inflight.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._inflight.clear()
        SINK_PENDING.labels(sink="dht").set_function(lambda: 0.0)  # the outbox closes next
        SINK_OLDEST.labels(sink="dht").set_function(lambda: 0.0)

    def oldest_pending_seconds(self) -> float:
        """Age of the oldest undelivered message (0: none)."""
        oldest = self.outbox.oldest_created_at()
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def _reachable(self, connected: bool) -> None:
        self.connected = connected
        SINK_CONNECTED.labels(sink="dht").set(int(connected))

    def notify(self) -> None:
        """Wake the sender (thread-safe): something was enqueued."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop shutting down
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            # clear before reading so an enqueue during the read is not missed
            self._wake.clear()
            try:
                heads = await asyncio.to_thread(self.outbox.heads)
            except sqlite3.Error:
                logger.exception("cannot read the DHT outbox; retrying")
                heads = []
            now = time.time()
            next_due: float | None = None
            for head in heads:
                if head.topic_name in self._inflight:
                    continue
                if head.next_attempt_at > now:
                    next_due = (
                        head.next_attempt_at if next_due is None else min(next_due, head.next_attempt_at)
                    )
                elif len(self._inflight) < self.max_in_flight:
                    self._inflight[head.topic_name] = asyncio.create_task(
                        self._deliver(head), name=f"dht-deliver-{head.id}"
                    )
                # else due, and waits for the post in flight (its end wakes this loop)
            wait = self.poll_seconds if next_due is None else min(self.poll_seconds, max(0.0, next_due - now))
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a
            # cancellation that arrives as the wake-up fires, and stop() would hang
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _deliver(self, message: StoredMessage) -> None:
        try:
            started = time.perf_counter()
            try:
                await self.client.post_persistent(message.topic_name, message.topic_uuid, message.value)
            except DeliveryError as error:
                if error.permanent:
                    await self._bury(message, error.message)
                else:
                    await self._failed(message, error.reason, error.message)
                return
            except Exception as error:  # a client bug must not stop delivery of the rest
                logger.exception("unexpected error posting outbox message %d", message.id)
                await self._failed(message, "protocol", f"{type(error).__name__}: {error}")
                return
            REQUEST_SECONDS.observe(time.perf_counter() - started)
            acknowledged_at = time.time()
            DELIVERY_LATENCY.labels(kind=message.kind).observe(max(0.0, acknowledged_at - message.created_at))
            observe_onset_to_delivery("dht", message.value, acknowledged_at)
            await asyncio.to_thread(self.outbox.mark_delivered, message.id)
            self.delivered += 1
            SINK_DELIVERED.labels(sink="dht").inc()
            self._reachable(True)
        finally:
            self._inflight.pop(message.topic_name, None)
            if self._wake is not None:
                self._wake.set()

    async def _bury(self, message: StoredMessage, detail: str) -> None:
        """Set a refused message aside so the rest of its topic goes on (never dropped)."""
        DELIVERY_FAILURES.labels(reason="refused").inc()
        self._count_failure("refused", detail)
        self._reachable(True)  # it answered
        await asyncio.to_thread(self.outbox.bury, message.id, detail)
        logger.error(
            "the DHT refused %s/%s for good (%s); kept as a dead letter: "
            "python -m transformer.dht.dead_letters list|resend --outbox %s",
            message.topic_name,
            message.topic_uuid,
            detail,
            self.outbox.path,
        )

    def _count_failure(self, reason: str, detail: str) -> None:
        self.failures += 1
        self.last_error = detail
        SINK_FAILURES.labels(sink="dht", reason=reason).inc()

    async def _failed(self, message: StoredMessage, reason: str, detail: str) -> None:
        DELIVERY_FAILURES.labels(reason=reason).inc()
        self._count_failure(reason, detail)
        if reason in ("connection", "timeout"):
            self._reachable(False)
        attempts = message.attempts + 1
        delay = self.backoff.delay(attempts)
        # the first failure and then every 10th: an outage must not flood the log
        log = logger.warning if attempts == 1 or attempts % 10 == 0 else logger.debug
        log(
            "DHT delivery of %s/%s failed (attempt %d, retry in %.1f s): %s",
            message.topic_name,
            message.topic_uuid,
            attempts,
            delay,
            detail,
        )
        await asyncio.to_thread(self.outbox.mark_failed, message.id, time.time() + delay)
