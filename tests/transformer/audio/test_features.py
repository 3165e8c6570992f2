"""The log-mel front end against an independent, loop-by-loop transcription of docs/reference/model.md §1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transformer.audio.features import example_count, mel_matrix, waveform_to_examples

RATE = 16_000


def _mel(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


def _hz(mel: float) -> float:
    return 700.0 * (math.exp(mel / 1127.0) - 1.0)


def _band_edges_hz() -> list[float]:
    low, high = _mel(125.0), _mel(7500.0)
    return [_hz(low + i * (high - low) / 65) for i in range(66)]


def _reference_mel_weights() -> np.ndarray:
    """Triangles written out bin by bin, band by band."""
    low, high = _mel(125.0), _mel(7500.0)
    edges = [low + i * (high - low) / 65 for i in range(66)]
    weights = np.zeros((257, 64))
    for k in range(1, 257):  # the DC bin stays zero
        m = _mel(8000.0 * k / 256)
        for j in range(64):
            lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
            if lo < m <= mid:
                weights[k, j] = (m - lo) / (mid - lo)
            elif mid < m < hi:
                weights[k, j] = (hi - m) / (hi - mid)
    return weights


def _reference_examples(samples: np.ndarray) -> np.ndarray:
    """Frame by frame: explicit periodic Hann, explicit 512-point DFT, explicit mel sum."""
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / 400) for n in range(400)])
    n = np.arange(400)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(257), n) / 512)  # zero padding to 512 is implicit
    weights = _reference_mel_weights()
    rows = []
    start = 0
    while start + 400 <= len(samples):
        spectrum = np.abs(dft @ (samples[start : start + 400] * window))
        rows.append([math.log(float(spectrum @ weights[:, j]) + 0.01) for j in range(64)])
        start += 160
    whole = len(rows) // 96
    return np.array(rows[: whole * 96]).reshape(whole, 96, 64)


def _test_signal(num_samples: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / RATE
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 1500 * t**2))
    return chirp + 0.05 * rng.standard_normal(num_samples)


def test_matches_independent_transcription() -> None:
    samples = _test_signal(2 * 15_360 + 400 + 1234)  # two examples plus a partial third
    expected = _reference_examples(samples)
    actual = waveform_to_examples(samples)
    assert expected.shape == (2, 96, 64)
    assert actual.shape == expected.shape
    assert actual.dtype == np.float64
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-10)


def test_chunked_long_input_matches_transcription_of_its_tail() -> None:
    # Longer than one internal chunk: the last examples must still line up with their frames.
    num_examples = 70
    samples = _test_signal(num_examples * 15_360 + 240, seed=5)
    actual = waveform_to_examples(samples)
    assert actual.shape == (num_examples, 96, 64)
    tail_start = 66 * 15_360  # example 66 starts at frame 66 * 96
    expected_tail = _reference_examples(samples[tail_start:])
    np.testing.assert_allclose(actual[66:], expected_tail, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("num_samples", "expected"),
    [
        (0, 0),
        (399, 0),
        (400, 0),
        (15_599, 0),
        (15_600, 1),
        (30_959, 1),
        (30_960, 2),
        (153_839, 9),
        (153_840, 10),
        (160_000, 10),
    ],
)
def test_example_count(num_samples: int, expected: int) -> None:
    frames = 0 if num_samples < 400 else 1 + (num_samples - 400) // 160
    assert frames // 96 == expected  # the test table itself follows the frame formula
    assert example_count(num_samples) == expected
    if num_samples:
        assert waveform_to_examples(np.zeros(num_samples)).shape == (expected, 96, 64)


def test_too_short_gives_empty_float64_array() -> None:
    examples = waveform_to_examples(np.zeros(15_599))
    assert examples.shape == (0, 96, 64)
    assert examples.dtype == np.float64


def test_rejects_multichannel_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        waveform_to_examples(np.zeros((20_000, 2)))


def test_mel_matrix_matches_explicit_triangles() -> None:
    weights = mel_matrix()
    assert weights.shape == (257, 64)
    np.testing.assert_allclose(weights, _reference_mel_weights(), rtol=0, atol=1e-12)


def test_mel_matrix_shape_properties() -> None:
    weights = mel_matrix()
    assert not weights.flags.writeable
    assert np.all(weights[0] == 0.0)
    assert np.all(weights >= 0.0) and np.all(weights <= 1.0)
    bins_hz = np.linspace(0, 8000, 257)
    edges = _band_edges_hz()
    for j in range(64):
        column = weights[:, j]
        support = np.flatnonzero(column)
        assert support.size >= 1, f"band {j} is empty"
        assert np.all(np.diff(support) == 1), f"band {j} support is not contiguous"
        # Support lies strictly inside the band's outer edges.
        assert bins_hz[support[0]] > edges[j] and bins_hz[support[-1]] < edges[j + 2]
        # Triangular: rises to one peak, then falls.
        peak = int(np.argmax(column))
        assert np.all(np.diff(column[: peak + 1]) >= 0) and np.all(np.diff(column[peak:]) <= 0)
        # The peak is at the bin nearest the band centre (in mel), within one bin.
        centre_bin = int(np.argmin([abs(_mel(f) - _mel(edges[j + 1])) for f in bins_hz]))
        assert abs(peak - centre_bin) <= 1
    assert mel_matrix() is weights  # cached


@pytest.mark.parametrize("band", [5, 20, 40, 60])
def test_tone_lands_in_its_mel_band(band: int) -> None:
    frequency = _band_edges_hz()[band + 1]  # the band's centre frequency
    t = np.arange(2 * RATE) / RATE
    examples = waveform_to_examples(0.5 * np.sin(2 * np.pi * frequency * t))
    energy_per_band = examples.mean(axis=(0, 1))
    assert int(np.argmax(energy_per_band)) == band
    # Bands far from the tone see only window leakage: well below the peak band.
    assert energy_per_band[band] - np.median(energy_per_band) > 5.0


def test_silence_is_log_of_offset() -> None:
    examples = waveform_to_examples(np.zeros(20_000))
    np.testing.assert_allclose(examples, math.log(0.01), rtol=0, atol=1e-12)


@pytest.mark.slow
def test_stft_magnitudes_agree_with_tf_signal_stft() -> None:
    tf = pytest.importorskip("tensorflow")
    samples = _test_signal(15_600, seed=11)
    stft = tf.signal.stft(
        tf.constant(samples, dtype=tf.float64), frame_length=400, frame_step=160, fft_length=512
    )
    expected = np.log(np.abs(stft.numpy()) @ _reference_mel_weights() + 0.01)
    np.testing.assert_allclose(waveform_to_examples(samples)[0], expected, rtol=0, atol=1e-12)
