"""``dp_noise``: Laplace noise on the peak-normalised waveform (the old service's method).

Each sample of the peak-normalised waveform gets independent Laplace noise of
scale ``b = sensitivity / epsilon`` (standard deviation ``sqrt(2) * b``; the
defaults 0.05 / 0.8 give b = 0.0625, i.e. noise about 21 dB below the peak).
This borrows the Laplace mechanism's formula but is *not* a formal
differential-privacy guarantee for what is said: ``sensitivity`` bounds
nothing (a normalised sample can change by up to 2), speech is a long
correlated signal, every sample is a separate release, and the per-sample
budgets add up over a clip, so the effective epsilon of a 10-s clip is
astronomically large.
What it does is mask quiet sounds and lower the SNR of everything else.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from transformer.privacy.randomness import PrivacyRandom


def _lowpass(samples: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Zero-phase low-pass of the whole clip in the frequency domain.

    A 200-Hz-wide raised-cosine transition above ``cutoff_hz`` avoids the long
    ringing of a brick-wall filter.
    """
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(samples.shape[0], 1.0 / sample_rate)
    transition = np.clip((freqs - cutoff_hz) / 200.0, 0.0, 1.0)
    spectrum *= 0.5 + 0.5 * np.cos(np.pi * transition)
    return np.fft.irfft(spectrum, n=samples.shape[0])


def laplace_noise(
    samples: np.ndarray,
    params: Mapping[str, float],
    rng: PrivacyRandom,
    sample_rate: int,
) -> np.ndarray:
    """Add Laplace noise relative to the clip's peak.

    Args:
        samples: (n,) float64 waveform.
        params: ``epsilon``, ``sensitivity`` and optionally ``lowpass_hz``.

    Returns:
        (n,) float64: ``peak * clip(lowpass(x / peak + noise), -1, 1)``, i.e. the
        noisy normalised waveform clipped to [-1, 1] and put back at the input's
        level (the log-mel front end and the classifier expect natural levels).
        A silent clip (peak 0) is returned unchanged: there is nothing to hide.
    """
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        return samples.copy()
    noisy = rng.laplace(params["sensitivity"] / params["epsilon"], samples.shape[0])
    noisy += samples / peak
    if "lowpass_hz" in params:
        noisy = _lowpass(noisy, params["lowpass_hz"], sample_rate)
    np.clip(noisy, -1.0, 1.0, out=noisy)
    noisy *= peak
    return noisy
