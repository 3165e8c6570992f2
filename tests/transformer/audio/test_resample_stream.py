"""A live stream resampled to 16 kHz gives the whole file's numbers (docs/reference/model.md §1).

The expected values are ``resample_to_16k`` of the whole signal (tested against resampy 0.2.2 and
a direct transcription in test_resample.py), and that transcription itself for one short stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.signals import chirp, white_noise
from tests.transformer.audio.test_resample import reference_resample
from transformer.audio.resample import rate_filter, resample_to_16k, resampled_length
from transformer.audio.resample_stream import StreamingResampler

# block-plan rates, a 2000-output period (44_056), a 16000-output one (44_101), upsampling (8k, 11.025k)
RATES = [8_000, 11_025, 22_050, 32_000, 44_056, 44_100, 44_101, 48_000, 96_000]


def random_chunks(total: int, seed: int) -> list[int]:
    """Chunk sizes summing to ``total``: empty, single samples, short and long runs, mixed."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        kind = rng.integers(4)
        sizes.append([0, 1, int(rng.integers(2, 500)), int(rng.integers(500, 9_000))][kind])
    sizes[-1] -= sum(sizes) - total
    return sizes


def streamed(signal: np.ndarray, rate: int, sizes: list[int]) -> np.ndarray:
    """push() every chunk in turn, then finish(); all outputs concatenated."""
    resampler = StreamingResampler(rate)
    outputs, start = [], 0
    for size in sizes:
        outputs.append(resampler.push(signal[start : start + size]))
        start += size
    assert start == signal.shape[0]
    outputs.append(resampler.finish())
    assert all(output.dtype == np.float64 and output.ndim == 1 for output in outputs)
    return np.concatenate(outputs)


def noise_and_chirp(rate: int, seconds: float) -> np.ndarray:
    return white_noise(seconds, rate, amplitude=0.3, seed=rate) + chirp(50, 7_000, seconds, rate)


@pytest.mark.parametrize("rate", RATES)
def test_random_chunks_give_the_whole_files_outputs(rate):
    # 20 s: at 44.1 kHz the accumulated times have drifted onto other taps for some outputs
    signal = noise_and_chirp(rate, 20.0)
    expected = resample_to_16k(signal, rate)
    for seed in (1, 2):
        actual = streamed(signal, rate, random_chunks(signal.shape[0], seed=rate + seed))
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate", [11_025, 44_100, 44_101, 48_000])
def test_one_chunk_and_single_samples_give_the_whole_files_outputs(rate):
    signal = noise_and_chirp(rate, 0.05)
    expected = resample_to_16k(signal, rate)
    np.testing.assert_allclose(streamed(signal, rate, [signal.shape[0]]), expected, rtol=0, atol=1e-12)
    ones = [1] * signal.shape[0]
    np.testing.assert_allclose(streamed(signal, rate, ones), expected, rtol=0, atol=1e-12)


def test_a_long_push_with_thousands_of_drifted_outputs_gives_the_files_outputs():
    # after a minute at 44.1 kHz the accumulated times have moved thousands of outputs onto other
    # taps than their block plan's: one push holds them all (grouped by phase), the next a few
    signal = noise_and_chirp(44_100, 60.0)
    expected = resample_to_16k(signal, 44_100)
    actual = streamed(signal, 44_100, [signal.shape[0] - 1_000, 1_000])
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


def test_a_stream_matches_the_direct_band_limited_interpolation():
    signal = noise_and_chirp(44_100, 0.2)
    expected = reference_resample(signal, 44_100)
    actual = streamed(signal, 44_100, random_chunks(signal.shape[0], seed=5))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_056, 44_100, 44_101, 96_000])
def test_short_and_odd_lengths_end_as_the_file_does(rate):
    # the final partial period and the wings cut by the stream's end
    for length in (1, 2, 3, 64, 441, 442, 960, 4_409, 44_099, 44_101):
        signal = white_noise(length / rate, rate, amplitude=0.5, seed=length)[:length]
        expected = resample_to_16k(signal, rate)
        steady = [97] * (length // 97) + [length % 97]
        for sizes in ([length], [0, length, 0], random_chunks(length, seed=length), steady):
            actual = streamed(signal, rate, sizes)
            assert actual.shape == (resampled_length(length, rate),), (length, sizes[:3])
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 44_101, 96_000])
def test_push_returns_every_output_whose_reach_is_in(rate):
    filt = rate_filter(rate)
    reach = filt.window.shape[0] // filt.step  # the widest wing, in input samples
    signal = noise_and_chirp(rate, 3.0)
    resampler, received, emitted = StreamingResampler(rate), 0, 0
    for size in random_chunks(signal.shape[0], seed=rate):
        emitted += resampler.push(signal[received : received + size]).shape[0]
        received += size
        # never more outputs than exist, never one held back longer than its wing needs
        assert emitted <= resampled_length(received, rate)
        assert emitted >= resampled_length(max(0, received - reach - 1), rate)
    emitted += resampler.finish().shape[0]
    assert emitted == resampled_length(signal.shape[0], rate)


# the filter's reach on both sides (2 x 177 samples at 44.1 kHz, 2 x 385 at 96 kHz) and about a block
# (441 and 960 samples; none at 44.101 kHz, computed output by output)
@pytest.mark.parametrize(
    ("rate", "bound", "seconds"), [(44_100, 1_000, 120), (44_101, 400, 30), (96_000, 2_000, 60)]
)
def test_buffered_input_stays_bounded_over_a_long_stream(rate, bound, seconds):
    chunk = rate // 10
    signal = white_noise(1.0, rate, amplitude=0.3, seed=1)
    resampler, held = StreamingResampler(rate), []
    for second in range(seconds):
        for start in range(0, rate, chunk):
            resampler.push(signal[start : start + chunk] * (1 + second % 3))
            held.append(resampler.buffered_samples)
    # no more in the second half than in the first
    assert max(held) <= bound
    assert max(held[len(held) // 2 :]) <= max(held[: len(held) // 2])
    assert resampler.finish().shape[0] > 0
    assert resampler.buffered_samples == 0


def test_16k_passes_through_unchanged():
    signal = white_noise(1.0, 16_000, seed=4)
    resampler = StreamingResampler(16_000)
    first, second = resampler.push(signal[:7_000]), resampler.push(signal[7_000:])
    np.testing.assert_array_equal(np.concatenate([first, second]), signal)
    assert not np.shares_memory(first, signal)  # the caller may reuse its buffer
    assert resampler.buffered_samples == 0
    assert resampler.finish().shape == (0,)


@pytest.mark.parametrize("rate", [16_000, 44_100, 44_101])
def test_the_stream_ends_once(rate):
    resampler = StreamingResampler(rate)
    resampler.push(np.zeros(1_000))
    resampler.finish()
    with pytest.raises(RuntimeError, match="twice"):
        resampler.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        resampler.push(np.zeros(10))


@pytest.mark.parametrize("rate", [0, -44_100])
def test_rejects_a_non_positive_rate(rate):
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(rate)


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match="1-D"):
        StreamingResampler(44_100).push(np.zeros((100, 2)))


def test_finish_without_input_gives_nothing():
    resampler = StreamingResampler(44_100)
    assert resampler.push(np.zeros(0)).shape == (0,)
    assert resampler.finish().shape == (0,)


@pytest.mark.parametrize("rate", [44_100, 22_050, 44_056, 48_000])
def test_the_register_restarts_at_an_exact_time_without_a_seam(rate, monkeypatch):
    """After ``ANCHOR_OUTPUTS`` the register starts again from that output's exact time (bounding its
    drift on a stream of days); before it, the file's outputs; after it, the band-limited
    interpolation at the restarted times, computed tap by tap over the whole signal."""
    from transformer.audio import resample_stream
    from transformer.audio.resample_kernels import exact_interpolation, positions

    anchor = 32_000  # outputs: 2 s, a whole number of periods at every rate here
    monkeypatch.setattr(resample_stream, "ANCHOR_OUTPUTS", anchor)
    signal = noise_and_chirp(rate, 5.0)
    out = streamed(signal, rate, random_chunks(signal.shape[0], 5))
    whole = resample_to_16k(signal, rate)
    assert out.shape == whole.shape
    np.testing.assert_allclose(out[:anchor], whole[:anchor], rtol=0, atol=1e-12)
    step = 1.0 / (16_000 / rate)
    times = np.empty(whole.shape[0])
    for start in range(0, whole.shape[0], anchor):
        register = np.full(min(anchor, whole.shape[0] - start), step)
        register[0] = start * rate // 16_000  # the exact time of a restart: an integer
        times[start : start + register.shape[0]] = np.add.accumulate(register)
    filt = rate_filter(rate)
    expected = exact_interpolation(
        signal, positions(times, filt, signal.shape[0]), np.arange(times.shape[0]), filt
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    # no seam: after the restart the outputs differ from the never-restarted register's by its
    # drift (~1e-8 through the interpolation), by up to resampy's own ~1e-3 where that moved an
    # output onto another tap
    assert np.median(np.abs(out[anchor:] - whole[anchor:])) < 1e-6
    np.testing.assert_allclose(out[anchor:], whole[anchor:], rtol=0, atol=5e-3)
