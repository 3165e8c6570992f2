"""A source's ring of examples: windows timed by their own examples, across a short gap too."""

from __future__ import annotations

import numpy as np
import pytest

from transformer.analysis.locate import loud_extent
from transformer.monitor.ring import Ring


def push(ring: Ring, count: int, loud: int | None = None) -> list:
    """``count`` examples (the ``loud``-th with a loud first 0.12 s); the windows they make due."""
    profiles = np.full((count, 8), -60.0)
    if loud is not None:
        profiles[loud, 0] = -10.0
    return ring.push(np.zeros((count, 96, 64)), profiles.max(axis=1), 1, profiles)


def test_windows_after_a_short_gap_are_timed_by_their_examples() -> None:
    ring = Ring()
    ring.restart(0.0, keep=False)
    assert push(ring, 5, loud=1) == []
    ring.restart(6.8, keep=True)  # 2 s of audio dropped after 4.8 s: the five kept go on
    (window,) = push(ring, 5)
    assert (window.start_seconds, window.end_seconds) == pytest.approx((0.0, 6.8 + 5 * 0.96))
    span = window.span()
    assert span.example_starts is not None
    assert list(span.example_starts) == pytest.approx(
        [0.0, 0.96, 1.92, 2.88, 3.84, 6.8, 7.76, 8.72, 9.68, 10.64]
    )
    # the sound heard at 0.96 s is placed there, not where back-to-back examples would put it
    assert loud_extent(span.profile_dbfs, span.start_seconds, span.end_seconds, span.example_starts) == (
        pytest.approx(0.96),
        pytest.approx(1.08),
    )


def test_a_stream_that_ends_before_its_first_window_gets_one_of_its_examples_repeated() -> None:
    ring = Ring()
    ring.restart(2.0, keep=False)
    assert push(ring, 4) == []
    (window,) = ring.finish()
    assert (window.start_seconds, window.end_seconds, window.distinct) == (
        2.0,
        pytest.approx(2.0 + 4 * 0.96),
        4,
    )
    assert [window.entries.index(e) for e in window.entries] == [0, 1, 2, 3] * 2 + [0, 1]
    assert ring.finish() == []  # once
    push(ring, 6)  # a window came due: a stream with windows needs none at its end
    assert ring.finish() == []
