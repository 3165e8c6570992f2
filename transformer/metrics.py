"""Prometheus metrics of anomaly detection and DHT delivery (default registry).

KServe's model server exposes the default ``prometheus_client`` registry on
``/metrics``, so these appear there without further wiring.

| metric | type | labels | meaning |
|---|---|---|---|
| ``audioguard_anomalies_total`` | counter | group | anomalies detected |
| ``audioguard_outbox_depth`` | gauge | kind | messages waiting in the outbox |
| ``audioguard_outbox_dropped_total`` | counter | kind | messages dropped because the outbox was full |
| ``audioguard_dht_delivery_failures_total`` | counter | reason | failed DHT posts (each is retried) |
| ``audioguard_dht_delivery_latency_seconds`` | histogram | kind | enqueue -> DHT acknowledgement |
| ``audioguard_dht_request_seconds`` | histogram | | duration of one successful DHT post |
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from prometheus_client import Counter, Gauge, Histogram

ANOMALIES: Final = Counter("audioguard_anomalies_total", "Anomalies detected, by group.", ["group"])
OUTBOX_DEPTH: Final = Gauge(
    "audioguard_outbox_depth", "Messages waiting in the DHT outbox, by kind (anomaly|result).", ["kind"]
)
OUTBOX_DROPPED: Final = Counter(
    "audioguard_outbox_dropped_total",
    "Messages dropped because the outbox was full, by kind (anomaly|result).",
    ["kind"],
)
DELIVERY_FAILURES: Final = Counter(
    "audioguard_dht_delivery_failures_total",
    "DHT posts that failed and will be retried, by reason (timeout|connection|status|protocol).",
    ["reason"],
)
DELIVERY_LATENCY: Final = Histogram(
    "audioguard_dht_delivery_latency_seconds",
    "Time from outbox enqueue to the DHT's acknowledgement, by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
REQUEST_SECONDS: Final = Histogram(
    "audioguard_dht_request_seconds",
    "Duration of one successful DHT post.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _HasGroup(Protocol):
    @property
    def group(self) -> str: ...


def count_anomalies(anomalies: Iterable[_HasGroup]) -> None:
    """Add detected anomalies to ``audioguard_anomalies_total`` (call once per analysis)."""
    for anomaly in anomalies:
        ANOMALIES.labels(group=anomaly.group).inc()
