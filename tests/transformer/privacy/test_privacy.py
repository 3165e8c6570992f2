"""Privacy methods: request validation, the operator minimum, and what each method does
to generated speech-like and event-like signals (directions, not exact values)."""

from __future__ import annotations

import itertools
import secrets
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from pystoi import stoi

from contract.errors import InvalidParameter, PrivacyPolicyViolation
from tests.support import speech_synth as synth
from transformer.audio.decode import load_waveform
from transformer.audio.features import waveform_to_examples
from transformer.privacy import (
    PRIVACY_METHODS,
    PrivacyRequest,
    apply_privacy,
    enforce_minimum,
    parse_privacy_request,
)
from transformer.privacy.randomness import PrivacyRandom

SR = 16_000


def seeded(method: str, seed: int | None = 0, **params: object) -> PrivacyRequest:
    """A validated request with a fixed (or no) seed."""
    request = parse_privacy_request(method, params)
    return PrivacyRequest(request.method, request.params, seed=seed)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, 64) VGGish log-mel rows of a waveform."""
    return waveform_to_examples(samples).reshape(-1, 64)


def realigned_reference(original: np.ndarray, processed: np.ndarray, chunk: int = SR // 4) -> np.ndarray:
    """The original rearranged the way an attacker would undo a shuffle.

    Each ``chunk`` of ``processed`` is matched to the stretch of ``original``
    with the highest normalised cross-correlation; STOI against this reference
    measures what survives once the pieces are put back in order.
    """
    n = original.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    original_spectrum = np.fft.rfft(original, size)
    energy = np.concatenate([[0.0], np.cumsum(original**2)])
    reference = np.zeros(n)
    for start in range(0, n, chunk):
        piece = processed[start : start + chunk]
        length = piece.shape[0]
        correlation = np.fft.irfft(original_spectrum * np.conj(np.fft.rfft(piece, size)), size)
        scores = correlation[: n - length + 1] / np.sqrt(energy[length:] - energy[: n - length + 1] + 1e-12)
        lag = int(np.argmax(scores))
        reference[start : start + length] = original[lag : lag + length]
    return reference


# --- parsing and validation ---------------------------------------------------------


def test_methods_are_ordered_weakest_first() -> None:
    assert PRIVACY_METHODS == ("none", "dp_noise", "scramble", "speech_mask")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "none"),
        ("", "none"),
        ("nothing", "none"),
        ("scrample", "scramble"),
        (" Speech_Mask ", "speech_mask"),
        ("DP_NOISE", "dp_noise"),
    ],
)
def test_names_and_aliases(given: str | None, expected: str) -> None:
    assert parse_privacy_request(given, {}).method == expected


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_privacy_request("blur", {})
    assert caught.value.status_code == 400
    for name in PRIVACY_METHODS:
        assert name in caught.value.message
    assert "blur" in caught.value.message


def test_defaults_are_filled_in() -> None:
    assert dict(parse_privacy_request("dp_noise", {}).params) == {"epsilon": 0.8, "sensitivity": 0.05}
    assert dict(parse_privacy_request("scrample", {}).params) == {"segment_seconds": 1.0, "crossfade_ms": 5.0}
    assert dict(parse_privacy_request("none", {}).params) == {}


def test_numeric_strings_and_ints_are_accepted() -> None:
    request = parse_privacy_request("dp_noise", {"epsilon": "2", "sensitivity": 1, "lowpass_hz": "4000"})
    assert dict(request.params) == {"epsilon": 2.0, "sensitivity": 1.0, "lowpass_hz": 4000.0}


def test_operator_defaults_apply_below_request_params() -> None:
    defaults = {"scramble": {"segment_seconds": 2.5}}
    assert parse_privacy_request("scramble", {}, defaults=defaults).params["segment_seconds"] == 2.5
    given = parse_privacy_request("scramble", {"segment_seconds": 0.5}, defaults=defaults)
    assert given.params["segment_seconds"] == 0.5


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        ("dp_noise", {"epsilon": 0}, "'epsilon'"),
        ("dp_noise", {"epsilon": -1}, "> 0"),
        ("dp_noise", {"sensitivity": 2}, "<= 1"),
        ("dp_noise", {"epsilon": float("nan")}, "finite"),
        ("dp_noise", {"epsilon": "abc"}, "must be a number"),
        ("dp_noise", {"epsilon": True}, "must be a number"),
        ("dp_noise", {"epsilon": [1]}, "must be a number"),
        ("dp_noise", {"lowpass_hz": 9000}, "'lowpass_hz'"),
        ("scramble", {"segment_seconds": 20}, "<= 10"),
        ("scramble", {"segment_seconds": 0.06, "crossfade_ms": 40}, "half the segment"),
        ("speech_mask", {"margin_ms": -5}, "'margin_ms'"),
        ("scramble", {"epsilon": 1}, "unknown privacy parameter"),
        ("none", {"segment_seconds": 1}, "allowed parameters are none"),
    ],
)
def test_bad_parameters_are_rejected_with_a_clear_message(
    method: str, params: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_privacy_request(method, params)
    assert fragment in caught.value.message
    assert method in caught.value.message


def test_unknown_parameter_message_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_privacy_request("speech_mask", {"smoothing": 3})
    assert "'smoothing'" in caught.value.message
    assert "block_ms" in caught.value.message and "margin_ms" in caught.value.message


# --- the operator's minimum --------------------------------------------------------


def test_weaker_request_is_upgraded_to_the_minimum_with_its_defaults() -> None:
    upgraded = enforce_minimum(parse_privacy_request("dp_noise", {"epsilon": 5}), "scramble", "upgrade")
    assert upgraded.method == "scramble"
    assert dict(upgraded.params) == dict(parse_privacy_request("scramble", {}).params)


def test_upgrade_uses_operator_defaults() -> None:
    upgraded = enforce_minimum(
        parse_privacy_request("none", {}),
        "scrample",
        "upgrade",
        defaults={"scramble": {"segment_seconds": 3}},
    )
    assert (upgraded.method, upgraded.params["segment_seconds"]) == ("scramble", 3.0)


@pytest.mark.parametrize("method", ["scramble", "speech_mask"])
def test_requests_at_or_above_the_minimum_are_kept(method: str) -> None:
    request = parse_privacy_request(method, {})
    assert enforce_minimum(request, "scramble", "reject") is request
    assert enforce_minimum(request, "scramble", "upgrade") is request


def test_weaker_request_is_rejected_with_403_when_configured() -> None:
    with pytest.raises(PrivacyPolicyViolation) as caught:
        enforce_minimum(parse_privacy_request("none", {}), "speech_mask", "reject")
    assert caught.value.status_code == 403
    assert "speech_mask" in caught.value.message and "'none'" in caught.value.message


@pytest.mark.parametrize("enforcement", ["upgrade", "reject"])
@pytest.mark.parametrize("unnamed", [None, "", "  "])
def test_a_request_naming_no_method_gets_the_minimum_in_both_modes(
    enforcement: str, unnamed: str | None
) -> None:
    """It did not ask for less than the minimum: no 403, the minimum with the operator's defaults."""
    request = parse_privacy_request(unnamed, {})
    assert (request.method, request.named) == ("none", False)
    applied = enforce_minimum(
        request, "scrample", enforcement, defaults={"scramble": {"segment_seconds": 2.5}}
    )
    assert applied.method == "scramble"
    assert dict(applied.params) == {"segment_seconds": 2.5, "crossfade_ms": 5.0}
    assert enforce_minimum(request, "none", enforcement) is request  # no minimum: none


def test_an_explicit_none_is_still_below_the_minimum() -> None:
    request = parse_privacy_request("nothing", {})
    assert request.named
    with pytest.raises(PrivacyPolicyViolation, match="below this service's minimum 'dp_noise'"):
        enforce_minimum(request, "dp_noise", "reject")
    assert enforce_minimum(request, "dp_noise", "upgrade").method == "dp_noise"


def test_minimum_none_accepts_everything() -> None:
    request = parse_privacy_request("none", {})
    assert enforce_minimum(request, "none", "reject") is request


def test_invalid_policy_settings_are_operator_errors() -> None:
    request = parse_privacy_request("none", {})
    with pytest.raises(ValueError, match="privacy_enforcement"):
        enforce_minimum(request, "scramble", "warn")
    with pytest.raises(ValueError, match="privacy_minimum"):
        enforce_minimum(request, "strong", "upgrade")


@pytest.mark.parametrize("enforcement", ["upgrade", "reject"])
def test_the_transformer_applies_the_operator_minimum_from_its_environment(
    enforcement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformer import wiring
    from transformer.analysis.labels import load_labels
    from transformer.analysis.types import AnalysisOptions
    from transformer.settings import TransformerSettings

    async def not_called(*args: object) -> None:
        raise AssertionError("privacy_for neither embeds nor scores")

    monkeypatch.setenv("AUDIOGUARD_PRIVACY_MINIMUM", "scrample")
    monkeypatch.setenv("AUDIOGUARD_PRIVACY_ENFORCEMENT", enforcement)
    monkeypatch.setenv("AUDIOGUARD_SCRAMBLE_SEGMENT_SECONDS", "2.5")
    model = wiring.analyzer(
        TransformerSettings(), embed=not_called, score=not_called, groups=(), labels=load_labels()
    )
    weak = AnalysisOptions(privacy_method="dp_noise", privacy_params={"epsilon": "2"})
    # a request that names no method gets the minimum in both modes
    requested, applied = model.privacy_for(AnalysisOptions())
    assert (requested.method, requested.named) == ("none", False)
    assert (applied.method, applied.params["segment_seconds"]) == ("scramble", 2.5)
    if enforcement == "reject":
        with pytest.raises(PrivacyPolicyViolation):
            model.privacy_for(weak)
    else:
        requested, applied = model.privacy_for(weak)
        assert (requested.method, requested.params["epsilon"]) == ("dp_noise", 2.0)
        assert (applied.method, applied.params["segment_seconds"]) == ("scramble", 2.5)
    strong = AnalysisOptions(privacy_method="speech_mask", privacy_params={"block_ms": "32"})
    requested, applied = model.privacy_for(strong)
    assert applied == requested and applied.params["block_ms"] == 32.0


# --- every method ------------------------------------------------------------------


@pytest.mark.parametrize("method", PRIVACY_METHODS)
@pytest.mark.parametrize("length", [0, 1, 300, 16_000, 3 * 16_000 + 7])
def test_output_has_the_input_length_and_dtype(method: str, length: int) -> None:
    samples = 0.3 * np.random.default_rng(length).standard_normal(length)
    out = apply_privacy(samples, parse_privacy_request(method, {}))
    assert out.shape == (length,) and out.dtype == np.float64
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("method", PRIVACY_METHODS[1:])
def test_other_sample_rates_keep_the_length(method: str) -> None:
    samples = synth.speech_like(3.0, seed=4)[::2]  # 8 kHz-ish content, half the samples
    assert apply_privacy(samples, parse_privacy_request(method, {}), sample_rate=8000).shape == samples.shape


def test_none_returns_the_input_unchanged() -> None:
    samples = synth.speech_like(2.0)
    out = apply_privacy(samples, parse_privacy_request("none", {}))
    assert np.array_equal(out, samples)


@pytest.mark.parametrize("method", PRIVACY_METHODS[1:])
def test_no_seed_means_fresh_randomness_each_call(method: str) -> None:
    samples = synth.speech_like(4.0, seed=2)
    request = parse_privacy_request(method, {})
    assert request.seed is None
    assert not np.array_equal(apply_privacy(samples, request), apply_privacy(samples, request))


@pytest.mark.parametrize("method", PRIVACY_METHODS[1:])
def test_seed_makes_the_output_reproducible(method: str) -> None:
    samples = synth.speech_like(4.0, seed=2)
    first = apply_privacy(samples, seeded(method, 7))
    assert np.array_equal(first, apply_privacy(samples, seeded(method, 7)))
    assert not np.array_equal(first, apply_privacy(samples, seeded(method, 8)))


@pytest.mark.parametrize(
    ("method", "max_peak_over_input"), [("dp_noise", 3.0), ("scramble", 3.0), ("speech_mask", 6.0)]
)
def test_memory_stays_proportional_to_the_clip(method: str, max_peak_over_input: float) -> None:
    # A 3-min clip: holding every STFT frame's padded spectrum at once (as a
    # whole-clip implementation would) costs ~18x the input; a home gateway
    # accepting 10-min uploads cannot afford that.
    samples = np.tile(synth.speech_like(10.0, seed=1), 18)
    request = parse_privacy_request(method, {})
    tracemalloc.start()
    try:
        apply_privacy(samples, request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < max_peak_over_input * samples.nbytes


# --- randomness --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "min_bytes"), [("dp_noise", 4 * 4 * SR), ("scramble", 8 * 4), ("speech_mask", 8)]
)
def test_unseeded_requests_draw_from_the_os_csprng(
    method: str, min_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[int] = []
    real_token_bytes = secrets.token_bytes

    def counting_token_bytes(count: int) -> bytes:
        drawn.append(count)
        return real_token_bytes(count)

    monkeypatch.setattr(secrets, "token_bytes", counting_token_bytes)
    apply_privacy(synth.speech_like(4.0, seed=2), parse_privacy_request(method, {}))
    assert sum(drawn) >= min_bytes  # every noise sample / segment key came from the OS


def test_uniform_draws_lie_strictly_inside_zero_one() -> None:
    u = PrivacyRandom(None).uniform(200_000)
    assert u.min() > 0.0 and u.max() < 1.0
    assert np.mean(u) == pytest.approx(0.5, abs=0.005)
    assert np.var(u) == pytest.approx(1.0 / 12.0, rel=0.02)


def test_permutations_are_uniform() -> None:
    random = PrivacyRandom(3)
    counts = dict.fromkeys(itertools.permutations(range(3)), 0)
    for _ in range(6000):
        counts[tuple(int(i) for i in random.permutation(3))] += 1
    expected = 6000 / 6
    chi_square = sum((count - expected) ** 2 / expected for count in counts.values())
    assert chi_square < 20.5  # chi-square, 5 degrees of freedom: p = 0.001


def test_laplace_draws_have_the_laplace_tails() -> None:
    scale = 0.3
    x = PrivacyRandom(5).laplace(scale, 400_000)
    for multiple in (1.0, 3.0, 6.0):
        # Laplace(0, b): P(|X| > t) = exp(-t / b); a Gaussian of the same variance
        # would give 0.24, 0.034 and 0.00010 instead of 0.37, 0.050 and 0.0025.
        assert np.mean(np.abs(x) > multiple * scale) == pytest.approx(np.exp(-multiple), rel=0.08)
    assert np.mean(x > 0) == pytest.approx(0.5, abs=0.005)


def test_standard_normal_draws() -> None:
    z = PrivacyRandom(6).standard_normal((301, 333))
    assert z.shape == (301, 333)
    assert np.mean(z) == pytest.approx(0.0, abs=0.01)
    assert np.var(z) == pytest.approx(1.0, rel=0.01)
    assert np.mean(np.abs(z) > 1.959964) == pytest.approx(0.05, rel=0.05)


# --- dp_noise ----------------------------------------------------------------------


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(0.8, 0.05), (2.0, 0.02), (0.5, 0.01)])
def test_noise_follows_sensitivity_over_epsilon(epsilon: float, sensitivity: float) -> None:
    # One click sets the peak (0.4); the rest stays near 0.05 of it, so the noisy
    # normalised waveform never reaches the clipping limits and the residual
    # (in units of the peak) is the Laplace noise itself.
    samples = synth.tone(10.0, 440.0, level=0.02)
    samples[0] = 0.4
    out = apply_privacy(samples, seeded("dp_noise", 1, epsilon=epsilon, sensitivity=sensitivity))
    residual = (out - samples)[1:] / 0.4
    scale = sensitivity / epsilon
    assert np.std(residual) == pytest.approx(np.sqrt(2.0) * scale, rel=0.03)
    assert np.mean(np.abs(residual)) == pytest.approx(scale, rel=0.03)  # Laplace: E|X| = b
    assert abs(np.mean(residual)) < 0.02 * scale


def test_dp_noise_is_relative_to_the_peak() -> None:
    loud = synth.tone(5.0, 440.0, level=0.5)
    quiet = loud / 100.0
    loud_residual = apply_privacy(loud, seeded("dp_noise", 3)) - loud
    quiet_residual = apply_privacy(quiet, seeded("dp_noise", 3)) - quiet
    assert np.std(loud_residual) / np.std(quiet_residual) == pytest.approx(100.0, rel=0.05)


def test_dp_noise_output_is_clipped() -> None:
    samples = synth.tone(2.0, 440.0, level=1.0)
    out = apply_privacy(samples, seeded("dp_noise", 1, epsilon=0.1, sensitivity=1.0))
    assert np.max(np.abs(out)) <= 1.0
    assert np.mean(np.abs(out) == 1.0) > 0.5  # scale 10: most samples hit the limits


def test_dp_noise_lowpass_removes_high_frequencies() -> None:
    samples = synth.tone(4.0, 300.0, level=0.02)
    samples[0] = 0.4  # the peak; the rest stays clear of the clipping limits

    def high_band_energy(out: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(out)) ** 2
        return float(spectrum[np.fft.rfftfreq(out.shape[0], 1 / SR) > 4500.0].sum())

    plain = high_band_energy(apply_privacy(samples, seeded("dp_noise", 5)))
    filtered = high_band_energy(apply_privacy(samples, seeded("dp_noise", 5, lowpass_hz=4000)))
    assert filtered < 1e-6 * plain


def test_dp_noise_leaves_silence_silent() -> None:
    assert np.array_equal(apply_privacy(np.zeros(4000), seeded("dp_noise", 0)), np.zeros(4000))


# --- scramble ----------------------------------------------------------------------


def test_scramble_is_a_permutation_of_segments() -> None:
    segment, half = SR, 40  # 1 s segments, 5 ms crossfade = 40 samples each side
    samples = np.random.default_rng(0).standard_normal(8 * SR)  # every segment is unique
    out = apply_privacy(samples, seeded("scramble", 11))
    originals = samples.reshape(8, segment)[:, half:-half]
    found = []
    for index in range(8):
        core = out[index * segment + half : (index + 1) * segment - half]
        matches = [i for i in range(8) if np.array_equal(core, originals[i])]
        assert len(matches) == 1
        found.append(matches[0])
    assert sorted(found) == list(range(8))
    assert found != list(range(8))
    assert np.sum(out**2) == pytest.approx(np.sum(samples**2), rel=0.005)


def test_scramble_keeps_a_short_tail_inside_the_last_segment() -> None:
    samples = np.random.default_rng(1).standard_normal(3 * SR + 10)
    out = apply_privacy(samples, seeded("scramble", 2))
    # 10 samples cannot hold two 40-sample fades: they travel with the segment
    # before them, which becomes 1 s + 10 samples long and lands whole somewhere.
    core = samples[2 * SR + 40 : 3 * SR + 10 - 40]
    placed = [
        start for start in (0, SR, 2 * SR) if np.array_equal(out[start + 40 : start + 40 + core.size], core)
    ]
    assert len(placed) == 1


def test_scramble_of_a_single_segment_changes_nothing() -> None:
    samples = synth.speech_like(0.9)
    assert np.array_equal(apply_privacy(samples, seeded("scramble", 1)), samples)


def test_scramble_joins_make_no_clicks() -> None:
    # A smooth signal: sample-to-sample steps stay below 2 * pi * f * A / SR.
    t = np.arange(6 * SR) / SR
    samples = 0.5 * np.sin(2 * np.pi * 220.0 * t) + 0.3 * np.sin(2 * np.pi * 97.0 * t + 1.0)
    smooth_step = np.max(np.abs(np.diff(samples)))
    crossfaded = apply_privacy(samples, seeded("scramble", 4, segment_seconds=0.5))
    hard_cut = apply_privacy(samples, seeded("scramble", 4, segment_seconds=0.5, crossfade_ms=0))
    joins = np.arange(1, 12) * SR // 2
    near = (joins[:, None] + np.arange(-100, 100)).ravel()
    assert np.max(np.abs(np.diff(hard_cut)[near])) > 3 * smooth_step  # the test can see clicks
    assert np.max(np.abs(np.diff(crossfaded)[near])) < 1.6 * smooth_step


def test_scramble_makes_speech_less_intelligible() -> None:
    speech = synth.speech_like(6.0, seed=3)
    assert stoi(speech, apply_privacy(speech, seeded("scramble", 3)), SR) < 0.5


# --- speech_mask -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_speech_mask_is_less_intelligible_than_scramble(seed: int) -> None:
    speech = synth.speech_like(6.0, seed=seed)
    scrambled = apply_privacy(speech, seeded("scramble", seed))
    masked = apply_privacy(speech, seeded("speech_mask", seed))
    # Plain STOI: both far below the original (1.0).
    assert stoi(speech, masked, SR) < 0.5
    # Once the pieces are put back in order, scrambled speech is intact again;
    # masked speech stays at the level of an unrelated signal.
    recovered_scramble = stoi(realigned_reference(speech, scrambled), scrambled, SR)
    recovered_mask = stoi(realigned_reference(speech, masked), masked, SR)
    assert recovered_scramble > 0.9
    assert recovered_mask < 0.6
    assert recovered_mask < recovered_scramble - 0.3


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speech_mask_hides_synthesised_words_that_scramble_leaves() -> None:
    text = "The door code is seven four one nine, and the spare keys are under the mat by the garage."
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    speech = load_waveform(wav, max_seconds=60.0)  # decoded in memory, 16 kHz
    scrambled = apply_privacy(speech, seeded("scramble", 1))
    masked = apply_privacy(speech, seeded("speech_mask", 1))
    recovered_scramble = stoi(realigned_reference(speech, scrambled), scrambled, SR)
    recovered_mask = stoi(realigned_reference(speech, masked), masked, SR)
    # Chance level: unrelated noise with the speech's long-term spectrum.
    spectrum = np.fft.rfft(np.random.default_rng(0).standard_normal(speech.size))
    noise = np.fft.irfft(spectrum / np.abs(spectrum) * np.abs(np.fft.rfft(speech)), speech.size)
    chance = stoi(realigned_reference(speech, noise), noise, SR)
    assert recovered_scramble > 0.85
    assert recovered_mask < chance + 0.1
    assert recovered_mask < recovered_scramble - 0.35


def test_speech_mask_removes_the_voice_pitch() -> None:
    speech = synth.speech_like(5.0, seed=5)
    masked = apply_privacy(speech, seeded("speech_mask", 5))

    def voiced_fraction(samples: np.ndarray) -> float:
        """Share of loud 32-ms frames whose autocorrelation peaks >= 0.6 at a 2.5-12 ms lag."""
        frames = np.lib.stride_tricks.sliding_window_view(samples, 512)[::256] * np.hanning(512)
        loud = np.sum(frames**2, axis=1) > 0.01 * np.max(np.sum(frames**2, axis=1))
        spectrum = np.abs(np.fft.rfft(frames, 1024, axis=1)) ** 2
        autocorr = np.fft.irfft(spectrum, axis=1)[:, :512]
        autocorr /= autocorr[:, :1] + 1e-12
        return float(np.mean(autocorr[loud, 40:192].max(axis=1) >= 0.6))

    assert voiced_fraction(speech) > 0.5
    assert voiced_fraction(masked) < 0.1


def test_speech_mask_keeps_the_level_of_the_speech() -> None:
    speech = synth.speech_like(5.0, seed=6)
    masked = apply_privacy(speech, seeded("speech_mask", 6))
    level_change_db = 10 * np.log10(np.mean(masked**2) / np.mean(speech**2))
    assert abs(level_change_db) < 3.0


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda: synth.tone(5.0, 1000.0), id="tone-1k"),
        pytest.param(lambda: synth.tone(5.0, 220.0), id="hum-220"),
        pytest.param(lambda: synth.beeping_alarm(6.0), id="alarm-2Hz"),
        pytest.param(
            lambda: synth.beeping_alarm(6.0, frequency=350.0, beeps_per_second=4.0), id="alarm-low-4Hz"
        ),
        pytest.param(lambda: synth.siren(8.0), id="siren-wail"),
        pytest.param(lambda: synth.siren(6.0, sweeps_per_second=3.5), id="siren-yelp"),
        pytest.param(lambda: synth.glass_bursts(6.0), id="glass"),
        pytest.param(lambda: synth.scream(6.0), id="scream"),
    ],
)
def test_events_survive_speech_mask(event: Callable[[], np.ndarray]) -> None:
    samples = event()
    out = apply_privacy(samples, seeded("speech_mask", 0))
    reference, masked = log_mel(samples), log_mel(out)
    assert np.mean(np.abs(masked - reference)) < 0.01
    cosine = np.sum(reference * masked) / (np.linalg.norm(reference) * np.linalg.norm(masked))
    assert cosine > 0.999


def test_speech_mask_changes_speech_but_not_the_alarm_next_to_it() -> None:
    alarm = synth.beeping_alarm(3.0)
    speech = synth.speech_like(4.0, seed=8)
    samples = np.concatenate([alarm, speech, alarm])
    out = apply_privacy(samples, seeded("speech_mask", 8))
    guard = SR  # the masked region may extend up to margin + edge into the alarm
    assert np.allclose(out[: 3 * SR - guard], samples[: 3 * SR - guard], atol=1e-12)
    assert np.allclose(out[7 * SR + guard :], samples[7 * SR + guard :], atol=1e-12)
    middle = slice(4 * SR, 6 * SR)
    assert np.corrcoef(out[middle], samples[middle])[0, 1] < 0.2


def test_speech_mask_on_silence_and_noise_changes_nothing() -> None:
    for samples in (np.zeros(3 * SR), 0.01 * np.random.default_rng(0).standard_normal(3 * SR)):
        assert np.array_equal(apply_privacy(samples, seeded("speech_mask", 0)), samples)
