"""``sudden_loud``: a sound that rises at least ``rise_db`` over the background within ``rise_seconds``.

Class-agnostic: it reads only the 0.12-s loudness profile every window already carries
(``transformer.audio.loudness``), never the audio and never the classifier, so its figures do not
depend on the weights. Each 0.12-s level is taken in once, in stream order, whatever window
brings it (overlapping windows at hop 1, a gap, a new segment):

- the **reference** it must rise over is the higher of the short-term background (a high
  percentile of the levels of the ``background_seconds`` that end ``rise_seconds`` before it: a
  level that climbs slowly, rain starting, drags this along and never rises fast enough; a bed
  of short sounds, birdsong, lifts it over them) and the source's learned
  baseline for the hour of day (``baseline.HourlyBaseline``: a street that is loud all afternoon
  does not make every passing bus an event); a recording has no history and gets the short-term
  background only;
- an **onset** is a level at least ``rise_db`` over the reference and at or above ``floor_dbfs``
  (so a pin drop in a silent room is no event); the sound lasts while its level stays at least
  ``rise_db / 2`` over that reference, and its peak level is kept;
- every classifier window that holds an onset reports a hit of group ``sudden_loud`` (score: the
  rise in dB, threshold: ``rise_db``; ``measures``: rise, peak and reference levels), and the
  event lifecycle (``transformer.analysis.events``) makes events of them as of the label groups'.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from transformer.analysis.anomalies import Anomaly, WindowSpan
from transformer.analysis.detectors.baseline import HourlyBaseline
from transformer.analysis.detectors.ranges import out_of_range, raise_problems
from transformer.audio.loudness import PROFILE_PARTS, PROFILE_SECONDS

GROUP: Final = "sudden_loud"
LABEL: Final = "Sudden loud sound"
#: a jump in stream time longer than this (a gap, a new segment) starts the background again
_CONTINUITY_SECONDS: Final = 1.0


@dataclass(frozen=True)
class SuddenLoudSettings:
    """When a rise in level is a sudden loud sound (defaults measured: docs/detectors.md).

    Attributes:
        rise_db: how far over the reference a level must rise (dB).
        rise_seconds: within how long: the reference ends this long before the level.
        floor_dbfs: the level must also reach this absolute level (dBFS).
        background_seconds: the span whose levels make the short-term background.
        background_percentile: which percentile of them is the background (50: the median; higher:
            a bed full of short sounds, birdsong, a ticking clock, raises it over those sounds).
    """

    rise_db: float = 10.0
    rise_seconds: float = 0.5
    floor_dbfs: float = -45.0
    background_seconds: float = 3.0
    background_percentile: float = 90.0

    def __post_init__(self) -> None:
        raise_problems(
            out_of_range("rise_db", self.rise_db, 3.0, 60.0, "dB"),
            out_of_range("rise_seconds", self.rise_seconds, PROFILE_SECONDS, 5.0),
            out_of_range("floor_dbfs", self.floor_dbfs, -120.0, 0.0),
            out_of_range("background_seconds", self.background_seconds, 1.0, 60.0),
            out_of_range("background_percentile", self.background_percentile, 0.0, 100.0),
        )


@dataclass
class Onset:
    """One sudden loud sound: where it starts and ends, its peak level and the reference it rose over."""

    start_seconds: float
    reference_dbfs: float
    peak_dbfs: float
    end_seconds: float

    @property
    def rise_db(self) -> float:
        return self.peak_dbfs - self.reference_dbfs


@dataclass
class SuddenLoud:
    """The onset detector of one source (or one recording): stateful, fed windows in stream order.

    ``baseline``: the source's learned baseline (None: a recording, no history).
    """

    settings: SuddenLoudSettings = field(default_factory=SuddenLoudSettings)
    baseline: HourlyBaseline | None = None
    _history: deque[tuple[float, float]] = field(default_factory=deque)  # (start, level) of past parts
    _next: float = -math.inf  # stream time of the next part not yet taken in
    _active: Onset | None = None
    _onsets: deque[Onset] = field(default_factory=deque)  # recent ones, for the windows holding them

    def window(self, span: WindowSpan, hour: int | None = None, index: int = 0) -> list[Anomaly]:
        """The window's hit (its strongest onset), after taking in its parts not seen yet.
        ``hour``: the local hour of day of this audio (None: no learned baseline is used or fed)."""
        if span.profile_dbfs is None:
            return []
        profile = np.asarray(span.profile_dbfs, dtype=np.float64)
        starts = (
            span.start_seconds + EXAMPLE_SECONDS * np.arange(len(profile))
            if span.example_starts is None
            else np.asarray(span.example_starts, dtype=np.float64)
        )
        for example_start, levels in zip(starts, profile, strict=True):
            for part in range(PROFILE_PARTS):
                start = float(example_start) + part * PROFILE_SECONDS
                if start >= self._next - 1e-6:
                    self._take(start, float(levels[part]), hour)
        inside = [o for o in self._onsets if span.start_seconds <= o.start_seconds < span.end_seconds]
        if not inside:
            return []
        onset = max(inside, key=lambda o: o.rise_db)
        return [
            Anomaly(
                group=GROUP,
                label=LABEL,
                score=onset.rise_db,
                threshold=self.settings.rise_db,
                start_seconds=span.start_seconds,
                end_seconds=span.end_seconds,
                window_index=index,
                triggered_by=(),
                onset_seconds=onset.start_seconds,
                offset_seconds=min(onset.end_seconds, span.end_seconds),
                located=True,
                measures={
                    "rise_db": round(onset.rise_db, 1),
                    "peak_dbfs": round(onset.peak_dbfs, 1),
                    "reference_dbfs": round(onset.reference_dbfs, 1),
                },
            )
        ]

    def _take(self, start: float, level: float, hour: int | None) -> None:
        """One 0.12-s level at stream time ``start``."""
        settings = self.settings
        if start - self._next > _CONTINUITY_SECONDS:  # audio missing: what came before is no background
            self._history.clear()
            self._active = None
        self._next = start + PROFILE_SECONDS
        reference = self._reference(start, hour)
        if self._active is not None:
            if reference is not None and level >= self._active.reference_dbfs + settings.rise_db / 2:
                self._active.peak_dbfs = max(self._active.peak_dbfs, level)
                self._active.end_seconds = start + PROFILE_SECONDS
            else:
                self._active = None
        elif reference is not None and level >= settings.floor_dbfs and level - reference >= settings.rise_db:
            self._active = Onset(start, reference, level, start + PROFILE_SECONDS)
            self._onsets.append(self._active)
        self._history.append((start, level))
        horizon = start - settings.rise_seconds - settings.background_seconds
        while self._history and self._history[0][0] < horizon:
            self._history.popleft()
        # an onset is reported by the windows holding it: none reaches back further than one window
        oldest = start - EMBEDDINGS_PER_WINDOW * EXAMPLE_SECONDS
        while self._onsets and self._onsets[0].start_seconds < oldest:
            self._onsets.popleft()
        if self.baseline is not None and hour is not None:
            self.baseline.add(level, hour)

    def _reference(self, start: float, hour: int | None) -> float | None:
        """The level an onset at ``start`` must rise over (None: too little heard yet)."""
        cutoff = start - self.settings.rise_seconds + 1e-6
        background = [level for time, level in self._history if time < cutoff]
        needed = int(self.settings.background_seconds / PROFILE_SECONDS) // 2
        short_term = (
            float(np.percentile(background, self.settings.background_percentile))
            if len(background) >= needed
            else None
        )
        learned = None if self.baseline is None or hour is None else self.baseline.level(hour)
        known = [level for level in (short_term, learned) if level is not None]
        return max(known) if known else None


class SuddenLoudOverrides(BaseModel):
    """A source's own sudden-loud settings in the sources file (absent keys: the service's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rise_db: float | None = None
    rise_seconds: float | None = None
    floor_dbfs: float | None = None
    background_seconds: float | None = None
    background_percentile: float | None = None

    @model_validator(mode="after")
    def _in_range(self) -> SuddenLoudOverrides:
        self.applied_to(SuddenLoudSettings())  # the one rule: the settings' own (ValueError names the key)
        return self

    def applied_to(self, base: SuddenLoudSettings) -> SuddenLoudSettings:
        return dataclasses.replace(base, **self.model_dump(exclude_none=True))


def source_settings(
    choice: bool | SuddenLoudOverrides | None, service: SuddenLoudSettings | None
) -> SuddenLoudSettings | None:
    """A source's detector settings: ``false`` off, ``true`` on with the service's values (or the
    defaults when the service has it off), overrides over them; None (not said): the service's."""
    if choice is None:
        return service
    if choice is False:
        return None
    base = service or SuddenLoudSettings()
    return base if choice is True else choice.applied_to(base)
