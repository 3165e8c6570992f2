"""The live pipeline run over recordings, as fast as the host allows.

Each recording becomes a ``file:`` source with ``realtime: false`` (the capture waits for the
detection instead of dropping audio) and the source's privacy method, in a sources file of its
own; ``wiring.monitor_service`` then runs them as ``audioguard monitor`` and the service do:
ffmpeg capture, the streaming front end (resampling, seamless anonymisation, log-mel), the
loudness gate, VGGish, the classifier, the detection step and the event lifecycle. Nothing of
that road is replaced. Two taps watch it: the events it records (every ``end`` change: a
complete event) and, for each window the detection step sees, its span and class scores, with
every hop the lifecycle takes (``Heard``). Those scores let ``replay`` compute other operating
points and ``calibrate`` choose thresholds: only scores are kept, never audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from transformer.analysis.anomalies import Anomaly, Detector, WindowSpan
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings

if TYPE_CHECKING:
    from audioguard.offline import OfflineClassifier
    from transformer.analysis.record_context import RecordContext

#: recordings run at once (each one ffmpeg process and one source of the monitor)
SOURCES_AT_ONCE: Final = 8


@dataclass
class Heard:
    """What the live pipeline made of one recording under one privacy method."""

    events: list[EventChange] = field(default_factory=list)  # complete events (their ``end``)
    hops: list[float] = field(default_factory=list)  # the end of every window the lifecycle took
    windows: dict[float, tuple[WindowSpan, np.ndarray]] = field(default_factory=dict)  # by end time
    alerts: dict[str, float] = field(default_factory=dict)  # event id -> the hop that started it
    seconds: float = 0.0  # the audio's duration (the last hop's end, at least)
    detector: Detector | None = None  # the source's detection step (groups, thresholds, gate)
    failure: str = ""  # what went wrong with the source (it failed, windows were lost)
    lifecycle: LifecycleSettings | None = None


@dataclass(frozen=True)
class _ScoreTap(Detector):
    """The source's own detector, which also keeps each window's span and scores."""

    heard: Heard = field(default_factory=Heard, compare=False)

    def window(self, row: np.ndarray, span: WindowSpan, index: int = 0) -> list[Anomaly]:
        self.heard.windows[span.end_seconds] = (span, np.asarray(row, dtype=np.float32))
        return super().window(row, span, index)


class _HopTap(EventTracker):
    """The source's own tracker, which also keeps the time of every hop."""

    heard: Heard

    def update(self, hop_end_seconds: float, fired: Iterable[Anomaly]) -> list[EventChange]:
        self.heard.hops.append(hop_end_seconds)
        self.heard.seconds = max(self.heard.seconds, hop_end_seconds)
        changes = super().update(hop_end_seconds, fired)
        for change in changes:
            if change.change == "start":
                self.heard.alerts[change.event_id] = hop_end_seconds
        return changes


def _tap(state: Any, heard: Heard) -> None:
    """Give a source state the tapped detector and tracker (same groups, settings, session)."""
    old = state.detector
    state.detector = _ScoreTap(old.groups, old.labels, old.gate_dbfs, heard=heard)
    tracker = _HopTap(state.tracker.source, state.tracker.settings, state.tracker.session)
    tracker.heard = heard
    state.tracker = tracker
    heard.detector, heard.lifecycle = state.detector, tracker.settings


def sources_document(files: Sequence[Path], privacy: str | None) -> dict[str, Any]:
    """The sources file of ``files``: ``r0``, ``r1`` ... played as fast as the detection goes."""
    entry: dict[str, Any] = {} if privacy is None else {"privacy": privacy}
    return {
        "sources": [
            {"name": f"r{index}", "url": f"file:{path.resolve()}", "realtime": False, **entry}
            for index, path in enumerate(files)
        ]
    }


async def run_recordings(
    classifier: OfflineClassifier,
    files: Sequence[Path],
    privacy: str | None = None,
    *,
    lifecycle: LifecycleSettings | None = None,
    hop: int | None = None,
    ffmpeg: str = "ffmpeg",
    sources_at_once: int = SOURCES_AT_ONCE,
) -> list[Heard]:
    """What the live pipeline hears in each file, in order (``sources_at_once`` at a time)."""
    heard: list[Heard] = []
    for start in range(0, len(files), sources_at_once):
        part = files[start : start + sources_at_once]
        with tempfile.TemporaryDirectory(prefix="audioguard-evaluate-") as folder:
            sources = Path(folder) / "sources.json"
            sources.write_text(json.dumps(sources_document(part, privacy)))
            by_name = await run_sources(classifier, sources, lifecycle=lifecycle, hop=hop, ffmpeg=ffmpeg)
        ordered = [by_name[f"r{index}"] for index in range(len(part))]
        failures = [f"{path}: {one.failure}" for path, one in zip(part, ordered, strict=True) if one.failure]
        if failures:
            raise RuntimeError("the live pipeline did not analyse every recording: " + "; ".join(failures))
        heard += ordered
    return heard


async def run_sources(
    classifier: OfflineClassifier,
    sources_file: Path,
    *,
    duration: float | None = None,
    lifecycle: LifecycleSettings | None = None,
    hop: int | None = None,
    ffmpeg: str = "ffmpeg",
) -> dict[str, Heard]:
    """What the live pipeline hears from each source of ``sources_file``: until every source has
    ended, or for ``duration`` seconds (live sources); the open events are then ended."""
    from transformer import wiring
    from transformer.analysis.types import PredictorScores
    from transformer.monitor.notices import Notice

    plan = wiring.listening(classifier.settings, sources_file)
    heard = {spec.name: Heard() for spec in plan.sources}

    def record(changes: Sequence[EventChange], _context: RecordContext) -> None:
        for change in changes:
            if change.change == "end":
                heard[change.source].events.append(change)

    def notify(notice: Notice) -> None:
        if notice.warning and notice.source in heard:
            heard[notice.source].failure = notice.line("").strip()

    async def score(windows: np.ndarray) -> PredictorScores:
        values = await asyncio.to_thread(classifier.classifier.predict, windows)
        return PredictorScores(values, classifier.weights.classifier_official)

    worker = wiring.embedding_worker(classifier.settings, classifier.pipeline, "audioguard-evaluate")
    service = wiring.monitor_service(
        classifier.settings,
        plan,
        embed=worker.embed_examples,
        score=score,
        record=record,
        groups=classifier.groups,
        labels=classifier.labels,
        embedding_official=classifier.weights.embedding_official,
        lifecycle_override=lifecycle,
        hop=hop,
        ffmpeg=ffmpeg,
        notify=notify,
    )
    for name, one in heard.items():
        _tap(service.monitor.heard(name), one)
    await service.start(register_metrics=False)
    try:
        if duration is None:
            await service.wait_sources_done()
        else:  # a live source never ends: listen this long
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration):
                    await service.wait_sources_done()
    finally:
        await service.stop()
        await worker.aclose()
    for name, one in heard.items():
        lost = service.monitor.heard(name).lost_windows
        if lost and not one.failure:
            one.failure = f"{lost} windows lost (a detection step failed)"
    return heard


def with_thresholds(detector: Detector, thresholds: dict[str, float]) -> Detector:
    """``detector`` with some groups' thresholds replaced."""
    groups = tuple(
        dataclasses.replace(g, threshold=thresholds[g.name]) if g.name in thresholds else g
        for g in detector.groups
    )
    return Detector(groups, detector.labels, detector.gate_dbfs)
