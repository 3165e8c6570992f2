"""What the timeline plot shows, as data: the same windows and labels as the text, the anomalies.

``timeline_data`` takes the very result ``audioguard classify`` prints (no second
run with another hop): each window of the text becomes a span on a time axis
that covers the whole recording, each class of the text's tables a series, and
each anomaly group that fired a lane of spans labelled with its threshold.
Drawing is ``audioguard.plot``'s job; the tests check this data.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformer.analysis.labels import Labels
from transformer.analysis.types import AnalysisResult

#: Series drawn at most; further classes of the tables are counted in the legend title.
MAX_CLASSES = 8


@dataclass(frozen=True)
class ClassSeries:
    """One class of the text's tables and its score in every window (same order as ``windows``)."""

    label: str
    scores: tuple[float, ...]


@dataclass(frozen=True)
class AnomalyLane:
    """One anomaly group that fired: its threshold and the spans (start, end, score) where it did."""

    group: str
    label: str
    threshold: float
    spans: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class Timeline:
    """Everything the picture shows.

    Attributes:
        duration_seconds: the x axis runs from 0 to here (the whole recording).
        windows: (start, end) of each window of the text, in its order.
        classes: the text's classes, highest peak first (at most ``MAX_CLASSES``).
        hidden_classes: classes of the text left out of the picture.
        lanes: the anomaly groups that fired, in the order they first fired.
        scanned: (start, end) of the audio scanned for anomalies.
        warning: the non-official-weights warning, None with the official weights.
    """

    title: str
    duration_seconds: float
    windows: tuple[tuple[float, float], ...]
    classes: tuple[ClassSeries, ...]
    hidden_classes: int
    lanes: tuple[AnomalyLane, ...]
    scanned: tuple[float, float]
    warning: str | None


def timeline_data(
    result: AnalysisResult, labels: Labels, *, title: str, max_classes: int = MAX_CLASSES
) -> Timeline:
    """The picture's content for ``result`` (whose windows carry their score rows)."""
    if any(window.scores is None for window in result.windows):
        raise ValueError("the timeline needs each window's scores (an in-process analysis)")
    names = list(dict.fromkeys(item["label"] for window in result.windows for item in window.top))
    series = []
    for name in names:
        label = labels.by_name(name)
        assert label is not None, name  # the names come from the same table
        series.append(
            ClassSeries(name, tuple(float(window.scores[label.index]) for window in result.windows))  # type: ignore[index]
        )
    series.sort(key=lambda s: -max(s.scores))
    lanes: dict[str, AnomalyLane] = {}
    for anomaly in result.anomalies:
        group = anomaly["group"]
        lane = lanes.get(group) or AnomalyLane(group, anomaly["label"], anomaly["threshold"], ())
        span = (anomaly["start_seconds"], anomaly["end_seconds"], anomaly["peak_score"])
        lanes[group] = AnomalyLane(lane.group, lane.label, lane.threshold, (*lane.spans, span))
    return Timeline(
        title=title,
        duration_seconds=result.duration_seconds,
        windows=tuple((w.start_seconds, w.end_seconds) for w in result.windows),
        classes=tuple(series[:max_classes]),
        hidden_classes=max(0, len(series) - max_classes),
        lanes=tuple(lanes.values()),
        scanned=result.scanned_seconds,
        warning=result.weights.warning,
    )
