"""``audioguard evaluate``'s report: a readable table, the JSON document and the plot.

The report's first line is the weights verdict: with synthetic (or altered) weights every
figure is meaningless, and the report says so before anything else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

MEANINGLESS: Final = (
    "MEANINGLESS FIGURES: these weights are not the official model (synthetic or altered files); "
    "every figure below measures random weights, not audioguard. Install the official weights "
    "(`audioguard weights download`) for real figures."
)
OFFICIAL: Final = (
    "Official model weights (sha512 verified): the figures below measure audioguard on this set."
)

_COLUMNS: Final = (
    ("group", "{:<18}", "group"),
    ("events", "{:>6}", "events"),
    ("tp", "{:>4}", "TP"),
    ("fp", "{:>4}", "FP"),
    ("fn", "{:>4}", "FN"),
    ("precision", "{:>5}", "P"),
    ("recall", "{:>5}", "R"),
    ("f1", "{:>5}", "F1"),
    ("psds2", "{:>5}", "PSDS2"),
    ("false_alarms_per_hour", "{:>8}", "FA/h"),
    ("negative_hours", "{:>6}", "neg h"),
    ("onset_error_p50", "{:>7}", "on p50"),
    ("onset_error_p95", "{:>7}", "on p95"),
    ("alert_delay_p50", "{:>7}", "al p50"),
    ("alert_delay_p95", "{:>7}", "al p95"),
)


def _cell(value: Any, form: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return form.format("-")
    if isinstance(value, float):
        return form.format(f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}")
    return form.format(value)


def table(report: Mapping[str, Any]) -> str:
    """The report as text: the verdict, the set, one table per privacy method."""
    lines = [OFFICIAL if report["weights_official"] else MEANINGLESS]
    figures = report["set"]
    lines.append(
        f"set: {figures['files']} recordings, {figures['hours']:.2f} h, {figures['events']} annotated events "
        f"of {', '.join(report['groups'])} ({figures['distractors']} distractor events mapped to no group); "
        f"onset collar {report['collar_seconds']:g} s"
    )
    header = " ".join(form.format(title) for _, form, title in _COLUMNS)
    for method, result in report["methods"].items():
        lines += [
            "",
            f"privacy {method}: PSDS2 over all groups {_cell(result['psds2_all_groups'], '{}')}; "
            f"{result['audio_seconds'] / 3600:.2f} h of audio through the live pipeline in "
            f"{result['pipeline_seconds']:.1f} s; {result['other_events']} events of other groups",
            header,
        ]
        for group, row in result["groups"].items():
            values = {**row, "group": group}
            lines.append(" ".join(_cell(values[key], form) for key, form, _ in _COLUMNS))
    lines += [
        "",
        "P/R/F1: event-based (onset within the collar, each event matched once); PSDS2: DCASE "
        "detection-oriented PSDS (psds_eval) over a threshold sweep; FA/h: events per hour on the "
        "'neg h' hours without any event of the group; on: |onset error| s; al: alert delay s "
        "(when the event was raised, after the sound began).",
    ]
    return "\n".join(lines)


def plot(report: Mapping[str, Any], path: Path) -> None:
    """Recall against false alarms per hour along the threshold sweep, one curve per group and
    privacy method (a panel per method); the verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(report["methods"])
    figure, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4.4), squeeze=False, sharey=True)
    for axis, method in zip(axes[0], methods, strict=True):
        for group, curve in report["methods"][method]["curves"].items():
            points = [
                (p["false_alarms_per_hour"], p["recall"])
                for p in curve
                if p["false_alarms_per_hour"] is not None and p["recall"] is not None
            ]
            if points:
                x, y = zip(*sorted(points), strict=True)
                axis.step(x, y, where="post", marker=".", label=group)
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_title(f"privacy: {method}")
        axis.set_xlabel("false alarms per hour")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("recall (onset collar)")
    axes[0][0].legend(loc="upper left", fontsize="small")
    title = "official weights" if report["weights_official"] else "SYNTHETIC WEIGHTS: MEANINGLESS FIGURES"
    figure.suptitle(title, color="black" if report["weights_official"] else "red")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
