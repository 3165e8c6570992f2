"""Live-stream anonymisation: the file methods without seams at chunk borders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pystoi import stoi

from tests.support import speech_synth as synth
from transformer.privacy import PrivacyRequest, apply_privacy, parse_privacy_request
from transformer.privacy.speech_mask import speech_weights
from transformer.privacy.stream import stream_anonymiser
from transformer.privacy.stream_noise import lowpass_fir

SR = 16_000
METHODS = [
    ("dp_noise", {}),
    ("dp_noise", {"lowpass_hz": 3000.0}),
    ("scramble", {}),
    ("scramble", {"segment_seconds": 0.5, "crossfade_ms": 20.0}),
    ("speech_mask", {}),
]


def seeded(method: str, seed: int = 0, **params: float) -> PrivacyRequest:
    request = parse_privacy_request(method, params)
    return PrivacyRequest(request.method, request.params, seed=seed)


def streamed(
    request: PrivacyRequest, samples: np.ndarray, chunks: Sequence[int], window_seconds: float = 4.0
) -> np.ndarray:
    """Push ``samples`` in ``chunks`` (the rest at the end), then finish; the whole output."""
    anonymiser = stream_anonymiser(request, window_seconds=window_seconds)
    outputs, position, held = [], 0, 0
    for size in [*chunks, samples.size]:
        piece = samples[position : position + size]
        position += piece.size
        outputs.append(anonymiser.push(piece))
        held += piece.size - outputs[-1].size
        assert held <= anonymiser.latency_samples + piece.size  # bounded hold-back
    outputs.append(anonymiser.finish())
    return np.concatenate(outputs)


def random_chunks(seed: int, total: int, largest: int = 6000) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, largest, size=total // (largest // 2) + 8)
    sizes[::7] = rng.integers(0, 2, size=sizes[::7].size)  # empty and one-sample chunks too
    return [int(size) for size in sizes]


def mixture(seconds: float) -> np.ndarray:
    """Speech, then a siren, speech again and a beeping alarm, back to back."""
    quarter = seconds / 4
    return np.concatenate(
        [
            synth.speech_like(quarter, seed=1),
            synth.siren(quarter),
            synth.speech_like(quarter, seed=2),
            synth.beeping_alarm(quarter),
        ]
    )


@pytest.mark.parametrize(("method", "params"), METHODS)
def test_the_output_does_not_depend_on_how_the_stream_was_chunked(method: str, params: dict) -> None:
    samples = mixture(18.0)
    whole = streamed(seeded(method, 3, **params), samples, [samples.size])
    assert whole.shape == samples.shape
    assert not np.array_equal(whole, samples)
    for seed in (1, 2):
        chunked = streamed(seeded(method, 3, **params), samples, random_chunks(seed, samples.size))
        assert np.array_equal(chunked, whole)


@pytest.mark.parametrize(("method", "params"), [m for m in METHODS if "lowpass_hz" not in m[1]])
def test_a_stream_within_one_window_is_the_file_method(method: str, params: dict) -> None:
    samples = synth.speech_like(3.5, seed=4)
    expected = apply_privacy(samples, seeded(method, 5, **params))
    assert np.array_equal(
        streamed(seeded(method, 5, **params), samples, random_chunks(4, samples.size)), expected
    )


def test_the_naive_way_has_seams_the_stream_has_none() -> None:
    # A smooth signal: a join made without a crossfade is a step far above its own steps.
    t = np.arange(12 * SR) / SR
    samples = 0.5 * np.sin(2 * np.pi * 220.0 * t) + 0.3 * np.sin(2 * np.pi * 97.0 * t + 1.0)
    smooth_step = np.max(np.abs(np.diff(samples)))
    chunks = [1600] * (samples.size // 1600)
    request = seeded("scramble", 2, segment_seconds=0.5)
    naive = np.concatenate(  # the file method on each 1.25-s chunk, fresh randomness each time
        [
            apply_privacy(samples[i : i + 20_000], seeded("scramble", i, segment_seconds=0.5))
            for i in range(0, samples.size, 20_000)
        ]
    )
    assert np.max(np.abs(np.diff(naive))) > 3 * smooth_step  # chunk by chunk: clicks at the borders
    out = streamed(request, samples, chunks)
    assert np.max(np.abs(np.diff(out))) < 1.6 * smooth_step
    # every 0.5-s piece of the output is a piece of the input (shuffled within 4-s groups)
    core = [out[start + 200 : start + 7800] for start in range(0, out.size, SR // 2)]
    sources = [samples[start + 200 : start + 7800] for start in range(0, samples.size, SR // 2)]
    for group in range(3):
        mine = core[8 * group : 8 * group + 8]
        theirs = sources[8 * group : 8 * group + 8]
        assert sorted(int(np.argmin([np.abs(a - b).max() for b in theirs])) for a in mine) == list(range(8))
        assert all(min(np.abs(a - b).max() for b in theirs) == 0.0 for a in mine)


def test_speech_mask_finds_speech_across_block_borders_and_keeps_the_events() -> None:
    samples = mixture(24.0)  # speech over the 4-s blocks' borders at 4 s
    out = streamed(seeded("speech_mask", 1), samples, random_chunks(6, samples.size))
    file_weights = speech_weights(samples, SR, 250.0)
    hop = 256
    replaced = np.array(
        [
            np.any(out[i * hop : (i + 1) * hop] != samples[i * hop : (i + 1) * hop])
            for i in range(samples.size // hop)
        ]
    )
    speech = file_weights[1 : samples.size // hop + 1] > 0
    assert np.mean(replaced == speech) > 0.95  # the same frames as the file method decides
    siren = slice(6 * SR + SR // 2, 12 * SR - SR // 2)
    alarm = slice(18 * SR + SR // 2, 24 * SR - SR // 2)
    assert np.array_equal(out[siren], samples[siren])  # events pass sample-exact
    assert np.array_equal(out[alarm], samples[alarm])
    speech_part = slice(0, 6 * SR)
    assert stoi(samples[speech_part], out[speech_part], SR) < 0.5


def test_scramble_hides_speech_in_a_stream() -> None:
    speech = synth.speech_like(16.0, seed=3)
    out = streamed(seeded("scramble", 3), speech, random_chunks(2, speech.size))
    assert stoi(speech, out, SR) < 0.5


def test_dp_noise_follows_each_windows_peak_and_the_lowpass_holds_across_blocks() -> None:
    quiet, loud = synth.tone(4.0, 440.0, level=0.02), synth.tone(4.0, 440.0, level=0.5)
    samples = np.concatenate([quiet, loud, quiet])
    out = streamed(seeded("dp_noise", 2), samples, random_chunks(3, samples.size))
    noise = out - samples
    scale = 0.05 / 0.8  # sensitivity / epsilon, relative to each 4-s window's peak
    for block, level in enumerate((0.02, 0.5, 0.02)):
        part = noise[block * 4 * SR : (block + 1) * 4 * SR]
        assert np.std(part) == pytest.approx(np.sqrt(2) * scale * level, rel=0.1)

    def high_share(noisy: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(noisy - samples)) ** 2
        freqs = np.fft.rfftfreq(samples.size, 1 / SR)
        return float(power[freqs > 2600].sum() / power.sum())

    request = seeded("dp_noise", 2, lowpass_hz=2000.0)
    filtered = streamed(request, samples, random_chunks(3, samples.size))
    # What remains above the cut-off is the clipping at each window's peak, as much as the file
    # method leaves in each window on its own
    per_window = np.concatenate(
        [
            apply_privacy(samples[i : i + 4 * SR], seeded("dp_noise", i, lowpass_hz=2000.0))
            for i in range(0, samples.size, 4 * SR)
        ]
    )
    assert high_share(filtered) < 1.2 * high_share(per_window)
    assert high_share(filtered) < 0.1 * high_share(out)


def test_the_lowpass_filter_has_the_file_methods_response() -> None:
    taps = lowpass_fir(3000.0, SR)
    response = np.abs(np.fft.rfft(taps, 8192))
    freqs = np.fft.rfftfreq(8192, 1 / SR)
    assert np.allclose(response[freqs < 2900], 1.0, atol=1e-4)
    assert np.all(response[freqs > 3300] < 1e-4)
    assert np.array_equal(taps, taps[::-1])  # linear phase: the delay is compensated exactly


def test_method_none_passes_samples_through() -> None:
    samples = synth.tone(1.0)
    anonymiser = stream_anonymiser(parse_privacy_request("none", {}))
    assert np.array_equal(anonymiser.push(samples), samples)
    assert anonymiser.finish().size == 0


def test_a_finished_stream_takes_no_more_audio_and_a_window_must_be_positive() -> None:
    anonymiser = stream_anonymiser(seeded("scramble"))
    anonymiser.push(np.zeros(100))
    anonymiser.finish()
    with pytest.raises(RuntimeError, match="finished"):
        anonymiser.push(np.zeros(10))
    with pytest.raises(ValueError, match="window_seconds"):
        stream_anonymiser(seeded("scramble"), window_seconds=0)
