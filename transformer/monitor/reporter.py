"""What the running monitor tells of its sources beyond their captures (``notices``).

- ``listening to 2 sources: shots (file), kitchen (rtsp)`` when it starts;
- a source that ended (a file played out) once its audio is analysed and its events ended:
  ``finished after 10.50 s of audio: 6 events``, or ``no anomaly heard`` (saying so when every
  window was under the loudness gate, or when the source was too short for one example);
- audio dropped because the analysis is behind a live source: one line per burst, summed over
  ``DROP_SUM_SECONDS`` and at most one per ``DROP_EVERY_SECONDS`` for a source;
- at the stop, each source still listened to (``stopped after ...``) and, for more than one
  source, the summary.

The supervisors say what they see of their own capture (connected, lost, failed).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Sequence
from typing import Final

from transformer.audio.constants import MIN_SECONDS_FOR_ONE_EXAMPLE
from transformer.monitor.loop import Monitor
from transformer.monitor.notices import Notice, Notify, events_text
from transformer.monitor.sources import SourceSpec
from transformer.monitor.supervisor import SourceSupervisor

#: Drops of one burst are summed this long before they are said.
DROP_SUM_SECONDS: Final = 1.0
#: At most one line about a source's drops this often.
DROP_EVERY_SECONDS: Final = 10.0


class Reporter:
    """The monitor's notices about its sources as a whole (``MonitorService`` calls it)."""

    def __init__(self, notify: Notify, monitor: Monitor) -> None:
        self.notify = notify
        self.monitor = monitor
        self.dropped_seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self._burst: dict[str, float] = {}  # a burst's seconds not said yet
        self._said_drops: dict[str, float] = {}  # time.monotonic() of a source's last drop line
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def listening(self, sources: Sequence[SourceSpec]) -> None:
        names = ", ".join(f"{source.name} ({source.kind})" for source in sources)
        count = "1 source" if len(sources) == 1 else f"{len(sources)} sources"
        self.notify(Notice("listening", None, f"listening to {count}", f": {names}"))

    def dropped(self, source: str, seconds: float) -> None:
        """The queue dropped ``seconds`` of ``source``'s audio (its ``on_drop``)."""
        self.dropped_seconds[source] += seconds
        if source in self._burst:
            self._burst[source] += seconds
            return
        self._burst[source] = seconds
        last = self._said_drops.get(source, -math.inf)
        delay = max(DROP_SUM_SECONDS, last + DROP_EVERY_SECONDS - time.monotonic())
        self._timers[source] = asyncio.get_running_loop().call_later(delay, self._say_drops, source)

    def _say_drops(self, source: str) -> None:
        self._timers.pop(source, None)
        seconds = self._burst.pop(source, 0.0)
        self._said_drops[source] = time.monotonic()
        what = f"dropped {seconds:.1f} s of audio"
        self.notify(Notice("dropped", source, what, " (the analysis is behind)", warning=True))

    def ended(self, supervisor: SourceSupervisor) -> None:
        """A source's end is processed: said when it played out (a failure was said already)."""
        if supervisor.status.state == "finished":
            self.notify(Notice("finished", supervisor.source.name, "finished", self._outcome(supervisor)))

    def stopped(self, supervisors: Sequence[SourceSupervisor]) -> None:
        """The monitor stopped: drops not said yet, each source still listened to, the summary."""
        for source, timer in list(self._timers.items()):
            timer.cancel()
            self._say_drops(source)
        for supervisor in supervisors:
            if supervisor.status.state not in ("finished", "failed"):
                self.notify(Notice("stopped", supervisor.source.name, "stopped", self._outcome(supervisor)))
        if len(supervisors) < 2:  # one source: its own last line says it all
            return
        seconds = sum(supervisor.status.seconds_captured for supervisor in supervisors)
        events = sum(self.monitor.heard(supervisor.source.name).events for supervisor in supervisors)
        failed = sum(supervisor.status.state == "failed" for supervisor in supervisors)
        count = "1 source" if len(supervisors) == 1 else f"{len(supervisors)} sources"
        detail = f": {seconds:.2f} s of audio from {count}, {events_text(events)}"
        self.notify(Notice("summary", None, "done", detail + (f", {failed} failed" if failed else "")))

    def _outcome(self, supervisor: SourceSupervisor) -> str:
        """`` after 10.50 s of audio: 6 events, 2 reconnects, 1.2 s dropped``."""
        status, heard = supervisor.status, self.monitor.heard(supervisor.source.name)
        if status.sample_rate is None:  # no capture ever began
            tries = "1 try" if status.restarts == 1 else f"{status.restarts} tries"
            return f": never connected: {status.last_error or 'not tried'} ({tries})"
        if heard.events:
            found = events_text(heard.events)
        elif heard.lost_windows and heard.windows == 0:
            found = "nothing analysed (every detection step failed)"
        elif heard.windows == 0 and status.seconds_captured:
            # as an upload is refused: one example needs this much audio
            found = f"nothing analysed (too short: one example needs {MIN_SECONDS_FOR_ONE_EXAMPLE:g} s)"
        elif heard.windows and heard.heard_windows == 0 and (gate := heard.detector.gate_dbfs) is not None:
            found = f"no anomaly heard (too quiet: every window under the {gate:g} dBFS loudness gate)"
        else:
            found = "no anomaly heard"
        extras = []
        if heard.lost_windows and heard.windows:
            lost = heard.lost_windows
            extras.append(f"{lost} window{'s' if lost > 1 else ''} not analysed (detection failed)")
        if status.restarts:
            extras.append("1 reconnect" if status.restarts == 1 else f"{status.restarts} reconnects")
        dropped = self.dropped_seconds[supervisor.source.name]
        if dropped:
            extras.append(f"{dropped:.1f} s dropped (the analysis was behind)")
        return f" after {status.seconds_captured:.2f} s of audio: {', '.join([found, *extras])}"
