"""Which frames of a clip are dominated by speech.

Speech is recognised by cues that must hold together, each chosen because the
sounds the classifier must keep lack at least one of them:

- voicing with a *speaking* pitch: the autocorrelation of the 80-1000 Hz band
  (rumble damped) has its first strong peak (>= 0.7) at a lag of 2.5-14 ms
  (70-400 Hz). Alarms, sirens, screams and whistles are periodic too, but at a
  higher fundamental; gunshots, glass, rain and thunder are not periodic;
- no single dominant tone: under 70 % of the energy above 100 Hz within +-2
  bins of the strongest bin (a low hum or a beep in the pitch range);
- at least a quarter of the energy in the speech band (300-3400 Hz);
- syllabic rhythm: in at least one speech sub-band, the level above the
  stationary background, high-passed at ~3 Hz, moves by >= 4 dB RMS over a
  second. Sustained sounds (a held scream, a siren wail, a car horn) do not.

A frame is speech when at least a fifth of the frames within ~0.6 s around it
are voiced in this sense and the syllabic modulation is strong. Unvoiced
consonants and short pauses between words fall inside such regions; the caller
widens them by a margin. All thresholds were set on recorded and synthetic
speech and events (docs/privacy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from transformer.privacy.smoothing import moving_average
from transformer.privacy.stft import FrameGrid, sqrt_hann

SPEECH_BAND_HZ = (300.0, 3400.0)
PITCH_BAND_HZ = (80.0, 1000.0)
SPEECH_F0_HZ = (70.0, 400.0)
#: Highest fundamental the pitch search considers at all (screams, whistles).
MAX_F0_HZ = 2000.0

MIN_HARMONICITY = 0.7
MAX_TONAL_FRACTION = 0.7
MIN_SPEECH_BAND_FRACTION = 0.25
#: Frames quieter than this below the loudest frame, or than -60 dBFS, are ignored.
LOUDNESS_RANGE_DB = 45.0
ABSOLUTE_FLOOR_DBFS = -60.0

VOICED_WINDOW_SECONDS = 0.6
MIN_VOICED_FRACTION = 0.2
MODULATION_RANGE_DB = 50.0
FLOOR_WINDOW_SECONDS = 1.5
FLOOR_KEPT = 0.1
MODULATION_BANDS_HZ = (300.0, 600.0, 1200.0, 2400.0, 3400.0)
MODULATION_SLOW_SECONDS = 0.3
MODULATION_FAST_SECONDS = 0.05
MODULATION_WINDOW_SECONDS = 1.0
MIN_MODULATION_DB = 4.0

#: Frames analysed at once (~33 s at a 16-ms hop): bounds the memory of long clips.
FRAME_BATCH = 2048


@dataclass(frozen=True)
class FrameCues:
    """Per-frame speech cues, each (num_frames,) float64 or bool."""

    level_dbfs: np.ndarray
    voiced: np.ndarray
    modulation_db: np.ndarray


def _running_minimum(values: np.ndarray, width: int) -> np.ndarray:
    """Centred minimum over ``width`` frames along axis 0 (edges use what exists)."""
    half = width // 2
    padded = np.pad(values, ((half, half), (0, 0)), mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0).min(axis=-1)


def _first_strong_peak_lag(autocorr: np.ndarray, min_lag: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Lag of the first autocorrelation peak within 85 % of the best, and the best value.

    Args:
        autocorr: (frames, lags) normalised autocorrelation (1 at lag 0).

    Returns:
        ((frames,) int lag, (frames,) float64 harmonicity). Lags before the first
        negative value are skipped: there the correlation is only the decay of
        the main lobe, not periodicity.
    """
    lags = np.arange(autocorr.shape[1])
    negative = autocorr < 0.0
    first_negative = np.where(negative.any(axis=1), negative.argmax(axis=1), autocorr.shape[1])
    searchable = (lags >= np.maximum(first_negative, min_lag)[:, None]) & (lags <= max_lag)
    candidates = np.where(searchable, autocorr, -1.0)
    harmonicity = candidates.max(axis=1)
    first = np.argmax(candidates >= 0.85 * harmonicity[:, None], axis=1)
    return first, harmonicity


@cache
def _window_autocorrelation(frame: int) -> np.ndarray:
    """(frame,) autocorrelation of the analysis window at even lags, 1 at lag 0."""
    spectrum = np.fft.rfft(sqrt_hann(frame), n=2 * frame)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2)[:frame:2]
    autocorr /= autocorr[0]
    autocorr.setflags(write=False)
    return autocorr


@cache
def _pitch_band_weights(frame: int, sample_rate: int) -> np.ndarray:
    """(frame // 2 + 1,) weights of the padded spectrum's lower half for the pitch search.

    A band-pass up to ``PITCH_BAND_HZ[1]`` whose 4th-order high-pass edge at
    ``PITCH_BAND_HZ[0]`` damps rumble (wind, traffic, handling noise): a narrow
    low band alone looks periodic at its centre frequency. A voice keeps its
    harmonic comb above the edge even when its fundamental is damped.
    """
    freqs = np.arange(frame // 2 + 1) * sample_rate / (2.0 * frame)
    high_pass = 1.0 / (1.0 + (PITCH_BAND_HZ[0] / np.maximum(freqs, 1.0)) ** 4)
    weights = high_pass * (freqs <= PITCH_BAND_HZ[1])
    weights.setflags(write=False)
    return weights


def padded_spectrum(frames: np.ndarray) -> np.ndarray:
    """(num_frames, frame + 1) complex rfft of the frames zero-padded to twice their length.

    Its even bins are exactly the frames' own ``rfft``; the padding makes the
    autocorrelation computed from it linear instead of circular.
    """
    return np.fft.rfft(frames, n=2 * frames.shape[1], axis=1)


def _voicing(padded: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: is the pitch a speaking voice's, and how periodic is the frame.

    Returns:
        ((frames,) bool speech-range pitch, (frames,) float64 harmonicity ~[0, 1]).
    """
    frame = padded.shape[1] - 1
    # The pitch band ends far below a quarter of the sample rate, so the lower
    # half of the padded spectrum gives its autocorrelation alias-free at every
    # second lag, for a quarter of the cost.
    low_half = padded[:, : frame // 2 + 1]
    pitch_power = (low_half.real**2 + low_half.imag**2) * _pitch_band_weights(frame, sample_rate)
    autocorr = np.fft.irfft(pitch_power, n=frame, axis=1)[:, : frame // 2]
    # The window's own autocorrelation shrinks long lags; dividing it out makes a
    # perfectly periodic signal score ~1 at its period whatever the lag.
    autocorr = autocorr / np.maximum(autocorr[:, :1], 1e-30) / np.maximum(_window_autocorrelation(frame), 0.2)
    lag_rate = sample_rate / 2.0
    max_lag = int(lag_rate / SPEECH_F0_HZ[0])
    lag, harmonicity = _first_strong_peak_lag(autocorr, int(lag_rate / MAX_F0_HZ), max_lag)
    return (lag >= lag_rate / SPEECH_F0_HZ[1]) & (lag <= max_lag), harmonicity


def _syllabic_modulation(sub_band_energy: np.ndarray, frames_per_second: float) -> np.ndarray:
    """(frames,) dB: RMS of the ~3-20 Hz level fluctuation of the liveliest sub-band.

    Args:
        sub_band_energy: (frames, bands) energy of each speech sub-band.
    """

    def frames_in(seconds: float) -> int:
        return round(seconds * frames_per_second)

    smoothed = moving_average(sub_band_energy, frames_in(MODULATION_FAST_SECONDS))
    # A stationary background (rain, fans, hiss) compresses the level swings of
    # speech in log scale: subtract its floor (the lowest smoothed level over
    # ~1.5 s), keeping a tenth of it so that the background alone stays flat.
    floor = _running_minimum(smoothed, frames_in(FLOOR_WINDOW_SECONDS))
    level_db = 10.0 * np.log10(np.maximum(smoothed - floor, 0.0) + FLOOR_KEPT * floor + 1e-30)
    level_db = np.maximum(level_db, level_db.max(axis=0) - MODULATION_RANGE_DB)
    syllabic = level_db - moving_average(level_db, frames_in(MODULATION_SLOW_SECONDS))
    rms = np.sqrt(moving_average(syllabic**2, frames_in(MODULATION_WINDOW_SECONDS)))
    # Strongest band wins: a steady or slowly sweeping sound (rain, a siren)
    # flattens the bands it covers, not the others.
    return rms.max(axis=1)


@dataclass(frozen=True)
class FrameFeatures:
    """What one batch of frames contributes to the cues: each (frames,) or (frames, bands)."""

    level_dbfs: np.ndarray
    voiced_candidate: np.ndarray
    sub_band_energy: np.ndarray


def frame_features(padded: np.ndarray, sample_rate: int) -> FrameFeatures:
    """Per-frame measurements that need no context from other frames.

    Args:
        padded: ``padded_spectrum(frames)`` of (num_frames, frame) windowed
            frames at ``sample_rate``.
    """
    frame = padded.shape[1] - 1
    spectrum = padded[:, ::2]
    power = spectrum.real**2 + spectrum.imag**2

    def bin_index(hertz: float) -> int:
        return int(np.ceil(hertz * frame / sample_rate))

    speech_pitch, harmonicity = _voicing(padded, sample_rate)
    audible = power[:, bin_index(100.0) :]
    total = audible.sum(axis=1) + 1e-30
    band_energy = power[:, bin_index(SPEECH_BAND_HZ[0]) : bin_index(SPEECH_BAND_HZ[1])].sum(axis=1)
    strongest = np.argmax(audible, axis=1)
    around = np.clip(strongest[:, None] + np.arange(-2, 3), 0, audible.shape[1] - 1)
    tonal_fraction = np.take_along_axis(audible, around, axis=1).sum(axis=1) / total

    # Mean square of each frame (Parseval on the one-sided spectrum) relative to
    # a full-scale sine through the window (mean square 0.25).
    mean_square = (2.0 * power.sum(axis=1) - power[:, 0] - power[:, -1]) / frame**2
    edges = np.array([bin_index(hertz) for hertz in MODULATION_BANDS_HZ])
    return FrameFeatures(
        level_dbfs=10.0 * np.log10(mean_square / 0.25 + 1e-30),
        voiced_candidate=(
            speech_pitch
            & (harmonicity >= MIN_HARMONICITY)
            & (tonal_fraction < MAX_TONAL_FRACTION)
            & (band_energy / total > MIN_SPEECH_BAND_FRACTION)
        ),
        sub_band_energy=np.add.reduceat(power[:, edges[0] : edges[-1]], edges[:-1] - edges[0], axis=1),
    )


def frame_cues(grid: FrameGrid, padded_samples: np.ndarray, sample_rate: int) -> FrameCues:
    """Speech cues of every frame of a clip, computed ``FRAME_BATCH`` frames at a time.

    Args:
        grid: the clip's frame grid (hop = frame / 2).
        padded_samples: ``grid.pad(samples)``.
    """
    batches = [
        frame_features(padded_spectrum(grid.frames(padded_samples, np.arange(start, stop))), sample_rate)
        for start in range(0, grid.num_frames, FRAME_BATCH)
        for stop in [min(start + FRAME_BATCH, grid.num_frames)]
    ]
    level_dbfs = np.concatenate([batch.level_dbfs for batch in batches])
    # Loudness is judged against the whole clip's loudest frame.
    loud = (level_dbfs > level_dbfs.max() - LOUDNESS_RANGE_DB) & (level_dbfs > ABSOLUTE_FLOOR_DBFS)
    sub_band_energy = np.concatenate([batch.sub_band_energy for batch in batches])
    return FrameCues(
        level_dbfs=level_dbfs,
        voiced=loud & np.concatenate([batch.voiced_candidate for batch in batches]),
        modulation_db=_syllabic_modulation(sub_band_energy, sample_rate / grid.hop),
    )


def speech_frames(cues: FrameCues, frames_per_second: float) -> np.ndarray:
    """(num_frames,) bool: frames inside a speech region (voiced density + syllabic rhythm)."""
    voiced_fraction = moving_average(
        cues.voiced.astype(np.float64), round(VOICED_WINDOW_SECONDS * frames_per_second)
    )
    return (voiced_fraction >= MIN_VOICED_FRACTION) & (cues.modulation_db >= MIN_MODULATION_DB)
