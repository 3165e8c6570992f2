"""Runs the embedding pipeline off the event loop, merging VGGish calls across requests.

The front end (decode, privacy, log-mel, loudness) of each request runs in a
bounded worker pool. With batching on, only a request's log-mel examples
(never its audio) join a shared VGGish call (``contract.batching``), and each
request gets back exactly its own rows before its own PCA/uint8 step. A request
whose front end fails (undecodable audio, ...) never joins a call, so it cannot
fail the others. With batching off, VGGish runs alone in the same pool job.

A cancelled ``embed`` (its HTTP client left: ``contract.disconnects``) stops its
work: a job not started yet never starts, the job in progress stops before its
next stage (``pipeline.Stopped``) and is waited for, so the request's admission
ticket, released after, never counts memory that is still in use; examples
queued for a batched VGGish call are dropped by the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from contract.batching import AdaptiveBatcher, BatchStats
from transformer.audio.embedded import EmbeddedAudio
from transformer.audio.pipeline import EmbeddingPipeline, check_stop
from transformer.metrics import VGGISH_BATCH_METRICS
from transformer.privacy import PrivacyRequest

T = TypeVar("T")


class EmbeddingWorker:
    """``await embed(audio, privacy)``: the pipeline in worker threads, VGGish batched."""

    def __init__(
        self,
        pipeline: EmbeddingPipeline,
        *,
        name: str,
        threads: int,
        batching: bool,
        batch_size: int,
        batch_wait_ms: float,
    ) -> None:
        """
        Args:
            pipeline: the loaded VGGish + PCA and the audio limits.
            name: the served model's name (metric label, thread names).
            threads: worker threads for the front end (and unbatched VGGish).
            batching: merge the VGGish calls of concurrent requests.
            batch_size, batch_wait_ms: the batcher's call size and longest wait.
        """
        self.pipeline = pipeline
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="audioguard-embed")
        self._jobs_lock = threading.Lock()
        self._jobs = 0
        self._batcher: AdaptiveBatcher | None = None
        if batching:
            self._batcher = AdaptiveBatcher(
                pipeline.embedder.embed,
                max_batch_size=batch_size,
                max_wait_ms=batch_wait_ms,
                observer=self._observe,
                name=f"{name}-vggish",
            )

    def _observe(self, examples: int, requests: int, seconds: float) -> None:
        VGGISH_BATCH_METRICS.observe(self.name, examples, requests, seconds)

    async def embed(self, audio: bytes, privacy: PrivacyRequest) -> EmbeddedAudio:
        """Encoded audio bytes -> anonymised, quantised embeddings (typed 4xx errors)."""
        if self._batcher is None:
            return await self._stoppable(self._embed_alone, audio, privacy)
        features = await self._stoppable(self.pipeline.features, audio, privacy)
        # load_waveform refuses audio shorter than one example, so N >= 1 here.
        raw_embeddings = await self._batcher.submit(features.examples)
        return self.pipeline.quantized(features, raw_embeddings)

    async def embed_examples(self, examples: np.ndarray) -> np.ndarray:
        """(k, 96, 64) log-mel examples (a live source's) -> (k, 128) uint8 embeddings, through the
        same batcher (merged with the requests' calls), thread pool and metrics as a file's."""
        loop = asyncio.get_running_loop()
        if self._batcher is None:
            raw = await loop.run_in_executor(self._executor, self._vggish_alone, examples)
        else:
            raw = await self._batcher.submit(examples)
        return self.pipeline.embedder.quantizer(raw)

    def _vggish_alone(self, examples: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        raw = self.pipeline.embedder.embed(examples)
        self._observe(examples.shape[0], 1, time.perf_counter() - started)
        return raw

    def _embed_alone(self, audio: bytes, privacy: PrivacyRequest, stop: threading.Event) -> EmbeddedAudio:
        """Worker thread, batching off: the front end and this request's own VGGish call."""
        features = self.pipeline.features(audio, privacy, stop)
        check_stop(stop)
        return self.pipeline.quantized(features, self._vggish_alone(features.examples))

    async def _stoppable(self, job: Callable[..., T], *args: object) -> T:
        """``job(*args, stop)`` in the pool. Cancelled: a job not started never starts; one in
        progress is told to stop and waited for (it holds the request's memory until it returns)."""
        stop = threading.Event()
        future = self._executor.submit(self._counted, functools.partial(job, *args, stop))
        try:
            # cancelled, this also cancels ``future`` if it has not started
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            stop.set()
            if not future.cancelled():
                with contextlib.suppress(Exception):  # Stopped, or whatever it ended with
                    await asyncio.wrap_future(future)
            raise

    def _counted(self, job: Callable[[], T]) -> T:
        with self._jobs_lock:
            self._jobs += 1
        try:
            return job()
        finally:
            with self._jobs_lock:
                self._jobs -= 1

    def jobs_in_progress(self) -> int:
        """Request jobs (front end, unbatched VGGish) running in the pool now."""
        with self._jobs_lock:
            return self._jobs

    def batch_stats(self) -> BatchStats | None:
        """Counters of the VGGish batcher (``windows`` = examples); None when batching is off."""
        return None if self._batcher is None else self._batcher.stats()

    def close(self) -> None:
        """Stop the worker pool; queued work is cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """``close``, after the batcher's task has ended (a loop about to end leaves none pending)."""
        if self._batcher is not None:
            await self._batcher.aclose()
        self.close()
