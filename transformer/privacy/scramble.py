"""``scramble``: shuffle fixed-length segments, with click-free crossfades at the joins.

The clip is cut into ``segment_seconds`` pieces (a last piece shorter than the
crossfade is merged into the one before) which are put back in a random order
drawn from a secure source. At every join the
outgoing segment's own continuation fades out while the incoming segment's own
lead-in fades in (raised-cosine, ``crossfade_ms`` long, centred on the join),
so the waveform stays continuous: a hard cut between two unrelated waveforms
is a broadband click that the classifier can hear as a knock or a bang.
The core of every segment (outside the fades) is copied unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from transformer.privacy.randomness import PrivacyRandom


def _raised_cosine_fade_in(length: int) -> np.ndarray:
    """(length,) rising from ~0 to ~1: ``sin^2`` sampled at bin centres."""
    return np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / length) ** 2


def scramble_segments(
    samples: np.ndarray,
    params: Mapping[str, float],
    rng: PrivacyRandom,
    sample_rate: int,
) -> np.ndarray:
    """Shuffle segments of ``samples``.

    Args:
        samples: (n,) float64 waveform.
        params: ``segment_seconds`` and ``crossfade_ms``.

    Returns:
        (n,) float64; the input unchanged (copied) when it holds a single segment.
    """
    n = samples.shape[0]
    segment = max(1, round(params["segment_seconds"] * sample_rate))
    # Each fade spans ``half`` samples either side of a join.
    half = round(params["crossfade_ms"] * sample_rate / 2000.0)
    starts = np.arange(0, n, segment)
    if starts.size > 1 and n - starts[-1] < 2 * half:
        # A tail too short to hold two half-fades joins the segment before it.
        starts = starts[:-1]
    if starts.size < 2:
        return samples.copy()
    stops = np.append(starts[1:], n)
    order = rng.permutation(starts.size)
    # Mirrored padding gives the first and last original segments a lead-in and
    # a continuation that start at their own edge value (zeros would be a step).
    padded = np.pad(samples, half, mode="reflect")
    out = np.empty(n)
    position = 0
    for index in order:
        start, stop = int(starts[index]), int(stops[index])
        out[position : position + stop - start] = samples[start:stop]
        position += stop - start
    if half == 0:
        return out

    fade_in = _raised_cosine_fade_in(2 * half)
    fade_out = 1.0 - fade_in
    join = 0
    for previous, following in itertools.pairwise(order):
        join += int(stops[previous] - starts[previous])
        # In padded coordinates the original sample i sits at i + half.
        outgoing = padded[int(stops[previous]) : int(stops[previous]) + 2 * half]
        incoming = padded[int(starts[following]) : int(starts[following]) + 2 * half]
        out[join - half : join + half] = fade_out * outgoing + fade_in * incoming
    return out
