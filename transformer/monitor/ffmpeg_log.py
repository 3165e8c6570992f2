"""What one ffmpeg run says on stderr: its input's duration and its errors.

ffmpeg runs at ``-loglevel level+info`` (``ffmpeg.py``): each line carries its level, so the
errors are told from the description of the input, whose ``Duration:`` says whether the input
ends (a file, an HTTP resource of known length) or is live (``N/A``). That description is
written before the first sample, so ``described`` is set before the capture needs it. Errors and
warnings are kept (the last ``KEPT_LINES``, the source's URL with its password removed) for
``capture_errors`` and logged at DEBUG: ffmpeg's own words, never the console's. The rest of
what ffmpeg says (the input's metadata) is not kept.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Final

logger = logging.getLogger(__name__)

KEPT_LINES: Final = 20
_LINE: Final = re.compile(
    r"^(?:\[[^\]]+ @ 0x[0-9a-fA-F]+\] )?\[(?P<level>trace|debug|verbose|info|warning|error|fatal|panic)\] "
    r"(?P<text>.*)$"
)
_DURATION: Final = re.compile(r"^\s*Duration: (?:N/A|(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?))")
_PROBLEMS: Final = frozenset({"warning", "error", "fatal", "panic"})


class FfmpegLog:
    """One ffmpeg run's stderr, read as it comes (``read``)."""

    def __init__(self, source: str, redact: Callable[[str], str]) -> None:
        self.source = source
        self._redact = redact
        self.duration: float | None = None  # seconds; None: live (or not said yet)
        self.described = asyncio.Event()  # the input is described (or ffmpeg said all it will)
        self.problems: deque[str] = deque(maxlen=KEPT_LINES)
        self.errors: deque[str] = deque(maxlen=KEPT_LINES)  # error level and above, and raw lines
        self._inputs = 0

    async def read(self, stream: asyncio.StreamReader | None) -> None:
        """Take every line until ffmpeg closes its stderr."""
        try:
            if stream is not None:
                async for raw in stream:
                    self.take(raw.decode("utf-8", "replace").rstrip())
        finally:
            self.described.set()

    def take(self, line: str) -> None:
        if not line.strip():
            return
        match = _LINE.match(line)
        level, text = (match["level"], match["text"]) if match else (None, line.strip())
        if level == "info":
            self._describe(text)
            return
        if level is not None and level not in _PROBLEMS:
            return
        text = self._redact(text)[:300]
        logger.debug("source %s: ffmpeg: %s", self.source, text)
        self.problems.append(text)
        if level != "warning":  # a library's own line (ALSA's) has no level: kept as an error
            self.errors.append(text)

    def _describe(self, text: str) -> None:
        if text.startswith("Input #"):
            self._inputs += 1
        elif text.startswith(("Output #", "Stream mapping:")):
            self.described.set()
        elif self._inputs == 1 and self.duration is None and not self.described.is_set():
            match = _DURATION.match(text)
            if match and match["h"] is not None:
                self.duration = int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])
