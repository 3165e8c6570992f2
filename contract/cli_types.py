"""argparse types that refuse a bad value at parse time, with the reason (before any model loads)."""

from __future__ import annotations

import argparse

from contract.constants import EMBEDDINGS_PER_WINDOW, NUM_CLASSES
from contract.parsing import NotANumber, NotFinite, parse_integer, parse_number


def _integer(text: str) -> int:
    try:
        return parse_integer(text)
    except NotANumber:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def top_k(text: str) -> int:
    """Labels per window: 1..527."""
    value = _integer(text)
    if not 1 <= value <= NUM_CLASSES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {NUM_CLASSES}, got {value}")
    return value


def hop(text: str) -> int:
    """Window hop in embeddings: 1..10."""
    value = _integer(text)
    if not 1 <= value <= EMBEDDINGS_PER_WINDOW:
        raise argparse.ArgumentTypeError(f"must be between 1 and {EMBEDDINGS_PER_WINDOW}, got {value}")
    return value


def seconds(text: str) -> float:
    """A finite time in seconds, >= 0."""
    refused = argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    try:
        value = parse_number(text)
    except NotFinite:
        raise refused from None
    except NotANumber:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise refused
    return value


def positive_seconds(text: str) -> float:
    """A finite duration in seconds, > 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value
