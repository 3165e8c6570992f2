"""Streams for the class-agnostic detectors: background beds with bursts at known times and levels.

Beds (16 kHz mono float64, never written anywhere):

- ``room``: room tone, pink noise with a mains hum 15 dB under it, steady (-50 dBFS);
- ``rain``: band-passed noise whose level wanders slowly (+-3 dB over tens of seconds, -35 dBFS);
- ``rain_start``: the room tone, then rain fading in over ``ramp_seconds`` (a slow rise: no event);
- ``shared``: the shared recordings (rain, birds, snoring) looped, when /work/shared is there.

A burst is decaying band-limited noise (a knock, a thud, a slam: 0.15-0.6 s) whose RMS over its
first 0.12 s is ``over_db`` above the bed's RMS there. The benchmark (``bench.detector_benchmark``)
and the tests (tests/transformer/analysis/detectors) build their streams here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16_000
SHARED_BEDS = ("rain.wav", "birds1.wav", "snoring.wav")
SHARED_AUDIO = Path("/work/shared/audio")


@dataclass(frozen=True)
class Burst:
    """A burst inserted at ``at`` seconds, ``over_db`` over the bed, ``seconds`` long."""

    at: float
    over_db: float
    seconds: float = 0.3


def rms_dbfs(signal: np.ndarray) -> float:
    return float(10 * np.log10(max(np.mean(np.square(signal)), 1e-20)))


def at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    return signal * (10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(signal))))


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
    return np.fft.irfft(spectrum / np.sqrt(frequencies), n)


def band_noise(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    frequencies = np.fft.rfftfreq(n, 1 / RATE)
    band = ((frequencies > low) & (frequencies < high)).astype(float)
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * band, n)


def room(seconds: float, rng: np.random.Generator, dbfs: float = -50.0) -> np.ndarray:
    """Pink noise at ``dbfs`` and a mains hum 15 dB under it."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    return at_dbfs(pink_noise(rng, n), dbfs) + at_dbfs(np.sin(2 * np.pi * 50 * t), dbfs - 15.0)


def rain(seconds: float, rng: np.random.Generator, dbfs: float = -35.0) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wander = 10 ** (3 * np.sin(2 * np.pi * t / 37.0 + rng.uniform(0, 6)) / 20)
    return at_dbfs(band_noise(rng, n, 400, 6000), dbfs) * wander


def rain_start(
    seconds: float, rng: np.random.Generator, at: float, ramp_seconds: float, dbfs: float = -30.0
) -> np.ndarray:
    """Room tone, then rain fading in (linear in dB from -30 dB under ``dbfs``) from ``at``."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    gain_db = np.clip((t - at) / ramp_seconds, 0, 1) * 30 - 30
    fade = np.where(t < at, 0.0, 10 ** (gain_db / 20))
    return room(seconds, rng) + at_dbfs(band_noise(rng, n, 400, 6000), dbfs) * fade


def shared(seconds: float, name: str) -> np.ndarray | None:
    """A shared recording, mono at 16 kHz, looped to ``seconds`` (None: not on this machine)."""
    path = SHARED_AUDIO / name
    if not path.exists():
        return None
    import soundfile as sf

    from transformer.audio.resample import resample_to_16k

    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    mono = resample_to_16k(audio.mean(axis=1), rate)
    return np.resize(mono, int(seconds * RATE))


def with_bursts(bed: np.ndarray, bursts: Sequence[Burst], rng: np.random.Generator) -> np.ndarray:
    """``bed`` with each burst added at its time and level over the bed's own level there."""
    audio = bed.copy()
    for burst in bursts:
        start, length = int(burst.at * RATE), int(burst.seconds * RATE)
        decay = np.exp(-np.arange(length) / (length / 3.0))
        low = float(rng.uniform(150, 2500))
        sound = band_noise(rng, length, low, low * 4) * decay
        head = slice(start, start + int(0.12 * RATE))
        level = rms_dbfs(bed[head]) + burst.over_db
        sound *= 10 ** (level / 20) / np.sqrt(np.mean(np.square(sound[: int(0.12 * RATE)])))
        audio[start : start + length] += sound
    return np.clip(audio, -1, 1)
