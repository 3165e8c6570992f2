"""Synthesised sounds of the evaluation set, at 16 kHz (VGGish's rate), float64 in [-1, 1].

Foregrounds follow public descriptions of the signals: the temporal-three (T3) pattern of
smoke alarms (ISO 8201 / NFPA 72: 0.5 s on, 0.5 s off, three times, then 1.5 s off), the
temporal-four (T4) pattern of CO alarms (0.1 s on, 0.1 s off, four times, then 5 s off), a
siren's wail (a slow up-down sweep between 600 and 1500 Hz) and door knocks (damped low
resonances with a click). Backgrounds are a room tone (soft pinkish noise and mains hum) and a
rain-like bed (shaped noise with random drops). Each is deterministic given its generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

RATE: Final = 16000
ALARM_HZ: Final = 3100.0


def _tone(seconds: float, hz: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5-ms ramps: no clicks
    return ramp * (np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(2 * np.pi * 3 * hz * t)) / 1.3


def _pattern(
    on: float, off: float, count: int, rest: float, cycles: int, rng: np.random.Generator
) -> np.ndarray:
    hz = ALARM_HZ * (1 + rng.uniform(-0.03, 0.03))
    cycle = []
    for _ in range(count):
        cycle += [_tone(on, hz, rng), np.zeros(round(off * RATE))]
    cycle[-1] = np.zeros(round(rest * RATE))
    signal = np.concatenate(cycle * cycles)
    return _trim(signal)


def smoke_alarm_t3(rng: np.random.Generator) -> np.ndarray:
    """Two T3 cycles (7 s): beep beep beep, pause, beep beep beep."""
    return _pattern(0.5, 0.5, 3, 1.5, 2, rng)


def co_alarm_t4(rng: np.random.Generator) -> np.ndarray:
    """Two T4 cycles: four short beeps, 5 s of silence, four short beeps (6.5 s)."""
    return _pattern(0.1, 0.1, 4, 5.0, 2, rng)


def siren_wail(rng: np.random.Generator) -> np.ndarray:
    """Two wail cycles of 3-4 s each: frequency swept 600 -> 1500 -> 600 Hz."""
    period = rng.uniform(3.0, 4.0)
    t = np.arange(round(2 * period * RATE)) / RATE
    hz = 1050 - 450 * np.cos(2 * np.pi * t / period)
    phase = 2 * np.pi * np.cumsum(hz) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)
    return _trim(ramp * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)) / 1.6)


def door_knocks(rng: np.random.Generator) -> np.ndarray:
    """Three to five knocks about 0.25 s apart: damped 120-250 Hz resonances and a short click."""
    count = int(rng.integers(3, 6))
    gap = rng.uniform(0.2, 0.3)
    knock_len = int(0.2 * RATE)
    t = np.arange(knock_len) / RATE
    step = round(gap * RATE)
    out = np.zeros(step * (count - 1) + knock_len)
    for index in range(count):
        hz = rng.uniform(120, 250)
        body = np.sin(2 * np.pi * hz * t) * np.exp(-t / 0.03)
        click = rng.normal(0, 1, knock_len) * np.exp(-t / 0.003)
        start = index * step
        out[start : start + knock_len] += 0.7 * body + 0.3 * click
    return _trim(out / np.max(np.abs(out)))


def _trim(signal: np.ndarray) -> np.ndarray:
    """Without leading and trailing silence: the annotation's onset and offset are the sound's."""
    loud = np.flatnonzero(np.abs(signal) > 1e-4)
    return signal[loud[0] : loud[-1] + 1]


def _coloured(samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0: white, 1: pink), unit RMS."""
    spectrum = np.fft.rfft(rng.normal(0, 1, samples))
    freqs = np.fft.rfftfreq(samples, 1 / RATE)
    spectrum[1:] /= freqs[1:] ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, samples)
    return noise / np.sqrt(np.mean(noise**2))


def room_tone(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A quiet room: pinkish noise and a faint 50-Hz hum with harmonics."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    return 0.01 * _coloured(n, 1.0, rng) + 0.002 * hum


def rain_bed(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Rain-like: a bed of slightly high-passed noise and random drops (short decaying clicks)."""
    n = round(seconds * RATE)
    bed = 0.03 * _coloured(n, 0.3, rng)
    drops = np.zeros(n)
    positions = rng.integers(0, n, int(seconds * 40))
    drops[positions] = rng.normal(0, 0.15, positions.shape[0])
    kernel = np.exp(-np.arange(int(0.004 * RATE)) / (0.001 * RATE))
    return bed + np.convolve(drops, kernel)[:n]


#: foreground label -> its generator
FOREGROUNDS: Final[dict[str, Callable[[np.random.Generator], np.ndarray]]] = {
    "smoke_alarm_t3": smoke_alarm_t3,
    "co_alarm_t4": co_alarm_t4,
    "siren": siren_wail,
    "door_knock": door_knocks,
}
#: background name -> its generator
BACKGROUNDS: Final[dict[str, Callable[[float, np.random.Generator], np.ndarray]]] = {
    "room_tone": room_tone,
    "rain": rain_bed,
}
