"""Log-mel front end of VGGish as IBM MAX computes it (docs/reference/model.md §1).

16 kHz mono samples -> periodic-Hann STFT magnitudes -> 64 HTK-mel bands ->
``log(mel + 0.01)`` -> non-overlapping 96-frame examples. Everything is float64,
like the reference.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from transformer.audio.constants import (
    EXAMPLE_FRAMES,
    FFT_LENGTH,
    LOG_OFFSET,
    MEL_BREAK_FREQUENCY_HERTZ,
    MEL_HIGH_FREQUENCY_Q,
    MEL_MAX_HZ,
    MEL_MIN_HZ,
    NUM_MEL_BANDS,
    NUM_SPECTROGRAM_BINS,
    SAMPLE_RATE,
    STFT_HOP_SAMPLES,
    STFT_WINDOW_SAMPLES,
)

#: Examples transformed per rfft call. Bounds peak memory on long recordings
#: (64 examples = 6,144 frames, ~25 MB of complex spectrum) at no speed cost.
_EXAMPLES_PER_CHUNK = 64


def hertz_to_mel(frequencies_hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 ln(1 + f / 700)`` (float64, same shape as the input)."""
    return MEL_HIGH_FREQUENCY_Q * np.log1p(
        np.asarray(frequencies_hertz, dtype=np.float64) / MEL_BREAK_FREQUENCY_HERTZ
    )


@cache
def _periodic_hann() -> np.ndarray:
    """(400,) float64 periodic Hann window, ``0.5 - 0.5 cos(2 pi n / 400)``."""
    n = np.arange(STFT_WINDOW_SAMPLES, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / STFT_WINDOW_SAMPLES)
    window.setflags(write=False)
    return window


@cache
def _mel_matrix() -> np.ndarray:
    bin_mels = hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, NUM_SPECTROGRAM_BINS))
    edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), NUM_MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels[:, None] - lower) / (centre - lower)
    falling = (upper - bin_mels[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # The reference zeroes the DC bin explicitly (it lies below 125 Hz anyway).
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


def mel_matrix() -> np.ndarray:
    """(257, 64) float64 read-only weights mapping |rfft(512)| bins to mel bands.

    Column ``j`` is a triangle in mel space rising from edge ``j`` to a peak of 1 at
    edge ``j + 1`` and falling to zero at edge ``j + 2`` (66 edges evenly spaced in
    mel from 125 to 7500 Hz). Computed once and cached.
    """
    return _mel_matrix()


def frame_count(num_samples: int) -> int:
    """Complete 400-sample STFT frames at hop 160 (no padding)."""
    if num_samples < STFT_WINDOW_SAMPLES:
        return 0
    return 1 + (num_samples - STFT_WINDOW_SAMPLES) // STFT_HOP_SAMPLES


def example_count(num_samples: int) -> int:
    """Complete 96-frame (0.96 s) examples in ``num_samples`` 16 kHz samples.

    15,599 -> 0, 15,600 -> 1, 153,840 -> 10.
    """
    return frame_count(num_samples) // EXAMPLE_FRAMES


def log_mel_frames(samples: np.ndarray, first_frame: int, num_frames: int) -> np.ndarray:
    """(num_frames, 64) float64 log-mel rows for frames ``first_frame ...`` (the streaming front end
    computes each example with it too)."""
    start = first_frame * STFT_HOP_SAMPLES
    stop = start + (num_frames - 1) * STFT_HOP_SAMPLES + STFT_WINDOW_SAMPLES
    frames = np.lib.stride_tricks.sliding_window_view(samples[start:stop], STFT_WINDOW_SAMPLES)[
        ::STFT_HOP_SAMPLES
    ]
    magnitudes = np.abs(np.fft.rfft(frames * _periodic_hann(), n=FFT_LENGTH, axis=1))
    return np.log(magnitudes @ _mel_matrix() + LOG_OFFSET)


def waveform_to_examples(samples: np.ndarray) -> np.ndarray:
    """Log-mel examples of a 16 kHz mono waveform.

    Args:
        samples: (n,) float samples at 16 kHz (float64 in the reference; other
            float dtypes are converted).

    Returns:
        (N, 96, 64) float64 with ``N = example_count(n)`` (possibly 0); only
        complete 96-frame patches, trailing frames are dropped.
    """
    waveform = np.asarray(samples, dtype=np.float64)
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D mono waveform, got shape {waveform.shape}")
    num_examples = example_count(waveform.shape[0])
    examples = np.empty((num_examples, EXAMPLE_FRAMES, NUM_MEL_BANDS), dtype=np.float64)
    for first in range(0, num_examples, _EXAMPLES_PER_CHUNK):
        last = min(first + _EXAMPLES_PER_CHUNK, num_examples)
        rows = log_mel_frames(waveform, first * EXAMPLE_FRAMES, (last - first) * EXAMPLE_FRAMES)
        examples[first:last] = rows.reshape(last - first, EXAMPLE_FRAMES, NUM_MEL_BANDS)
    return examples
