"""The measures of the privacy report: re-aligned STOI, voicing, log-mel distances."""

from __future__ import annotations

import numpy as np

from bench.privacy_signals import REALIGN_CHUNK, SR, SpeechCase
from transformer.audio.features import waveform_to_examples
from transformer.privacy import PrivacyRequest, parse_privacy_request
from transformer.privacy.speech_mask import speech_weights

# --- measures ----------------------------------------------------------------------


def _decimated(samples: np.ndarray, factor: int) -> np.ndarray:
    """Low-passed (FFT) and decimated copy for a coarse lag search."""
    spectrum = np.fft.rfft(samples)
    keep = spectrum.size // factor
    return np.fft.irfft(spectrum[:keep], n=samples.size // factor) / factor


def realigned_reference(original: np.ndarray, processed: np.ndarray) -> np.ndarray:
    """``original`` rearranged chunk by chunk to best match ``processed``.

    For each 0.25-s chunk of ``processed`` the lag into ``original`` with the
    highest normalised cross-correlation is searched at 4 kHz, refined at
    16 kHz, and that stretch of ``original`` becomes the reference there.
    """
    factor = 4
    n = original.size
    coarse_original = _decimated(original, factor)
    coarse_processed = _decimated(processed, factor)
    m = coarse_original.size
    size = 1 << int(np.ceil(np.log2(2 * m)))
    original_spectrum = np.fft.rfft(coarse_original, size)
    coarse_energy = np.concatenate([[0.0], np.cumsum(coarse_original**2)])
    reference = np.zeros(n)
    for start in range(0, n, REALIGN_CHUNK):
        length = min(REALIGN_CHUNK, n - start)
        piece = coarse_processed[start // factor : (start + length) // factor]
        span = piece.size
        if span == 0:
            reference[start : start + length] = original[start : start + length]
            continue
        correlation = np.fft.irfft(original_spectrum * np.conj(np.fft.rfft(piece, size)), size)
        window_energy = coarse_energy[span:] - coarse_energy[: m - span + 1]
        coarse_lag = int(np.argmax(correlation[: m - span + 1] / np.sqrt(window_energy + 1e-12)))
        target = processed[start : start + length]
        candidates = [
            lag
            for lag in range(coarse_lag * factor - factor, coarse_lag * factor + factor + 1)
            if 0 <= lag <= n - length
        ]
        scores = [
            float(np.dot(original[lag : lag + length], target))
            / np.sqrt(np.sum(original[lag : lag + length] ** 2) + 1e-12)
            for lag in candidates
        ]
        best = candidates[int(np.argmax(scores))]
        reference[start : start + length] = original[best : best + length]
    return reference


def voiced_frames(samples: np.ndarray) -> np.ndarray:
    """(frames,) bool: 16-ms-hop frames whose 80-1000 Hz band repeats itself at a pitch period.

    Normalised cross-correlation of a 20-ms stretch with the same stretch 2.5 to
    12.5 ms later (80-400 Hz pitch), no window taper, so white or speech-shaped
    noise stays far below the 0.8 threshold while voiced speech reaches ~1.
    Frames more than 20 dB below the loudest are ignored.
    """
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(samples.size, 1 / SR)
    low = np.fft.irfft(spectrum * ((freqs >= 80) & (freqs <= 1000)), samples.size)
    length, max_lag = 320, 200
    frames = np.lib.stride_tricks.sliding_window_view(low, length + max_lag)[::256]
    first = frames[:, :length]
    correlation = np.fft.irfft(
        np.fft.rfft(frames, 1024, axis=1) * np.conj(np.fft.rfft(first, 1024, axis=1)), 1024, axis=1
    )[:, : max_lag + 1]
    cumulative = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    shifted_energy = cumulative[:, length : length + max_lag + 1] - cumulative[:, : max_lag + 1]
    energy = cumulative[:, length]
    nccf = correlation / np.sqrt(shifted_energy * energy[:, None] + 1e-20)
    return (energy > 0.01 * energy.max()) & (nccf[:, 40:].max(axis=1) >= 0.8)


def log_mel_distances(original: np.ndarray, processed: np.ndarray) -> tuple[float, float]:
    """Mean |difference| of the VGGish log-mel features (natural log units).

    Returns:
        (frame by frame, of the clip-average spectrum). The second ignores where
        in the clip things happen, which is what a shuffle changes.
    """
    reference = waveform_to_examples(original).reshape(-1, 64)
    features = waveform_to_examples(processed).reshape(-1, 64)
    return (
        float(np.mean(np.abs(features - reference))),
        float(np.mean(np.abs(features.mean(axis=0) - reference.mean(axis=0)))),
    )


def event_cell_distance(case: SpeechCase, processed: np.ndarray) -> float:
    """How far the anonymised mixture is from the event alone where the event dominates.

    Mean |difference| of the log-mel features over the cells (frame, mel band)
    whose event magnitude is at least twice the speech's (6 dB): ~0 when the
    event passes unchanged, > 1 when it was replaced or moved.
    """
    assert case.event is not None
    event = waveform_to_examples(case.event).reshape(-1, 64)
    speech = waveform_to_examples(case.reference).reshape(-1, 64)
    features = waveform_to_examples(processed).reshape(-1, 64)
    dominated = event > speech + np.log(2.0)
    return float(np.mean(np.abs(features - event)[dominated]))


def replaced_fraction(samples: np.ndarray) -> float:
    """Share of STFT frames speech_mask replaces (fully or partly) in ``samples``."""
    margin = parse_privacy_request("speech_mask", {}).params["margin_ms"]
    return float(np.mean(speech_weights(samples, SR, margin) > 0))


def requests(method: str, seeds: int) -> list[PrivacyRequest]:
    """``seeds`` seeded default requests (one for ``none``: it is deterministic)."""
    base = parse_privacy_request(method, {})
    return [
        PrivacyRequest(base.method, base.params, seed=seed)
        for seed in range(1 if method == "none" else seeds)
    ]
