"""Home-safety anomalies from classifier scores: which groups fire in which windows.

A group (``transformer.analysis.anomaly_groups``) fires in a window when the highest
score among its members reaches the group's threshold (``>=``). Windows quieter
than the optional loudness gate are skipped. ``Detector.window`` is the one
detection step of a file's windows and a live source's alike; each anomaly also
says where in its window the sound lies (``transformer.analysis.locate``).
Everything here is a pure function of its inputs.

This is a supplement to certified alarms, not a replacement for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.rounding import score_value, seconds_value
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.labels import Labels, load_labels
from transformer.analysis.locate import loud_extent


@dataclass(frozen=True)
class TriggeringClass:
    """A member class whose score reached the group threshold in the window."""

    index: int
    label: str
    score: float


@dataclass(frozen=True)
class Anomaly:
    """A group that fired in one classifier window.

    Attributes:
        group: the group's name.
        label: the group's user label.
        score: the highest member score in the window.
        threshold: the group's threshold at detection time.
        start_seconds, end_seconds: where the window lies in the recording.
        window_index: position of the window in the analysis (0-based).
        triggered_by: members at or above the threshold, best first (never empty).
        onset_seconds, offset_seconds: where the sound lies inside the window (its loud part,
            ``transformer.analysis.locate``) when ``located``; else the window's bounds.
        located: the window's loudness placed the sound (it was measured and had a loud part).
        measures: what a class-agnostic detector measured (``transformer.analysis.detectors``:
            ``rise_db``, ``peak_dbfs``, ...); empty for a label group.
    """

    group: str
    label: str
    score: float
    threshold: float
    start_seconds: float
    end_seconds: float
    window_index: int
    triggered_by: tuple[TriggeringClass, ...]
    onset_seconds: float = -1.0
    offset_seconds: float = -1.0
    located: bool = False
    measures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.located:  # the window itself
            object.__setattr__(self, "onset_seconds", self.start_seconds)
            object.__setattr__(self, "offset_seconds", self.end_seconds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (the shape used in responses and DHT messages; numbers written
        as ``contract.rounding`` says)."""
        return {
            "group": self.group,
            "label": self.label,
            "score": score_value(self.score),
            "threshold": self.threshold,
            "start_seconds": seconds_value(self.start_seconds),
            "end_seconds": seconds_value(self.end_seconds),
            "window_index": self.window_index,
            "triggered_by": triggering_classes(self.triggered_by),
            "measures": dict(self.measures),
        }


def triggering_classes(classes: Sequence[TriggeringClass]) -> list[dict[str, Any]]:
    """``triggered_by`` as JSON: ``[{index, label, score}]``, best first."""
    return [{"index": cls.index, "label": cls.label, "score": score_value(cls.score)} for cls in classes]


# --- detection ---------------------------------------------------------------------------


def is_audible(levels_dbfs: np.ndarray, gate_dbfs: float | None) -> np.ndarray:
    """(W,) bool: the windows the loudness gate lets through (at or above it; no gate: all)."""
    levels = np.asarray(levels_dbfs, dtype=np.float64)
    return np.ones(levels.shape, dtype=bool) if gate_dbfs is None else levels >= gate_dbfs


@dataclass(frozen=True)
class WindowSpan:
    """One classifier window of a recording or a stream, and the loudness measured in it.

    Attributes:
        start_seconds, end_seconds: where the window lies (seconds of audio).
        level_dbfs: its loudest example's level (the loudness gate reads it; None: no gate applies).
        profile_dbfs: (examples, 8) levels of each 0.12-s part of its examples (None: not measured).
        example_starts: (examples,) where each example starts (None: back to back from
            ``start_seconds``; a live source's window after a short gap is not).
    """

    start_seconds: float
    end_seconds: float
    level_dbfs: float | None = None
    profile_dbfs: np.ndarray | None = None
    example_starts: np.ndarray | None = None


@dataclass(frozen=True)
class Detector:
    """The detection step of files and live sources: window scores -> the groups that fire.

    Attributes:
        groups: the groups watched, with their thresholds.
        labels: display names for ``triggered_by``.
        gate_dbfs: windows quieter than this fire nothing (None: no gate).
    """

    groups: Sequence[AnomalyGroup]
    labels: Labels
    gate_dbfs: float | None = None

    def audible(self, level_dbfs: float | None) -> bool:
        """Whether the gate lets a window of this level through (the one rule: ``is_audible``)."""
        return level_dbfs is None or bool(is_audible(np.array([level_dbfs]), self.gate_dbfs)[0])

    def check(self, scores: np.ndarray) -> np.ndarray:
        """(W, C) float64 scores, validated: finite, wide enough for every group's members."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ValueError(f"scores must be (windows, classes), got shape {scores.shape}")
        if not np.all(np.isfinite(scores)):
            # a NaN never reaches a threshold: silently missing an alarm is worse than failing
            raise ValueError("classifier scores contain NaN or infinity")
        for group in self.groups:
            if group.enabled and max(group.members) >= scores.shape[1]:
                raise ValueError(
                    f"group {group.name!r} has members beyond the {scores.shape[1]} score columns"
                )
        return scores

    def window(self, row: np.ndarray, span: WindowSpan, index: int = 0) -> list[Anomaly]:
        """The anomalies of one window's (C,) scores (checked with ``check``), in group order;
        none when the gate holds the window back."""
        if not self.audible(span.level_dbfs):
            return []
        extent: tuple[float, float] | None = None
        measured = False
        anomalies = []
        for group in self.groups:
            if not group.enabled:
                continue
            member_scores = row[list(group.members)]
            best = float(member_scores.max())
            if best < group.threshold:
                continue
            # best first; ties keep the configured member order
            order = np.argsort(-member_scores, kind="stable")
            triggered = tuple(
                TriggeringClass(
                    group.members[i], self.labels[group.members[i]].display_name, float(member_scores[i])
                )
                for i in order
                if member_scores[i] >= group.threshold
            )
            if not measured:
                extent = loud_extent(
                    span.profile_dbfs, span.start_seconds, span.end_seconds, span.example_starts
                )
                measured = True
            anomalies.append(
                Anomaly(
                    group=group.name,
                    label=group.label,
                    score=best,
                    threshold=group.threshold,
                    start_seconds=span.start_seconds,
                    end_seconds=span.end_seconds,
                    window_index=index,
                    triggered_by=triggered,
                    onset_seconds=-1.0 if extent is None else extent[0],
                    offset_seconds=-1.0 if extent is None else extent[1],
                    located=extent is not None,
                )
            )
        return anomalies


def detect_anomalies(
    scores: np.ndarray,
    window_starts: np.ndarray,
    window_ends: np.ndarray,
    groups: Sequence[AnomalyGroup],
    *,
    window_dbfs: np.ndarray | None = None,
    gate_dbfs: float | None = None,
    labels: Labels | None = None,
    window_profiles: Sequence[np.ndarray | None] | None = None,
) -> list[Anomaly]:
    """Every (window, enabled group) where the group's best member reaches its threshold
    (``Detector.window`` over each row).

    Args:
        scores: (W, C) float classifier scores, one row per window.
        window_starts, window_ends: (W,) float seconds of each window in the recording.
        groups: the configured groups (``load_anomaly_groups``).
        window_dbfs: (W,) float RMS level of each window (``transformer.audio.loudness``);
            needed when ``gate_dbfs`` is set.
        gate_dbfs: skip windows whose level is below this (None = no gate).
        labels: display names for ``triggered_by`` (default: the shipped AudioSet labels).
        window_profiles: per window, its (examples, 8) loudness profile (None: not located).

    Returns:
        Anomalies ordered by window, then by group order.

    Raises:
        ValueError: inconsistent shapes, non-finite scores, or a gate without levels.
    """
    detector = Detector(groups, labels if labels is not None else load_labels(), gate_dbfs)
    scores = detector.check(scores)
    starts = np.asarray(window_starts, dtype=np.float64)
    ends = np.asarray(window_ends, dtype=np.float64)
    num_windows = scores.shape[0]
    if starts.shape != (num_windows,) or ends.shape != (num_windows,):
        raise ValueError(
            f"{num_windows} score rows but window bounds of shapes {starts.shape} and {ends.shape}"
        )
    levels: np.ndarray | None = None
    if gate_dbfs is not None:
        if window_dbfs is None:
            raise ValueError("a loudness gate needs the level of each window (window_dbfs)")
        levels = np.asarray(window_dbfs, dtype=np.float64)
        if levels.shape != (num_windows,):
            raise ValueError(f"window_dbfs has shape {levels.shape}, expected ({num_windows},)")
    profiles = window_profiles if window_profiles is not None else [None] * num_windows
    anomalies = []
    for window in range(num_windows):
        span = WindowSpan(
            float(starts[window]),
            float(ends[window]),
            None if levels is None else float(levels[window]),
            profiles[window],
        )
        anomalies += detector.window(scores[window], span, window)
    return anomalies
