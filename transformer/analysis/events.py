"""The anomaly event lifecycle of a continuous source: when a sound starts, lasts and ends.

Detection (``transformer.analysis.anomalies``) says which groups fire in one
classifier window. A listening source is scored every hop, so one glass break
fires in several overlapping windows; this module turns that stream of
per-hop verdicts into events, per source and anomaly group:

- an event **starts** once a group has fired in ``min_hits`` of the last
  ``within_hops`` hops (``min_hits=1`` starts on the first hit);
- while it lasts, it keeps its **peak** score and the classes that triggered
  the peak; further hits extend it and never start a second event;
- it **ends** once the group has not fired for ``max_not_heard_seconds``
  (measured from the end of the last window that fired), or when the source
  stops (``close``);
- a source that ends for good before it could give ``min_hits`` windows (a
  recording of 10-12 s gives 1-3) needs a hit in as many windows as it gave: at
  ``close(source_ended=True)`` such a run of hits is an event that starts and ends at once.

Each event has two spans: where the sound was heard (``start_seconds`` to
``end_seconds``: from the earliest to the latest loud part of the windows that fired,
``transformer.analysis.locate``; a window in which nothing stands out, as one inside a long
alarm, counts whole) and the windows that fired (``window_start_seconds`` to
``window_end_seconds``).

An uploaded recording is a finite source: ``transformer.analysis.analyzer`` runs
its windows through a tracker exactly as the monitor runs a stream's. Pure and
deterministic: the times are the stream's own (seconds of audio since the source
started), so a replay gives the same events. Frigate keeps detection and event
lifecycle apart the same way.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from contract.rounding import score_value, seconds_value
from transformer.analysis.anomalies import Anomaly, TriggeringClass, triggering_classes

#: Fixed namespace: the same session, source, group and first window give the same event id.
EVENT_ID_NAMESPACE: Final = uuid.UUID("2b0f4c8e-1d7a-5e3b-9c6f-0a4d8e2b7c15")

Change = Literal["start", "end"]


@dataclass(frozen=True)
class LifecycleSettings:
    """When a run of hits becomes an event and when the event is over.

    Attributes:
        min_hits: hits needed to start an event (1 = the first hit starts it).
        within_hops: the last this many hops are counted for ``min_hits``.
        max_not_heard_seconds: an event ends after this long without a hit.
    """

    min_hits: int = 2
    within_hops: int = 3
    max_not_heard_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.within_hops < self.min_hits:
            raise ValueError(f"within_hops ({self.within_hops}) must be >= min_hits ({self.min_hits})")
        if not self.max_not_heard_seconds > 0:
            raise ValueError(f"max_not_heard_seconds must be > 0, got {self.max_not_heard_seconds}")


@dataclass(frozen=True)
class EventChange:
    """An event starting or ending: what goes to the outbox and the DHT.

    ``start_seconds``/``end_seconds`` place the sound, ``window_start_seconds``/
    ``window_end_seconds`` the windows that fired (both ends None for a start);
    ``peak_score``, ``triggered_by`` and ``measures`` are those of the strongest window so far.
    ``started_at``/``ended_at``: wall-clock times (UTC, ISO 8601) where a live
    source knows them; None for a recording.
    """

    change: Change
    event_id: str
    source: str
    group: str
    label: str
    threshold: float
    start_seconds: float
    end_seconds: float | None
    peak_score: float
    triggered_by: tuple[TriggeringClass, ...]
    reason: str = ""
    window_start_seconds: float = 0.0
    window_end_seconds: float | None = None
    started_at: str | None = None
    ended_at: str | None = None
    measures: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event's fields of a record (``transformer.analysis.records``), JSON-ready, numbers
        written as ``contract.rounding`` says."""

        def seconds(value: float | None) -> float | None:
            return None if value is None else seconds_value(value)

        return {
            "change": self.change,
            "event_id": self.event_id,
            "source": self.source,
            "group": self.group,
            "label": self.label,
            "threshold": self.threshold,
            "start_seconds": seconds_value(self.start_seconds),
            "end_seconds": seconds(self.end_seconds),
            "window_start_seconds": seconds_value(self.window_start_seconds),
            "window_end_seconds": seconds(self.window_end_seconds),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "peak_score": score_value(self.peak_score),
            "triggered_by": triggering_classes(self.triggered_by),
            "measures": dict(self.measures),
            "reason": self.reason,
        }


@dataclass
class _Open:
    """A group's event in progress."""

    event_id: str
    window_start: float  # the first window that fired
    last_heard: float  # the end of the last window that fired
    peak: Anomaly
    onset: float | None = None  # the sound's start and end, from the windows that fired
    offset: float | None = None

    def add(self, hit: Anomaly) -> None:
        """A window that fired: where it placed the sound, or (nothing stood out in it: a sound
        that lasts the whole window, or none) the window itself."""
        self.onset = hit.onset_seconds if self.onset is None else min(self.onset, hit.onset_seconds)
        self.offset = hit.offset_seconds if self.offset is None else max(self.offset, hit.offset_seconds)

    @property
    def start_seconds(self) -> float:
        """Where the sound starts: its placed onset, else the first window's start."""
        return self.window_start if self.onset is None else self.onset

    @property
    def end_seconds(self) -> float:
        """Where the sound ends: its placed end, else the last window's end."""
        return self.last_heard if self.offset is None else self.offset


@dataclass
class _GroupState:
    recent: deque[Anomaly | None] = field(default_factory=deque)
    open: _Open | None = None


class EventTracker:
    """The lifecycle of every anomaly group of one source."""

    def __init__(self, source: str, settings: LifecycleSettings | None = None, session: str = "") -> None:
        """``session`` tells runs apart in the event ids (stream times start at 0 in every run)."""
        self.source = source
        self.settings = settings or LifecycleSettings()
        self.session = session
        self._groups: dict[str, _GroupState] = {}
        self.hops = 0  # hops since the start or the last ``close``

    @property
    def open_groups(self) -> list[str]:
        return [name for name, state in self._groups.items() if state.open is not None]

    def update(self, hop_end_seconds: float, fired: Iterable[Anomaly]) -> list[EventChange]:
        """One hop: the anomalies of the newest window (``detect_anomalies`` of its scores).

        ``hop_end_seconds`` is the end of that window in the stream; hops must come in order.
        Returns the starts and ends this hop causes, ends first.
        """
        by_group: Mapping[str, Anomaly] = {anomaly.group: anomaly for anomaly in fired}
        self.hops += 1
        for group in by_group:
            self._groups.setdefault(group, _GroupState())
        changes: list[EventChange] = []
        starts: list[EventChange] = []
        for group, state in self._groups.items():
            hit = by_group.get(group)
            state.recent.append(hit)
            while len(state.recent) > self.settings.within_hops:
                state.recent.popleft()
            if state.open is not None:
                if hit is not None:
                    state.open.last_heard = hit.end_seconds
                    state.open.add(hit)
                    if hit.score > state.open.peak.score:
                        state.open.peak = hit
                elif hop_end_seconds - state.open.last_heard >= self.settings.max_not_heard_seconds:
                    changes.append(self._end(state, "not heard"))
                continue
            hits = [anomaly for anomaly in state.recent if anomaly is not None]
            if hit is not None and len(hits) >= self.settings.min_hits:
                starts.append(self._start(state, hits))
        return changes + starts

    def close(self, reason: str = "source stopped", *, source_ended: bool = False) -> list[EventChange]:
        """End every open event (the source stopped or is being replaced). A source that has
        ended (``source_ended``: a recording, a file played out) after fewer hops than
        ``min_hits`` starts and ends an event for a group that fired in every one of them; a
        reconnecting stream does not (its short segments would defeat the lifecycle's filter)."""
        changes = []
        for state in self._groups.values():
            hits = [anomaly for anomaly in state.recent if anomaly is not None]
            short = source_ended and hits and len(hits) >= min(self.settings.min_hits, self.hops)
            if state.open is None and short:
                changes.append(self._start(state, hits))
            if state.open is not None:
                changes.append(self._end(state, reason))
            state.recent.clear()
        self.hops = 0
        return changes

    def _start(self, state: _GroupState, hits: Sequence[Anomaly]) -> EventChange:
        first = min(hits, key=lambda anomaly: anomaly.start_seconds)
        peak = max(hits, key=lambda anomaly: anomaly.score)
        event_id = str(
            uuid.uuid5(
                EVENT_ID_NAMESPACE, f"{self.session}{self.source}\n{first.group}\n{first.start_seconds:.3f}"
            )
        )
        state.open = _Open(event_id, first.start_seconds, max(hit.end_seconds for hit in hits), peak)
        for hit in hits:
            state.open.add(hit)
        return self._change("start", state.open, ended=False, reason="")

    def _end(self, state: _GroupState, reason: str) -> EventChange:
        assert state.open is not None
        ended, state.open = state.open, None
        state.recent.clear()  # the next event needs its own run of hits
        return self._change("end", ended, ended=True, reason=reason)

    def _change(self, change: Change, event: _Open, *, ended: bool, reason: str) -> EventChange:
        peak = event.peak
        return EventChange(
            change=change,
            event_id=event.event_id,
            source=self.source,
            group=peak.group,
            label=peak.label,
            threshold=peak.threshold,
            start_seconds=event.start_seconds,
            end_seconds=event.end_seconds if ended else None,
            peak_score=peak.score,
            triggered_by=peak.triggered_by,
            reason=reason,
            measures=peak.measures,
            window_start_seconds=event.window_start,
            window_end_seconds=event.last_heard if ended else None,
        )
