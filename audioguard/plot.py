"""Draw a ``Timeline`` (``audioguard.timeline``) as a PNG.

Top panel: the text's classes, each window's score drawn as a flat segment over
the span the window covers, on an axis from 0 s to the end of the recording.
Bottom panel: one lane per anomaly group that fired, labelled with its
threshold, its windows as spans with their scores. A red banner says when the
weights are not the official ones.
"""

from __future__ import annotations

from pathlib import Path

from audioguard.timeline import Timeline


def draw_timeline(timeline: Timeline, path: Path) -> None:
    """Save the picture of ``timeline`` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, safe in threads and CI
    import matplotlib.pyplot as plt

    lanes = max(1, len(timeline.lanes))
    figure, (scores_axes, lanes_axes) = plt.subplots(
        2,
        1,
        figsize=(11, 5.2 + 0.35 * lanes),
        dpi=100,
        sharex=True,
        gridspec_kw={"height_ratios": [4, 0.9 + 0.35 * lanes]},
    )
    colours = plt.get_cmap("tab10")
    for number, series in enumerate(timeline.classes):
        colour = colours(number % 10)
        for (start, end), score in zip(timeline.windows, series.scores, strict=True):
            scores_axes.hlines(score, start, end, colors=[colour], linewidth=2.2)
        # one legend entry per class, drawn once
        scores_axes.plot([], [], color=colour, linewidth=2.2, label=series.label)
    for start, _end in timeline.windows[1:]:
        scores_axes.axvline(start, color="0.85", linewidth=0.8, zorder=0)
    legend_title = f"+{timeline.hidden_classes} more in the text" if timeline.hidden_classes else None
    # beside the axes, never over the curves (scores near 1 would hide under it)
    scores_axes.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        title=legend_title,
        title_fontsize="small",
    )
    scores_axes.set_ylim(0, 1.02)
    scores_axes.set_ylabel("score (each window over the span it covers)")
    scores_axes.grid(alpha=0.3)
    scores_axes.set_title(timeline.title)

    for row, lane in enumerate(timeline.lanes):
        for start, end, score in lane.spans:
            lanes_axes.broken_barh([(start, end - start)], (row - 0.4, 0.8), color="tab:red", alpha=0.25)
            lanes_axes.text(start + 0.05, row, f"{score:.2f}", va="center", fontsize="x-small")
    lanes_axes.set_yticks(
        range(len(timeline.lanes)), [f"{lane.label} (>= {lane.threshold:.2f})" for lane in timeline.lanes]
    )
    lanes_axes.set_ylim(lanes - 0.4, -0.6)  # the first group to fire on top
    if not timeline.lanes:
        lanes_axes.set_yticks([])
        lanes_axes.text(
            timeline.duration_seconds / 2,
            0,
            f"no anomaly in {timeline.scanned[0]:.2f}-{timeline.scanned[1]:.2f} s",
            ha="center",
            va="center",
        )
    lanes_axes.set_xlim(0, timeline.duration_seconds)
    lanes_axes.set_xlabel(f"time (s) of the {timeline.duration_seconds:.2f}-s recording")
    lanes_axes.grid(axis="x", alpha=0.3)
    if timeline.warning is not None:
        figure.text(
            0.5,
            0.995,
            "NOT THE OFFICIAL WEIGHTS: scores, labels and anomalies mean nothing",
            ha="center",
            va="top",
            color="white",
            fontweight="bold",
            bbox={"facecolor": "tab:red", "edgecolor": "none", "pad": 4},
        )
        figure.tight_layout(rect=(0, 0, 1, 0.95))
    else:
        figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
