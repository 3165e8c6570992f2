"""What goes where on the MQTT bus: topic names and the messages of one event record.

Under the prefix (``mqtt_topic_prefix``, default ``audioguard``):

| topic | payload | retained |
|---|---|---|
| ``<prefix>/<source>/<group>/state`` | ``ON`` at an event's start, ``OFF`` at its end | yes |
| ``<prefix>/<source>/<group>/event`` | the event record (JSON, ``transformer.analysis.records``) | no |
| ``<prefix>/incident/<group>`` | one per incident, the sources that heard it (``incidents``) | no |
| ``<prefix>/<source>/level`` | the source's level in dBFS, a number | no |
| ``<prefix>/status`` | ``online``, or ``offline`` (last will, and at a clean stop) | yes |

A live source's and a group's names are topic-safe already (``[A-Za-z0-9_-]``); an upload's
source is the caller's file name or ``upload``, made safe by ``slug``. The rows the outbox
keeps name their topic without the prefix, so a pending row follows a changed prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

STATUS_TOPIC: Final = "status"
ONLINE: Final = "online"
OFFLINE: Final = "offline"
ON: Final = "ON"
OFF: Final = "OFF"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MqttMessage:
    """One publish: ``topic`` below the prefix, its payload, whether the broker keeps it."""

    topic: str
    payload: str
    retain: bool


def slug(name: str) -> str:
    """``name`` as one topic level: runs of anything but letters, digits, ``_`` and ``-`` become
    ``_`` (so ``/``, ``+``, ``#`` and spaces never split or widen a topic)."""
    return _UNSAFE.sub("_", name).strip("_") or "_"


def state_topic(source: str, group: str) -> str:
    return f"{slug(source)}/{slug(group)}/state"


def event_topic(source: str, group: str) -> str:
    return f"{slug(source)}/{slug(group)}/event"


def level_topic(source: str) -> str:
    return f"{slug(source)}/level"


def full_topic(prefix: str, topic: str) -> str:
    """``topic`` under ``prefix`` (an empty prefix: the topic itself)."""
    return f"{prefix}/{topic}" if prefix else topic


def record_messages(record: Mapping[str, Any]) -> list[MqttMessage]:
    """The publishes of one start or end record: its JSON on the event topic, then the state."""
    source, group = str(record["source"]), str(record["group"])
    event = json.dumps(dict(record), allow_nan=False, separators=(",", ":"))
    state = ON if record["change"] == "start" else OFF
    return [
        MqttMessage(event_topic(source, group), event, retain=False),
        MqttMessage(state_topic(source, group), state, retain=True),
    ]


def is_event_record(value: Any) -> bool:
    """An outbox value that is an event record (not a recording's analysis value)."""
    return isinstance(value, Mapping) and value.get("change") in ("start", "end") and "event_id" in value
