"""The anomaly event lifecycle of a continuous source: when a sound starts, lasts and ends.

Detection (``transformer.analysis.anomalies``) says which groups fire in one
classifier window. A listening source is scored every hop, so one glass break
fires in several overlapping windows; this module turns that stream of
per-hop verdicts into events, per source and anomaly group:

- an event **starts** once a group has fired in ``min_hits`` of the last
  ``within_hops`` hops (``min_hits=1`` starts on the first hit); its start is
  the start of the earliest of those windows;
- while it lasts, it keeps its **peak** score and the classes that triggered
  the peak; further hits extend it and never start a second event;
- it **ends** once the group has not fired for ``max_not_heard_seconds``
  (measured from the end of the last window that fired), or when the source
  stops (``close``); its end is the end of the last window that fired.

Pure and deterministic: the times are the stream's own (seconds of audio since
the source started), so a replay gives the same events. Frigate keeps detection
and event lifecycle apart the same way.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from contract.rounding import score_value, seconds_value
from transformer.analysis.anomalies import Anomaly, TriggeringClass

#: Fixed namespace: the same source, group and start always give the same event id.
EVENT_NAMESPACE: Final = uuid.UUID("2b0f4c8e-1d7a-5e3b-9c6f-0a4d8e2b7c15")

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

    ``end_seconds`` is None for a start; ``peak_score`` and ``triggered_by`` are
    those of the strongest window so far.
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record, numbers written as ``contract.rounding`` says."""
        return {
            "change": self.change,
            "event_id": self.event_id,
            "source": self.source,
            "group": self.group,
            "label": self.label,
            "threshold": self.threshold,
            "start_seconds": seconds_value(self.start_seconds),
            "end_seconds": None if self.end_seconds is None else seconds_value(self.end_seconds),
            "peak_score": score_value(self.peak_score),
            "triggered_by": [
                {"index": cls.index, "label": cls.label, "score": score_value(cls.score)}
                for cls in self.triggered_by
            ],
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass
class _Open:
    """A group's event in progress."""

    event_id: str
    start_seconds: float
    last_heard: float
    peak: Anomaly


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

    @property
    def open_groups(self) -> list[str]:
        return [name for name, state in self._groups.items() if state.open is not None]

    def update(self, hop_end_seconds: float, fired: Iterable[Anomaly]) -> list[EventChange]:
        """One hop: the anomalies of the newest window (``detect_anomalies`` of its scores).

        ``hop_end_seconds`` is the end of that window in the stream; hops must come in order.
        Returns the starts and ends this hop causes, ends first.
        """
        by_group: Mapping[str, Anomaly] = {anomaly.group: anomaly for anomaly in fired}
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
                    if hit.score > state.open.peak.score:
                        state.open.peak = hit
                elif hop_end_seconds - state.open.last_heard >= self.settings.max_not_heard_seconds:
                    changes.append(self._end(state, "not heard"))
                continue
            hits = [anomaly for anomaly in state.recent if anomaly is not None]
            if hit is not None and len(hits) >= self.settings.min_hits:
                starts.append(self._start(state, hits))
        return changes + starts

    def close(self, reason: str = "source stopped") -> list[EventChange]:
        """End every open event (the source stopped or is being replaced)."""
        ended = [self._end(state, reason) for state in self._groups.values() if state.open is not None]
        for state in self._groups.values():
            state.recent.clear()
        return ended

    def _start(self, state: _GroupState, hits: Sequence[Anomaly]) -> EventChange:
        first = min(hits, key=lambda anomaly: anomaly.start_seconds)
        peak = max(hits, key=lambda anomaly: anomaly.score)
        event_id = str(
            uuid.uuid5(
                EVENT_NAMESPACE, f"{self.session}{self.source}\n{first.group}\n{first.start_seconds:.3f}"
            )
        )
        state.open = _Open(event_id, first.start_seconds, max(h.end_seconds for h in hits), peak)
        return self._change("start", state.open, None, "")

    def _end(self, state: _GroupState, reason: str) -> EventChange:
        assert state.open is not None
        ended, state.open = state.open, None
        state.recent.clear()  # the next event needs its own run of hits
        return self._change("end", ended, ended.last_heard, reason)

    def _change(self, change: Change, event: _Open, end: float | None, reason: str) -> EventChange:
        peak = event.peak
        return EventChange(
            change=change,
            event_id=event.event_id,
            source=self.source,
            group=peak.group,
            label=peak.label,
            threshold=peak.threshold,
            start_seconds=event.start_seconds,
            end_seconds=end,
            peak_score=peak.score,
            triggered_by=peak.triggered_by,
            reason=reason,
        )
