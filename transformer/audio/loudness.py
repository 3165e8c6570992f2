"""Loudness of each VGGish example, for the anomaly detector's minimum-volume gate.

Measured on the waveform before anonymisation (anonymisation may add noise);
only these per-example numbers travel on, never the samples.
"""

from __future__ import annotations

import numpy as np

from contract.constants import EXAMPLE_SECONDS
from transformer.audio.constants import EXAMPLE_FRAMES, STFT_HOP_SAMPLES, STFT_WINDOW_SAMPLES

EXAMPLE_HOP_SAMPLES = EXAMPLE_FRAMES * STFT_HOP_SAMPLES  # 15,360: examples do not overlap
EXAMPLE_SPAN_SAMPLES = STFT_WINDOW_SAMPLES + (EXAMPLE_FRAMES - 1) * STFT_HOP_SAMPLES  # 15,600
SILENCE_DBFS = -200.0  # floor for digital silence instead of -inf
#: Parts of an example's hop (0.96 s) measured apart to place a sound inside its window: 0.12 s each.
PROFILE_PARTS = 8
PROFILE_PART_SAMPLES = EXAMPLE_HOP_SAMPLES // PROFILE_PARTS  # 1,920
PROFILE_SECONDS = EXAMPLE_SECONDS / PROFILE_PARTS


def example_dbfs(samples: np.ndarray, num_examples: int) -> np.ndarray:
    """RMS level in dBFS of the samples each example was computed from.

    Args:
        samples: (n,) float 16 kHz mono waveform in [-1, 1].
        num_examples: how many examples the front end produced from it.

    Returns:
        (num_examples,) float64; a full-scale sine is about -3 dBFS.
    """
    if num_examples == 0:
        return np.zeros(0)
    starts = np.arange(num_examples) * EXAMPLE_HOP_SAMPLES
    index = starts[:, None] + np.arange(EXAMPLE_SPAN_SAMPLES)[None, :]
    power = np.mean(np.square(samples[index], dtype=np.float64), axis=1)
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power)
    return np.maximum(levels, SILENCE_DBFS)


def example_profile_dbfs(samples: np.ndarray, num_examples: int) -> np.ndarray:
    """RMS level in dBFS of each 0.12-s part of each example's hop: where in a window a sound lies.

    Args:
        samples: (n,) float 16 kHz mono waveform in [-1, 1] (the one ``example_dbfs`` reads).
        num_examples: how many examples the front end produced from it.

    Returns:
        (num_examples, PROFILE_PARTS) float64; part ``j`` of example ``k`` covers samples
        ``15360 k + 1920 j`` to ``15360 k + 1920 (j + 1)``.
    """
    if num_examples == 0:
        return np.zeros((0, PROFILE_PARTS))
    parts = samples[: num_examples * EXAMPLE_HOP_SAMPLES].reshape(num_examples, PROFILE_PARTS, -1)
    power = np.mean(np.square(parts, dtype=np.float64), axis=2)
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power)
    return np.maximum(levels, SILENCE_DBFS)


def window_dbfs(levels: np.ndarray, start_seconds: np.ndarray, end_seconds: np.ndarray) -> np.ndarray:
    """Loudest example inside each window: a window is quiet only if all of it is.

    Args:
        levels: (N,) per-example dBFS from ``example_dbfs``.
        start_seconds, end_seconds: (W,) window bounds from ``transformer.analysis.windows``.

    Returns:
        (W,) float64 dBFS.
    """
    first = np.rint(np.asarray(start_seconds) / EXAMPLE_SECONDS).astype(int)
    last = np.rint(np.asarray(end_seconds) / EXAMPLE_SECONDS).astype(int)
    return np.array([levels[a:b].max() if b > a else SILENCE_DBFS for a, b in zip(first, last, strict=True)])
