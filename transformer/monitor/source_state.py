"""What the monitor keeps per source: its groups and detector, tracker, privacy, front end, ring,
segment and gap bookkeeping, and the clock that dates its events."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contract.errors import InvalidConfiguration
from transformer.analysis.anomalies import Anomaly, Detector, WindowSpan
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.detectors.baseline import BaselineStore, HourlyBaseline
from transformer.analysis.detectors.novelty import NoveltyModel, NoveltySettings, NoveltyStore
from transformer.analysis.detectors.sudden_loud import SuddenLoud, SuddenLoudSettings, source_settings
from transformer.analysis.detectors.voices import Voices
from transformer.analysis.events import EventTracker
from transformer.analysis.labels import Labels
from transformer.monitor.front import SourceFront
from transformer.monitor.ring import Ring
from transformer.monitor.sources import SourceSpec
from transformer.monitor.window_scores import WindowScores
from transformer.privacy import PrivacyRequest


def unknown_groups(groups: Sequence[AnomalyGroup], source: SourceSpec) -> list[str]:
    """What the source names that is no configured anomaly group, field by field (one sentence
    each, naming the source and the field)."""
    names = {group.name for group in groups}
    problems = []
    for field_name, named in (("groups", source.groups or ()), ("thresholds", source.thresholds)):
        unknown = sorted(set(named) - names)
        if unknown:
            problems.append(
                f"source {source.name}: {field_name}: unknown anomaly group(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(names))})"
            )
    return problems


def source_groups(groups: Sequence[AnomalyGroup], source: SourceSpec) -> tuple[AnomalyGroup, ...]:
    """The groups the source watches, with its own thresholds; InvalidConfiguration names unknown
    groups."""
    problems = unknown_groups(groups, source)
    if problems:
        raise InvalidConfiguration("; ".join(problems))
    names = {group.name for group in groups}
    watched = set(source.groups or names)
    return tuple(
        dataclasses.replace(group, threshold=source.thresholds[group.name])
        if group.name in source.thresholds
        else group
        for group in groups
        if group.name in watched
    )


def loud_detector(
    spec: SourceSpec, service: SuddenLoudSettings | None, store: BaselineStore | None
) -> SuddenLoud | None:
    """The source's sudden-loud detector (None: off), its learned baseline restored from ``store``."""
    settings = source_settings(spec.sudden_loud, service)
    if settings is None:
        return None
    baseline = HourlyBaseline()
    if store is not None:
        store.restore(spec.name, baseline)
    return SuddenLoud(settings, baseline)


def novelty_model(
    name: str, settings: NoveltySettings, labels: Labels, store: NoveltyStore | None
) -> NoveltyModel:
    """The source's novelty model, restored from ``store`` when it has one."""
    model = NoveltyModel(settings, labels)
    if store is not None:
        store.restore(name, model)
    return model


@dataclass
class SourceState:
    """One source as the monitor follows it: its detection, events, privacy, front end and clock."""

    spec: SourceSpec
    detector: Detector
    tracker: EventTracker
    privacy: PrivacyRequest
    front: SourceFront | None = None  # None between segments
    ring: Ring = field(default_factory=Ring)
    segment: int = 0
    next_start: float | None = None  # stream time the source's next chunk should start at
    gap_from: float | None = None  # where the audio dropped before the next segment start began
    clock: tuple[float, float] | None = None  # (stream seconds, wall-clock epoch) of its newest audio
    windows: int = 0  # windows detected, and of them loud enough for the gate (what was heard)
    heard_windows: int = 0
    lost_windows: int = 0  # due in a detection step that failed (predictor down, wrong model...)
    events: int = 0  # events started
    loud: SuddenLoud | None = None  # the sudden-loud detector, when the source runs it
    voices: Voices | None = None  # the speech presence detector, when the service runs it
    novelty: NoveltyModel | None = None  # its model of its normal sounds, when the service runs it
    latest: WindowScores | None = None  # its newest scored window (the page's live view)

    def wall_epoch(self, stream_seconds: float) -> float | None:
        """The wall-clock epoch of a stream time, from the newest audio's arrival (None: no clock)."""
        return None if self.clock is None else self.clock[1] - (self.clock[0] - stream_seconds)

    def wall_time(self, stream_seconds: float | None) -> str | None:
        """The wall-clock time (UTC ISO 8601) of a stream time, from the newest audio's arrival."""
        epoch = None if stream_seconds is None else self.wall_epoch(stream_seconds)
        if epoch is None:
            return None
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")

    def detector_hits(self, span: WindowSpan) -> list[Anomaly]:
        """The class-agnostic detectors' hits in a window (they read loudness and speech times
        only: a window the gate held back gets them too)."""
        hits = [] if self.loud is None else self.loud.window(span, self.local_hour(span.end_seconds))
        return hits if self.voices is None else hits + self.voices.window(span)

    def local_hour(self, stream_seconds: float) -> int:
        """The host's local hour of day (0-23) when a stream time was heard (now, without a clock)."""
        epoch = self.wall_epoch(stream_seconds)
        return (datetime.now() if epoch is None else datetime.fromtimestamp(epoch)).hour
