"""The monitor's side of the modes (``transformer.analysis.modes``): it keeps every source's mode
current, filters the hits by it, and records each change (in a worker thread, as events are).

The board is updated at every detection step (a scheduled switch takes effect with the next
audio) and at once on a request (``PUT /v1/monitor/mode``, a DHT request), which is recorded
before the caller hears back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from transformer.analysis.anomalies import Anomaly
from transformer.analysis.detectors.voices import GROUP as VOICES
from transformer.analysis.modes import Mode, ModeBoard, ModeChange, SetBy
from transformer.analysis.record_context import RecordContext
from transformer.monitor.source_state import SourceState

RecordModes = Callable[[Sequence[ModeChange], RecordContext], None]


class ModeKeeper:
    """Every source's mode, kept current and recorded."""

    def __init__(
        self, board: ModeBoard, record: RecordModes | None, context: Callable[[str], RecordContext]
    ) -> None:
        """``context``: the record context of a source (``Monitor.record_context``)."""
        self.board = board
        self._record = record
        self._context = context
        self._lock = asyncio.Lock()  # a request and a step must not record one change twice

    def fired(self, source: str, hits: Iterable[Anomaly]) -> list[Anomaly]:
        """The hits of groups ``source``'s mode watches."""
        return [hit for hit in hits if self.board.active(source, hit.group)]

    def tune(self, sources: Iterable[SourceState]) -> None:
        """Let each source's speech detector listen only while its mode watches its group."""
        for source in sources:
            if source.voices is not None:
                source.voices.listening = self.board.active(source.spec.name, VOICES)

    async def update(self, now: datetime | None = None) -> list[ModeChange]:
        """Bring every source's mode to ``now`` (default: the clock); record the changes."""
        async with self._lock:
            return await self._recorded(self.board.update(now or datetime.now(UTC)))

    async def request(self, mode: Mode, source: str | None, by: SetBy) -> list[ModeChange]:
        """Set ``source``'s mode (None: every source's); KeyError names an unknown source."""
        async with self._lock:
            return await self._recorded(self.board.request(mode, source, by, datetime.now(UTC)))

    async def _recorded(self, changes: list[ModeChange]) -> list[ModeChange]:
        if changes and self._record is not None:
            record = self._record
            await asyncio.to_thread(lambda: [record([c], self._context(c.source)) for c in changes])
        return changes
