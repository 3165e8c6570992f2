"""The ffmpeg command that turns one source into float WAV on a pipe.

One ffmpeg process per source (as Frigate and birdnet-go do): isolated, killable,
and it reads every codec and transport a camera or sound card offers. Network
inputs get a socket timeout (so a dead camera makes ffmpeg exit rather than
hang) and RTSP goes over TCP (cameras behind NAT, no lost UDP packets). Output: WAV
of 32-bit float samples at the source's own rate and channels on stdout (``wav_header``
says why: the monitor mixes and resamples as the file path does); ffmpeg's own messages go
to stderr at ``info`` level, each with its level (``ffmpeg_log`` reads them: the input's
duration, its errors), without the periodic progress. A file is read as fast as the capture
takes it: the supervisor paces a source played at real time itself (a file, or an HTTP
resource of known length, which only the input's description tells apart from a live stream).
"""

from __future__ import annotations

from typing import Final

from transformer.monitor.sources import SourceSpec, file_path

#: Socket timeout of network inputs, in microseconds (ffmpeg's unit).
NETWORK_TIMEOUT_US: Final = 5_000_000


def ffmpeg_command(
    source: SourceSpec, *, url: str, binary: str = "ffmpeg", stdin_rate: int = 16_000
) -> list[str]:
    """argv for ``source`` (``url`` is its resolved URL, credentials included: never log it)."""
    command = [binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info"]
    kind = source.kind
    if kind == "rtsp":
        command += ["-rtsp_transport", "tcp", "-timeout", str(NETWORK_TIMEOUT_US), "-i", url]
    elif kind == "http":
        command += ["-rw_timeout", str(NETWORK_TIMEOUT_US), "-i", url]
    elif kind == "file":
        command += ["-i", f"file:{file_path(url)}"]  # file: so that no ':' in the name reads as a protocol
    elif kind in ("alsa", "pulse"):
        command += ["-f", kind, "-i", url.split(":", 1)[1] or "default"]
    else:  # stdin: raw PCM from the monitor's own standard input
        command = [binary, "-hide_banner", "-nostats", "-loglevel", "level+info"]
        command += ["-f", "s16le", "-ar", str(stdin_rate), "-ac", "1", "-i", "pipe:0"]
    # bitexact and no metadata: nothing but the format chunk before the samples
    command += ["-vn", "-c:a", "pcm_f32le", "-f", "wav", "-fflags", "+bitexact", "-map_metadata", "-1"]
    return [*command, "pipe:1"]
