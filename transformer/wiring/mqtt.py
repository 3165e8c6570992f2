"""The MQTT sink from the settings: its config, its table in the outbox file, its sender."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.monitor.service import MonitorService
from transformer.monitor.source_state import source_groups
from transformer.monitor.sources import SourceSpec
from transformer.mqtt.config import MqttConfig, broker_config
from transformer.mqtt.cooldown import Cooldown
from transformer.mqtt.discovery import GroupEntity, SourceEntities
from transformer.mqtt.incidents import Incidents
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import Levels, MqttSender
from transformer.mqtt.topics import slug
from transformer.settings import TransformerSettings


def mqtt_config(settings: TransformerSettings) -> MqttConfig:
    """The sink's config (InvalidConfiguration names a bad URL or a ``${VAR}`` not set)."""
    assert settings.mqtt_url is not None
    return broker_config(
        settings.mqtt_url,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        ca_file=settings.mqtt_ca_file,
        client_id=settings.mqtt_client_id or default_client_id(),
        prefix=settings.mqtt_topic_prefix,
        keepalive=settings.mqtt_keepalive_seconds,
        timeout=settings.mqtt_timeout_seconds,
        level_seconds=settings.mqtt_level_seconds,
        discovery_prefix=settings.mqtt_discovery_prefix,
    )


def default_client_id() -> str:
    """``audioguard-<host name>`` (a pod's name in Kubernetes): unique per replica."""
    return f"audioguard-{slug(socket.gethostname())}"[:64]


def mqtt_sources(sources: Sequence[SourceSpec], groups: Sequence[AnomalyGroup]) -> list[SourceEntities]:
    """Each live source with the groups it watches (Home Assistant's devices and entities)."""
    return [
        SourceEntities(
            spec.name, tuple(GroupEntity(group.name, group.label) for group in source_groups(groups, spec))
        )
        for spec in sources
    ]


def mqtt_sender(
    settings: TransformerSettings, config: MqttConfig, outbox: Outbox, sources: Sequence[SourceEntities] = ()
) -> MqttSender:
    """The sender of the sink's table in ``outbox``'s file, quiet within each source and group's
    cooldown, gathering incidents."""
    queue = MqttQueue(
        outbox, Cooldown(settings.mqtt_cooldown_seconds), Incidents(settings.mqtt_incident_seconds)
    )
    return MqttSender(config, outbox, queue, sources=sources)


def source_levels(monitor: MonitorService) -> Levels:
    """Each source's last level while it delivers audio (what ``/v1/monitor`` says too)."""

    def levels() -> dict[str, float | None]:
        return {
            supervisor.source.name: supervisor.status.level_dbfs
            for supervisor in monitor.supervisors
            if supervisor.status.state == "online"
        }

    return levels


def watch_sources(delivery: DeliveryService, monitor: MonitorService) -> None:
    """Give the MQTT sender (if any) the monitor's sources: their levels and which are online.
    Bound after both exist: the monitor records through the delivery made before it."""
    for sender in delivery.others:
        if isinstance(sender, MqttSender):
            sender.levels = source_levels(monitor)
