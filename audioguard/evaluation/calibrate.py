"""Thresholds that meet a false-alarm budget, from the window scores of a household's own audio.

The audio (files, or live sources for a while) goes through the live pipeline once (``drive``:
only each window's scores are kept, never audio); the detection step and the lifecycle are then
replayed (``replay``) at every threshold of a grid. For each group the chosen threshold is the
lowest one from which on (it and every higher one of the grid) the rate of events is within the
budget *with the confidence asked*: the one-sided Poisson upper bound of the rate, from the count
seen in the hours heard, is at most the budget. The audio is taken as free of real anomalies:
every event on it is a false alarm.

It refuses to extrapolate: with no event at all, ``T`` hours bound the rate at
``-ln(1 - confidence) / T`` (the "rule of three" at 95 %), so a budget ``r`` per hour needs at
least ``-ln(1 - confidence) / r`` hours of audio; less is refused with that minimum
(``TooLittleAudio``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from audioguard.evaluation.drive import Heard
from audioguard.evaluation.replay import replay
from contract.errors import InvalidParameter

GRID: Final = (*tuple(round(float(t), 2) for t in np.arange(0.02, 1.0, 0.02)), 1.0)
_UNITS: Final = {"hour": 1.0, "h": 1.0, "day": 24.0, "d": 24.0, "week": 168.0, "w": 168.0}


class TooLittleAudio(InvalidParameter):
    """Not enough audio to show the budget (the message gives the minimum)."""


def parse_budget(text: str) -> float:
    """``1/day``, ``2/week``, ``0.5/hour`` -> events per hour (InvalidParameter otherwise)."""
    count, _, unit = text.strip().partition("/")
    try:
        rate = float(count) / _UNITS[unit.strip().lower()]
    except (ValueError, KeyError):
        raise InvalidParameter(
            f"budget {text!r}: write it as COUNT/UNIT, e.g. 1/day, 2/week, 0.5/hour"
        ) from None
    if not rate > 0 or not math.isfinite(rate):
        raise InvalidParameter(f"budget {text!r}: the count must be > 0")
    return rate


def minimum_hours(per_hour: float, confidence: float) -> float:
    """The least audio that can show at most ``per_hour`` events per hour (no event seen in it)."""
    return -math.log(1 - confidence) / per_hour


def upper_rate(count: int, hours: float, confidence: float) -> float:
    """One-sided upper confidence bound of a Poisson rate from ``count`` events in ``hours``."""
    from scipy.stats import chi2

    return float(chi2.ppf(confidence, 2 * count + 2) / 2 / hours)


def rate_words(per_hour: float) -> str:
    """``1 false alarm per week``: in the unit where the count is at least 1."""
    for unit, hours in (("hour", 1.0), ("day", 24.0), ("week", 168.0)):
        if per_hour * hours >= 0.999 or unit == "week":
            count = per_hour * hours
            return f"{count:.3g} false alarm{'' if round(count, 3) == 1 else 's'} per {unit}"
    raise AssertionError("unreachable")


def duration_words(hours: float) -> str:
    if hours * 60 < 1:
        return f"{hours * 3600:.0f} seconds"
    if hours < 1:
        return f"{hours * 60:.0f} minutes"
    return f"{hours:.1f} h" + (f" ({hours / 24:.1f} days)" if hours >= 48 else "")


@dataclass(frozen=True)
class Choice:
    """One group's calibration: the threshold (None: no threshold of the grid meets the budget),
    the events at it in the audio heard and the upper bound of their rate."""

    group: str
    threshold: float | None
    events: int
    upper_per_hour: float
    counts: Mapping[float, int]  # events at each threshold of the grid


def refuse_short(hours: float, per_hour: float, confidence: float) -> None:
    """TooLittleAudio, with the minimum, when ``hours`` cannot show the budget."""
    needed = minimum_hours(per_hour, confidence)
    if hours < needed:
        raise TooLittleAudio(
            f"{duration_words(hours)} of audio cannot show at most {rate_words(per_hour)} at "
            f"{confidence:.0%} confidence: that takes at least "
            f"{duration_words(needed)} of audio (with no false alarm in it); give more audio, a looser "
            "budget or a lower --confidence"
        )


def event_counts(
    heard: Sequence[Heard], groups: Sequence[str], grid: Sequence[float]
) -> dict[str, dict[float, int]]:
    """Each group's events at each threshold (all groups replayed at once: they are independent)."""
    counts: dict[str, dict[float, int]] = {group: {} for group in groups}
    for threshold in grid:
        changes = [c for one in heard for c in replay(one, dict.fromkeys(groups, threshold))]
        for group in groups:
            counts[group][threshold] = sum(1 for c in changes if c.group == group)
    return counts


def calibrate(
    heard: Sequence[Heard],
    groups: Sequence[str],
    per_hour: float,
    *,
    confidence: float = 0.95,
    grid: Sequence[float] = GRID,
) -> list[Choice]:
    """Each group's threshold for at most ``per_hour`` false alarms per hour of a source's audio
    (TooLittleAudio when the audio heard cannot show it)."""
    hours = sum(one.seconds for one in heard) / 3600
    refuse_short(hours, per_hour, confidence)
    counts = event_counts(heard, groups, sorted(grid))
    choices = []
    for group in groups:
        chosen = None
        for threshold in sorted(grid, reverse=True):  # from the top: the lowest of the run that holds
            if upper_rate(counts[group][threshold], hours, confidence) > per_hour:
                break
            chosen = threshold
        events = counts[group][chosen] if chosen is not None else counts[group][max(grid)]
        bound = upper_rate(events, hours, confidence)
        choices.append(Choice(group, chosen, events, bound, counts[group]))
    return choices


def groups_document(
    choices: Sequence[Choice], per_hour: float, hours: float, confidence: float
) -> dict[str, object]:
    """An anomaly-groups file (``AUDIOGUARD_ANOMALY_GROUPS_FILE``): the calibrated thresholds,
    merged by name into the shipped groups; a group no threshold could calibrate is left out
    (it keeps its threshold)."""
    return {
        "description": (
            f"Calibrated by `audioguard calibrate` for at most {rate_words(per_hour)} per source "
            f"({confidence:.0%} confidence) on {hours:.1f} h of audio."
        ),
        "groups": [{"name": c.group, "threshold": c.threshold} for c in choices if c.threshold is not None],
    }
