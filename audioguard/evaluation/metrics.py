"""Event-based detection figures (``sed_eval``'s event-based metric, onsets only) and false alarms.

A detected event matches an annotated one of the same group when their onsets are at most
``collar`` seconds apart; each is matched at most once, as many pairs as possible (a maximum
matching, as ``sed_eval``'s "optimal" matching), and among those the closest onsets. Offsets
are not compared: the service reports a sound's end only once it has been quiet for
``max_not_heard`` seconds, which is a choice, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from audioguard.evaluation.annotations import Event


@dataclass(frozen=True)
class Counts:
    """Matches of one group: true positives, false positives, false negatives, onset errors."""

    tp: int
    fp: int
    fn: int
    onset_errors: tuple[float, ...] = ()  # detected - annotated onset of each match, seconds

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else math.nan


def match(reference: Sequence[Event], detected: Sequence[Event], collar: float) -> list[tuple[Event, Event]]:
    """One-to-one (annotated, detected) pairs of the same file and label, onsets within ``collar``:
    the most pairs there can be, then the smallest total onset distance."""
    from scipy.optimize import linear_sum_assignment

    matched = []
    for key in sorted({(e.filename, e.label) for e in reference}):
        ref = [e for e in reference if (e.filename, e.label) == key]
        det = [e for e in detected if (e.filename, e.label) == key]
        if not det:
            continue
        distance = np.abs(np.array([[d.onset - r.onset for d in det] for r in ref]))
        allowed = distance <= collar + 1e-9
        # a disallowed pair costs more than all allowed ones together: the most pairs come first
        cost = np.where(allowed, distance, 1.0 + distance[allowed].sum() if allowed.any() else 1.0)
        rows, cols = linear_sum_assignment(cost)
        matched += [(ref[r], det[c]) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]
    return matched


def event_counts(reference: Sequence[Event], detected: Sequence[Event], group: str, collar: float) -> Counts:
    """The matches of ``group`` between annotated and detected events."""
    ref = [e for e in reference if e.label == group]
    det = [e for e in detected if e.label == group]
    pairs = match(ref, det, collar)
    errors = tuple(d.onset - r.onset for r, d in pairs)
    return Counts(len(pairs), len(det) - len(pairs), len(ref) - len(pairs), errors)


def false_alarms_per_hour(
    reference: Sequence[Event], detected: Sequence[Event], group: str, durations: Mapping[str, float]
) -> tuple[float, float]:
    """(events of ``group`` per hour, hours) over the recordings without any annotated event of
    ``group``: there every event of the group is a false alarm (nan when there is no such audio)."""
    positive = {e.filename for e in reference if e.label == group}
    negative = [name for name in durations if name not in positive]
    hours = sum(durations[name] for name in negative) / 3600
    count = sum(1 for e in detected if e.label == group and e.filename in negative)
    return (count / hours if hours else math.nan), hours


def percentiles(values: Iterable[float], points: Sequence[float] = (50, 95)) -> list[float]:
    """The ``points`` percentiles of ``values`` (linear interpolation; nan when there are none)."""
    array = np.asarray(list(values), dtype=np.float64)
    return [float(np.percentile(array, p)) if array.size else math.nan for p in points]
