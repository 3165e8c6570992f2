"""The monitor: every source's audio to events, with the file path's numbers.

Per chunk of a source: its front end (``front``: resampled, anonymised as the source
asks, framed) completes examples; each source keeps a ring of its last 10 examples (``ring``)
and, every ``hop`` examples, its newest window is due. The due windows that reach their
source's loudness gate are embedded (one call of the service's shared embedder for all sources,
each example once, only when a scored window needs it) and scored (one predictor call); each
window goes through the one detection step (``analysis.anomalies.Detector``, the source's own
groups, thresholds and gate) and the source's event tracker, as a recording's windows do, and
the starts and ends are recorded with the source's ``RecordContext`` (the record itself is
built by ``analysis.records`` in the recorder: the monitor builds none). A new capture
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

import numpy as np

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from contract.errors import InvalidConfiguration
from contract.weights_status import WeightsStatus
from transformer.analysis.anomalies import Detector
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.detectors.baseline import BaselineStore
from transformer.analysis.detectors.novelty import NoveltySettings, NoveltyStore
from transformer.analysis.detectors.sudden_loud import SuddenLoudSettings
from transformer.analysis.detectors.voices import Voices, VoicesSettings
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings
from transformer.analysis.labels import Labels
from transformer.analysis.modes import ModeBoard
from transformer.analysis.record_context import RecordContext
from transformer.analysis.types import PredictorScores
from transformer.metrics import count_events
from transformer.monitor.chunks import Chunk
from transformer.monitor.front import Examples, SourceFront
from transformer.monitor.learnt import Learnt
from transformer.monitor.mode_keeper import ModeKeeper, RecordModes
from transformer.monitor.ring import Window, embed_entries, unembedded
from transformer.monitor.source_state import SourceState, loud_detector, novelty_model, source_groups
from transformer.monitor.sources import SourceSpec
from transformer.monitor.window_scores import ObserveWindows, WindowScores, window_scores
from transformer.privacy import PrivacyRequest, parse_privacy_request
from transformer.privacy.stream import stream_anonymiser

#: (k, 96, 64) log-mel -> (k, 128) uint8 embeddings (the service's shared embedder)
EmbedExamples = Callable[[np.ndarray], Awaitable[np.ndarray]]
ScoreWindows = Callable[[np.ndarray], Awaitable[PredictorScores]]
RecordEvents = Callable[[Sequence[EventChange], RecordContext], None]


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
        analyzer_id: str = "audioguard",
        privacy: Mapping[str, PrivacyRequest] | None = None,
        session: str = "",
        embedding_official: bool = False,
        sudden_loud: SuddenLoudSettings | None = None,
        baselines: BaselineStore | None = None,
        voices: VoicesSettings | None = None,
        novelty: NoveltySettings | None = None,
        novelty_store: NoveltyStore | None = None,
        modes: ModeBoard | None = None,
        record_modes: RecordModes | None = None,
        observe: ObserveWindows | None = None,
    ) -> None:
        """``analyzer_id`` is in every record; ``privacy`` is each source's anonymisation
        (validated, the operator's minimum applied; a source not named gets none); ``session``
        (e.g. a uuid per run) keeps the event ids of two runs apart and is in every record;
        ``embedding_official``: VGGish and the PCA are the published files (each record then
        carries the weights verdict with the predictor's); ``sudden_loud``: the service's
        sudden-loud detector (None: off unless a source turns it on), each source's learned
        baseline restored from and saved to ``baselines``; ``modes``: each source's mode and the
        groups it watches (None: every group, always), its changes recorded by ``record_modes``;
        ``voices``: the speech presence detector (``voices_while_armed``: with ``modes`` only,
        it listens while a source's mode watches the group); ``novelty``: each source's model of
        its normal sounds (``unusual_sound``), kept in ``novelty_store``; ``observe``: given every
        detected window's scores (``window_scores``: the page's score store), in a worker thread."""
        if not 1 <= hop <= EMBEDDINGS_PER_WINDOW:
            raise InvalidConfiguration(
                f"hop must be between 1 and {EMBEDDINGS_PER_WINDOW} examples, got {hop}"
            )
        chosen = dict(privacy or {})
        none = parse_privacy_request("none", {})
        self._sources = {
            spec.name: SourceState(
                spec,
                Detector(
                    source_groups(groups, spec),
                    labels,
                    gate_dbfs if spec.loudness_gate_dbfs is None else spec.loudness_gate_dbfs,
                ),
                EventTracker(spec.name, lifecycle, session),
                chosen.get(spec.name, none),
            )
            for spec in sources
        }
        for state in self._sources.values():
            state.loud = loud_detector(state.spec, sudden_loud, baselines)
            state.voices = None if voices is None or modes is None else Voices(voices)
            state.novelty = (
                None if novelty is None else novelty_model(state.spec.name, novelty, labels, novelty_store)
            )
        self.learnt = Learnt(self._sources, baselines, novelty_store)
        self.modes = None if modes is None else ModeKeeper(modes, record_modes, self.record_context)
        self._embed, self._score, self._record = embed, score, record
        self._observe = observe
        self.hop = hop
        self.analyzer_id, self.session = analyzer_id, session
        self.embedding_official = embedding_official
        self._weights = WeightsStatus(embedding_official, None)
        self.ended: set[str] = set()  # sources whose end (``final``) has been processed

    def open_groups(self, source: str) -> list[str]:
        """The anomaly groups with an event in progress on ``source``."""
        return self._sources[source].tracker.open_groups

    def heard(self, source: str) -> SourceState:
        """What the monitor made of ``source`` so far: its windows, those loud enough for its gate,
        its events (read them, do not change them)."""
        return self._sources[source]

    async def process(self, chunks: Iterable[Chunk]) -> list[EventChange]:
        """Take chunks (any sources, in arrival order); return the event changes they caused.

        A failing part (the predictor down) loses its audio but not the rest of the step: the
        sources that ended or reconnected in it still end their events, the changes are still
        recorded, and then the first error is raised (the caller counts the failed step)."""
        if self.modes is not None:  # a scheduled switch takes effect with the next audio
            await self.modes.update()
            self.modes.tune(self._sources.values())
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
                changes += self._timed(await self._run(run, errors))
                run, in_run = [], {}
                reason = "source finished" if chunk.final else "stream interrupted"
                ended = await self._flush(source, errors, ended=True)
                changes += self._timed(ended + source.tracker.close(reason, source_ended=chunk.final))
                if chunk.final:
                    self.ended.add(chunk.source)
                    self.learnt.save_soon()  # what it learnt: saved with this step
            elif continued and _after_gap(chunk, source.next_start):
                changes += self._timed(await self._run(run, errors))
                run, in_run = [], {}
                changes += self._timed(await self._flush(source, errors, ended=False))  # events stay open
                source.gap_from = source.next_start
            if not chunk.final:
                run.append(chunk)
                in_run[chunk.source] = (chunk.segment, chunk.sample_rate)
                source.next_start = chunk.start_seconds + chunk.samples.shape[0] / chunk.sample_rate
                arrived = chunk.received_at
                source.clock = None if arrived is None else (source.next_start, arrived)
        changes += self._timed(await self._run(run, errors))
        await self._record_changes(changes)
        if self.learnt.due():
            await asyncio.to_thread(self.learnt.save)
        if errors:
            raise errors[0]
        return changes

    async def close(self) -> list[EventChange]:
        """End every open event (the monitor stops); they are recorded too; what was learnt saved."""
        changes = self._timed([c for source in self._sources.values() for c in source.tracker.close()])
        await self._record_changes(changes)
        await asyncio.to_thread(self.learnt.save)
        return changes

    def _timed(self, changes: Sequence[EventChange]) -> list[EventChange]:
        """``changes`` with their wall-clock times, from their source's clock as it is now (before
        a later chunk, say after a reconnect, moves it on)."""
        timed = []
        for change in changes:
            source = self._sources[change.source]
            start, end = source.wall_time(change.start_seconds), source.wall_time(change.end_seconds)
            timed.append(dataclasses.replace(change, started_at=start, ended_at=end))
        return timed

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

    def _push(self, chunks: Sequence[Chunk]) -> list[tuple[SourceState, Examples]]:
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
            if examples.size:
                completed.append((source, examples))
        return completed

    async def _flush(self, source: SourceState, errors: list[Exception], *, ended: bool) -> list[EventChange]:
        """Detect what a segment's front end holds back and let the front go (a failure is kept
        in ``errors``: the tail is lost, the caller goes on); ``ended``: the segment is over (not a
        gap inside it)."""
        front, source.front = source.front, None
        if front is None:
            return []
        try:
            tail = await asyncio.to_thread(front.finish)
            changes = await self._detect_completed([(source, tail)]) if tail.size else []
            if ended:  # a stream shorter than a window still gets its one window
                changes += await self._detect([(source, w) for w in source.ring.finish()])
            return changes
        except Exception as error:
            errors.append(error)
            return []

    def _start_segment(self, source: SourceState, chunk: Chunk) -> None:
        """A new front end from ``chunk`` on; after a short gap in the same capture the ring (the
        audio last heard) is kept, after a reconnect or a long gap it starts again."""
        window = source.spec.privacy_window_seconds
        anonymiser = stream_anonymiser(source.privacy, window_seconds=window)
        gap = None if source.gap_from is None else chunk.start_seconds - source.gap_from
        # after a gap longer than a window nothing heard before it belongs with what follows
        short_gap = gap is not None and gap < EMBEDDINGS_PER_WINDOW * EXAMPLE_SECONDS
        source.ring.restart(chunk.start_seconds, keep=chunk.segment == source.segment and short_gap)
        source.gap_from = None
        tap = None
        if source.voices is not None:
            source.voices.restart(chunk.start_seconds)
            tap = source.voices.push
        source.front, source.segment = SourceFront(chunk.sample_rate, anonymiser, tap), chunk.segment

    async def _detect_completed(self, completed: Sequence[tuple[SourceState, Examples]]) -> list[EventChange]:
        """New examples into the rings; the due windows the gate lets through are embedded (one
        VGGish call for all sources, each example once) and scored (one predictor call)."""
        due = [
            (source, window)
            for source, examples in completed
            for window in source.ring.push(
                examples.features, examples.levels, source.spec.hop or self.hop, examples.profiles
            )
        ]
        return await self._detect(due) if due else []

    def record_context(self, name: str) -> RecordContext:
        """What every record of source ``name`` says about where it came from."""
        privacy = self._sources[name].privacy
        return RecordContext(
            origin="live",
            source=name,
            analyzer_id=self.analyzer_id,
            privacy_method=privacy.method,
            privacy_params=dict(privacy.params),
            weights=self._weights,
            session=self.session or None,
        )

    async def _record_changes(self, changes: Sequence[EventChange]) -> None:
        """Record the (timed) changes, each source's with its context."""
        if not changes:
            return
        count_events(changes, "live")
        for change in changes:
            if change.change == "start":
                self._sources[change.source].events += 1
        by_source: dict[str, list[EventChange]] = {}
        for change in changes:
            by_source.setdefault(change.source, []).append(change)
        await asyncio.to_thread(self._record_each, by_source)

    def _record_each(self, by_source: Mapping[str, Sequence[EventChange]]) -> None:
        for name, changes in by_source.items():
            self._record(changes, self.record_context(name))

    async def _detect(self, due: Sequence[tuple[SourceState, Window]]) -> list[EventChange]:
        """Each due window through its source's tracker, in order: the audible ones (embedded
        and scored) with the anomalies their scores fire, the gated ones with none (their time
        still passes)."""
        audible = [window for source, window in due if source.detector.audible(window.level_dbfs)]
        scores: Iterator[np.ndarray] = iter(())
        try:
            await embed_entries(unembedded(audible), self._embed)
            if audible:
                scored = await self._score(np.stack([window.embeddings() for window in audible]))
                if len(scored.values) != len(audible):
                    raise ValueError(
                        f"the predictor answered {len(scored.values)} rows for {len(audible)} windows"
                    )
                self._weights = WeightsStatus(self.embedding_official, scored.weights_official)
                scores = iter(scored.values)
        except Exception:  # these windows are lost: the source's last line must not say "too short"
            for source, _ in due:
                source.lost_windows += 1
            raise
        heard = {id(window) for window in audible}
        changes = []
        observed = []
        for source, window in due:
            fired = []
            source.windows += 1
            row = None
            if id(window) in heard:
                source.heard_windows += 1
                row = source.detector.check(next(scores)[None, :])[0]
                fired = source.detector.window(row, window.span())
                if source.novelty is not None:  # it needs the embeddings: scored windows only
                    fired += source.novelty.window(window.span(), window.embeddings(), row)
            fired += source.detector_hits(window.span())
            if self.modes is not None:
                fired = self.modes.fired(source.spec.name, fired)
            changes += source.tracker.update(window.end_seconds, fired)
            observed.append(self._seen(source, window, row))
        if self._observe is not None:
            await asyncio.to_thread(self._observe, observed)
        return changes

    def _seen(self, source: SourceState, window: Window, row: np.ndarray | None) -> WindowScores:
        """What the window scored (the source's ``latest`` when it was scored)."""
        at = source.wall_epoch(window.end_seconds)
        seen = window_scores(source.spec.name, self.session, source.segment, window, at, source.detector, row)
        if row is not None:
            source.latest = seen
        return seen


def _after_gap(chunk: Chunk, expected: float | None) -> bool:
    """Whether audio is missing before ``chunk`` (more than half a sample from where the source's
    last chunk ended: the supervisors count samples, so a continuous stream matches exactly)."""
    return expected is not None and abs(chunk.start_seconds - expected) > 0.5 / chunk.sample_rate
