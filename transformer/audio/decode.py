"""Uploaded audio bytes -> mono float64 -> 16 kHz, decoded in memory (docs/reference/model.md §1).

Every format libsndfile reads is accepted (WAV PCM/float, FLAC, OGG Vorbis/Opus,
MP3, AIFF, ...); the format is detected from the bytes, never from a file name,
and the bytes never touch the disk. Channels are averaged (MAX's plain mean);
integer PCM is scaled as libsndfile does (int16 by 1/32768).

The duration limit is enforced before the audio is decoded: from the header
where it states the length, otherwise while decoding block by block, stopping as
soon as the limit is passed. So is a *work* limit: decoding and resampling cost
grows with the samples in the file (frames x channels), not its duration, and a
few hundred KB of FLAC can hold minutes of 384 kHz silence. At most
``max_seconds x budget_hz`` samples are decoded (default budget 96,000 per
second: the duration limit's worth of 48 kHz stereo); faster or wider files get
a proportionally shorter maximum duration. Every failure is a typed 4xx from
:mod:`contract.errors` whose message never contains the payload.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile

from contract.errors import (
    AudioParametersOutOfRange,
    AudioTooLarge,
    AudioTooShort,
    EmptyAudio,
    NonFiniteAudio,
    UndecodableAudio,
)
from transformer.audio.constants import (
    MIN_SAMPLES_FOR_ONE_EXAMPLE,
    MIN_SECONDS_FOR_ONE_EXAMPLE,
    SAMPLE_RATE,
)
from transformer.audio.resample import resample_to_16k, resampled_length

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
#: Samples (frames x channels) that may be decoded per second of the duration limit.
DECODE_BUDGET_HZ = 96_000

#: libsndfile's SF_COUNT_MAX: the header does not state the length (e.g. a
#: FLAC stream written to a pipe has total_samples = 0).
_LENGTH_NOT_STATED = 2**63 - 1
#: Formats whose frame count libsndfile estimates instead of reading it: an MP3
#: without a Xing/Info tag gets a bitrate-based guess. They are never rejected
#: on the estimate alone; the block-wise count decides.
_ESTIMATED_LENGTH_FORMATS = frozenset({"MP3"})
#: Our wording for libsndfile errors whose own text misleads a caller, by error code.
_CLEARER_REASONS = {
    # "File does not exist or is not a regular file": what it says for junk that
    # starts like an MPEG frame.
    7: "no decodable audio stream was found",
    # "Internal error : SF_INFO struct incomplete": a header it refuses.
    24: "the header's sample rate, channel count or sample format is invalid",
}
#: Samples (frames x channels) decoded per libsndfile call: 1 MiB of float64.
_BLOCK_SAMPLES = 1 << 17


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says (or, from :func:`decode_audio`, what was decoded).

    Attributes:
        format: libsndfile container name, e.g. ``"WAV"``, ``"FLAC"``, ``"MP3"``.
        subtype: sample encoding, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``.
        sample_rate: Hz.
        channels: channel count.
        frames: samples per channel; -1 when the header does not state it. For
            MP3 without a Xing/Info tag it is libsndfile's estimate.
        duration_seconds: ``frames / sample_rate`` (-1.0 when not stated).
    """

    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    duration_seconds: float


def probe_audio(data: bytes) -> AudioInfo:
    """Read only the header of an encoded audio file.

    Raises:
        EmptyAudio: ``data`` is empty.
        UndecodableAudio: not an audio file libsndfile can open.
        AudioParametersOutOfRange: sample rate or channel count outside
            ``MIN_SAMPLE_RATE..MAX_SAMPLE_RATE`` / ``1..MAX_CHANNELS``.
    """
    with _open(data) as sound_file:
        return _header_info(sound_file)


def decode_audio(
    data: bytes, *, max_seconds: float, budget_hz: int = DECODE_BUDGET_HZ
) -> tuple[np.ndarray, AudioInfo]:
    """Decode an encoded audio file to mono at its own sample rate.

    Args:
        data: the encoded file (any format libsndfile reads).
        max_seconds: longest accepted duration.
        budget_hz: at most ``max_seconds * budget_hz`` samples (frames x
            channels) are decoded.

    Returns:
        samples: (frames,) float64, the mean over channels, at least one sample.
        info: the header facts, with ``frames`` and ``duration_seconds`` set to
            what was actually decoded.

    Raises:
        EmptyAudio, UndecodableAudio, AudioParametersOutOfRange: as :func:`probe_audio`;
            UndecodableAudio also for data that is corrupt or ends mid-stream.
        AudioTooLarge: longer than ``max_seconds``, or more samples than the budget
            (from the header, or while decoding).
        AudioTooShort: the file contains no samples.
        NonFiniteAudio: a sample is NaN or infinite.
    """
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    if budget_hz < 1:
        raise ValueError(f"budget_hz must be positive, got {budget_hz}")
    with _open(data) as sound_file:
        header = _header_info(sound_file)
        limit = _FrameLimit.of(header, max_seconds, budget_hz)
        length_is_stated = header.frames >= 0 and header.format not in _ESTIMATED_LENGTH_FORMATS
        if length_is_stated and header.frames > limit.frames:
            raise limit.exceeded(header.frames, header, decoding=False)
        samples = _decode_mono(sound_file, header, limit)
    if samples.size == 0:
        raise AudioTooShort("the audio contains no samples")
    decoded = dataclasses.replace(
        header, frames=samples.size, duration_seconds=samples.size / header.sample_rate
    )
    return samples, decoded


def load_waveform(data: bytes, *, max_seconds: float, budget_hz: int = DECODE_BUDGET_HZ) -> np.ndarray:
    """Decode, mix to mono and resample to 16 kHz: the front end's input.

    Returns:
        (n,) float64 at 16 kHz with n >= 15,600 (one 0.975 s example), all finite.

    Raises:
        Everything :func:`decode_audio` raises, and AudioTooShort when the clip
        gives fewer than 15,600 samples at 16 kHz.
    """
    samples, info = decode_audio(data, max_seconds=max_seconds, budget_hz=budget_hz)
    length_at_16k = resampled_length(samples.size, info.sample_rate)
    if length_at_16k < MIN_SAMPLES_FOR_ONE_EXAMPLE:
        raise AudioTooShort(
            f"the clip lasts {info.duration_seconds:.6g} s ({length_at_16k:,} samples at "
            f"{SAMPLE_RATE // 1000} kHz); at least {MIN_SECONDS_FOR_ONE_EXAMPLE:g} s "
            f"({MIN_SAMPLES_FOR_ONE_EXAMPLE:,} samples at {SAMPLE_RATE // 1000} kHz) "
            "is needed for one example"
        )
    return resample_to_16k(samples, info.sample_rate)


def _open(data: bytes) -> soundfile.SoundFile:
    """Open ``data`` with libsndfile from memory; it detects the format from the content."""
    if len(data) == 0:
        raise EmptyAudio("the request contains no audio data (0 bytes)")
    try:
        return soundfile.SoundFile(io.BytesIO(data))
    except soundfile.SoundFileError as error:
        raise UndecodableAudio(
            f"the {len(data):,} bytes received are not an audio file that can be decoded "
            f"({_reason(error)}). Accepted: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF and the "
            "other formats libsndfile reads, recognised by their content"
        ) from error


def _reason(error: soundfile.SoundFileError) -> str:
    """libsndfile's fixed error text (never file content), or ours where it misleads."""
    if not isinstance(error, soundfile.LibsndfileError):
        return "soundfile could not read it"
    return _CLEARER_REASONS.get(error.code, f"libsndfile: {error.error_string.rstrip('.')}")


def _header_info(sound_file: soundfile.SoundFile) -> AudioInfo:
    """AudioInfo from an open file's header, rejecting absurd rates and channel counts."""
    sample_rate, channels = int(sound_file.samplerate), int(sound_file.channels)
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioParametersOutOfRange(
            f"the header declares a sample rate of {sample_rate:,} Hz; supported rates are "
            f"{MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioParametersOutOfRange(
            f"the header declares {channels:,} channels; at most {MAX_CHANNELS} are supported"
        )
    frames = -1 if sound_file.frames == _LENGTH_NOT_STATED else int(sound_file.frames)
    return AudioInfo(
        format=str(sound_file.format),
        subtype=str(sound_file.subtype),
        sample_rate=sample_rate,
        channels=channels,
        frames=frames,
        duration_seconds=frames / sample_rate if frames >= 0 else -1.0,
    )


@dataclass(frozen=True)
class _FrameLimit:
    """Most frames decoded from one file, and which limit sets it."""

    frames: int
    max_seconds: float
    budget_samples: int
    by_budget: bool

    @classmethod
    def of(cls, header: AudioInfo, max_seconds: float, budget_hz: int) -> _FrameLimit:
        # min() keeps an infinite limit an integer.
        by_duration = math.floor(min(max_seconds * header.sample_rate, _LENGTH_NOT_STATED))
        budget_samples = math.floor(min(max_seconds * budget_hz, _LENGTH_NOT_STATED))
        by_budget = budget_samples // header.channels
        return cls(min(by_duration, by_budget), max_seconds, budget_samples, by_budget < by_duration)

    def exceeded(self, frames: int, header: AudioInfo, *, decoding: bool) -> AudioTooLarge:
        """The 413 for ``frames`` (> ``self.frames``), stated by the header or met ``decoding``."""
        seconds = frames / header.sample_rate
        if not self.by_budget:
            if decoding:
                return AudioTooLarge(
                    f"the recording is longer than the limit of {self.max_seconds:g} s "
                    f"(decoding stopped after {seconds:.1f} s)"
                )
            return AudioTooLarge(
                f"the recording lasts {seconds:.1f} s according to its header; "
                f"the limit is {self.max_seconds:g} s"
            )
        allowed = self.frames / header.sample_rate
        where = "at least (decoding stopped there)" if decoding else "according to its header"
        return AudioTooLarge(
            f"the recording has {frames * header.channels:,} samples {where} ({seconds:.1f} s x "
            f"{header.sample_rate:,} Hz x {header.channels} channel(s)); at most "
            f"{self.budget_samples:,} are decoded per request, which at this sample rate and "
            f"channel count is {allowed:.1f} s: send a shorter clip, fewer channels or a lower "
            "sample rate"
        )


def _decode_mono(sound_file: soundfile.SoundFile, header: AudioInfo, limit: _FrameLimit) -> np.ndarray:
    """Decode block by block into a mono (frames,) float64 array, enforcing the limits."""
    block = np.empty((max(1, _BLOCK_SAMPLES // header.channels), header.channels))
    # libsndfile never returns more frames than the header states, so a stated
    # length sizes the output exactly; an unstated one grows by doubling.
    capacity = min(header.frames, limit.frames) if header.frames >= 0 else block.shape[0]
    mono = np.empty(capacity)
    decoded = 0
    while (count := _read_block(sound_file, block)) > 0:
        if decoded + count > limit.frames:
            raise limit.exceeded(decoded + count, header, decoding=True)
        if decoded + count > mono.size:
            mono = _grown(mono, decoded, min(max(2 * mono.size, decoded + count), limit.frames))
        new_samples = mono[decoded : decoded + count]
        np.mean(block[:count], axis=1, out=new_samples)
        if not np.isfinite(new_samples).all():
            first_bad = decoded + int(np.argmin(np.isfinite(new_samples)))
            raise NonFiniteAudio(
                "the audio contains NaN or infinite sample values (first at "
                f"{first_bad / header.sample_rate:.3f} s); only finite samples can be analysed"
            )
        decoded += count
    return mono if decoded == mono.size else mono[:decoded].copy()


def _grown(buffer: np.ndarray, used: int, capacity: int) -> np.ndarray:
    """A larger buffer holding the first ``used`` values of ``buffer``."""
    larger = np.empty(capacity)
    larger[:used] = buffer[:used]
    return larger


def _read_block(sound_file: soundfile.SoundFile, block: np.ndarray) -> int:
    """Decode up to ``len(block)`` frames into ``block`` (frames, channels); 0 at the end.

    libsndfile is called through soundfile's own binding because soundfile's
    ``read`` re-seeks to its new position after every read, and libFLAC cannot
    seek in a stream without a stated length or one that is cut short: valid
    streamed FLAC would lose its last block and raise.
    """
    handle = sound_file._file
    count = soundfile._snd.sf_readf_double(
        handle, soundfile._ffi.from_buffer("double[]", block), block.shape[0]
    )
    error_code = soundfile._snd.sf_error(handle)
    if error_code:
        error = soundfile.LibsndfileError(error_code)
        raise UndecodableAudio(f"the audio data is corrupt or cut short ({_reason(error)})")
    return int(count)
