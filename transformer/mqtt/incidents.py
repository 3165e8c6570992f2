"""Incidents: one sound heard by several live sources is one incident, and one MQTT message.

A live event's start opens an incident of its group, or joins the one open for that group when
it is heard on another source within ``seconds`` (default ``mqtt_incident_seconds``, 5 s) of the
incident's first start, both by the sound's wall clock (``started_at``) and by when the record
came in (the same sound reaches each source's detection at about the same time; one glass break
heard by three microphones starts three events within about two hops, 2 s). Every MQTT event
record of a live event carries its ``incident_id`` (an added field; its start's and its end's the
same), and once the window has passed, one message on ``<prefix>/incident/<group>`` lists the
sources that heard it: the one alert to automate on. The incident id is a UUIDv5 of its first event's id, so a
record published again carries the same one. Recordings (no ``started_at``) are no incident.
Kept in memory; only the MQTT sink sees incidents (the DHT records are unchanged).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from transformer.mqtt.topics import MqttMessage, slug

#: fixed: the same first event gives the same incident id
INCIDENT_NAMESPACE: Final = uuid.UUID("6f1c2a9e-27a1-5b7d-8c3e-4d9a0b1e2f37")
#: events whose incident is remembered for the web page's timeline (the newest; ~100 B each)
REMEMBERED_EVENTS: Final = 10_000


def incident_topic(group: str) -> str:
    return f"incident/{slug(group)}"


@dataclass
class _Incident:
    id: str
    group: str
    label: str
    started_at: str
    sound_time: float  # started_at, as a UNIX time
    opened: float  # time.monotonic() when its first start came in
    sources: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)

    def message(self) -> MqttMessage:
        payload = {
            "incident_id": self.id,
            "group": self.group,
            "label": self.label,
            "description": f"{self.label} heard by {', '.join(self.sources)}",
            "sources": self.sources,
            "event_ids": self.event_ids,
            "started_at": self.started_at,
        }
        return MqttMessage(
            incident_topic(self.group), json.dumps(payload, separators=(",", ":")), retain=False
        )


class Incidents:
    """The open incidents of each group (thread-safe: records are staged from any thread)."""

    def __init__(self, seconds: float, clock: Any = time.monotonic) -> None:
        if seconds < 0:
            raise ValueError(f"the incident window must be >= 0 seconds, got {seconds}")
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Incident] = {}  # group -> its incident still gathering sources
        self._of_event: dict[str, str] = {}  # event id -> incident id, until its end
        self._closed: list[_Incident] = []  # replaced by a new one before ``due`` saw them pass
        self._history: OrderedDict[str, str] = OrderedDict()  # event id -> incident id (bounded)

    def tag(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` with its ``incident_id`` added when it belongs to one (not a recording's, not
        with incidents off: those are the record as it is)."""
        tagged = dict(record)
        if not self.seconds or not record.get("started_at"):
            return tagged
        event = str(record["event_id"])
        with self._lock:
            if record["change"] == "end":
                incident_id = self._of_event.pop(event, None)
                if incident_id is not None:
                    tagged["incident_id"] = incident_id
                return tagged
            incident = self._joined(record)
            incident.event_ids.append(event)
            if record["source"] not in incident.sources:
                incident.sources.append(str(record["source"]))
            self._of_event[event] = tagged["incident_id"] = incident.id
            self._history[event] = incident.id
            if len(self._history) > REMEMBERED_EVENTS:
                self._history.popitem(last=False)
        return tagged

    def incident_of(self, event_id: str) -> str | None:
        """The incident a live event of this run belongs to (None: none, or forgotten)."""
        with self._lock:
            return self._history.get(event_id)

    def _joined(self, record: Mapping[str, Any]) -> _Incident:
        group = str(record["group"])
        sound_time = datetime.fromisoformat(str(record["started_at"])).timestamp()
        now = self._clock()
        current = self._open.get(group)
        if (
            current is not None
            and now - current.opened <= self.seconds
            and abs(sound_time - current.sound_time) <= self.seconds
        ):
            return current
        incident = _Incident(
            id=str(uuid.uuid5(INCIDENT_NAMESPACE, str(record["event_id"]))),
            group=group,
            label=str(record.get("label", group)),
            started_at=str(record["started_at"]),
            sound_time=sound_time,
            opened=now,
        )
        if current is not None:  # its window closed unnoticed: it is due now, before the new one
            self._closed.append(current)
        self._open[group] = incident
        return incident

    def due(self) -> list[MqttMessage]:
        """The messages of the incidents whose window has passed (each once)."""
        now = self._clock()
        with self._lock:
            done = [group for group, incident in self._open.items() if now - incident.opened > self.seconds]
            closed = [*self._closed, *(self._open.pop(group) for group in done)]
            self._closed = []
        return [incident.message() for incident in closed]

    def next_due(self) -> float | None:
        """Seconds until the next incident's window passes (None: none open)."""
        with self._lock:
            if not self._open:
                return None
            return max(0.0, min(i.opened for i in self._open.values()) + self.seconds - self._clock())
