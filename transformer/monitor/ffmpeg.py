"""The ffmpeg command that turns one source into 16-bit mono PCM on a pipe.

One ffmpeg process per source (as Frigate and birdnet-go do): isolated, killable,
and it reads every codec and transport a camera or sound card offers. Network
inputs get a socket timeout (so a dead camera makes ffmpeg exit rather than
hang) and RTSP goes over TCP (cameras behind NAT, no lost UDP packets). Output:
raw s16le at ``sample_rate`` on stdout; ffmpeg's own messages go to stderr at
``error`` level, so nothing but failures is said there.
"""

from __future__ import annotations

from typing import Final

from transformer.monitor.sources import SourceSpec

#: Socket timeout of network inputs, in microseconds (ffmpeg's unit).
NETWORK_TIMEOUT_US: Final = 5_000_000
BYTES_PER_SAMPLE: Final = 2


def ffmpeg_command(
    source: SourceSpec, *, sample_rate: int, url: str, binary: str = "ffmpeg", stdin_rate: int = 16_000
) -> list[str]:
    """argv for ``source`` (``url`` is its resolved URL, credentials included: never log it)."""
    command = [binary, "-hide_banner", "-nostdin", "-loglevel", "error"]
    kind = source.kind
    if kind == "rtsp":
        command += ["-rtsp_transport", "tcp", "-timeout", str(NETWORK_TIMEOUT_US), "-i", url]
    elif kind == "http":
        command += ["-rw_timeout", str(NETWORK_TIMEOUT_US), "-i", url]
    elif kind == "file":
        path = url.removeprefix("file:") if url.lower().startswith("file:") else url
        command += (["-re"] if source.realtime else []) + ["-i", path]
    elif kind in ("alsa", "pulse"):
        command += ["-f", kind, "-i", url.split(":", 1)[1] or "default"]
    else:  # stdin: raw PCM from the monitor's own standard input
        command = [binary, "-hide_banner", "-loglevel", "error"]
        command += ["-f", "s16le", "-ar", str(stdin_rate), "-ac", "1", "-i", "pipe:0"]
    command += ["-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    return command
