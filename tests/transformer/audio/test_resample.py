"""Resampling to 16 kHz with resampy 0.2.2's ``kaiser_best`` (docs/reference/model.md §1).

Expected values come from direct transcriptions of the formulas in this file,
with the filter parameters written out as docs/reference/model.md gives them.
"""

from __future__ import annotations

import numpy as np
import pytest
import resampy

from bench.resample_benchmark import compiled_kernel
from tests.support.signals import chirp, dominant_frequency, rms, tone, white_noise
from transformer.audio import constants
from transformer.audio.resample import kaiser_best_v02_filter, resample_to_16k

# docs/reference/model.md §1, written out independently of transformer/audio/constants.py.
BETA = 14.769656459379492
ROLLOFF = 0.9475937167399596
ZERO_CROSSINGS = 64
TAPS_PER_ZERO_CROSSING = 512


def transcribed_table() -> np.ndarray:
    """rolloff * sinc(rolloff * x) * kaiser(65537, beta)[32768:], x = 0, 1/512, ..., 64."""
    half = ZERO_CROSSINGS * TAPS_PER_ZERO_CROSSING
    x = np.arange(half + 1) / TAPS_PER_ZERO_CROSSING
    angle = np.pi * ROLLOFF * x
    sinc = np.ones_like(x)
    sinc[1:] = np.sin(angle[1:]) / angle[1:]
    # Kaiser window of length M = 2 * half + 1 centred at half: I0(beta sqrt(1 - r^2)) / I0(beta).
    r = (np.arange(half, 2 * half + 1) - half) / half
    kaiser = np.i0(BETA * np.sqrt(1.0 - r**2)) / np.i0(BETA)
    return ROLLOFF * sinc * kaiser


def reference_resample(signal: np.ndarray, rate_in: int, rate_out: int = 16_000) -> np.ndarray:
    """resampy 0.2.2's band-limited interpolation, one output sample at a time.

    The output time (in input samples) starts at 0 and grows by rate_in/rate_out
    per output, accumulated in float64. Output t sums x[n - i] over the left wing
    and x[n + 1 + k] over the right wing, each weight read from the table at
    positions offset + j * step with linear interpolation inside the table.
    """
    table = transcribed_table()
    ratio = rate_out / rate_in
    scale = min(1.0, ratio)
    if ratio < 1:
        table = table * ratio
    delta = np.append(np.diff(table), 0.0)
    step = int(scale * TAPS_PER_ZERO_CROSSING)
    out = np.zeros(signal.size * rate_out // rate_in)
    time = 0.0
    for t in range(out.size):
        n = int(time)
        frac = scale * (time - n)
        for wing_frac, taps_available, sample_index in (
            (frac, n + 1, lambda j, n=n: n - j),
            (scale - frac, signal.size - n - 1, lambda j, n=n: n + 1 + j),
        ):
            position = wing_frac * TAPS_PER_ZERO_CROSSING
            offset = int(position)
            eta = position - offset
            taps = np.arange(min(taps_available, (table.size - offset) // step))
            where = offset + taps * step
            out[t] += np.dot(table[where] + eta * delta[where], signal[sample_index(taps)])
        time += 1.0 / ratio
    return out


def test_filter_table_matches_the_formula():
    half_window, precision, rolloff = kaiser_best_v02_filter()
    assert half_window.shape == (32769,)
    assert half_window.dtype == np.float64
    assert precision == 512
    assert rolloff == ROLLOFF
    np.testing.assert_allclose(half_window, transcribed_table(), rtol=1e-12, atol=1e-15)
    assert half_window[0] == pytest.approx(ROLLOFF, abs=1e-15)


def test_constants_match_model_md():
    assert constants.KAISER_BEST_BETA == BETA
    assert constants.KAISER_BEST_ROLLOFF == ROLLOFF
    assert constants.KAISER_BEST_ZERO_CROSSINGS == ZERO_CROSSINGS
    assert 2**constants.KAISER_BEST_PRECISION == TAPS_PER_ZERO_CROSSING


def test_filter_is_built_once_and_read_only():
    first, second = kaiser_best_v02_filter(), kaiser_best_v02_filter()
    assert first[0] is second[0]
    with pytest.raises(ValueError):
        first[0][0] = 0.0


@pytest.mark.parametrize("rate", [1_000, 8_000, 11_025, 22_050, 32_000, 44_100, 48_000, 96_000, 768_000])
def test_output_length_is_floor_of_n_times_16000_over_rate(rate):
    lengths = [0, 1, 2, 3, 5, 440, 441, 442, 1001, 4409, 44_099, 44_100, 44_101, 48_001, 96_001]
    for n in lengths:
        signal = np.linspace(-0.5, 0.5, n)
        assert resample_to_16k(signal, rate).shape == (n * 16_000 // rate,), (n, rate)


def test_16k_input_is_returned_unchanged():
    signal = white_noise(0.1, 16_000)
    assert resample_to_16k(signal, 16_000) is signal


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match="1-D"):
        resample_to_16k(np.zeros((100, 2)), 44_100)


@pytest.mark.parametrize(
    ("rate", "seconds"),
    [(44_100, 0.3), (48_000, 0.1), (22_050, 0.1), (8_000, 0.1), (11_025, 0.1)],
)
def test_matches_direct_band_limited_interpolation(rate, seconds):
    signal = white_noise(seconds, rate, amplitude=0.3, seed=rate) + chirp(50, 7_000, seconds, rate)
    expected = reference_resample(signal, rate)
    actual = resample_to_16k(signal, rate)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


def test_time_register_is_accumulated_as_resampy_0_2_did():
    # resampy >= 0.4 multiplies t * step instead; near integer times that picks
    # another filter phase. The reference above accumulates, as 0.2.2 did.
    signal = white_noise(0.3, 44_100, amplitude=0.3, seed=7)
    expected = reference_resample(signal, 44_100)
    modern = resampy.resample(signal, 44_100, 16_000, filter=kaiser_best_v02_filter)
    assert np.max(np.abs(modern - expected)) > 1e-6
    np.testing.assert_allclose(resample_to_16k(signal, 44_100), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("rate", "frequency"),
    [
        (44_100, 100.0),
        (44_100, 1_000.0),
        (44_100, 4_321.0),
        (44_100, 6_900.0),
        (48_000, 1_000.0),
        (96_000, 3_000.0),
        (22_050, 5_000.0),
    ],
)
def test_tone_below_7k_keeps_frequency_amplitude_and_phase(rate, frequency):
    resampled = resample_to_16k(tone(frequency, 1.0, rate, amplitude=0.5, phase=0.3), rate)
    interior = slice(200, -200)  # the filter spans ~4 ms at each end
    actual = resampled[interior]
    expected = tone(frequency, 1.0, 16_000, amplitude=0.5, phase=0.3)[interior]
    # resampy steps through the table in whole taps (185 instead of 185.76 at
    # 44.1 kHz), which raises the gain by up to ~0.5 %: 512/185 * 16000/44100 ~ 1.004 at DC.
    gain = np.dot(actual, expected) / np.dot(expected, expected)
    assert 0.999 < gain < 1.006
    assert np.max(np.abs(actual - gain * expected)) < 2e-3
    assert dominant_frequency(actual, 16_000) == pytest.approx(frequency, abs=0.01)


@pytest.mark.parametrize(
    ("rate", "frequency", "max_relative_rms"),
    [(44_100, 8_500.0, 2e-3), (44_100, 12_000.0, 5e-4), (48_000, 20_000.0, 5e-4), (96_000, 30_000.0, 1e-4)],
)
def test_content_above_8k_is_suppressed(rate, frequency, max_relative_rms):
    original = tone(frequency, 1.0, rate, amplitude=0.5)
    resampled = resample_to_16k(original, rate)
    # Without the low-pass it would alias to |f - k * 16 kHz| with the full amplitude.
    assert rms(resampled[200:-200]) < max_relative_rms * rms(original)


def test_upsampling_8k_keeps_a_tone():
    resampled = resample_to_16k(tone(1_234.0, 1.0, 8_000, amplitude=0.5), 8_000)
    expected = tone(1_234.0, 1.0, 16_000, amplitude=0.5)
    np.testing.assert_allclose(resampled[200:-200], expected[200:-200], rtol=0, atol=2e-4)


# 44_101 has a 16000-output period: the tap-by-tap path; 44_056 a 2000-output one; the rest are short.
@pytest.mark.parametrize(
    "rate", [8_000, 11_025, 12_345, 22_050, 24_000, 32_000, 44_056, 44_100, 44_101, 48_000, 96_000]
)
def test_ten_seconds_agree_with_resampys_compiled_kernel(rate):
    signal = white_noise(10.0, rate, amplitude=0.3, seed=rate) + chirp(50, 7_000, 10.0, rate)
    expected = compiled_kernel(signal, rate)
    actual = resample_to_16k(signal, rate)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= 1e-9


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_short_and_odd_lengths_agree_with_resampys_compiled_kernel(rate):
    # every output near an end has cut wings: the edge handling must be resampy's
    for length in (1, 2, 3, 7, 64, 441, 442, 1_000, 4_409, rate // 3 + 1):
        signal = white_noise(length / rate, rate, amplitude=0.5, seed=length)[:length]
        np.testing.assert_allclose(
            resample_to_16k(signal, rate), compiled_kernel(signal, rate), rtol=0, atol=1e-12
        )


def test_phase_exceptions_are_computed_tap_by_tap():
    # At 44.1 kHz the accumulated time drifts off its exact phase: some outputs sit on another
    # input sample or table offset than the rest of their phase. They must still match exactly.
    from transformer.audio.resample_kernels import Filter, positions

    signal = white_noise(30.0, 44_100, amplitude=0.3, seed=3)
    table, precision, _ = kaiser_best_v02_filter()
    ratio = 16_000 / 44_100
    count = signal.shape[0] * 16_000 // 44_100
    increments = np.full(count, 1.0 / ratio)
    increments[:1] = 0.0
    at = positions(
        np.add.accumulate(increments), Filter(ratio * table, table, precision, ratio), signal.shape[0]
    )
    exact_offsets = (np.arange(count) * 441 % 160) / 160 * ratio * precision
    assert np.count_nonzero(at.left_offset != exact_offsets.astype(np.int64)) > 0
    assert np.max(np.abs(resample_to_16k(signal, 44_100) - compiled_kernel(signal, 44_100))) <= 1e-9


def test_a_rates_filter_and_block_plan_are_built_once():
    from transformer.audio.resample import rate_filter
    from transformer.audio.resample_plan import block_plan

    assert rate_filter(44_100) is rate_filter(44_100)
    plan = block_plan(rate_filter(44_100), 160, 441)
    assert plan is block_plan(rate_filter(44_100), 160, 441)
    # 160 outputs read 441 input samples plus the filter's reach on both sides
    assert (plan.outputs, plan.inputs) == (160, 441)
    # two columns per output, in groups that each multiply only the rows they read
    assert sum(group.matrix.shape[1] for group in plan.groups) == 2 * 160
    assert all(not group.matrix.flags.writeable for group in plan.groups)
    assert max(group.stop_row - group.start_row for group in plan.groups) < plan.span * 0.6


def _accumulated_times(rate: int, count: int) -> np.ndarray:
    increments = np.full(count, 1.0 / (16_000 / rate))
    increments[:1] = 0.0
    return np.add.accumulate(increments)


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 24_000, 44_100, 48_000, 96_000])
def test_only_outputs_planned_next_to_a_boundary_can_drift_onto_other_taps(rate):
    """The block path locates exactly only the phases next to a boundary; every other output must
    read the sample and table offsets its plan says, whatever the drift of 60 s of times."""
    import math
    from fractions import Fraction

    from transformer.audio.resample import rate_filter
    from transformer.audio.resample_kernels import positions
    from transformer.audio.resample_plan import block_plan, drift_bound

    common = math.gcd(rate, 16_000)
    period_outputs, period_inputs = 16_000 // common, rate // common
    filt = rate_filter(rate)
    plan = block_plan(filt, period_outputs, period_inputs)
    count = 60 * 16_000
    times = _accumulated_times(rate, count)
    bound = drift_bound(times, period_outputs, period_inputs)
    k = np.arange(count)
    exact = [Fraction(int(i) * period_inputs, period_outputs) for i in k[:: count // 997]]
    drift = max(abs(Fraction(float(t)) - e) for t, e in zip(times[:: count // 997], exact, strict=True))
    assert float(drift) <= bound
    if rate in (8_000, 24_000, 48_000, 96_000):  # steps 0.5, 1.5, 3 and 6 input samples
        assert bound == 0.0  # the step and all its multiples are float64 numbers: nothing drifts

    at = positions(times, filt, count * period_inputs // period_outputs + 1)
    phase = k % plan.outputs
    planned = (
        (at.sample == k // plan.outputs * plan.inputs + plan.sample[phase])
        & (at.left_offset == plan.left_offset[phase])
        & (at.right_offset == plan.right_offset[phase])
    )
    boundary = np.zeros(plan.outputs, dtype=bool)
    boundary[plan.boundary_phases(bound, filt)] = True
    assert planned[~boundary[phase]].all()
    if rate in (11_025, 44_100):
        assert not planned.all()  # there are drifted outputs, and all of them sit in those phases


@pytest.mark.parametrize("rate", [11_025, 22_050, 32_000, 44_100, 48_000, 96_000])
def test_block_groups_never_overlap_so_blas_reads_the_signal_in_place(rate):
    import math

    from transformer.audio.resample import rate_filter
    from transformer.audio.resample_plan import block_plan

    common = math.gcd(rate, 16_000)
    plan = block_plan(rate_filter(rate), 16_000 // common, rate // common)
    assert plan.outputs >= 128
    assert max(group.stop_row - group.start_row for group in plan.groups) <= plan.inputs


def test_splitting_the_blocks_across_threads_changes_no_bit(monkeypatch):
    from transformer.audio import resample_blocks

    signal = white_noise(12.0, 44_100, amplitude=0.3, seed=12) + chirp(50, 7_000, 12.0, 44_100)
    threaded = resample_to_16k(signal, 44_100)
    monkeypatch.setattr(resample_blocks, "RESAMPLE_THREADS", 1)
    alone = resample_to_16k(signal, 44_100)
    np.testing.assert_array_equal(threaded, alone)


@pytest.mark.parametrize("rate", [11_025, 44_056, 44_100])
def test_gathered_outputs_equal_the_tap_by_tap_ones_including_the_ends(rate):
    from transformer.audio.resample import rate_filter
    from transformer.audio.resample_kernels import exact_interpolation, gathered_interpolation, positions

    signal = white_noise(2.0, rate, amplitude=0.5, seed=rate)
    count = signal.shape[0] * 16_000 // rate
    at = positions(_accumulated_times(rate, count), rate_filter(rate), signal.shape[0])
    rng = np.random.default_rng(rate)
    middle = rng.choice(count, 500, replace=False)
    outputs = np.concatenate([np.arange(40), middle, np.arange(count - 40, count)])
    np.testing.assert_allclose(
        gathered_interpolation(signal, at, outputs, rate_filter(rate)),
        exact_interpolation(signal, at, outputs, rate_filter(rate)),
        rtol=0,
        atol=1e-14,
    )
