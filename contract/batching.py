"""Adaptive batching: merge concurrent requests into one model call, split the answers back.

Generic over any ``Callable[[np.ndarray], np.ndarray]`` that maps a batch of
rows ``(B, ...)`` to one answer row per input row ``(B, ...)``. Requests are
arrays whose first axis counts rows (classifier windows in the predictor,
log-mel examples for VGGish in the transformer); they are concatenated along
that axis, the callable runs once in a worker thread (never on the event loop),
and each request gets back exactly the rows it sent, in order.

Policy: the first waiting request opens a batch; the batch is dispatched as
soon as it holds ``max_batch_size`` rows or ``max_wait_ms`` has passed since
that request arrived. While the model is busy, new requests queue up and go
out together in the next call, so batches grow with load and a lone request
waits at most ``max_wait_ms``. A request with more than ``max_batch_size`` rows
is cut into chunks of at most ``max_batch_size`` rows that are batched like
any other request and reassembled in order.

One model call runs at a time (the model itself may use many threads). The
batcher belongs to the event loop it is first used on.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

BatchFunction = Callable[[np.ndarray], np.ndarray]
#: Called after every model call with (rows in the batch, request chunks in it, seconds).
BatchObserver = Callable[[int, int, float], None]


@dataclasses.dataclass(frozen=True)
class BatchStats:
    """Counters since the batcher was created.

    ``calls``: model calls made (failed ones included); ``requests``: requests
    submitted and answered; ``chunks``: request pieces that went into calls
    (one per request unless it was larger than ``max_batch_size``);
    ``windows``: rows that went through the model; ``failed_calls``: calls that
    raised; ``largest_batch``: most rows in one call.
    """

    calls: int = 0
    requests: int = 0
    chunks: int = 0
    windows: int = 0
    failed_calls: int = 0
    largest_batch: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Mean rows per model call (0 before the first call)."""
        return self.windows / self.calls if self.calls else 0.0

    @property
    def mean_chunks_per_call(self) -> float:
        """Mean request pieces merged into one call: > 1 means batching happened."""
        return self.chunks / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, float]:
        fields = dataclasses.asdict(self)
        fields["mean_batch_size"] = self.mean_batch_size
        fields["mean_chunks_per_call"] = self.mean_chunks_per_call
        return fields


@dataclasses.dataclass
class _Chunk:
    """Rows of one request waiting for a model call, and where its answer goes."""

    rows: np.ndarray
    future: asyncio.Future[np.ndarray]
    enqueued_at: float


class AdaptiveBatcher:
    """Merge concurrent ``submit`` calls into batched calls of ``function``.

    ``function(batch (B, ...)) -> answers (B, ...)`` runs in a dedicated worker
    thread. An exception raised by it (or an answer with the wrong number of
    rows) fails the requests of that call only; a request cancelled while
    waiting is dropped without affecting the others.
    """

    def __init__(
        self,
        function: BatchFunction,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        observer: BatchObserver | None = None,
        name: str = "batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self._function = function
        self._observer = observer
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_ms / 1000.0
        self.name = name
        self._stats_lock = threading.Lock()
        self._stats = BatchStats()
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Loop-bound state, created lazily on first use."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: collections.deque[_Chunk] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def stats(self) -> BatchStats:
        """A snapshot of the counters."""
        with self._stats_lock:
            return self._stats

    @property
    def pending_chunks(self) -> int:
        """Request chunks queued for a future model call (cancelled ones until pruned)."""
        return len(self._queue)

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """Run ``function`` on ``rows`` (shape (n, ...), n >= 1) as part of a batch.

        Returns the n answer rows for exactly these input rows. Raises whatever
        the model call raised for the batch holding these rows.
        """
        if rows.ndim < 1 or rows.shape[0] < 1:
            raise ValueError(f"submit needs at least one row, got shape {rows.shape}")
        self._ensure_running()
        loop = asyncio.get_running_loop()
        futures = []
        for start in range(0, rows.shape[0], self.max_batch_size):
            future: asyncio.Future[np.ndarray] = loop.create_future()
            self._queue.append(_Chunk(rows[start : start + self.max_batch_size], future, loop.time()))
            futures.append(future)
        assert self._arrived is not None
        self._arrived.set()
        # gather cancels every chunk if this request is cancelled, so the
        # worker skips them instead of computing answers nobody reads.
        answers = await asyncio.gather(*futures)
        with self._stats_lock:
            self._stats = dataclasses.replace(self._stats, requests=self._stats.requests + 1)
        return answers[0] if len(answers) == 1 else np.concatenate(answers, axis=0)

    async def aclose(self) -> None:
        """Stop the worker task and thread; pending requests are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for chunk in self._queue:
            chunk.future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._reset_runtime()

    # --- internals ------------------------------------------------------------------

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._arrived = asyncio.Event()
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=self.name
            )
        elif self._loop is not loop:
            raise RuntimeError(f"{self.name} is bound to another event loop")
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(), name=self.name)

    def _live_chunks(self) -> list[_Chunk]:
        """Drop cancelled chunks from the queue; return the rest in order."""
        live = [chunk for chunk in self._queue if not chunk.future.done()]
        if len(live) != len(self._queue):
            self._queue = collections.deque(live)
        return live

    async def _run(self) -> None:
        assert self._arrived is not None and self._loop is not None
        while True:
            live = self._live_chunks()
            if not live:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = live[0].enqueued_at + self.max_wait_seconds
            while sum(len(chunk.rows) for chunk in live) < self.max_batch_size:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
                live = self._live_chunks()
            batch = self._take_batch()
            if batch:
                await self._execute(batch)

    def _take_batch(self) -> list[_Chunk]:
        """Pop whole chunks in arrival order while they fit into max_batch_size rows."""
        batch: list[_Chunk] = []
        size = 0
        while self._queue:
            chunk = self._queue[0]
            if chunk.future.done():
                self._queue.popleft()
                continue
            if batch and size + len(chunk.rows) > self.max_batch_size:
                break
            self._queue.popleft()
            batch.append(chunk)
            size += len(chunk.rows)
        return batch

    async def _execute(self, batch: list[_Chunk]) -> None:
        assert self._loop is not None and self._executor is not None
        inputs = batch[0].rows if len(batch) == 1 else np.concatenate([c.rows for c in batch], axis=0)
        rows = inputs.shape[0]
        started = time.perf_counter()
        failed = False
        try:
            answers = await self._loop.run_in_executor(self._executor, self._function, inputs)
            answers = np.asarray(answers)
            if answers.ndim < 1 or answers.shape[0] != rows:
                raise RuntimeError(
                    f"model returned {answers.shape[0] if answers.ndim else 'a scalar'} answer rows "
                    f"for {rows} input rows"
                )
        except Exception as error:
            failed = True
            logger.error("%s: model call on %d rows failed: %r", self.name, rows, error)
            for chunk in batch:
                if not chunk.future.done():
                    chunk.future.set_exception(error)
        else:
            offset = 0
            for chunk in batch:
                end = offset + len(chunk.rows)
                if not chunk.future.done():
                    # A copy, not a view: no request's answer keeps the others' rows alive.
                    chunk.future.set_result(answers[offset:end].copy())
                offset = end
        seconds = time.perf_counter() - started
        with self._stats_lock:
            s = self._stats
            self._stats = dataclasses.replace(
                s,
                calls=s.calls + 1,
                chunks=s.chunks + len(batch),
                windows=s.windows + rows,
                failed_calls=s.failed_calls + int(failed),
                largest_batch=max(s.largest_batch, rows),
            )
        if self._observer is not None:
            try:
                self._observer(rows, len(batch), seconds)
            except Exception:
                logger.exception("%s: batch observer failed", self.name)
