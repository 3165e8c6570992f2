"""The detection step and the event lifecycle replayed over the window scores a live run kept.

For each hop the live lifecycle took, in order: the window's scores (when the loudness gate let
it be scored) through ``Detector.window`` with other thresholds, then ``EventTracker.update``;
at the end ``close`` as a finished source. Same code, same order as ``transformer.monitor.loop``:
at the live run's own thresholds it gives the live run's events (a test holds it to that), at
others the events the service would have raised. The class-agnostic detectors (sudden loud,
novelty, voices) are not replayed: they have no threshold here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from audioguard.evaluation.annotations import Event
from audioguard.evaluation.drive import Heard, with_thresholds
from transformer.analysis.events import EventChange, EventTracker


def replay(heard: Heard, thresholds: Mapping[str, float]) -> list[EventChange]:
    """The complete events (their ``end`` changes) of ``heard`` at ``thresholds`` (by group; the
    groups not named keep the live run's)."""
    assert heard.detector is not None, "the run kept no detector"
    detector = with_thresholds(heard.detector, dict(thresholds))
    tracker = EventTracker("replay", heard.lifecycle)
    changes: list[EventChange] = []
    for hop in heard.hops:
        kept = heard.windows.get(hop)
        fired = [] if kept is None else detector.window(kept[1], kept[0])
        changes += tracker.update(hop, fired)
    changes += tracker.close("source finished", source_ended=True)
    return [change for change in changes if change.change == "end"]


def as_events(filename: str, changes: Sequence[EventChange]) -> list[Event]:
    """Event records as annotation-style events (label = the anomaly group)."""
    return [
        Event(filename, change.start_seconds, float(change.end_seconds or change.start_seconds), change.group)
        for change in changes
    ]
