"""Draw how the leading classes' scores evolve over a recording (a PNG timeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioguard.offline import ClipResult
from transformer.analysis.labels import Labels


def leading_classes(result: ClipResult, count: int) -> list[int]:
    """Indices of the ``count`` classes with the highest score in any window."""
    peaks = np.max(np.stack([window.scores for window in result.windows]), axis=0)
    return [int(i) for i in np.argsort(-peaks, kind="stable")[:count]]


def plot_timeline(
    result: ClipResult, labels: Labels, path: Path, *, title: str, count: int = 6
) -> list[int]:
    """Save a step plot of the leading classes' scores per window; return their indices.

    Each window's score is drawn across the time span it covers; with a hop of
    one embedding (0.96 s) consecutive windows overlap, which makes the curve a
    moving view of the recording.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed, safe in threads and CI
    import matplotlib.pyplot as plt

    classes = leading_classes(result, count)
    centres = np.array([(w.start_seconds + w.end_seconds) / 2 for w in result.windows])
    scores = np.stack([window.scores for window in result.windows])
    figure, axes = plt.subplots(figsize=(10, 4.5), dpi=100)
    for index in classes:
        if len(centres) == 1:
            axes.bar(labels[index].display_name, scores[0, index])
        else:
            axes.plot(centres, scores[:, index], marker="o", markersize=3, label=labels[index].display_name)
    if len(centres) > 1:
        axes.set_xlabel("time (s, centre of each 9.6 s window)")
        axes.legend(loc="upper right", fontsize="small")
    else:
        axes.tick_params(axis="x", labelrotation=20)
    axes.set_ylabel("score")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return classes
