"""The WAV header ffmpeg writes before a stream's samples: their rate and channel count.

The capture asks ffmpeg for 32-bit float WAV at the source's own rate and channels, so the
samples reach the monitor as the file path reads them (libsndfile scales 16-bit PCM to
[-1, 1) exactly as ffmpeg does, and float32 holds 24 bits) and are mixed and resampled by
the same code: a WAV streamed gives the embeddings of the same file uploaded. On a pipe the
sizes in the header are placeholders; only the format matters.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Final

_FLOAT: Final = 3
_EXTENSIBLE: Final = 0xFFFE
#: Chunks before ``data`` larger than this are not ffmpeg's: the stream is not what was asked for.
_MAX_CHUNK: Final = 1 << 16


class NotFloatWav(ValueError):
    """ffmpeg's output is not the 32-bit float WAV the capture asked for."""


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved float32 little-endian frames of ``channels`` samples at ``sample_rate``."""

    sample_rate: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return 4 * self.channels


async def read_wav_header(stream: asyncio.StreamReader) -> PcmFormat:
    """Read up to the start of the samples; NotFloatWav names what is wrong.

    Raises:
        asyncio.IncompleteReadError: the stream ended before its samples began.
    """
    riff = await stream.readexactly(12)
    if riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":
        raise NotFloatWav("the capture's output is not a WAV stream")
    pcm: PcmFormat | None = None
    while True:
        name, size = struct.unpack("<4sI", await stream.readexactly(8))
        if name == b"data":
            if pcm is None:
                raise NotFloatWav("the capture's WAV stream has no format chunk")
            return pcm
        if size > _MAX_CHUNK:
            raise NotFloatWav(f"unexpected {size}-byte {name!r} chunk before the samples")
        body = await stream.readexactly(size + size % 2)
        if name == b"fmt ":
            pcm = _format(body)


def _format(body: bytes) -> PcmFormat:
    if len(body) < 16:
        raise NotFloatWav("the capture's WAV format chunk is truncated")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]
    if tag != _FLOAT or bits != 32 or channels < 1 or rate < 1:
        raise NotFloatWav(f"the capture delivers format {tag}, {bits} bits, {channels} channels at {rate} Hz")
    return PcmFormat(rate, channels)
