"""What one detected window of a live source scored: the page's live view and its score store.

Built by the monitor (``loop``) for every window it runs through a source's tracker, from the
same row the detection step read: each watched group's score (its best member, as
``Detector.window`` compares it with the threshold) and the top labels. Numbers only: nothing of
the audio beyond the window's level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from transformer.analysis.anomalies import Detector
from transformer.monitor.ring import Window

#: Labels of the latest window the live view shows.
TOP_LABELS: Final = 5

#: Called (from a worker thread) with every window a step detected, in order.
ObserveWindows = Callable[[Sequence["WindowScores"]], None]


@dataclass(frozen=True)
class WindowScores:
    """One window of one source as detection saw it.

    Attributes:
        source, session, segment: where it was heard (a new segment: the source reconnected).
        start_seconds, end_seconds: its place in the stream (what the event tracker is given).
        at: wall-clock epoch seconds of its end (None: the source has no clock yet).
        level_dbfs: its loudest example's level.
        scores: each watched group's score; None when the loudness gate held the window back.
        thresholds: each watched group's threshold.
        top: the best labels of the window, best first (empty when gated).
    """

    source: str
    session: str
    segment: int
    start_seconds: float
    end_seconds: float
    at: float | None
    level_dbfs: float | None
    scores: dict[str, float] | None
    thresholds: dict[str, float]
    top: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "end_seconds": round(self.end_seconds, 3),
            "level_dbfs": None if self.level_dbfs is None else round(self.level_dbfs, 1),
            "scores": None if self.scores is None else {g: round(s, 4) for g, s in self.scores.items()},
            "thresholds": self.thresholds,
            "top": [{"label": label, "score": round(score, 4)} for label, score in self.top],
        }


def window_scores(
    source: str,
    session: str,
    segment: int,
    window: Window,
    at: float | None,
    detector: Detector,
    row: np.ndarray | None,
) -> WindowScores:
    """A window of ``source`` as its detection step saw it (``row``: its (C,) scores, None when the
    loudness gate held it back)."""
    return WindowScores(
        source,
        session,
        segment,
        window.start_seconds,
        window.end_seconds,
        at,
        window.level_dbfs,
        None if row is None else group_scores(detector, row),
        thresholds(detector),
        () if row is None else top_labels(detector, row),
    )


def group_scores(detector: Detector, row: np.ndarray) -> dict[str, float]:
    """Each enabled group's score in a (C,) row: its best member (the value its threshold is
    compared with)."""
    return {group.name: float(row[list(group.members)].max()) for group in detector.groups if group.enabled}


def top_labels(detector: Detector, row: np.ndarray, count: int = TOP_LABELS) -> tuple[tuple[str, float], ...]:
    """The ``count`` best classes of a row, best first, by display name."""
    best = np.argsort(-row, kind="stable")[:count]
    return tuple((detector.labels[int(i)].display_name, float(row[i])) for i in best)


def thresholds(detector: Detector) -> dict[str, float]:
    return {group.name: group.threshold for group in detector.groups if group.enabled}
