"""``speech_mask``: replace speech by pitchless noise in scrambled order, keep the rest.

1. Find speech regions (``speech_detect``), widen them by ``margin_ms`` so word
   onsets and trailing consonants are covered, and soften their edges (~50 ms).
2. Inside them, swap every short-time spectrum (32 ms frames, 16 ms hop) for
   Gaussian noise shaped by a spectral envelope that is
   - smoothed over 400 Hz: no harmonics, so no pitch, intonation or voicing
     (the strongest speaker cues) survive, and
   - taken from another place of the speech regions: the envelopes are cut
     into ``block_ms`` blocks (sub-word: shorter than most phonemes) that are
     shuffled across all speech regions of the clip with a secure random order.
   The result keeps "someone is talking, this loud, with this overall timbre"
   but neither the sequence of sounds (words) nor the voice.
3. Everything outside the regions passes through sample-exact (the STFT
   reconstructs perfectly), so tones, alarms, sirens, glass, gunshots and other
   events not detected as speech reach the classifier unchanged.

Why not plain envelope-matched noise (a noise vocoder)? With a short envelope it
stays intelligible (that is how cochlear-implant simulations work); with a long
smoothing it no longer is, but the noise then follows the original's loudness
contour. Shuffling the blocks removes that contour too.

Events that overlap detected speech in time are replaced together with it
(their energy is spread over the region as noise): the price of not trusting
any separation of speech from a mixture. docs/privacy.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from transformer.privacy.randomness import PrivacyRandom
from transformer.privacy.smoothing import dilate, moving_average
from transformer.privacy.speech_detect import FRAME_BATCH, frame_cues, speech_frames
from transformer.privacy.stft import FrameGrid, frame_grid

ENVELOPE_BANDWIDTH_HZ = 400.0
EDGE_SECONDS = 0.05


def frame_weights(
    grid: FrameGrid, padded_samples: np.ndarray, sample_rate: int, margin_ms: float
) -> np.ndarray:
    """(num_frames,) float64 in [0, 1]: how much of each frame of ``grid`` is replaced."""
    frames_per_second = sample_rate / grid.hop
    speech = speech_frames(frame_cues(grid, padded_samples, sample_rate), frames_per_second)
    if not speech.any():
        return np.zeros(grid.num_frames)
    region = dilate(speech, round(margin_ms / 1000.0 * frames_per_second))
    return moving_average(region.astype(np.float64), round(EDGE_SECONDS * frames_per_second))


def speech_weights(samples: np.ndarray, sample_rate: int, margin_ms: float) -> np.ndarray:
    """(num_frames,) float64 in [0, 1]: how much of each STFT frame ``mask_speech`` replaces.

    Args:
        samples: (n,) float64 waveform; frames as ``frame_grid(n, sample_rate)``.
    """
    grid = frame_grid(samples.shape[0], sample_rate)
    return frame_weights(grid, grid.pad(samples), sample_rate, margin_ms)


def _shuffled_block_order(count: int, block: int, rng: PrivacyRandom) -> np.ndarray:
    """(count,) positions ``0..count-1`` cut into runs of ``block`` put back in random order."""
    num_blocks = -(-count // block)
    padded = np.full(num_blocks * block, -1)
    padded[:count] = np.arange(count)
    shuffled = padded.reshape(num_blocks, block)[rng.permutation(num_blocks)].reshape(-1)
    return shuffled[shuffled >= 0]


def _spectra(grid: FrameGrid, padded_samples: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), frame // 2 + 1) complex spectra of some frames."""
    return np.fft.rfft(grid.frames(padded_samples, rows), axis=1)


def mask_speech(
    samples: np.ndarray,
    params: Mapping[str, float],
    rng: PrivacyRandom,
    sample_rate: int,
) -> np.ndarray:
    """Replace the speech regions of ``samples`` by block-shuffled, envelope-shaped noise.

    Frames are processed ``FRAME_BATCH`` at a time, so the memory beyond the
    output stays bounded (plus a float32 envelope per replaced frame) however
    long the clip.

    Args:
        samples: (n,) float64 waveform.
        params: ``block_ms`` and ``margin_ms``.

    Returns:
        (n,) float64; an exact copy of the input when no speech is found.
    """
    grid = frame_grid(samples.shape[0], sample_rate)
    padded_samples = grid.pad(samples)
    weight = frame_weights(grid, padded_samples, sample_rate, params["margin_ms"])
    replaced = np.flatnonzero(weight > 0.0)
    if replaced.size == 0:
        return samples.copy()
    out = padded_samples.copy()
    replace_frames(grid, padded_samples, weight, replaced, params, rng, sample_rate, out)
    return grid.unpad(out)


def replace_frames(
    grid: FrameGrid,
    padded_samples: np.ndarray,
    weight: np.ndarray,
    replaced: np.ndarray,
    params: Mapping[str, float],
    rng: PrivacyRandom,
    sample_rate: int,
    out: np.ndarray,
) -> None:
    """Swap the spectra of frames ``replaced`` for block-shuffled envelope noise, in ``out``.

    Args:
        grid, padded_samples: the frames' grid and the ``grid.pad``-ed original samples.
        weight: (num_frames,) how much of each frame is replaced (``speech_weights``).
        replaced: (k,) sorted frame indices with a positive weight.
        out: (padded_length,) float64, the signal being anonymised; each replaced frame's
            weighted difference is overlap-added to it in place.
    """
    smoothing = round(ENVELOPE_BANDWIDTH_HZ * grid.frame / sample_rate)
    envelopes = np.empty((replaced.size, grid.frame // 2 + 1), dtype=np.float32)
    for start in range(0, replaced.size, FRAME_BATCH):
        spectrum = _spectra(grid, padded_samples, replaced[start : start + FRAME_BATCH])
        power = spectrum.real**2 + spectrum.imag**2
        envelopes[start : start + FRAME_BATCH] = moving_average(power, smoothing, axis=1)

    block = max(1, round(params["block_ms"] / 1000.0 * sample_rate / grid.hop))
    source = _shuffled_block_order(replaced.size, block, rng)
    for start in range(0, replaced.size, FRAME_BATCH):
        rows = replaced[start : start + FRAME_BATCH]
        # Circular complex Gaussian noise with E|N|^2 = 1 per bin, scaled to the
        # envelope's power: what white noise through the same window would give.
        shape = (rows.size, envelopes.shape[1])
        noise = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)
        replacement = noise * np.sqrt(envelopes[source[start : start + FRAME_BATCH]].astype(np.float64))
        # Only the replaced frames change: add their difference to an exact copy.
        difference = (replacement - _spectra(grid, padded_samples, rows)) * weight[rows, None]
        grid.overlap_add_into(out, difference, rows)
