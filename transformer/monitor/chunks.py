"""What the captures hand the monitor: chunks of one source's audio, in one bounded queue."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """A piece of one source's audio: mono samples at its rate and where they start in its stream.

    ``segment`` counts the captures of the source: a new segment after a restart
    means the audio is not continuous with the previous chunk. ``final`` (no samples)
    says the source has ended for good (a file played out, a failure): its events end.
    """

    source: str
    samples: np.ndarray  # (n,) float64
    start_seconds: float
    segment: int
    final: bool = False
    sample_rate: int = 16_000
    droppable: bool = True  # False for a replay's audio and for an end marker: never dropped
    received_at: float | None = None  # wall clock (epoch) of its last sample; None: a replay


class ChunkQueue(asyncio.Queue[Chunk]):
    """Every source's chunks, bounded. ``offer`` never waits: when the queue is full, the oldest
    chunk that may be dropped (a live source's audio, never a replay's or an end marker) makes
    room, counted under its own source in ``dropped`` (chunks) and told to ``on_drop`` (source,
    seconds of audio); with none such, the offered chunk goes."""

    def __init__(self, maxsize: int, on_drop: Callable[[str, float], None] | None = None) -> None:
        super().__init__(maxsize)
        self.dropped: collections.Counter[str] = collections.Counter()
        self.on_drop = on_drop

    def _lost(self, chunk: Chunk) -> None:
        self.dropped[chunk.source] += 1
        if self.on_drop is not None:
            self.on_drop(chunk.source, chunk.samples.shape[0] / chunk.sample_rate)

    def offer(self, chunk: Chunk) -> None:
        if self.full():
            # ``_queue`` is the deque asyncio.Queue keeps its items in (its subclasses' hook)
            oldest = next((i for i, queued in enumerate(self._queue) if queued.droppable), None)  # type: ignore[attr-defined]
            if oldest is None:
                self._lost(chunk)
                return
            dropped = self._queue[oldest]  # type: ignore[attr-defined]
            del self._queue[oldest]  # type: ignore[attr-defined]
            self.task_done()  # it will never be taken: queue.join() must not wait for it
            self._lost(dropped)
        self.put_nowait(chunk)
