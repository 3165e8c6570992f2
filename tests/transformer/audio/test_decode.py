"""Decoding uploaded audio from memory: formats, channels, rates, limits and typed errors."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from contract.errors import (
    AudioParametersOutOfRange,
    AudioTooLarge,
    AudioTooShort,
    EmptyAudio,
    NonFiniteAudio,
    UndecodableAudio,
)
from tests.support.signals import chirp, dominant_frequency, encode, rms, tone, white_noise
from transformer.audio.decode import AudioInfo, decode_audio, load_waveform, probe_audio

LIMIT = 600.0
SHARED_AUDIO = Path("/work/shared/audio")


def music(seconds: float, rate: int) -> np.ndarray:
    """A broadband test signal (sweep + noise), peak well below 1."""
    return chirp(60, 0.4 * rate, seconds, rate, amplitude=0.4) + white_noise(seconds, rate, 0.05)


def with_flac_total_samples(flac: bytes, total: int) -> bytes:
    """``flac`` with STREAMINFO's 36-bit total_samples replaced (0 = not stated).

    STREAMINFO starts at byte 8 ("fLaC" + 4-byte block header); total_samples is
    the low 36 bits of the big-endian 64-bit field at byte 18.
    """
    assert flac[:4] == b"fLaC"
    field = int.from_bytes(flac[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | total
    return flac[:18] + field.to_bytes(8, "big") + flac[26:]


def with_wav_field(wav: bytes, offset: int, value: int, size: int) -> bytes:
    """``wav`` with a little-endian header field replaced (canonical 44-byte header)."""
    return wav[:offset] + value.to_bytes(size, "little") + wav[offset + size :]


def assert_no_payload(message: str, data: bytes) -> None:
    """No 16-byte stretch of ``data`` appears in ``message`` as hex, repr or text."""
    for start in range(0, max(1, len(data) - 16), max(1, len(data) // 32)):
        chunk = data[start : start + 16]
        assert chunk.hex() not in message
        assert repr(chunk)[2:-1] not in message
        assert chunk.decode("latin-1") not in message


# --- formats ---------------------------------------------------------------------------------

LOSSLESS = [
    ("WAV", "PCM_U8", 1e-2),
    ("WAV", "PCM_16", 1e-4),
    ("WAV", "PCM_24", 1e-6),
    ("WAV", "PCM_32", 1e-8),
    ("WAV", "FLOAT", 1e-7),
    ("WAV", "DOUBLE", 0.0),
    ("FLAC", "PCM_S8", 1e-2),
    ("FLAC", "PCM_16", 1e-4),
    ("FLAC", "PCM_24", 1e-6),
    ("AIFF", "PCM_16", 1e-4),
    ("W64", "PCM_24", 1e-6),
    ("RF64", "FLOAT", 1e-7),
]


@pytest.mark.parametrize(("container", "subtype", "tolerance"), LOSSLESS)
def test_lossless_formats_round_trip(container, subtype, tolerance):
    written = music(0.5, 44_100)
    samples, info = decode_audio(encode(written, 44_100, container, subtype), max_seconds=LIMIT)
    assert info == AudioInfo(container, subtype, 44_100, 1, written.size, written.size / 44_100)
    assert samples.dtype == np.float64
    np.testing.assert_allclose(samples, written, rtol=0, atol=tolerance)


@pytest.mark.parametrize(
    ("container", "subtype", "rate"),
    [("OGG", "VORBIS", 44_100), ("OGG", "OPUS", 48_000), ("MP3", "MPEG_LAYER_III", 44_100)],
)
def test_lossy_formats_keep_the_tone(container, subtype, rate):
    written = tone(440.0, 2.0, rate, amplitude=0.5)
    samples, info = decode_audio(encode(written, rate, container, subtype), max_seconds=LIMIT)
    assert (info.format, info.subtype, info.sample_rate, info.channels) == (container, subtype, rate, 1)
    assert samples.size == pytest.approx(written.size, rel=0.01)
    assert dominant_frequency(samples, rate) == pytest.approx(440.0, abs=0.5)
    assert rms(samples) == pytest.approx(rms(written), rel=0.03)


def test_pcm16_is_scaled_by_one_over_32768():
    stored = np.array([-32768, -32767, -1, 0, 1, 12_345, 32_767] * 100, dtype=np.int16)
    samples, _ = decode_audio(encode(stored, 16_000, "WAV", "PCM_16"), max_seconds=LIMIT)
    np.testing.assert_array_equal(samples, stored.astype(np.float64) / 32768.0)


def test_format_is_detected_from_content_not_a_name():
    flac = encode(music(0.2, 16_000), 16_000, "FLAC", "PCM_16")
    assert probe_audio(flac).format == "FLAC"
    assert probe_audio(bytearray(flac)).format == "FLAC"


# --- channels and sample rates ---------------------------------------------------------------


def test_stereo_is_the_plain_mean_of_both_channels():
    left = tone(440.0, 0.5, 22_050, 0.6)
    right = white_noise(0.5, 22_050, 0.2)
    stereo = np.stack([left, right], axis=1).astype(np.float32)
    samples, info = decode_audio(encode(stereo, 22_050, "WAV", "FLOAT"), max_seconds=LIMIT)
    assert info.channels == 2
    expected = (stereo[:, 0].astype(np.float64) + stereo[:, 1].astype(np.float64)) / 2
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("container", "subtype", "tolerance"), [("WAV", "DOUBLE", 1e-15), ("FLAC", "PCM_24", 1e-6)]
)
def test_six_channels_are_averaged(container, subtype, tolerance):
    channels = [tone(100.0 * (c + 1), 0.5, 48_000, 0.1 * (c + 1)) for c in range(6)]
    samples, info = decode_audio(encode(np.stack(channels, 1), 48_000, container, subtype), max_seconds=LIMIT)
    assert info.channels == 6
    total = np.zeros_like(channels[0])
    for channel in channels:
        total += channel
    np.testing.assert_allclose(samples, total / 6, rtol=0, atol=tolerance)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000, 96_000])
def test_any_sample_rate_becomes_16k(rate):
    written = tone(1_000.0, 1.5, rate, amplitude=0.5)
    data = encode(written, rate, "WAV", "PCM_16")
    samples, info = decode_audio(data, max_seconds=LIMIT)
    assert (info.sample_rate, samples.size) == (rate, written.size)
    waveform = load_waveform(data, max_seconds=LIMIT)
    assert waveform.dtype == np.float64
    assert waveform.shape == (written.size * 16_000 // rate,)
    assert dominant_frequency(waveform, 16_000) == pytest.approx(1_000.0, abs=0.05)
    assert rms(waveform[200:-200]) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_stereo_44k1_file_loads_as_16k_mono():
    stereo = np.stack([tone(500.0, 2.0, 44_100, 0.4), tone(500.0, 2.0, 44_100, 0.2)], axis=1)
    waveform = load_waveform(encode(stereo, 44_100, "FLAC", "PCM_16"), max_seconds=LIMIT)
    assert waveform.shape == (stereo.shape[0] * 16_000 // 44_100,)
    assert rms(waveform[200:-200]) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)


def test_probe_reads_the_header():
    data = encode(np.zeros((12_345, 2)), 48_000, "FLAC", "PCM_24")
    assert probe_audio(data) == AudioInfo("FLAC", "PCM_24", 48_000, 2, 12_345, 12_345 / 48_000)


# --- bad input ---------------------------------------------------------------------------------


def test_empty_input():
    for call in (probe_audio, lambda data: decode_audio(data, max_seconds=LIMIT)):
        with pytest.raises(EmptyAudio, match="no audio data"):
            call(b"")
    with pytest.raises(EmptyAudio):
        load_waveform(b"", max_seconds=LIMIT)


def jpeg_bytes() -> bytes:
    image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("random bytes", lambda: np.random.default_rng(3).bytes(4_000)),
        (
            "random bytes after an MPEG sync",
            lambda: b"\xff\xfb\x90\xc4" + np.random.default_rng(4).bytes(4_000),
        ),
        ("text", lambda: b"hello, this is not audio at all\n" * 50),
        ("jpeg", jpeg_bytes),
        ("truncated WAV header", lambda: encode(np.zeros(16_000), 16_000)[:30]),
        ("truncated OGG header", lambda: encode(np.zeros(16_000), 16_000, "OGG", "VORBIS")[:200]),
    ],
)
def test_undecodable_input(kind, make):
    data = make()
    with pytest.raises(UndecodableAudio) as caught:
        decode_audio(data, max_seconds=LIMIT)
    message = caught.value.message
    assert caught.value.status_code == 400
    assert "not an audio file that can be decoded" in message
    assert f"{len(data):,} bytes" in message
    assert_no_payload(message, data)
    with pytest.raises(UndecodableAudio):
        probe_audio(data)


def test_undecodable_message_names_the_problem():
    with pytest.raises(UndecodableAudio, match="No 'data' chunk"):
        probe_audio(encode(np.zeros(16_000), 16_000)[:30])
    with pytest.raises(UndecodableAudio, match="Format not recognised"):
        probe_audio(b"hello, this is not audio at all\n" * 50)
    with pytest.raises(UndecodableAudio, match="no decodable audio stream"):
        probe_audio(b"\xff\xfb\x90\xc4" + np.random.default_rng(4).bytes(4_000))


def test_zero_frames():
    data = encode(np.zeros(0), 16_000, "WAV", "PCM_16")
    assert probe_audio(data).frames == 0
    with pytest.raises(AudioTooShort, match="contains no samples"):
        decode_audio(data, max_seconds=LIMIT)


def test_too_short_for_one_example():
    with pytest.raises(AudioTooShort) as caught:
        load_waveform(encode(tone(440.0, 0.5, 44_100), 44_100), max_seconds=LIMIT)
    message = caught.value.message
    assert "lasts 0.5 s" in message
    assert "at least 0.975 s (15,600 samples at 16 kHz)" in message


def test_one_example_boundary_after_resampling():
    # 42998 * 16000 / 44100 = 15600.18 -> 15600 samples; 42997 -> 15599.
    assert load_waveform(encode(np.zeros(42_998), 44_100), max_seconds=LIMIT).size == 15_600
    with pytest.raises(AudioTooShort, match="15,599 samples at 16 kHz"):
        load_waveform(encode(np.zeros(42_997), 44_100), max_seconds=LIMIT)
    assert load_waveform(encode(np.zeros(15_600), 16_000), max_seconds=LIMIT).size == 15_600
    with pytest.raises(AudioTooShort):
        load_waveform(encode(np.zeros(15_599), 16_000), max_seconds=LIMIT)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(bad_value):
    stereo = np.zeros((16_000, 2), dtype=np.float32)
    stereo[8_000, 1] = bad_value
    with pytest.raises(NonFiniteAudio, match=r"NaN or infinite .*first at 0\.500 s"):
        decode_audio(encode(stereo, 16_000, "WAV", "FLOAT"), max_seconds=LIMIT)


@pytest.mark.parametrize(
    ("rate", "channels", "expected"),
    [
        (500, 1, "sample rate of 500 Hz; supported rates are 1,000 to 768,000 Hz"),
        (1_000_000, 1, "sample rate of 1,000,000 Hz"),
        (16_000, 65, "65 channels; at most 64"),
    ],
)
def test_absurd_headers_that_libsndfile_opens(rate, channels, expected):
    data = encode(np.zeros((10, channels)), rate, "WAV", "PCM_16")
    with pytest.raises(AudioParametersOutOfRange, match=expected) as caught:
        probe_audio(data)
    assert caught.value.status_code == 400
    with pytest.raises(AudioParametersOutOfRange):
        decode_audio(data, max_seconds=LIMIT)


def test_absurd_headers_that_libsndfile_refuses():
    wav = encode(np.zeros(1_000), 16_000, "WAV", "PCM_16")
    for rate in (0, 4_000_000_000):
        with pytest.raises(UndecodableAudio, match="sample rate, channel count or sample format is invalid"):
            probe_audio(with_wav_field(wav, 24, rate, 4))
    with pytest.raises(UndecodableAudio, match="Too many channels"):
        probe_audio(with_wav_field(wav, 22, 5_000, 2))


# --- truncated and streamed files --------------------------------------------------------------


def test_truncated_wav_decodes_what_is_there():
    written = np.arange(-500, 500, dtype=np.int16)
    wav = encode(written, 16_000, "WAV", "PCM_16")
    samples, info = decode_audio(wav[: 44 + 2 * 600 + 1], max_seconds=LIMIT)
    assert info.frames == 600
    np.testing.assert_array_equal(samples, written[:600] / 32768.0)


def test_truncated_flac_is_undecodable():
    flac = encode(white_noise(3.0, 16_000), 16_000, "FLAC", "PCM_16")
    with pytest.raises(UndecodableAudio, match="corrupt or cut short"):
        decode_audio(flac[: len(flac) // 2], max_seconds=LIMIT)


@pytest.mark.parametrize(("container", "subtype"), [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_truncated_lossy_stream_decodes_what_is_there(container, subtype):
    written = tone(440.0, 6.0, 16_000) + white_noise(6.0, 16_000, 0.05)
    data = encode(written, 16_000, container, subtype)
    samples, _ = decode_audio(data[: len(data) // 2], max_seconds=LIMIT)
    assert 0.2 * written.size < samples.size < 0.8 * written.size
    assert dominant_frequency(samples, 16_000) == pytest.approx(440.0, abs=1.0)


def test_flac_without_stated_length_decodes_completely():
    written = music(3.0, 16_000)
    streamed = with_flac_total_samples(encode(written, 16_000, "FLAC", "PCM_16"), 0)
    assert probe_audio(streamed).frames == -1
    assert probe_audio(streamed).duration_seconds == -1.0
    samples, info = decode_audio(streamed, max_seconds=LIMIT)
    assert info.frames == written.size
    np.testing.assert_allclose(samples, written, rtol=0, atol=1e-4)


# --- the duration limit ------------------------------------------------------------------------


def test_limit_from_the_header():
    data = encode(np.zeros(3 * 16_000), 16_000, "WAV", "PCM_16")
    with pytest.raises(
        AudioTooLarge, match=r"lasts 3\.0 s according to its header; the limit is 2 s"
    ) as caught:
        decode_audio(data, max_seconds=2)
    assert caught.value.status_code == 413
    assert decode_audio(data, max_seconds=3)[0].size == 3 * 16_000


def test_limit_must_be_positive_and_may_be_infinite():
    data = encode(np.zeros(16_000), 16_000, "WAV", "PCM_16")
    assert decode_audio(data, max_seconds=float("inf"))[0].size == 16_000
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_seconds must be positive"):
            decode_audio(data, max_seconds=bad)


def test_header_claiming_hours_is_rejected_without_decoding():
    # The payload is 3 s; only the header claims 2**36 - 1 samples (~1193 h). Had
    # the file been decoded, 3 s would have passed the 600 s limit.
    flac = encode(white_noise(3.0, 16_000), 16_000, "FLAC", "PCM_16")
    lying = with_flac_total_samples(flac, (1 << 36) - 1)
    assert probe_audio(lying).frames == (1 << 36) - 1
    with pytest.raises(AudioTooLarge, match=r"lasts 4294967\.3 s according to its header"):
        decode_audio(lying, max_seconds=LIMIT)
    assert decode_audio(with_flac_total_samples(flac, 0), max_seconds=LIMIT)[0].size == 3 * 16_000


def test_unstated_length_is_limited_while_decoding():
    streamed = with_flac_total_samples(encode(white_noise(12.0, 16_000), 16_000, "FLAC", "PCM_16"), 0)
    with pytest.raises(AudioTooLarge, match=r"longer than the limit of 2 s \(decoding stopped after"):
        decode_audio(streamed, max_seconds=2)


# --- the sample budget (decoding work) --------------------------------------------------------


def silent_flac(seconds: float, rate: int, channels: int = 1) -> bytes:
    """Silence compresses ~300:1 in FLAC: a small upload that decodes to many samples."""
    return encode(np.zeros((round(seconds * rate), channels)), rate, "FLAC", "PCM_16")


def test_small_high_rate_upload_is_refused_from_its_header_without_decoding():
    # 5 s at 384 kHz is within the 10-s duration limit, but 1,920,000 samples are
    # twice the 10 s x 96,000 budget: the work of 20 s of 48 kHz stereo.
    bomb = silent_flac(5.0, 384_000)
    assert len(bomb) < 200_000
    expected = r"has 1,920,000 samples according to its header .* at most 960,000 .* 2\.5 s"

    def rejected() -> None:
        with pytest.raises(AudioTooLarge, match=expected) as caught:
            decode_audio(bomb, max_seconds=10)
        assert caught.value.status_code == 413

    assert peak_traced_bytes(rejected) < 1_920_000 * 8 / 10
    # A larger budget lets it through.
    assert decode_audio(bomb, max_seconds=10, budget_hz=384_000)[0].size == 1_920_000


def test_sample_budget_counts_channels():
    # 48 kHz stereo for the whole duration limit is exactly the default budget.
    assert decode_audio(silent_flac(2.0, 48_000, 2), max_seconds=2)[0].size == 96_000
    with pytest.raises(AudioTooLarge, match=r"x 48,000 Hz x 3 channel\(s\)"):
        decode_audio(silent_flac(2.0, 48_000, 3), max_seconds=2)
    # The 16 kHz mono case never meets the budget before the duration limit.
    with pytest.raises(AudioTooLarge, match=r"lasts 3\.0 s according to its header; the limit is 2 s"):
        decode_audio(silent_flac(3.0, 16_000), max_seconds=2)


def test_sample_budget_holds_while_decoding_an_unstated_length():
    streamed = with_flac_total_samples(silent_flac(5.0, 384_000), 0)
    with pytest.raises(AudioTooLarge, match=r"samples at least \(decoding stopped there\)"):
        load_waveform(streamed, max_seconds=10)


def peak_traced_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_long_mp3_stops_decoding_at_the_limit():
    seconds, rate = 120, 8_000
    data = encode(tone(440.0, seconds, rate), rate, "MP3", "MPEG_LAYER_III")
    full_mono_bytes = seconds * rate * 8

    def rejected() -> None:
        with pytest.raises(AudioTooLarge, match="limit of 5 s"):
            decode_audio(data, max_seconds=5)

    # The same measurement sees the whole recording when it is decoded.
    assert peak_traced_bytes(lambda: decode_audio(data, max_seconds=LIMIT)) >= full_mono_bytes
    assert peak_traced_bytes(rejected) < full_mono_bytes / 3


def test_mp3_is_not_rejected_on_an_overestimated_length():
    # Constant-bitrate MP3 carries no Xing/Info frame, so libsndfile guesses the
    # length from the first frame's bitrate: a low-bitrate stream followed by a
    # high-bitrate one looks more than three times longer than it is.
    def constant_bitrate(seconds: float, level: float, seed: int) -> bytes:
        noise = white_noise(seconds, 44_100, 0.1, seed)
        return encode(
            noise, 44_100, "MP3", "MPEG_LAYER_III", compression_level=level, bitrate_mode="CONSTANT"
        )

    data = constant_bitrate(6.0, 0.99, 1) + constant_bitrate(2.0, 0.0, 2)
    assert probe_audio(data).duration_seconds > 20
    samples, info = decode_audio(data, max_seconds=15)
    assert info.duration_seconds == pytest.approx(8.0, abs=0.2)
    assert samples.size == info.frames


# --- the reference recordings (docs/reference/model.md §7) -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "examples"),
    [("birds1", 13), ("gunshots", 10), ("rain", 12), ("snoring", 17), ("thunder", 14)],
)
def test_reference_recordings_give_maxs_example_counts(name, examples):
    path = SHARED_AUDIO / f"{name}.wav"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    data = path.read_bytes()
    header = probe_audio(data)
    waveform = load_waveform(data, max_seconds=LIMIT)
    assert waveform.size == header.frames * 16_000 // header.sample_rate
    frames = 1 + (waveform.size - 400) // 160
    assert frames // 96 == examples
