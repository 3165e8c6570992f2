"""Home-safety anomalies from classifier scores: which groups fire in which windows.

A group (``transformer.analysis.anomaly_groups``) fires in a window when the highest
score among its members reaches the group's threshold (``>=``). Windows quieter
than the optional loudness gate are skipped. Everything here is a pure function
of its inputs.

This is a supplement to certified alarms, not a replacement for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.rounding import score_value, seconds_value
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.labels import Labels, load_labels


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
    """

    group: str
    label: str
    score: float
    threshold: float
    start_seconds: float
    end_seconds: float
    window_index: int
    triggered_by: tuple[TriggeringClass, ...]

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
            "triggered_by": [
                {"index": cls.index, "label": cls.label, "score": score_value(cls.score)}
                for cls in self.triggered_by
            ],
        }


# --- detection ---------------------------------------------------------------------------


def is_audible(levels_dbfs: np.ndarray, gate_dbfs: float | None) -> np.ndarray:
    """(W,) bool: the windows the loudness gate lets through (at or above it; no gate: all)."""
    levels = np.asarray(levels_dbfs, dtype=np.float64)
    return np.ones(levels.shape, dtype=bool) if gate_dbfs is None else levels >= gate_dbfs


def detect_anomalies(
    scores: np.ndarray,
    window_starts: np.ndarray,
    window_ends: np.ndarray,
    groups: Sequence[AnomalyGroup],
    *,
    window_dbfs: np.ndarray | None = None,
    gate_dbfs: float | None = None,
    labels: Labels | None = None,
) -> list[Anomaly]:
    """Every (window, enabled group) where the group's best member reaches its threshold.

    Args:
        scores: (W, C) float classifier scores, one row per window.
        window_starts, window_ends: (W,) float seconds of each window in the recording.
        groups: the configured groups (``load_anomaly_groups``).
        window_dbfs: (W,) float RMS level of each window (``transformer.audio.loudness``);
            needed when ``gate_dbfs`` is set.
        gate_dbfs: skip windows whose level is below this (None = no gate).
        labels: display names for ``triggered_by`` (default: the shipped AudioSet labels).

    Returns:
        Anomalies ordered by window, then by group order.

    Raises:
        ValueError: inconsistent shapes, non-finite scores, or a gate without levels.
    """
    scores = np.asarray(scores, dtype=np.float64)
    starts = np.asarray(window_starts, dtype=np.float64)
    ends = np.asarray(window_ends, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (windows, classes), got shape {scores.shape}")
    num_windows = scores.shape[0]
    if starts.shape != (num_windows,) or ends.shape != (num_windows,):
        raise ValueError(
            f"{num_windows} score rows but window bounds of shapes {starts.shape} and {ends.shape}"
        )
    if not np.all(np.isfinite(scores)):
        # a NaN never reaches a threshold: silently missing an alarm is worse than failing
        raise ValueError("classifier scores contain NaN or infinity")
    audible = np.ones(num_windows, dtype=bool)
    if gate_dbfs is not None:
        if window_dbfs is None:
            raise ValueError("a loudness gate needs the level of each window (window_dbfs)")
        levels = np.asarray(window_dbfs, dtype=np.float64)
        if levels.shape != (num_windows,):
            raise ValueError(f"window_dbfs has shape {levels.shape}, expected ({num_windows},)")
        audible = is_audible(levels, gate_dbfs)

    active = [group for group in groups if group.enabled]
    for group in active:
        if max(group.members) >= scores.shape[1]:
            raise ValueError(f"group {group.name!r} has members beyond the {scores.shape[1]} score columns")
    names = labels if labels is not None else load_labels()

    anomalies = []
    for window in np.flatnonzero(audible):
        row = scores[window]
        for group in active:
            member_scores = row[list(group.members)]
            best = float(member_scores.max())
            if best < group.threshold:
                continue
            # best first; ties keep the configured member order
            order = np.argsort(-member_scores, kind="stable")
            triggered = tuple(
                TriggeringClass(
                    group.members[i], names[group.members[i]].display_name, float(member_scores[i])
                )
                for i in order
                if member_scores[i] >= group.threshold
            )
            anomalies.append(
                Anomaly(
                    group=group.name,
                    label=group.label,
                    score=best,
                    threshold=group.threshold,
                    start_seconds=float(starts[window]),
                    end_seconds=float(ends[window]),
                    window_index=int(window),
                    triggered_by=triggered,
                )
            )
    return anomalies
