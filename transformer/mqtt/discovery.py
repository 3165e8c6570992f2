"""Home Assistant's MQTT discovery: a device per live source, its entities, kept in step.

Per source (``<node>`` is the topic prefix made one topic level: stable across restarts and
hosts, unlike the client id; two installations on one broker differ by their prefix):

- a ``binary_sensor`` per watched anomaly group, at
  ``<discovery_prefix>/binary_sensor/<node>/<source>_<group>/config``: its state topic with
  ``ON``/``OFF``, a device class fitting the group (``DEVICE_CLASSES``: ``smoke`` for the smoke
  alarm group, ``safety``, ``moisture``..., else ``sound``), the last event record as its
  attributes;
- a ``sensor`` for the level, at ``<discovery_prefix>/sensor/<node>/<source>_level/config``
  (dBFS, unavailable once ``3 x level_seconds`` pass without a value);
- every entity is available while ``<prefix>/status`` says ``online``.

The configs are retained and published at each connection. Then the retained configs under
this node are read back (a probe published after the subscription marks the end of what the
broker holds): those of a source or group no longer configured are removed (an empty retained
payload, Home Assistant's delete), and so is the retained state their config named.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from transformer.mqtt.config import MqttConfig
from transformer.mqtt.topics import (
    OFF,
    OFFLINE,
    ON,
    ONLINE,
    STATUS_TOPIC,
    full_topic,
    level_topic,
    slug,
    state_topic,
)

logger = logging.getLogger(__name__)

#: Home Assistant binary_sensor device classes of the shipped groups (others: ``sound``)
DEVICE_CLASSES: Final[Mapping[str, str]] = {
    "smoke_fire_alarm": "smoke",
    "fire": "heat",
    "glass_break": "safety",
    "scream": "safety",
    "gunshot_explosion": "safety",
    "water_leak": "moisture",
}
DEFAULT_DEVICE_CLASS: Final = "sound"


@dataclass(frozen=True)
class GroupEntity:
    """A watched anomaly group: its name and its label (the entity's name)."""

    name: str
    label: str


@dataclass(frozen=True)
class SourceEntities:
    """A live source and the groups it watches."""

    name: str
    groups: tuple[GroupEntity, ...] = field(default_factory=tuple)


Acknowledged = Callable[[Any, Sequence["asyncio.Future[None]"]], Awaitable[None]]


class Discovery:
    """The discovery configs of ``sources`` and the clean-up of stale ones (module docstring)."""

    def __init__(self, config: MqttConfig, sources: Sequence[SourceEntities]) -> None:
        self.config = config
        self.sources = tuple(sources)
        # the prefix names the installation (the client id may change with the host: a pod)
        self.node = slug(config.prefix.replace("/", "_") or "audioguard")
        self.removed: list[str] = []  # config topics removed at the last connection
        self._heard: dict[str, bytes] | None = None
        self._probe = ""
        self._probe_heard: asyncio.Event | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.config.discovery_prefix)

    def configs(self) -> dict[str, dict[str, Any]]:
        """Every config topic (full) and its payload."""
        return {
            topic: payload
            for source in self.sources
            for topic, payload in (
                *(self._binary_sensor(source, group) for group in source.groups),
                self._level_sensor(source),
            )
        }

    def _topic(self, component: str, object_id: str) -> str:
        return f"{self.config.discovery_prefix}/{component}/{self.node}/{object_id}/config"

    def _common(self, source: SourceEntities, object_id: str) -> dict[str, Any]:
        prefix = self.config.prefix
        return {
            "unique_id": f"{self.node}_{object_id}",
            "object_id": f"{self.node}_{object_id}",
            "availability_topic": full_topic(prefix, STATUS_TOPIC),
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": {
                "identifiers": [f"{self.node}_{slug(source.name)}"],
                "name": f"audioguard {source.name}",
                "manufacturer": "audioguard",
                "model": "audio anomaly detector",
            },
            "origin": {"name": "audioguard"},
        }

    def _binary_sensor(self, source: SourceEntities, group: GroupEntity) -> tuple[str, dict[str, Any]]:
        object_id = f"{slug(source.name)}_{slug(group.name)}"
        prefix = self.config.prefix
        state = full_topic(prefix, state_topic(source.name, group.name))
        return self._topic("binary_sensor", object_id), {
            "name": group.label,
            **self._common(source, object_id),
            "state_topic": state,
            "payload_on": ON,
            "payload_off": OFF,
            "device_class": DEVICE_CLASSES.get(group.name, DEFAULT_DEVICE_CLASS),
            "json_attributes_topic": state.removesuffix("/state") + "/event",
        }

    def _level_sensor(self, source: SourceEntities) -> tuple[str, dict[str, Any]]:
        object_id = f"{slug(source.name)}_level"
        payload = {
            "name": "Sound level",
            **self._common(source, object_id),
            "state_topic": full_topic(self.config.prefix, level_topic(source.name)),
            "unit_of_measurement": "dBFS",
            "state_class": "measurement",
            "icon": "mdi:volume-high",
        }
        if self.config.level_seconds:
            payload["expire_after"] = max(1, round(3 * self.config.level_seconds))
        return self._topic("sensor", object_id), payload

    # --- at each connection -------------------------------------------------------------------

    async def publish(self, connection: Any, acknowledged: Acknowledged) -> None:
        """Publish the configs (retained), then remove the stale ones under this node."""
        if not self.enabled:
            return
        configs = self.configs()
        acks = [
            connection.publish_full(topic, json.dumps(payload, separators=(",", ":")), retain=True)
            for topic, payload in configs.items()
        ]
        await acknowledged(connection, acks)
        stale = await self._retained_configs(connection)
        removals = []
        for topic, payload in stale.items():
            if topic in configs or not payload:
                continue
            removals.append(connection.publish_full(topic, "", retain=True))
            with contextlib.suppress(ValueError, AttributeError):
                state = json.loads(payload).get("state_topic")
                if isinstance(state, str) and state:
                    removals.append(connection.publish_full(state, "", retain=True))
        await acknowledged(connection, removals)
        self.removed = sorted(topic for topic in stale if topic not in configs and stale[topic])
        if self.removed:
            logger.info(
                "MQTT discovery: removed %d stale config(s): %s", len(self.removed), ", ".join(self.removed)
            )

    async def _retained_configs(self, connection: Any) -> dict[str, bytes]:
        """The retained configs under this node, as the broker holds them now."""
        self._heard = {}
        # under the discovery prefix, where Home Assistant ignores what does not end in /config,
        # and not under ours, where every subscriber of <prefix>/# would see it
        self._probe = f"{self.config.discovery_prefix}/audioguard_probe/{self.node}/{uuid.uuid4().hex}"
        self._probe_heard = asyncio.Event()
        filters = [self._topic(component, "+") for component in ("binary_sensor", "sensor")]
        try:
            for topic_filter in (*filters, self._probe):
                await connection.subscribe(topic_filter)
            await connection.publish_full(self._probe, "", retain=False)
            async with asyncio.timeout(self.config.timeout):
                await self._probe_heard.wait()
            return dict(self._heard)
        except TimeoutError:
            logger.warning("MQTT discovery: the broker did not echo the probe; stale configs kept")
            return {}
        finally:
            self._heard = None
            for topic_filter in (*filters, self._probe):
                connection.unsubscribe(topic_filter)

    def heard(self, topic: str, payload: bytes) -> None:
        """A message of the subscriptions (on the event loop)."""
        if topic == self._probe and self._probe_heard is not None:
            self._probe_heard.set()
        elif self._heard is not None:
            self._heard[topic] = payload
