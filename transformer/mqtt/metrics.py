"""Prometheus metrics of the MQTT sink (default registry, on ``/metrics`` beside the others).

| metric | type | labels | meaning |
|---|---|---|---|
| ``audioguard_sink_delivered_total`` | counter | sink | messages the broker acknowledged |
| ``audioguard_sink_pending`` | gauge | sink | messages waiting in the sink's outbox table |
| ``audioguard_sink_oldest_pending_seconds`` | gauge | sink | age of the oldest waiting message (0: none) |
| ``audioguard_sink_failures_total`` | counter | sink, reason | failed connections or publishes (retried) |
| ``audioguard_sink_connected`` | gauge | sink | 1 while connected to the broker |
| ``audioguard_sink_dropped_total`` | counter | sink | messages dropped because the table was full |
| ``audioguard_sink_publish_latency_seconds`` | histogram | sink | record stored -> broker's acknowledgement |
| ``audioguard_sink_suppressed_total`` | counter | sink, reason | events kept off the sink (cooldown) |
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

SINK_DELIVERED: Final = Counter(
    "audioguard_sink_delivered_total", "Messages the sink's broker acknowledged.", ["sink"]
)
SINK_PENDING: Final = Gauge(
    "audioguard_sink_pending", "Messages waiting in the sink's outbox table.", ["sink"]
)
SINK_OLDEST: Final = Gauge(
    "audioguard_sink_oldest_pending_seconds", "Age of the sink's oldest waiting message (0: none).", ["sink"]
)
SINK_FAILURES: Final = Counter(
    "audioguard_sink_failures_total",
    "Failed connections or publishes of the sink, by reason (each is retried).",
    ["sink", "reason"],
)
SINK_CONNECTED: Final = Gauge("audioguard_sink_connected", "1 while the sink is connected, else 0.", ["sink"])
SINK_DROPPED: Final = Counter(
    "audioguard_sink_dropped_total", "Messages dropped because the sink's outbox table was full.", ["sink"]
)
SINK_LATENCY: Final = Histogram(
    "audioguard_sink_publish_latency_seconds",
    "From the record stored in the outbox to the broker's acknowledgement.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
SINK_SUPPRESSED: Final = Counter(
    "audioguard_sink_suppressed_total",
    "Events kept off the sink, by reason (cooldown: started within its source and group's cooldown).",
    ["sink", "reason"],
)
