"""Where inside a 9.6-s classifier window the sound that fired it lies.

The classifier says *that* a window holds a glass break, not *when* in its 9.6 s. The
window's loudness profile (``transformer.audio.loudness.example_profile_dbfs``: the level
of every 0.12-s part, measured before anonymisation) says when it was loud: a sound that
fires a window is, in a home, almost always louder than what surrounds it. The loud part
is every 0.12-s part at least half-way (in dB) from the window's median level up to its
peak, and never more than ``LOUD_RANGE_DB`` under the peak; it runs from the first such
part to the last. A window without dynamics (peak within ``FLAT_DB`` of the median) says
nothing of where its sound is: it is not located, and the event tracker places the event
by its other windows, or by the windows themselves.

Measured on bursts at known times in background noise (``bench/onset_benchmark.py``).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from contract.constants import EXAMPLE_SECONDS

#: Parts quieter than the peak by more than this are never part of the sound.
LOUD_RANGE_DB: Final = 20.0
#: A window whose peak is within this of its median level has no sound that stands out.
FLAT_DB: Final = 3.0


def loud_extent(
    profile_dbfs: np.ndarray | None,
    start_seconds: float,
    end_seconds: float,
    example_starts: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """(onset, offset) seconds of the loud part of a window; None when nothing stands out.

    Args:
        profile_dbfs: (E, P) float dBFS of the P equal parts of each of the window's E examples
            (None: not measured).
        start_seconds: where the window (its first example) starts.
        end_seconds: where the window's audio ends (bounds the result).
        example_starts: (E,) where each example starts (None: back to back from start_seconds).

    Returns:
        (onset, offset), start_seconds <= onset < offset <= end_seconds, or None.
    """
    if profile_dbfs is None or profile_dbfs.size == 0:
        return None
    parts = profile_dbfs.shape[1]
    levels = np.asarray(profile_dbfs, dtype=np.float64).reshape(-1)
    peak = float(levels.max())
    floor = float(np.median(levels))
    if peak - floor < FLAT_DB:
        return None
    threshold = max(floor + 0.5 * (peak - floor), peak - LOUD_RANGE_DB)
    loud = np.flatnonzero(levels >= threshold)
    part_seconds = EXAMPLE_SECONDS / parts
    examples = profile_dbfs.shape[0]
    if example_starts is None:
        example_starts = start_seconds + np.arange(examples) * EXAMPLE_SECONDS
    part_starts = (
        np.asarray(example_starts, dtype=np.float64)[:, None] + np.arange(parts) * part_seconds
    ).reshape(-1)
    onset = float(part_starts[loud[0]])
    offset = min(end_seconds, float(part_starts[loud[-1]]) + part_seconds)
    return onset, max(offset, onset + min(part_seconds, end_seconds - onset))
