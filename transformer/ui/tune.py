"""What a candidate threshold would have raised: stored window scores through the real lifecycle.

Each stored window of a source goes through a fresh ``EventTracker`` with the service's
lifecycle settings (N-of-M, max-not-heard), as the monitor ran it: a window whose group score
reaches the candidate threshold is a hit, a gated window none (its time passes), a new segment
or session (the source reconnected, the service restarted) ends the open events as the monitor
does. The starts it gives are the events the candidate would have raised; the MQTT sink's
cooldown (``transformer.mqtt.cooldown.Cooldown``, the sink's own code) then says how many of
them would have been published there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from transformer.analysis.anomalies import Anomaly
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings
from transformer.monitor.window_scores import WindowScores
from transformer.mqtt.cooldown import Cooldown


@dataclass(frozen=True)
class Replay:
    """The events a threshold raises over stored windows."""

    threshold: float
    starts: list[EventChange]
    published: int  # of them, those the MQTT cooldown lets through

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "events": len(self.starts),
            "published_after_cooldown": self.published,
            "starts": [
                {"start_seconds": round(c.start_seconds, 3), "peak": round(c.peak_score, 4)}
                for c in self.starts
            ],
        }


def replay(
    windows: Sequence[WindowScores],
    group: str,
    threshold: float,
    lifecycle: LifecycleSettings,
    cooldown_seconds: float = 0.0,
) -> Replay:
    """The events ``group`` would have raised at ``threshold`` on ``windows`` (one source, in order)."""
    source = windows[0].source if windows else ""
    tracker = EventTracker(source, lifecycle)
    changes: list[tuple[EventChange, WindowScores]] = []  # each with the window that dates it
    last: WindowScores | None = None
    for index, window in enumerate(windows):
        if last is not None and (last.session, last.segment) != (window.session, window.segment):
            changes += [(change, last) for change in tracker.close("stream interrupted")]
        last = window
        score = None if window.scores is None else window.scores.get(group)
        fired = []
        if score is not None and score >= threshold:
            fired.append(
                Anomaly(group, group, score, threshold, window.start_seconds, window.end_seconds, index, ())
            )
        changes += [(change, window) for change in tracker.update(window.end_seconds, fired)]
    if last is not None:
        changes += [(change, last) for change in tracker.close()]
    starts = [change for change, _ in changes if change.change == "start"]
    return Replay(threshold, starts, _published(changes, cooldown_seconds))


def _published(changes: Sequence[tuple[EventChange, WindowScores]], cooldown_seconds: float) -> int:
    """Starts the MQTT sink's cooldown would publish (its own code, dated by the windows' clock)."""
    cooldown = Cooldown(cooldown_seconds, counted=False)
    published = 0
    for change, window in changes:
        record = {
            "source": change.source,
            "group": change.group,
            "event_id": change.event_id,
            "change": change.change,
            "started_at": _iso(window, change.start_seconds),
            "ended_at": None if change.end_seconds is None else _iso(window, change.end_seconds),
        }
        if cooldown.admit(record) and change.change == "start":
            published += 1
    return published


def _iso(window: WindowScores, stream_seconds: float) -> str:
    epoch = (window.at or 0.0) - (window.end_seconds - stream_seconds)
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def groups_snippet(group: str, threshold: float, source: str) -> str:
    """The sources-file lines giving ``source`` this threshold for ``group``."""
    return f"sources:\n  - name: {source}\n    thresholds:\n      {group}: {threshold:g}\n"
