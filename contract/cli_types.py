"""argparse types that refuse a bad value at parse time, with the reason (before any model loads)."""

from __future__ import annotations

import argparse
import math

from contract.constants import EMBEDDINGS_PER_WINDOW, NUM_CLASSES


def _number(text: str, kind: type[float] | type[int]) -> float:
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    return value


def top_k(text: str) -> int:
    """Labels per window: 1..527."""
    value = int(_number(text, int))
    if not 1 <= value <= NUM_CLASSES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {NUM_CLASSES}, got {value}")
    return value


def hop(text: str) -> int:
    """Window hop in embeddings: 1..10."""
    value = int(_number(text, int))
    if not 1 <= value <= EMBEDDINGS_PER_WINDOW:
        raise argparse.ArgumentTypeError(f"must be between 1 and {EMBEDDINGS_PER_WINDOW}, got {value}")
    return value


def seconds(text: str) -> float:
    """A finite time in seconds, >= 0."""
    value = _number(text, float)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A finite duration in seconds, > 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value
