"""The one rule of the detectors' numeric settings: finite and within [low, high], else a message
naming the key, the range and the value (collected, so one error lists every problem)."""

from __future__ import annotations

import math


def out_of_range(name: str, value: float, low: float, high: float, unit: str = "") -> str | None:
    """None when ``low <= value <= high`` (and finite); else "``name`` must be between ... got ..."."""
    if math.isfinite(value) and low <= value <= high:
        return None
    span = f"{_number(low)} and {_number(high)}" + (f" {unit}" if unit else "")
    return f"{name} must be between {span}, got {value}"


def raise_problems(*problems: str | None) -> None:
    """ValueError listing every problem ("; "-separated), if any."""
    found = [problem for problem in problems if problem]
    if found:
        raise ValueError("; ".join(found))


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
