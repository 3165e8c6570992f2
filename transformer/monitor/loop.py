"""The monitor: every source's audio to events, with the file path's numbers.

Per chunk of a source: its front end (``front``: resampled, anonymised as the source
asks, framed) completes examples; each source keeps a ring of its last 10 examples (``ring``)
and, every ``hop`` examples, its newest window is due. The due windows that reach their
source's loudness gate are embedded (one VGGish call for all sources, each example once, only
when a scored window needs it) and scored (one predictor call); each window's anomalies (the
source's own thresholds) go through its event tracker, a gated window with none, and the starts
and ends through the durable outbox, each carrying its source's privacy method. A new capture
segment (the source reconnected) is not continuous audio: the old segment's held-back audio
is flushed and detected, its open events end ("stream interrupted"), and the source's
front end and ring start again; a source that has ended (``final``) is flushed the same way.
A gap inside a segment (the host fell behind and the queue dropped the source's oldest audio)
flushes the front end and starts a new one at the true stream time, keeping the source's ring
and open events: what is heard after the gap is timed right and goes on the events it continues.

The heavy calls are injected (the embedder and the outbox run in worker
threads, the predictor is awaited), as in ``transformer.analysis.analyzer``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from contract.errors import InvalidConfiguration
from contract.weights_status import WeightsStatus
from transformer.analysis.anomalies import detect_anomalies, is_audible
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings
from transformer.analysis.labels import Labels
from transformer.analysis.types import PredictorScores
from transformer.monitor.chunks import Chunk
from transformer.monitor.front import Examples, SourceFront
from transformer.monitor.ring import Ring, Window, embed_entries, unembedded
from transformer.monitor.sources import SourceSpec
from transformer.privacy import PrivacyRequest, parse_privacy_request
from transformer.privacy.stream import stream_anonymiser

EmbedExamples = Callable[[np.ndarray], np.ndarray]
ScoreWindows = Callable[[np.ndarray], Awaitable[PredictorScores]]
RecordEvents = Callable[[Sequence[EventChange], Mapping[str, Any]], None]


def source_groups(groups: Sequence[AnomalyGroup], source: SourceSpec) -> tuple[AnomalyGroup, ...]:
    """The groups the source watches, with its own thresholds; InvalidConfiguration names unknown
    groups."""
    names = {group.name for group in groups}
    unknown = sorted((set(source.thresholds) | set(source.groups or ())) - names)
    if unknown:
        raise InvalidConfiguration(
            f"source {source.name}: unknown anomaly group(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(names))})"
        )
    watched = set(source.groups or names)
    return tuple(
        dataclasses.replace(group, threshold=source.thresholds[group.name])
        if group.name in source.thresholds
        else group
        for group in groups
        if group.name in watched
    )


@dataclass
class _Source:
    spec: SourceSpec
    groups: tuple[AnomalyGroup, ...]
    tracker: EventTracker
    privacy: PrivacyRequest
    front: SourceFront | None = None  # None between segments
    ring: Ring = field(default_factory=Ring)
    segment: int = 0
    next_start: float | None = None  # stream time the source's next chunk should start at
    gap_from: float | None = None  # where the audio dropped before the next segment start began


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
        privacy: Mapping[str, PrivacyRequest] | None = None,
        session: str = "",
        embedding_official: bool = False,
    ) -> None:
        """``context`` adds fields to every record; ``privacy`` is each source's anonymisation
        (validated, the operator's minimum applied; a source not named gets none); ``session``
        (e.g. a uuid per run) keeps the event ids of two runs apart; ``embedding_official``:
        VGGish and the PCA are the published files (each record then carries the weights
        verdict with the predictor's)."""
        if not 1 <= hop <= EMBEDDINGS_PER_WINDOW:
            raise InvalidConfiguration(
                f"hop must be between 1 and {EMBEDDINGS_PER_WINDOW} examples, got {hop}"
            )
        chosen = dict(privacy or {})
        none = parse_privacy_request("none", {})
        self._sources = {
            spec.name: _Source(
                spec,
                source_groups(groups, spec),
                EventTracker(spec.name, lifecycle, session),
                chosen.get(spec.name, none),
            )
            for spec in sources
        }
        self._embed, self._score, self._record = embed, score, record
        self.labels, self.hop, self.gate_dbfs = labels, hop, gate_dbfs
        self.context = dict(context or {})
        self.embedding_official = embedding_official
        self._weights = WeightsStatus(embedding_official, None).fields()
        self.ended: set[str] = set()  # sources whose end (``final``) has been processed

    def open_groups(self, source: str) -> list[str]:
        """The anomaly groups with an event in progress on ``source``."""
        return self._sources[source].tracker.open_groups

    async def process(self, chunks: Iterable[Chunk]) -> list[EventChange]:
        """Take chunks (any sources, in arrival order); return the event changes they caused.

        A failing part (the predictor down) loses its audio but not the rest of the step: the
        sources that ended or reconnected in it still end their events, the changes are still
        recorded, and then the first error is raised (the caller counts the failed step)."""
        changes: list[EventChange] = []
        errors: list[Exception] = []
        run: list[Chunk] = []
        in_run: dict[str, tuple[int, int]] = {}  # (segment, rate) of each source's chunks in ``run``
        for chunk in chunks:
            source = self._sources[chunk.source]
            front = source.front
            current = in_run.get(chunk.source, (source.segment, front.sample_rate) if front else None)
            continued = current == (chunk.segment, chunk.sample_rate)
            if chunk.final or (current is not None and not continued):
                # what came before is detected first, then the segment's held-back tail; then it ends
                changes += await self._run(run, errors)
                run, in_run = [], {}
                reason = "source finished" if chunk.final else "stream interrupted"
                changes += await self._flush(source, errors) + source.tracker.close(reason)
                if chunk.final:
                    self.ended.add(chunk.source)
            elif continued and _after_gap(chunk, source.next_start):
                changes += await self._run(run, errors)
                run, in_run = [], {}
                changes += await self._flush(source, errors)  # its events stay open
                source.gap_from = source.next_start
            if not chunk.final:
                run.append(chunk)
                in_run[chunk.source] = (chunk.segment, chunk.sample_rate)
                source.next_start = chunk.start_seconds + chunk.samples.shape[0] / chunk.sample_rate
        changes += await self._run(run, errors)
        await self._record_changes(changes)
        if errors:
            raise errors[0]
        return changes

    async def close(self) -> list[EventChange]:
        """End every open event (the monitor stops); they are recorded too."""
        changes = [change for source in self._sources.values() for change in source.tracker.close()]
        await self._record_changes(changes)
        return changes

    async def _run(self, chunks: Sequence[Chunk], errors: list[Exception]) -> list[EventChange]:
        """Chunks without a segment change: fronts (a worker thread), one VGGish call, detection.
        An error is kept in ``errors`` (its audio is lost) and the step goes on."""
        if not chunks:
            return []
        try:
            return await self._detect_completed(await asyncio.to_thread(self._push, chunks))
        except Exception as error:
            errors.append(error)
            return []

    def _push(self, chunks: Sequence[Chunk]) -> list[tuple[_Source, Examples]]:
        """Each source's chunks of the run pushed as one piece (a run holds one segment per
        source): a few large resampler and anonymiser calls cost far less than many small ones."""
        pieces: dict[str, list[np.ndarray]] = {}
        for chunk in chunks:
            source = self._sources[chunk.source]
            if source.front is None:
                self._start_segment(source, chunk)
            pieces.setdefault(chunk.source, []).append(chunk.samples)
        completed = []
        for name, samples in pieces.items():
            source = self._sources[name]
            assert source.front is not None
            examples = source.front.push(samples[0] if len(samples) == 1 else np.concatenate(samples))
            if examples[0].shape[0]:
                completed.append((source, examples))
        return completed

    async def _flush(self, source: _Source, errors: list[Exception]) -> list[EventChange]:
        """Detect what a segment's front end holds back and let the front go (a failure is kept
        in ``errors``: the tail is lost, the caller goes on)."""
        front, source.front = source.front, None
        if front is None:
            return []
        try:
            tail = await asyncio.to_thread(front.finish)
            return await self._detect_completed([(source, tail)]) if tail[0].shape[0] else []
        except Exception as error:
            errors.append(error)
            return []

    def _start_segment(self, source: _Source, chunk: Chunk) -> None:
        """A new front end from ``chunk`` on; after a short gap in the same capture the ring (the
        audio last heard) is kept, after a reconnect or a long gap it starts again."""
        window = source.spec.privacy_window_seconds
        anonymiser = stream_anonymiser(source.privacy, window_seconds=window)
        gap = None if source.gap_from is None else chunk.start_seconds - source.gap_from
        # after a gap longer than a window nothing heard before it belongs with what follows
        short_gap = gap is not None and gap < EMBEDDINGS_PER_WINDOW * EXAMPLE_SECONDS
        source.ring.restart(chunk.start_seconds, keep=chunk.segment == source.segment and short_gap)
        source.gap_from = None
        source.front, source.segment = SourceFront(chunk.sample_rate, anonymiser), chunk.segment

    async def _detect_completed(self, completed: Sequence[tuple[_Source, Examples]]) -> list[EventChange]:
        """New examples into the rings; the due windows the gate lets through are embedded (one
        VGGish call for all sources, each example once) and scored (one predictor call)."""
        due = [
            (source, window)
            for source, (features, levels) in completed
            for window in source.ring.push(features, levels, source.spec.hop or self.hop)
        ]
        audible = [window for source, window in due if self._audible(source, window)]
        await asyncio.to_thread(embed_entries, unembedded(audible), self._embed)
        return await self._detect(due, audible) if due else []

    def _audible(self, source: _Source, window: Window) -> bool:
        gate = source.spec.loudness_gate_dbfs
        return bool(is_audible(np.array([window.level_dbfs]), self.gate_dbfs if gate is None else gate)[0])

    async def _record_changes(self, changes: Sequence[EventChange]) -> None:
        """Record the changes, each source's with its privacy method."""
        if not changes:
            return
        by_source: dict[str, list[EventChange]] = {}
        for change in changes:
            by_source.setdefault(change.source, []).append(change)
        await asyncio.to_thread(self._record_each, by_source)

    def _record_each(self, by_source: Mapping[str, Sequence[EventChange]]) -> None:
        for name, changes in by_source.items():
            privacy = self._sources[name].privacy
            fields = {"privacy": privacy.method, "privacy_params": dict(privacy.params)}
            self._record(changes, {**self.context, **self._weights, **fields})

    async def _detect(
        self, due: Sequence[tuple[_Source, Window]], audible: Sequence[Window]
    ) -> list[EventChange]:
        """Each due window through its source's tracker, in order: the audible ones with the
        anomalies their scores fire, the gated ones with none (their time still passes)."""
        scores: Iterator[np.ndarray] = iter(())
        if audible:
            scored = await self._score(np.stack([window.embeddings() for window in audible]))
            if len(scored.values) != len(audible):
                raise ValueError(
                    f"the predictor answered {len(scored.values)} rows for {len(audible)} windows"
                )
            self._weights = WeightsStatus(self.embedding_official, scored.weights_official).fields()
            scores = iter(scored.values)
        heard = {id(window) for window in audible}
        changes = []
        for source, window in due:
            fired = (
                detect_anomalies(
                    next(scores)[None, :],
                    np.array([window.start_seconds]),
                    np.array([window.end_seconds]),
                    source.groups,
                    labels=self.labels,
                )
                if id(window) in heard
                else []
            )
            changes += source.tracker.update(window.end_seconds, fired)
        return changes


def _after_gap(chunk: Chunk, expected: float | None) -> bool:
    """Whether audio is missing before ``chunk`` (more than half a sample from where the source's
    last chunk ended: the supervisors count samples, so a continuous stream matches exactly)."""
    return expected is not None and abs(chunk.start_seconds - expected) > 0.5 / chunk.sample_rate
