"""Repeated failures logged at most once per interval per cause, with a count of the repeats.

A failure that repeats with every hop of a live source, every readiness probe or every
request of a misconfigured client would otherwise write the same line (or traceback)
several times a second. ``RateLimitedLog`` writes the first line of a cause at once, the
repeats within ``interval_seconds`` at DEBUG only, and the next line after the interval
says how many were left out. Tracebacks go to DEBUG only: the line names the failure.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final

from contract.errors import AudioGuardError

#: The services' documented rate: at most one line a minute per cause.
DEFAULT_INTERVAL_SECONDS: Final = 60.0
#: Causes remembered at once (the oldest is forgotten first): a bound, not a limit in practice.
MAX_CAUSES: Final = 256
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class _Seen:
    logged_at: float
    suppressed: int = 0


class RateLimitedLog:
    """At most one line per ``interval_seconds`` per cause on ``logger``; the rest at DEBUG."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._causes: OrderedDict[Hashable, _Seen] = OrderedDict()

    def log(
        self,
        level: int,
        cause: Hashable,
        message: str,
        *args: object,
        error: BaseException | None = None,
    ) -> bool:
        """Log ``message % args`` at ``level`` unless ``cause`` was logged less than an interval
        ago (then at DEBUG, counted). ``error``'s traceback is written at DEBUG only.
        Returns whether the line was written at ``level``."""
        now = self._clock()
        seen = self._causes.get(cause)
        if seen is not None and now - seen.logged_at < self.interval_seconds:
            seen.suppressed += 1
            self.logger.debug(
                message + " (repeat, not logged at %s)", *args, logging.getLevelName(level), stacklevel=2
            )
            return False
        if seen is not None and seen.suppressed:
            since = now - seen.logged_at
            self.logger.log(
                level,
                message + " (%d more like this in the last %.0f s)",
                *args,
                seen.suppressed,
                since,
                stacklevel=2,
            )
        else:
            self.logger.log(level, message, *args, stacklevel=2)
        if error is not None and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("traceback of the failure above", exc_info=error, stacklevel=2)
        self._causes[cause] = _Seen(now)
        self._causes.move_to_end(cause)
        while len(self._causes) > MAX_CAUSES:
            self._causes.popitem(last=False)
        return True

    def forget(self, cause: Hashable) -> None:
        """Let the next line of ``cause`` through at once (the failure ended)."""
        self._causes.pop(cause, None)


def failure_cause(error: BaseException) -> str:
    """A key that groups repeats of one failure: its type and its message with numbers blanked
    (a count or a latency in the message does not make it another cause)."""
    message = error.message if isinstance(error, AudioGuardError) else str(error)
    return f"{type(error).__name__}: {_NUMBER.sub('#', message)}"


def describe_failure(error: BaseException) -> str:
    """One line naming a failure: our errors' message; the type and message of anything else."""
    return error.message if isinstance(error, AudioGuardError) else f"{type(error).__name__}: {error}"
