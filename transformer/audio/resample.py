"""Resampling to 16 kHz exactly as resampy <= 0.2.2 did for IBM MAX (docs/reference/model.md §1).

Two things changed in resampy after 0.2.2 that move VGGish embeddings
(tensorflow/models issue #9248):

* resampy 0.3 replaced the shipped ``kaiser_best`` table. The old one is a
  Kaiser-windowed sinc and is rebuilt here from its formula.
* resampy 0.4 computes the output sample times as ``t * step`` where 0.2.2
  accumulated ``time += step``. The two differ in the last bits, and where a
  time lands next to an integer that picks a different input sample and filter
  phase (up to ~1e-3 on real recordings, ~0.02 in log-mel of a quiet one).

So the times are accumulated as 0.2.2 did and, with the rebuilt table, go through
resampy's interpolation written in numpy: block matrix products with BLAS for rate ratios with
a short period (every common rate: ``resample_blocks``), outputs grouped by their table offsets
otherwise (``resample_kernels``). Either agrees with resampy's own compiled kernel to float64
rounding, and neither needs numba.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from transformer.audio.constants import (
    KAISER_BEST_BETA,
    KAISER_BEST_PRECISION,
    KAISER_BEST_ROLLOFF,
    KAISER_BEST_ZERO_CROSSINGS,
    SAMPLE_RATE,
)
from transformer.audio.resample_blocks import block_interpolation
from transformer.audio.resample_kernels import (
    Filter,
    gathered_interpolation,
    polyphase_interpolation,
    positions,
)
from transformer.audio.resample_plan import block_plan, block_plan_fits

#: Longest period (outputs per filter-phase cycle) resampled phase by phase; beyond it (odd rates
#: such as 44.056 kHz has 2000, 44.1001 kHz would have 160000) the per-phase overhead outweighs BLAS.
MAX_POLYPHASE_PERIOD = 4000


@functools.cache
def kaiser_best_v02_filter() -> tuple[np.ndarray, int, float]:
    """resampy <= 0.2.2's ``kaiser_best`` filter, in resampy's filter contract.

    Usable as ``resampy.resample(x, sr, 16000, filter=kaiser_best_v02_filter)``.

    Returns:
        half_window: (32769,) float64, read-only right wing of the interpolation
            filter: ``rolloff * sinc(rolloff * x) * kaiser(65537, beta)[32768:]``
            for ``x = linspace(0, 64, 32769)`` (64 zero crossings, 512 taps each).
        taps_per_zero_crossing: 512 (what resampy calls ``precision``).
        rolloff: cut-off as a fraction of Nyquist.

    Built once; later calls return the same objects.
    """
    taps_per_zero_crossing = 2**KAISER_BEST_PRECISION
    half_length = KAISER_BEST_ZERO_CROSSINGS * taps_per_zero_crossing
    zero_crossing_positions = np.linspace(0, KAISER_BEST_ZERO_CROSSINGS, half_length + 1)
    sinc = KAISER_BEST_ROLLOFF * np.sinc(KAISER_BEST_ROLLOFF * zero_crossing_positions)
    taper = np.kaiser(2 * half_length + 1, KAISER_BEST_BETA)[half_length:]
    half_window = sinc * taper
    # Shared by every caller: nobody may scale it in place.
    half_window.flags.writeable = False
    return half_window, taps_per_zero_crossing, KAISER_BEST_ROLLOFF


def resampled_length(num_samples: int, sample_rate: int) -> int:
    """Samples after resampling ``num_samples`` to 16 kHz: ``floor(n * 16000 / sr)``, exact."""
    return num_samples * SAMPLE_RATE // sample_rate


def resample_to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Band-limited resampling of a mono signal to 16 kHz (resampy 0.2.2 ``kaiser_best``).

    Args:
        samples: (n,) float64 signal at ``sample_rate``.
        sample_rate: its rate in Hz (positive integer).

    Returns:
        (floor(n * 16000 / sample_rate),) float64. At 16 kHz the input array
        itself is returned (no copy, no filtering).
    """
    signal = np.asarray(samples, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {signal.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if sample_rate == SAMPLE_RATE:
        return signal

    output_length = resampled_length(signal.shape[0], sample_rate)
    if output_length == 0:
        return np.zeros(0)
    filt = rate_filter(sample_rate)
    # 0.2.2's time register: t[0] = 0, t[k] = t[k-1] + step, summed in order
    # (ufunc.accumulate is sequential), in units of input samples.
    step = 1.0 / (SAMPLE_RATE / sample_rate)
    output_times = np.empty(output_length)
    output_times[0] = 0.0
    np.add.accumulate(np.broadcast_to(step, output_length - 1), out=output_times[1:])

    common = math.gcd(sample_rate, SAMPLE_RATE)
    period_outputs, period_inputs = SAMPLE_RATE // common, sample_rate // common
    if block_plan_fits(filt, period_outputs, period_inputs):
        plan = block_plan(filt, period_outputs, period_inputs)
        return block_interpolation(signal, output_times, filt, plan)
    at = positions(output_times, filt, signal.shape[0])
    if period_outputs <= MAX_POLYPHASE_PERIOD:
        return polyphase_interpolation(signal, at, filt, period_outputs, period_inputs)
    return gathered_interpolation(signal, at, np.arange(output_length), filt)


@functools.lru_cache(maxsize=16)
def rate_filter(sample_rate: int) -> Filter:
    """The filter as ``sample_rate`` reads it (cut-off moved to 8 kHz when downsampling); one
    object per rate, so the block plans built from it are cached too."""
    half_window, taps_per_zero_crossing, _ = kaiser_best_v02_filter()
    sample_ratio = SAMPLE_RATE / sample_rate
    if sample_ratio < 1:
        half_window = sample_ratio * half_window
    window_delta = np.diff(half_window, append=half_window[-1])
    half_window.flags.writeable = False
    window_delta.flags.writeable = False
    return Filter(half_window, window_delta, taps_per_zero_crossing, min(1.0, sample_ratio))
