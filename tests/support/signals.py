"""Test signals and in-memory audio files.

Generators return (n,) float64 arrays; :func:`encode` turns (n,) or
(n, channels) samples into the bytes of a real audio file written by
libsndfile (through soundfile) without touching the disk.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile

# libsndfile's Vorbis encoder has crashed on very large single writes; blocks avoid it.
_WRITE_BLOCK_FRAMES = 1 << 16


def time_axis(seconds: float, sample_rate: int) -> np.ndarray:
    """(round(seconds * sample_rate),) float64 sample times in seconds."""
    return np.arange(round(seconds * sample_rate)) / sample_rate


def tone(
    frequency_hz: float,
    seconds: float,
    sample_rate: int,
    amplitude: float = 0.5,
    phase: float = 0.0,
) -> np.ndarray:
    """A sine ``amplitude * sin(2 pi f t + phase)``: (n,) float64."""
    return amplitude * np.sin(2 * np.pi * frequency_hz * time_axis(seconds, sample_rate) + phase)


def white_noise(seconds: float, sample_rate: int, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """Gaussian noise with standard deviation ``amplitude``: (n,) float64, reproducible."""
    count = round(seconds * sample_rate)
    return amplitude * np.random.default_rng(seed).standard_normal(count)


def chirp(
    start_hz: float, end_hz: float, seconds: float, sample_rate: int, amplitude: float = 0.5
) -> np.ndarray:
    """A linear frequency sweep from ``start_hz`` to ``end_hz``: (n,) float64."""
    t = time_axis(seconds, sample_rate)
    sweep_rate = (end_hz - start_hz) / seconds
    return amplitude * np.sin(2 * np.pi * (start_hz * t + 0.5 * sweep_rate * t**2))


def encode(
    samples: np.ndarray,
    sample_rate: int,
    format: str = "WAV",
    subtype: str | None = None,
    **options: object,
) -> bytes:
    """The bytes of an audio file holding ``samples`` ((n,) or (n, channels)).

    ``format``/``subtype`` are libsndfile names ("WAV"/"PCM_16", "FLAC"/"PCM_24",
    "OGG"/"VORBIS", "MP3"/"MPEG_LAYER_III", ...); ``options`` go to
    ``soundfile.SoundFile`` (e.g. ``compression_level``, ``bitrate_mode``).
    Integer arrays are stored without rescaling.
    """
    frames = samples[:, np.newaxis] if samples.ndim == 1 else samples
    buffer = io.BytesIO()
    with soundfile.SoundFile(
        buffer,
        mode="w",
        samplerate=sample_rate,
        channels=frames.shape[1],
        format=format,
        subtype=subtype,
        **options,  # type: ignore[arg-type]
    ) as sound_file:
        for start in range(0, frames.shape[0], _WRITE_BLOCK_FRAMES):
            sound_file.write(frames[start : start + _WRITE_BLOCK_FRAMES])
    return buffer.getvalue()


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency in Hz of the strongest spectral peak, refined between FFT bins.

    Uses a Hann window and parabolic interpolation of the log magnitude, which
    is accurate to a small fraction of a bin for a steady tone.
    """
    windowed = samples * np.hanning(samples.size)
    magnitude = np.abs(np.fft.rfft(windowed))
    peak = int(np.argmax(magnitude[1:-1])) + 1
    left, centre, right = np.log(magnitude[peak - 1 : peak + 2] + 1e-300)
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (peak + offset) * sample_rate / samples.size


def rms(samples: np.ndarray) -> float:
    """Root mean square of a signal."""
    return float(np.sqrt(np.mean(np.square(samples))))
