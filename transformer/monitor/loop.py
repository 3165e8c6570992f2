"""The monitor: every source's audio to events, with the file path's numbers.

Per chunk of a source: its streaming front end (``stream_features``) completes
examples; the new examples of all sources are embedded in one VGGish call
(each example once); each source keeps a ring of its last 10 embeddings and,
every ``hop`` examples, its newest window is due; the due windows of all sources
are scored in one predictor call; each window's anomalies (the source's own
thresholds and loudness gate) go through its event tracker, and the starts and
ends through the durable outbox. A new capture segment (the source reconnected)
is not continuous audio: the source's front end and ring start again and its
open events end ("stream interrupted").

The heavy calls are injected (the embedder and the outbox run in worker
threads, the predictor is awaited), as in ``transformer.analysis.analyzer``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from contract.errors import InvalidConfiguration
from contract.weights_status import WeightsStatus
from transformer.analysis.anomalies import detect_anomalies
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings
from transformer.analysis.labels import Labels
from transformer.analysis.types import PredictorScores
from transformer.monitor.sources import SourceSpec
from transformer.monitor.stream_features import StreamingExamples
from transformer.monitor.supervisor import Chunk

EmbedExamples = Callable[[np.ndarray], np.ndarray]
ScoreWindows = Callable[[np.ndarray], Awaitable[PredictorScores]]
RecordEvents = Callable[[Sequence[EventChange], Mapping[str, Any]], None]


def source_groups(groups: Sequence[AnomalyGroup], source: SourceSpec) -> tuple[AnomalyGroup, ...]:
    """The groups with the source's own thresholds; InvalidConfiguration names unknown groups."""
    names = {group.name for group in groups}
    unknown = sorted(set(source.thresholds) - names)
    if unknown:
        raise InvalidConfiguration(
            f"source {source.name}: unknown anomaly group(s) {', '.join(unknown)} in thresholds "
            f"(known: {', '.join(sorted(names))})"
        )
    return tuple(
        dataclasses.replace(group, threshold=source.thresholds[group.name])
        if group.name in source.thresholds
        else group
        for group in groups
    )


@dataclass
class _Source:
    spec: SourceSpec
    groups: tuple[AnomalyGroup, ...]
    tracker: EventTracker
    front: StreamingExamples = field(default_factory=StreamingExamples)
    ring: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=EMBEDDINGS_PER_WINDOW))
    levels: deque[float] = field(default_factory=lambda: deque(maxlen=EMBEDDINGS_PER_WINDOW))
    examples: int = 0  # examples embedded in this segment
    offset_seconds: float = 0.0  # stream time where this segment's audio starts
    since_window: int = 0
    segment: int = 0


@dataclass(frozen=True)
class _Window:
    source: _Source
    embeddings: np.ndarray  # (10, 128) uint8
    level_dbfs: float
    start_seconds: float
    end_seconds: float


class Monitor:
    """Every configured source, from captured chunks to recorded events."""

    def __init__(
        self,
        sources: Sequence[SourceSpec],
        *,
        embed: EmbedExamples,
        score: ScoreWindows,
        record: RecordEvents,
        groups: Sequence[AnomalyGroup],
        labels: Labels,
        lifecycle: LifecycleSettings | None = None,
        hop: int = 1,
        gate_dbfs: float | None = None,
        context: Mapping[str, Any] | None = None,
        session: str = "",
        embedding_official: bool = False,
    ) -> None:
        """``context`` adds fields to every record; ``session`` (e.g. a uuid per run) keeps the
        event ids of two runs apart; ``embedding_official``: VGGish and the PCA are the published
        files (each record then carries the weights verdict with the predictor's)."""
        if not 1 <= hop <= EMBEDDINGS_PER_WINDOW:
            raise InvalidConfiguration(
                f"hop must be between 1 and {EMBEDDINGS_PER_WINDOW} examples, got {hop}"
            )
        for spec in sources:
            if spec.privacy not in (None, "none"):
                raise InvalidConfiguration(
                    f"source {spec.name}: privacy {spec.privacy!r} on a live stream is not available yet "
                    "(only 'none'); its anonymisation must be seamless across chunks first"
                )
        self._sources = {
            spec.name: _Source(spec, source_groups(groups, spec), EventTracker(spec.name, lifecycle, session))
            for spec in sources
        }
        self._embed, self._score, self._record = embed, score, record
        self.labels, self.hop, self.gate_dbfs = labels, hop, gate_dbfs
        self.context = dict(context or {})
        self.embedding_official = embedding_official
        self._weights = WeightsStatus(embedding_official, None).fields()

    def open_groups(self, source: str) -> list[str]:
        """The anomaly groups with an event in progress on ``source``."""
        return self._sources[source].tracker.open_groups

    async def process(self, chunks: Iterable[Chunk]) -> list[EventChange]:
        """Take chunks (any sources, in arrival order); return the event changes they caused."""
        changes: list[EventChange] = []
        completed: list[tuple[_Source, np.ndarray, np.ndarray]] = []
        ended: list[_Source] = []
        for chunk in chunks:
            source = self._sources[chunk.source]
            if chunk.final:  # its audio before this point is detected first, then its events end
                ended.append(source)
                continue
            if chunk.segment != source.segment:
                changes += self._restart(source, chunk)
            examples, levels = source.front.push(chunk.samples)
            if examples.shape[0]:
                completed.append((source, examples, levels))
        if completed:
            stacked = np.concatenate([examples for _, examples, _ in completed])
            embeddings = await asyncio.to_thread(self._embed, stacked)  # one VGGish call for all sources
            windows = self._windows(completed, embeddings)
            if windows:
                changes += await self._detect(windows)
        for source in ended:
            changes += source.tracker.close("source finished")
        if changes:
            await asyncio.to_thread(self._record, changes, {**self.context, **self._weights})
        return changes

    async def close(self) -> list[EventChange]:
        """End every open event (the monitor stops); they are recorded too."""
        changes = [change for source in self._sources.values() for change in source.tracker.close()]
        if changes:
            await asyncio.to_thread(self._record, changes, {**self.context, **self._weights})
        return changes

    def _restart(self, source: _Source, chunk: Chunk) -> list[EventChange]:
        ended = source.tracker.close("stream interrupted") if source.segment else []
        source.front, source.segment = StreamingExamples(), chunk.segment
        source.ring.clear()
        source.levels.clear()
        source.examples, source.since_window = 0, 0
        source.offset_seconds = chunk.start_seconds
        return ended

    def _windows(
        self, completed: Sequence[tuple[_Source, np.ndarray, np.ndarray]], embeddings: np.ndarray
    ) -> list[_Window]:
        windows, row = [], 0
        for source, examples, levels in completed:
            for level in levels:
                source.ring.append(embeddings[row])
                source.levels.append(float(level))
                row += 1
                source.examples += 1
                source.since_window += 1
                if len(source.ring) == EMBEDDINGS_PER_WINDOW and source.since_window >= self.hop:
                    source.since_window = 0
                    end = source.offset_seconds + source.examples * EXAMPLE_SECONDS
                    windows.append(
                        _Window(
                            source,
                            np.stack(source.ring),
                            max(source.levels),
                            end - EMBEDDINGS_PER_WINDOW * EXAMPLE_SECONDS,
                            end,
                        )
                    )
            assert examples.shape[0] == levels.shape[0]
        return windows

    async def _detect(self, windows: Sequence[_Window]) -> list[EventChange]:
        scored = await self._score(np.stack([window.embeddings for window in windows]))
        self._weights = WeightsStatus(self.embedding_official, scored.weights_official).fields()
        changes = []
        for window, scores in zip(windows, scored.values, strict=True):
            gate = window.source.spec.loudness_gate_dbfs
            gate = self.gate_dbfs if gate is None else gate
            fired = detect_anomalies(
                scores[None, :],
                np.array([window.start_seconds]),
                np.array([window.end_seconds]),
                window.source.groups,
                window_dbfs=np.array([window.level_dbfs]),
                gate_dbfs=gate,
                labels=self.labels,
            )
            changes += window.source.tracker.update(window.end_seconds, fired)
        return changes
