"""Prometheus metrics of anomaly detection, DHT delivery and VGGish batching (default registry).

KServe's model server exposes the default ``prometheus_client`` registry on
``/metrics``, so these appear there without further wiring.

| metric | type | labels | meaning |
|---|---|---|---|
| ``audioguard_anomalies_total`` | counter | group | anomalies detected |
| ``audioguard_admission_inflight`` | gauge | budget | analyses / decoding-memory bytes admitted now |
| ``audioguard_admission_rejected_total`` | counter | reason | requests refused with 503 + Retry-After |
| ``audioguard_requests_abandoned_total`` | counter | route | client gone first: work stopped |
| ``audioguard_outbox_depth`` | gauge | kind | messages waiting in the outbox |
| ``audioguard_outbox_dropped_total`` | counter | kind | messages dropped because the outbox was full |
| ``audioguard_outbox_dead_letters`` | gauge | kind | messages the DHT refused for good, kept aside |
| ``audioguard_dht_delivery_failures_total`` | counter | reason | failed DHT posts (each is retried) |
| ``audioguard_dht_delivery_latency_seconds`` | histogram | kind | enqueue -> DHT acknowledgement |
| ``audioguard_dht_request_seconds`` | histogram | | duration of one successful DHT post |
| ``audioguard_dht_listener_connected`` | gauge | | 1 while the request listener's WebSocket is open |
| ``audioguard_sink_delivered_total`` | counter | sink | messages the broker acknowledged |
| ``audioguard_sink_pending`` | gauge | sink | messages waiting in the sink's outbox table |
| ``audioguard_sink_oldest_pending_seconds`` | gauge | sink | oldest waiting message's age (0: none) |
| ``audioguard_sink_failures_total`` | counter | sink, reason | failed connections or publishes (retried) |
| ``audioguard_sink_connected`` | gauge | sink | 1 while connected to the broker |
| ``audioguard_sink_dropped_total`` | counter | sink | dropped: the sink's table was full (mqtt) |
| ``audioguard_sink_publish_latency_seconds`` | histogram | sink | stored -> acknowledged (mqtt) |
| ``audioguard_sink_suppressed_total`` | counter | sink, reason | events kept off the sink (mqtt: cooldown) |
| ``audioguard_event_delivery_seconds`` | histogram | sink | live event's sound -> start record acked |
| ``audioguard_predictor_call_failures_total`` | counter | reason | failed predictor calls (503, 500) |
| ``audioguard_transformer_vggish_batch_examples`` | histogram | model_name | examples per VGGish call |
| ``audioguard_transformer_vggish_batch_requests`` | histogram | model_name | requests in one VGGish call |
| ``audioguard_transformer_vggish_batch_seconds`` | histogram | model_name | duration of one VGGish call |

The VGGish histograms count every call, batched or not: ``_count`` is the
number of calls, ``..._requests_sum`` the request chunks they served and
``..._examples_sum`` the examples (mean requests per call > 1 = merging).

While the transformer listens to live sources, ``transformer.monitor.metrics.MonitorCollector``
is registered in the same registry and adds, read from the sources' statuses at each scrape:

| metric | type | labels | meaning |
|---|---|---|---|
| ``audioguard_monitor_source_up`` | gauge | source | 1 while the source delivers audio, else 0 |
| ``audioguard_monitor_source_seconds_since_audio`` | gauge | source | since its last audio |
| ``audioguard_monitor_source_level_dbfs`` | gauge | source | RMS level of its last chunk |
| ``audioguard_monitor_open_events`` | gauge | source | events in progress on it |
| ``audioguard_monitor_source_restarts_total`` | counter | source | captures restarted (ended or stalled) |
| ``audioguard_monitor_dropped_chunks_total`` | counter | source | 0.1 s chunks dropped (detection behind) |
| ``audioguard_monitor_failed_steps_total`` | counter | | detection steps that failed (audio not analysed) |
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from prometheus_client import Counter, Gauge, Histogram

from contract.batch_metrics import BatchMetrics

LISTENER_CONNECTED: Final = Gauge(
    "audioguard_dht_listener_connected", "1 while the DHT request listener's WebSocket is open, else 0."
)
ANOMALIES: Final = Counter(
    "audioguard_anomalies_total",
    "Anomaly events started, by group and path (file: an analysed recording; live: a source).",
    ["group", "path"],
)
OUTBOX_DEPTH: Final = Gauge(
    "audioguard_outbox_depth", "Messages waiting in the DHT outbox, by kind (anomaly|result).", ["kind"]
)
OUTBOX_DROPPED: Final = Counter(
    "audioguard_outbox_dropped_total",
    "Messages dropped because the outbox was full, by kind (anomaly|result).",
    ["kind"],
)
ADMISSION_INFLIGHT: Final = Gauge(
    "audioguard_admission_inflight",
    "Work admitted and not finished, by budget (analyses: requests; memory_bytes: decoding memory).",
    ["budget"],
)
ADMISSION_REJECTED: Final = Counter(
    "audioguard_admission_rejected_total",
    "Requests answered 503 + Retry-After because a budget was full, by budget (analyses|memory).",
    ["reason"],
)
DEAD_LETTERS: Final = Gauge(
    "audioguard_outbox_dead_letters",
    "Messages the DHT refused for good, kept aside (python -m transformer.dht.dead_letters), by kind.",
    ["kind"],
)
DELIVERY_FAILURES: Final = Counter(
    "audioguard_dht_delivery_failures_total",
    "DHT posts that failed, by reason (timeout|connection|status|protocol: retried; refused: a dead letter).",
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


VGGISH_BATCH_METRICS: Final = BatchMetrics(
    "audioguard_transformer_vggish",
    rows="examples",
    rows_help="Log-mel examples per VGGish call (cross-request batching).",
    calls_help="Duration of one VGGish call.",
    row_buckets=(1, 2, 4, 8, 10, 16, 20, 32, 40, 64, 128, 256, 512, 1024),
    second_buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class _EventChange(Protocol):
    @property
    def group(self) -> str: ...

    @property
    def change(self) -> str: ...


def count_events(changes: Iterable[_EventChange], path: str) -> None:
    """Add the events ``changes`` start to ``audioguard_anomalies_total`` (path "file" or "live")."""
    for change in changes:
        if change.change == "start":
            ANOMALIES.labels(group=change.group, path=path).inc()


# --- per delivery sink (dht, mqtt) ------------------------------------------------------------
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
ONSET_TO_DELIVERY: Final = Histogram(
    "audioguard_event_delivery_seconds",
    "From a live event's start (the sound's wall clock, started_at) to the sink's acknowledgement "
    "of its start record: detection delay plus delivery.",
    ["sink"],
    buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 300, 900, 3600),
)
PREDICTOR_CALL_FAILURES: Final = Counter(
    "audioguard_predictor_call_failures_total",
    "Calls to the predictor that failed, by reason (unavailable: answered 503; error: answered 500).",
    ["reason"],
)
for _reason in ("unavailable", "error"):  # at 0 from the start: rate() then sees the first failure
    PREDICTOR_CALL_FAILURES.labels(reason=_reason)


def observe_onset_to_delivery(
    sink: str, message: str | bytes | Mapping[str, Any], acknowledged_at: float
) -> None:
    """Observe ``audioguard_event_delivery_seconds`` for a delivered message (a record, or its
    JSON text) when it is a live event's start record (``change: start`` and ``started_at``);
    anything else is ignored. Never raises: it runs on the delivery path."""
    try:
        record = json.loads(message) if isinstance(message, str | bytes) else message
        if not isinstance(record, Mapping) or record.get("change") != "start" or not record.get("started_at"):
            return
        started = datetime.fromisoformat(str(record["started_at"])).timestamp()
    except (ValueError, TypeError):  # not JSON, or no ISO time: not an event record
        return
    ONSET_TO_DELIVERY.labels(sink=sink).observe(max(0.0, acknowledged_at - started))


def at_scrape(read: Callable[[], float]) -> float:
    """``read()`` for a gauge read at each scrape; NaN when the file it reads is gone (a sink
    stopped): a scrape never fails because of one figure."""
    try:
        return float(read())
    except (sqlite3.Error, OSError):
        return math.nan
