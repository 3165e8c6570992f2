"""AdaptiveBatcher: merging, exact splitting, limits, failures and cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from contract.batching import AdaptiveBatcher

DEADLINE_S = 10.0
WEIGHTS = np.random.default_rng(1).normal(size=(6, 3))


def row_function(batch: np.ndarray) -> np.ndarray:
    """A row-wise model: (B, 2, 3) -> (B, 3). Each answer row depends only on its input row."""
    flat = batch.reshape(batch.shape[0], -1).astype(np.float64)
    return np.tanh(flat @ WEIGHTS) + flat.sum(axis=1, keepdims=True)


class GatedModel:
    """Wraps row_function; records every batch; the first call blocks until released.

    Holding the first call lets the test queue requests deterministically while
    the "model" is busy, so what gets merged does not depend on timing.
    """

    def __init__(self, *, fail_marker: float | None = None) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[np.ndarray] = []
        self.threads: set[int] = set()
        self.fail_marker = fail_marker

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.threads.add(threading.get_ident())
        self.batches.append(batch.copy())
        self.entered.set()
        assert self.release.wait(DEADLINE_S), "test never released the model"
        if self.fail_marker is not None and np.any(batch[:, 0, 0] == self.fail_marker):
            raise ValueError("poisoned batch")
        return row_function(batch)


async def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def occupy(batcher: AdaptiveBatcher, model: GatedModel) -> asyncio.Task[np.ndarray]:
    """Start one 1-row request and wait until the model is busy with it."""
    task = asyncio.create_task(batcher.submit(np.full((1, 2, 3), -1.0)))
    await asyncio.to_thread(model.entered.wait, DEADLINE_S)
    return task


def distinct_requests(count: int, max_rows: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(1, max_rows + 1)), 2, 3)) for _ in range(count)]


async def test_concurrent_distinct_requests_each_get_their_own_rows() -> None:
    model = GatedModel()
    batcher = AdaptiveBatcher(model, max_batch_size=16, max_wait_ms=2.0)
    first = await occupy(batcher, model)
    requests = distinct_requests(200, 7, seed=3)
    tasks = [asyncio.create_task(batcher.submit(r)) for r in requests]
    await wait_until(lambda: batcher.pending_chunks >= len(requests), "requests to queue")
    model.release.set()
    answers = await asyncio.gather(*tasks)
    await first

    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer, row_function(request), rtol=0, atol=1e-12)
    assert all(len(batch) <= 16 for batch in model.batches)
    stats = batcher.stats()
    total_rows = sum(len(r) for r in requests) + 1
    assert stats.requests == 201
    assert stats.windows == total_rows
    # Everything queued behind the first call must be packed into few full batches.
    assert stats.calls <= 1 + -(-total_rows // 16) * 2
    assert stats.mean_chunks_per_call > 3
    assert stats.mean_batch_size == pytest.approx(total_rows / stats.calls)
    await batcher.aclose()


async def test_model_runs_in_one_worker_thread_off_the_event_loop() -> None:
    model = GatedModel()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch_size=4, max_wait_ms=0)
    await asyncio.gather(*(batcher.submit(r) for r in distinct_requests(10, 3, seed=4)))
    assert threading.get_ident() not in model.threads
    assert len(model.threads) == 1
    await batcher.aclose()


async def test_request_larger_than_max_batch_is_chunked_and_reassembled() -> None:
    model = GatedModel()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch_size=4, max_wait_ms=0)
    big = np.random.default_rng(5).normal(size=(11, 2, 3))
    answer = await batcher.submit(big)
    np.testing.assert_allclose(answer, row_function(big), rtol=0, atol=1e-12)
    assert [len(b) for b in model.batches] == [4, 4, 3]
    assert batcher.stats().requests == 1
    assert batcher.stats().chunks == 3
    await batcher.aclose()


async def test_full_batch_goes_out_without_waiting_for_the_timeout() -> None:
    model = GatedModel()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch_size=4, max_wait_ms=60_000)
    started = time.monotonic()
    requests = [np.ones((2, 2, 3)), np.zeros((2, 2, 3))]
    answers = await asyncio.wait_for(asyncio.gather(*(batcher.submit(r) for r in requests)), DEADLINE_S)
    assert time.monotonic() - started < DEADLINE_S
    assert [len(b) for b in model.batches] == [4]
    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer, row_function(request))
    await batcher.aclose()


class LoopLag:
    """The worst lateness of the event loop while it runs: a 1-ms ticker measures its overshoot.

    A wait can end no sooner than the loop gets to it, so a bound on the batcher's
    wait is the setting plus what the loop itself lagged meanwhile.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.parametrize("max_wait_ms", [50.0, 100.0])
async def test_lone_request_waits_at_most_max_wait(max_wait_ms: float) -> None:
    model = GatedModel()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch_size=64, max_wait_ms=max_wait_ms)
    with LoopLag() as lag:
        started = time.monotonic()
        await batcher.submit(np.ones((1, 2, 3)))
        elapsed = time.monotonic() - started
    wait = max_wait_ms / 1000
    # waited for company as set, then went out alone: the setting, plus the loop's own lateness
    # and one worker-thread hop (at most 40 ms on a busy host), well short of a second wait
    assert wait * 0.9 <= elapsed <= wait + lag.worst + 0.040, (elapsed, lag.worst)
    assert [len(batch) for batch in model.batches] == [1]
    await batcher.aclose()


async def test_model_exception_fails_only_the_requests_of_that_batch() -> None:
    model = GatedModel(fail_marker=99.0)
    batcher = AdaptiveBatcher(model, max_batch_size=2, max_wait_ms=0)
    first = await occupy(batcher, model)
    good1, poison, good2, good3 = (np.full((1, 2, 3), float(v)) for v in (1, 99, 2, 3))
    tasks = [asyncio.create_task(batcher.submit(r)) for r in (good1, poison, good2, good3)]
    await wait_until(lambda: batcher.pending_chunks == 4, "requests to queue")
    model.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await first

    # Batches in arrival order: [good1, poison] fails together, [good2, good3] succeeds.
    assert isinstance(results[0], ValueError)
    assert isinstance(results[1], ValueError)
    np.testing.assert_allclose(results[2], row_function(good2))
    np.testing.assert_allclose(results[3], row_function(good3))
    stats = batcher.stats()
    assert stats.failed_calls == 1
    # The batcher keeps working after a failed call.
    np.testing.assert_allclose(await batcher.submit(good1), row_function(good1))
    await batcher.aclose()


async def test_wrong_number_of_answer_rows_is_an_error_not_a_misaligned_split() -> None:
    batcher = AdaptiveBatcher(lambda batch: row_function(batch)[:-1], max_batch_size=8, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="answer rows"):
        await batcher.submit(np.ones((3, 2, 3)))
    await batcher.aclose()


async def test_cancelled_waiting_request_is_skipped_and_others_are_answered() -> None:
    model = GatedModel()
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_wait_ms=0)
    first = await occupy(batcher, model)
    cancelled_rows = np.full((2, 2, 3), 7.0)
    kept_rows = np.full((1, 2, 3), 3.0)
    cancelled = asyncio.create_task(batcher.submit(cancelled_rows))
    kept = asyncio.create_task(batcher.submit(kept_rows))
    await wait_until(lambda: batcher.pending_chunks == 2, "requests to queue")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    model.release.set()
    np.testing.assert_allclose(await kept, row_function(kept_rows))
    await first
    assert not any(np.any(batch == 7.0) for batch in model.batches)
    await batcher.aclose()


async def test_cancel_while_batch_runs_leaves_batch_mates_untouched() -> None:
    model = GatedModel()
    batcher = AdaptiveBatcher(model, max_batch_size=8, max_wait_ms=0)
    requests = [np.full((1, 2, 3), float(v)) for v in (1, 2, 3)]
    tasks = [asyncio.create_task(batcher.submit(r)) for r in requests]
    await asyncio.to_thread(model.entered.wait, DEADLINE_S)
    tasks[1].cancel()
    model.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    np.testing.assert_allclose(results[0], row_function(requests[0]))
    np.testing.assert_allclose(results[2], row_function(requests[2]))
    await batcher.aclose()


async def test_observer_sees_every_call() -> None:
    seen: list[tuple[int, int]] = []
    batcher = AdaptiveBatcher(
        row_function,
        max_batch_size=4,
        max_wait_ms=0,
        observer=lambda rows, chunks, seconds: seen.append((rows, chunks)),
    )
    await batcher.submit(np.ones((6, 2, 3)))
    assert seen == [(4, 1), (2, 1)]
    await batcher.aclose()


@pytest.mark.parametrize(("size", "wait"), [(0, 1.0), (4, -1.0)])
def test_invalid_limits_are_rejected(size: int, wait: float) -> None:
    with pytest.raises(ValueError):
        AdaptiveBatcher(row_function, max_batch_size=size, max_wait_ms=wait)
