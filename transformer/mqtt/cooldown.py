"""Notification hygiene: after an event of a source and group ends, its next start waits.

An event ends ``event_max_not_heard_seconds`` (5 s) after its group was last heard, so a dog
barking in bursts, a car alarm's cycles or a child crying on and off would each raise an
alert per burst. With a cooldown of N seconds, an event of the same source and group that
starts less than N seconds after the previous one ended is kept off the bus: neither its ON and
OFF nor its event records are published, and its end restarts the cooldown (one bout, one
alert). Each source and group has its own: a glass break during a barking bout still alerts.

Only the MQTT sink is quieted: the DHT and the outbox keep every record. The times are the
records' wall clock (a live event's ``started_at``/``ended_at``; a recording's ``detected_at``).
The default (``mqtt_cooldown_seconds``), 30 s, spans the pauses inside one bout of the sounds
above; a sound heard again half a minute after the last one ended is news. 0 turns it off.
Kept in memory: after a restart the first event alerts again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from transformer.metrics import SINK_SUPPRESSED

logger = logging.getLogger(__name__)


def _when(record: Mapping[str, Any], field: str) -> float:
    text = record.get(field) or record["detected_at"]
    return datetime.fromisoformat(str(text)).timestamp()


class Cooldown:
    """Which event records the sink publishes (thread-safe: records are staged from any thread)."""

    def __init__(self, seconds: float, *, counted: bool = True) -> None:
        """``counted``: what it keeps off the bus counts in the sink's metric (False: a what-if
        replay, the page's threshold control)."""
        if seconds < 0:
            raise ValueError(f"the cooldown must be >= 0 seconds, got {seconds}")
        self.seconds = seconds
        self.counted = counted
        self._lock = threading.Lock()
        self._last_end: dict[tuple[str, str], float] = {}
        self._quiet: set[str] = set()  # events started within a cooldown: their end is quiet too

    def admit(self, record: Mapping[str, Any]) -> bool:
        """Publish this start or end record (False: it falls in its source and group's cooldown)."""
        if not self.seconds:
            return True
        key = (str(record["source"]), str(record["group"]))
        event = str(record["event_id"])
        with self._lock:
            if record["change"] == "start":
                last = self._last_end.get(key)
                if last is not None and _when(record, "started_at") - last < self.seconds:
                    self._quiet.add(event)
                    if self.counted:
                        SINK_SUPPRESSED.labels(sink="mqtt", reason="cooldown").inc()
                    logger.debug("MQTT: %s on %s within the cooldown: not published", key[1], key[0])
                    return False
                return True
            self._last_end[key] = max(self._last_end.get(key, 0.0), _when(record, "ended_at"))
            if event in self._quiet:
                self._quiet.discard(event)
                return False
            return True
