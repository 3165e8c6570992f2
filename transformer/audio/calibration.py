"""Generated audio for calibrating the int8 VGGish: no recording is shipped or needed.

Post-training quantisation learns each activation's range from inputs that look
like what the service hears. These are household-like sounds made from a fixed
seed: broadband noise with the spectral tilt of rain, wind or a fan, voiced
harmonic sweeps with formants (speech and screams), beeping alarms, decaying
bells, clicks and shatter bursts (knocks, glass), amplitude-modulated noise
(snoring, engines) and near-silence, over 50 dB of levels. They go through the
same log-mel front end as requests. The recordings in ``../shared/audio`` are
kept out, so that the fidelity measured on them is not measured on the
calibration set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from transformer.audio.constants import SAMPLE_RATE
from transformer.audio.features import waveform_to_examples

#: Seconds per generated clip: three examples each.
CLIP_SECONDS = 2.9
#: Clips in the default set (8 kinds x 6): 144 examples.
DEFAULT_CLIPS = 48
CALIBRATION_SEED = 20261203
#: Changes whenever the generated set changes (part of the int8 model's cache key).
CALIBRATION_VERSION = "home-sounds-1"


def _tilted_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as f**-exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[1:] /= frequencies[1:] ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.abs(noise).max() + 1e-12)


def _voiced(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A harmonic voice-like sweep (speech to scream) through two formant-like peaks."""
    start, end = rng.uniform(90, 300), rng.uniform(150, 1200)
    pitch = start + (end - start) * t / t[-1] + rng.uniform(2, 15) * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    formants = rng.uniform(400, 900), rng.uniform(1000, 2800)
    wave = np.zeros_like(t)
    for harmonic in range(1, 25):
        frequency = harmonic * pitch
        gain = sum(np.exp(-(((frequency - f) / 250) ** 2)) for f in formants) + 0.05 / harmonic
        wave += gain * np.sin(harmonic * phase)
    return wave * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t) ** 2)


def _alarm(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A beeping smoke-alarm-like tone with its harmonics."""
    frequency = rng.uniform(2800, 3400)
    gate = (np.sin(2 * np.pi * rng.uniform(1.5, 4) * t) > 0).astype(np.float64)
    return gate * (np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(2 * np.pi * 2 * frequency * t))


def _bell(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Inharmonic decaying partials (a doorbell, a struck glass)."""
    base = rng.uniform(300, 1500)
    onset = rng.uniform(0, 1.0)
    since = np.clip(t - onset, 0, None)
    partials = sum(np.sin(2 * np.pi * base * r * t) / r for r in (1.0, 2.76, 5.4, 8.93))
    return partials * np.exp(-since * rng.uniform(2, 8)) * (t >= onset)


def _impacts(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Clicks and bright shatter bursts (knocks, breaking glass, a gunshot's crack)."""
    wave = np.zeros_like(t)
    white = _tilted_noise(rng, t.size, 0.0)
    for _ in range(int(rng.integers(1, 12))):
        start = int(rng.integers(0, t.size - 200))
        length = int(rng.integers(80, 4000))
        decay = np.exp(-np.arange(min(length, t.size - start)) / (length / 5))
        wave[start : start + decay.size] += rng.uniform(0.2, 1) * white[start : start + decay.size] * decay
    return wave


def _modulated(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Brown-ish noise under a slow or fast envelope (snoring, an engine, a vacuum cleaner)."""
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.3, 40) * t)
    return _tilted_noise(rng, t.size, rng.uniform(1.0, 2.0)) * envelope


def _rain(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    return _tilted_noise(rng, t.size, rng.uniform(0.0, 1.2))


def _quiet(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A quiet room: faint pink noise and a mains hum."""
    hum = np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * t)
    return 0.02 * _tilted_noise(rng, t.size, 1.0) + 0.01 * hum


_KINDS: tuple[Callable[[np.random.Generator, np.ndarray], np.ndarray], ...] = (
    _rain,
    _voiced,
    _alarm,
    _bell,
    _impacts,
    _modulated,
    _quiet,
    lambda rng, t: _voiced(rng, t) + 0.5 * _rain(rng, t),
)


def calibration_waveforms(clips: int = DEFAULT_CLIPS, *, seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """``clips`` generated 16 kHz float64 clips in [-1, 1], each kind in turn at a random level."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    waves = []
    for index in range(clips):
        wave = _KINDS[index % len(_KINDS)](rng, t)
        peak = 10 ** (rng.uniform(-50, 0) / 20)  # -50 to 0 dBFS
        waves.append(np.clip(wave / (np.abs(wave).max() + 1e-12) * peak, -1.0, 1.0))
    return waves


def calibration_examples(clips: int = DEFAULT_CLIPS, *, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """(N, 96, 64) float32 log-mel examples of the generated clips (3 per clip)."""
    examples = [waveform_to_examples(wave) for wave in calibration_waveforms(clips, seed=seed)]
    return np.concatenate(examples).astype(np.float32)
