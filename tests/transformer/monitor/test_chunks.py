"""The shared chunk queue: what a full queue drops, and under whose name."""

from __future__ import annotations

import asyncio

import numpy as np

from transformer.monitor.chunks import Chunk, ChunkQueue


def chunk(source: str, start: float, *, droppable: bool = True, final: bool = False) -> Chunk:
    return Chunk(source, np.zeros(0 if final else 1600), start, 1, final=final, droppable=droppable)


async def test_a_full_queue_drops_the_oldest_live_audio_never_an_end_or_a_replay() -> None:
    queue = ChunkQueue(4)
    for queued in (
        chunk("door", 0.0, droppable=False, final=True),
        chunk("replay", 0.0, droppable=False),
        chunk("cam", 0.0),
        chunk("cam", 0.1),
    ):
        queue.put_nowait(queued)
    queue.offer(chunk("mic", 0.0))  # the microphone's audio pushes out the camera's oldest
    kept = [(c.source, c.start_seconds) for c in (queue.get_nowait() for _ in range(queue.qsize()))]
    assert kept == [("door", 0.0), ("replay", 0.0), ("cam", 0.1), ("mic", 0.0)]
    assert queue.dropped == {"cam": 1}  # counted for the source that lost audio
    for _ in kept:
        queue.task_done()
    await asyncio.wait_for(queue.join(), 1)  # the dropped chunk is not waited for


async def test_with_nothing_droppable_the_offered_chunk_goes() -> None:
    queue = ChunkQueue(2)
    queue.put_nowait(chunk("replay", 0.0, droppable=False))
    queue.put_nowait(chunk("door", 0.0, droppable=False, final=True))
    queue.offer(chunk("mic", 0.0))
    assert queue.qsize() == 2 and queue.dropped == {"mic": 1}
