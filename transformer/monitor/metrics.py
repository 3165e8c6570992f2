"""The sources' figures on ``/metrics``, read from the live statuses at each scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from transformer.monitor.loop import Monitor
from transformer.monitor.supervisor import SourceSupervisor


class Watched(Protocol):
    """What the collector reads of the running monitor (``MonitorService``)."""

    @property
    def supervisors(self) -> Sequence[SourceSupervisor]: ...
    @property
    def monitor(self) -> Monitor: ...
    @property
    def failed_steps(self) -> int: ...


class MonitorCollector(Collector):
    """The sources' figures on ``/metrics``, read from the live statuses at each scrape."""

    def __init__(self, service: Watched) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        up = GaugeMetricFamily(
            "audioguard_monitor_source_up", "1 while the source delivers audio, else 0.", labels=["source"]
        )
        age = GaugeMetricFamily(
            "audioguard_monitor_source_seconds_since_audio",
            "Seconds since the source's last audio (absent before the first).",
            labels=["source"],
        )
        level = GaugeMetricFamily(
            "audioguard_monitor_source_level_dbfs", "RMS level of the source's last chunk.", labels=["source"]
        )
        open_events = GaugeMetricFamily(
            "audioguard_monitor_open_events", "Events in progress on the source.", labels=["source"]
        )
        restarts = CounterMetricFamily(
            "audioguard_monitor_source_restarts", "Captures restarted (ended or stalled).", labels=["source"]
        )
        dropped = CounterMetricFamily(
            "audioguard_monitor_dropped_chunks",
            "Audio chunks (0.1 s) dropped because detection fell behind.",
            labels=["source"],
        )
        for supervisor in self.service.supervisors:
            status, name = supervisor.status, supervisor.source.name
            up.add_metric([name], 1.0 if status.state == "online" else 0.0)
            if status.last_audio is not None:
                age.add_metric([name], now - status.last_audio)
            if status.level_dbfs is not None:
                level.add_metric([name], status.level_dbfs)
            open_events.add_metric([name], len(self.service.monitor.open_groups(name)))
            restarts.add_metric([name], status.restarts)
            dropped.add_metric([name], status.dropped_chunks)
        failed = CounterMetricFamily(
            "audioguard_monitor_failed_steps", "Detection steps that failed (their audio not analysed)."
        )
        failed.add_metric([], self.service.failed_steps)
        yield from (up, age, level, open_events, restarts, dropped, failed)
