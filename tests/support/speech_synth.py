"""Speech-like and event-like test signals, synthesised with numpy (16 kHz float64).

The speech-like signal has what the speech detectors and intelligibility
measures look at in real speech: syllables at ~4-5 per second (syllabic
amplitude modulation), voiced vowels made of a harmonic series whose pitch
drifts between ~95 and ~190 Hz shaped by three formants that change from vowel
to vowel, fricative noise bursts (2.5-7 kHz) before some vowels, and short pauses
between "words". It is not intelligible, but STOI and a listener would treat its
spectro-temporal structure like speech.

The event signals stand in for the anomalies the classifier must still hear:
a steady tone, a beeping alarm, a siren sweep, glass-like bursts and screams
(sustained high-pitched vowels).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000

#: (F1, F2, F3) in Hz of a few vowels (Peterson & Barney averages, male voices).
VOWEL_FORMANTS_HZ = (
    (730.0, 1090.0, 2440.0),  # a
    (270.0, 2290.0, 3010.0),  # i
    (300.0, 870.0, 2240.0),  # u
    (530.0, 1840.0, 2480.0),  # e
    (570.0, 840.0, 2410.0),  # o
    (660.0, 1720.0, 2410.0),  # ae
)
FORMANT_BANDWIDTHS_HZ = (90.0, 110.0, 170.0)


def _formant_gain(frequencies: np.ndarray, formants: tuple[float, float, float]) -> np.ndarray:
    """Amplitude of a cascade of resonances at ``frequencies`` (any shape, float64)."""
    gain = np.zeros_like(frequencies)
    for centre, bandwidth, weight in zip(formants, FORMANT_BANDWIDTHS_HZ, (1.0, 0.7, 0.35), strict=True):
        gain += weight / np.sqrt(1.0 + ((frequencies - centre) / (bandwidth / 2.0)) ** 2)
    # Glottal source tilt: about -12 dB per octave above 100 Hz.
    return gain * np.minimum(1.0, (100.0 / np.maximum(frequencies, 1.0)) ** 2) ** 0.5


def _vowel(
    num_samples: int,
    f0_start: float,
    f0_end: float,
    formants: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """(num_samples,) voiced vowel: harmonics of a gliding pitch through the formant filter."""
    t = np.arange(num_samples) / SAMPLE_RATE
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
    f0 = np.linspace(f0_start, f0_end, num_samples) * vibrato
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    harmonics = np.arange(1, int(4000 // min(f0_start, f0_end)) + 1)
    # Harmonic amplitudes follow the formant envelope at each harmonic's instantaneous
    # frequency; harmonics beyond 4 kHz are left out (band-limited like a real voice).
    freqs = harmonics[:, None] * f0[None, :]
    amplitudes = _formant_gain(freqs, formants) * (freqs < 4000.0)
    return np.sum(amplitudes * np.sin(harmonics[:, None] * phase[None, :]), axis=0)


def _fricative(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(num_samples,) band-limited noise 2.5-7 kHz (an /s/ or /sh/ like burst)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples, 1 / SAMPLE_RATE)
    spectrum *= (freqs > 2500.0) & (freqs < 7000.0)
    return np.fft.irfft(spectrum, n=num_samples)


def _envelope(num_samples: int, ramp_fraction: float = 0.3) -> np.ndarray:
    """Raised-cosine attack/decay envelope of a syllable part."""
    ramp = max(1, int(num_samples * ramp_fraction))
    env = np.ones(num_samples)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[:ramp] = rise
    env[-ramp:] = rise[::-1]
    return env


def speech_like(seconds: float, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """(round(seconds * 16000),) float64 speech-like signal, peak ``level``.

    Words of 2-4 syllables (each 180-280 ms: optional 50-90 ms fricative then a
    vowel) separated by 80-250 ms pauses; pitch declines across each word like an
    intonation phrase.
    """
    rng = np.random.default_rng(seed)
    total = round(seconds * SAMPLE_RATE)
    out = np.zeros(total + 2 * SAMPLE_RATE)  # room for the last word, cropped below
    pos = int(0.1 * SAMPLE_RATE)
    while pos < total:
        syllables = int(rng.integers(2, 5))
        f0 = rng.uniform(130.0, 190.0)
        for _ in range(syllables):
            if rng.random() < 0.5:
                n_fric = int(rng.uniform(0.05, 0.09) * SAMPLE_RATE)
                burst = 0.25 * _fricative(n_fric, rng) * _envelope(n_fric)
                out[pos : pos + n_fric] += burst
                pos += n_fric
            n_vowel = int(rng.uniform(0.13, 0.2) * SAMPLE_RATE)
            formants = VOWEL_FORMANTS_HZ[int(rng.integers(len(VOWEL_FORMANTS_HZ)))]
            f0_next = max(95.0, f0 * rng.uniform(0.88, 0.98))
            vowel = _vowel(n_vowel, f0, f0_next, formants, rng) * _envelope(n_vowel)
            vowel *= rng.uniform(0.6, 1.0)
            out[pos : pos + n_vowel] += vowel
            pos += n_vowel + int(rng.uniform(0.01, 0.04) * SAMPLE_RATE)
            f0 = f0_next
        pos += int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)
    out = out[:total] + 1e-4 * rng.standard_normal(total)  # a faint room noise floor
    return level * out / np.max(np.abs(out))


def tone(seconds: float, frequency: float = 1000.0, level: float = 0.5) -> np.ndarray:
    """(n,) steady sine."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return level * np.sin(2 * np.pi * frequency * t)


def beeping_alarm(
    seconds: float, frequency: float = 3100.0, beeps_per_second: float = 2.0, level: float = 0.5
) -> np.ndarray:
    """(n,) smoke-alarm-like square-wave beeps (50 % duty), 2 ms ramps."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    carrier = np.sign(np.sin(2 * np.pi * frequency * t))
    gate = (np.mod(t * beeps_per_second, 1.0) < 0.5).astype(np.float64)
    ramp = np.hanning(2 * 32 + 1)[: 2 * 32 + 1]
    gate = np.convolve(gate, ramp / ramp.sum(), mode="same")
    return level * carrier * gate


def siren(
    seconds: float,
    low: float = 650.0,
    high: float = 1500.0,
    sweeps_per_second: float = 0.25,
    level: float = 0.5,
) -> np.ndarray:
    """(n,) wailing siren: a tone with 3 harmonics sweeping between ``low`` and ``high``."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f = low + (high - low) * 0.5 * (1 - np.cos(2 * np.pi * sweeps_per_second * t))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    signal = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
    return level * signal / np.max(np.abs(signal))


def glass_bursts(seconds: float, seed: int = 0, bursts: int = 4, level: float = 0.8) -> np.ndarray:
    """(n,) breaking-glass-like events: sharp broadband clicks plus decaying high resonances."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    starts = np.sort(
        rng.choice(np.arange(int(0.1 * SAMPLE_RATE), n - SAMPLE_RATE // 2), bursts, replace=False)
    )
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    for start in starts:
        noise = rng.standard_normal(t.size) * np.exp(-t / 0.02)
        ringing = sum(
            np.sin(2 * np.pi * rng.uniform(3000.0, 7000.0) * t) * np.exp(-t / rng.uniform(0.03, 0.12))
            for _ in range(6)
        )
        burst = noise + 0.5 * ringing
        end = min(n, start + t.size)
        out[start:end] += burst[: end - start]
    return level * out / np.max(np.abs(out))


def scream(seconds: float, seed: int = 0, level: float = 0.7) -> np.ndarray:
    """(n,) screams: 0.8-1.4 s sustained high-pitched vowels (f0 450-950 Hz) with pauses."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    pos = int(0.2 * SAMPLE_RATE)
    while pos < n - SAMPLE_RATE // 2:
        length = min(n - pos, int(rng.uniform(0.8, 1.4) * SAMPLE_RATE))
        t = np.linspace(0.0, 1.0, length)
        f0 = rng.uniform(450.0, 600.0) + rng.uniform(250.0, 350.0) * np.sin(np.pi * t)
        f0 *= 1.0 + 0.02 * np.sin(2 * np.pi * 6.0 * t * length / SAMPLE_RATE)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        harmonics = np.arange(1, 9)
        freqs = harmonics[:, None] * f0[None, :]
        amplitudes = _formant_gain(freqs, (900.0, 1400.0, 2800.0)) * (freqs < 7500.0)
        voice = np.sum(amplitudes * np.sin(harmonics[:, None] * phase[None, :]), axis=0)
        out[pos : pos + length] += voice * _envelope(length, 0.1)
        pos += length + int(rng.uniform(0.3, 0.6) * SAMPLE_RATE)
    return level * out / np.max(np.abs(out))
