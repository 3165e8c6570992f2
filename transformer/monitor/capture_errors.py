"""Why a capture cannot work, in words a person can act on.

ffmpeg's own last line is often generic ("Input/output error" when a host name does not resolve,
"No such process" when no PulseAudio server runs): the reason is in an earlier line or in the
kind of source. ``REASONS`` is the table (labels as data, the most specific first): every error
line of a run is matched against it, in its order, and the first label found is the reason the
console, the log and the status endpoint give. ffmpeg's own words stay in the DEBUG log
(``ffmpeg_log``). ``file_problem`` says why a file source cannot be opened before ffmpeg runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from transformer.monitor.ffmpeg import NETWORK_TIMEOUT_US
from transformer.monitor.sources import SourceKind

_NETWORK: Final = frozenset({"rtsp", "http"})


@dataclass(frozen=True)
class Reason:
    """A pattern of ffmpeg's messages and what it means; ``{name}`` in the label is the pattern's
    named group; ``kinds``: the sources it applies to (None: all)."""

    pattern: re.Pattern[str]
    label: str
    kinds: frozenset[str] | None = None


_TIMEOUT_S = NETWORK_TIMEOUT_US // 1_000_000
_NO_SOUND_SERVER = "no sound server (PulseAudio is not running or not reachable)"
# (pattern, label, the kinds it applies to: "" for all), the most specific first
# fmt: off
_TABLE: Final = (
    (r"Failed to resolve hostname (?P<host>[^\s:]+)", "host not found: {host}", ""),
    (r"No such process|Connection refused|Connection terminated", _NO_SOUND_SERVER, "pulse"),
    (r"cannot find card|Cannot get card index|cannot open audio device", "sound card not found", "alsa"),
    (r"Connection refused", "connection refused (nothing listens on that port)", ""),
    (r"timed out", f"connection timed out (no answer within {_TIMEOUT_S} s)", ""),
    (r"Network is unreachable", "network unreachable", ""),
    (r"No route to host", "no route to host", ""),
    (r"401 Unauthorized|authorization failed",
     "authentication failed (401): check the user and password", ""),
    (r"403 Forbidden|access denied", "access denied (403)", ""),
    (r"404 Not Found", "not found (404): check the path", ""),
    (r"Server returned 5XX|Server returned 5\d\d", "server error (5xx)", ""),
    (r"Server returned (?P<answer>.+)", "the server answered {answer}", ""),
    (r"TLS|SSL|certificate|handshake", "TLS failed (does the server speak TLS on that port?)", ""),
    (r"Connection reset by peer", "connection reset by the server", ""),
    (r"Invalid data found when processing input",
     f"no RTSP answer (not an RTSP server, or no answer within {_TIMEOUT_S} s)", "rtsp"),
    (r"Invalid data found when processing input", "not audio (ffmpeg cannot read it)", ""),
    (r"does not contain any stream|matches no streams|no audio stream", "no audio stream", ""),
    (r"No such file or directory", "file not found", "file"),
    (r"Permission denied", "permission denied", ""),
    (r"Is a directory", "a folder, not a file", ""),
    (r"End of file|Stream ends prematurely", "the stream ended", ""),
)
# fmt: on
REASONS: Final[tuple[Reason, ...]] = tuple(
    Reason(re.compile(pattern, re.IGNORECASE), label, frozenset(kinds.split()) or None)
    for pattern, label, kinds in _TABLE
)


def explain(lines: Sequence[str], kind: SourceKind) -> str | None:
    """The reason the first matching entry of ``REASONS`` gives for ffmpeg's error ``lines``."""
    for reason in REASONS:
        if reason.kinds is not None and kind not in reason.kinds:
            continue
        for line in lines:
            match = reason.pattern.search(line)
            if match:
                return reason.label.format(**{k: v for k, v in match.groupdict().items() if v})
    return None


def capture_failure(problems: Sequence[str], errors: Sequence[str], kind: SourceKind, exit_code: int) -> str:
    """Why a capture ended: the table's reason for ffmpeg's ``problems`` (its warnings and errors),
    else its last error line, else its exit."""
    explained = explain(problems, kind)
    if explained is not None:
        return explained
    if exit_code == 0:
        return "the stream ended" if kind in _NETWORK else "the input ended"
    return f"ffmpeg: {errors[-1]}" if errors else f"ffmpeg exited with code {exit_code}"


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file source (None: it can be opened)."""
    if not path.exists():
        return f"file not found: {path}"
    if path.is_dir():
        return f"a folder, not a file: {path}"
    if not os.access(path, os.R_OK):
        return f"permission denied: {path}"
    return None
