"""What the monitor tells a person about its sources: connected, lost, failed, finished, drops.

Each notice is one sentence about one source (or the whole monitor), said when it happens:
``audioguard monitor`` prints it on the console with the local clock
(``kitchen: connection lost at 19:04:11 (connection refused), retrying in 4.0 s``); the
service logs it (``log_notice``: INFO, WARNING for a loss or a failure). The supervisors say
what they see of their capture, the service what the analysis made of it (a source finished
with its events, audio dropped because the analysis is behind, the summary at the end).
Nothing of the audio is in a notice beyond its duration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

logger = logging.getLogger("transformer.monitor")

NoticeKind = Literal[
    "listening", "connected", "retrying", "failed", "finished", "dropped", "stopped", "summary"
]


@dataclass(frozen=True)
class Notice:
    """``{source}: {what} at {clock}{detail}`` on the console, ``source {source}: {what}{detail}``
    in the log (``source`` None: the monitor as a whole)."""

    kind: NoticeKind
    source: str | None
    what: str
    detail: str = ""
    warning: bool = False  # a loss or a failure: logged as a warning
    at: float = field(default_factory=time.time)  # wall clock (epoch seconds)

    def line(self, clock: str | None = None) -> str:
        """The sentence, with ``at {clock}`` after what happened when a clock is given."""
        when = f" at {clock}" if clock else ""
        subject = f"{self.source}: " if self.source is not None else ""
        return f"{subject}{self.what}{when}{self.detail}"


Notify = Callable[[Notice], None]


def log_notice(notice: Notice) -> None:
    """The service's way of saying a notice: one log line (the log has its own time)."""
    subject = f"source {notice.source}: " if notice.source is not None else ""
    logger.log(
        logging.WARNING if notice.warning else logging.INFO, "%s%s%s", subject, notice.what, notice.detail
    )


def seconds_text(seconds: float) -> str:
    """``0.8 s``, ``4.2 s``, ``30 s``: a delay as a person reads it."""
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def events_text(events: int) -> str:
    return "1 event" if events == 1 else f"{events} events"


def audio_format(sample_rate: int, channels: int) -> str:
    """``44.1 kHz mono``, ``48 kHz stereo``, ``16 kHz 6 channels``."""
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    return f"{sample_rate / 1000:g} kHz {layout}"
