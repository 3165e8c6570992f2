"""The MQTT sink measured: publish latency and delivery across faults, against a real Mosquitto.

    .venv/bin/python -m bench.mqtt_benchmark [--events 200] [--gap-ms 50]

Latency: from just before a recording's records are stored (``DeliveryService.record_analysis``:
the outbox commit with fsync, then the sender's publish and PUBACK) to the start record's arrival
at a subscriber on the same broker; p50/p95 with MQTT alone, then with a DHT sink configured
beside it whose broker is down (the MQTT figures must not move). Faults: records stored during
each fault, then counted at the subscriber: delivered, lost, duplicates (same event id again).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.load_benchmark import cpu_flags
from tests.support.analysis_rig import analysed
from tests.support.dht_standin import free_port
from tests.support.mosquitto import Mosquitto, Subscriber
from transformer.analysis.types import AnalysisOptions
from transformer.dht.backoff import Backoff
from transformer.dht.clients import DhtRestClient
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.sender import OutboxSender
from transformer.mqtt.config import broker_config
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import MqttSender

EVENT = "audioguard/kitchen/glass_break/event"


def service(folder: Path, broker: Mosquitto, *, dht_down: bool) -> DeliveryService:
    folder.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(folder / "outbox.sqlite3", 100_000, dht=dht_down)
    config = broker_config(broker.url, timeout=1.0, discovery_prefix="")
    mqtt = MqttSender(config, outbox, MqttQueue(outbox), backoff=Backoff(0.1, 0.5))
    dht = None
    if dht_down:
        dht = OutboxSender(outbox, DhtRestClient(f"http://127.0.0.1:{free_port()}", 1.0))
    return DeliveryService(outbox, sender=dht, others=[mqtt])


async def store(delivery: DeliveryService, count: int, gap: float, started: dict[str, float]) -> None:
    options = AnalysisOptions(audio_file="kitchen", origin="v2")
    for _ in range(count):
        result = await asyncio.to_thread(analysed, {"glass_break": [0, 1]}, options)
        started[result.anomalies[0]["event_id"]] = time.time()
        await asyncio.to_thread(delivery.record_analysis, result)
        await asyncio.sleep(gap)


async def wait_for(subscriber: Subscriber, started: dict[str, float], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while {m.json()["event_id"] for m in subscriber.on(EVENT)} < set(started):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


def latencies(subscriber: Subscriber, started: dict[str, float]) -> list[float]:
    first: dict[str, float] = {}
    for message in subscriber.on(EVENT):
        record = message.json()
        if record["change"] == "start":
            first.setdefault(record["event_id"], message.at)
    return sorted(1000 * (first[e] - started[e]) for e in started if e in first)


def counts(subscriber: Subscriber, started: dict[str, float]) -> str:
    pairs = [(m.json()["event_id"], m.json()["change"]) for m in subscriber.on(EVENT)]
    expected = {(e, c) for e in started for c in ("start", "end")}
    lost = len(expected - set(pairs))
    foreign = len(set(pairs) - expected)
    return (
        f"{len(expected)} records stored, {len(expected) - lost} delivered, {lost} lost, "
        f"{len(pairs) - len(set(pairs))} duplicates (same id), {foreign} under an unknown id"
    )


def percentiles(values: list[float]) -> str:
    if not values:
        return "none arrived"
    p50, p95 = statistics.median(values), statistics.quantiles(values, n=20)[18]
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(values):.1f} ms (n={len(values)})"


async def latency_run(work: Path, name: str, events: int, gap: float, dht_down: bool) -> None:
    broker = Mosquitto(work / name / "mosquitto").start()
    subscriber = Subscriber(broker.port, [EVENT])
    delivery = service(work / name, broker, dht_down=dht_down)
    started: dict[str, float] = {}
    try:
        await delivery.start()
        await store(delivery, events, gap, started)
        await wait_for(subscriber, started)
        print(f"{name}: {percentiles(latencies(subscriber, started))}; {counts(subscriber, started)}")
    finally:
        await delivery.stop()
        subscriber.close()
        broker.stop()


async def fault_run(work: Path, fault: str, events: int, gap: float) -> None:
    broker = Mosquitto(work / fault / "mosquitto")
    if fault != "down at start":
        broker.start()
    subscriber = None
    if broker.running():
        subscriber = Subscriber(broker.port, [EVENT], session="bench")
        saved = time.time()
        while not broker.saved_after(saved):
            await asyncio.sleep(0.05)
    delivery = service(work / fault, broker, dht_down=False)
    started: dict[str, float] = {}
    try:
        await delivery.start()
        await store(delivery, events // 2, gap, started)
        if fault == "killed and restarted":
            broker.kill()
        elif fault == "frozen (SIGSTOP)":
            broker.freeze()
        await store(delivery, events // 2, gap, started)
        await asyncio.sleep(2.0)  # the fault lasts a while
        if fault == "killed and restarted":
            broker.start()
        elif fault == "frozen (SIGSTOP)":
            broker.thaw()
        else:
            broker.start()
            subscriber = Subscriber(broker.port, [EVENT], session="bench")
        assert subscriber is not None
        recovered = time.monotonic()
        await wait_for(subscriber, started)
        print(f"{fault}: {counts(subscriber, started)}; caught up {time.monotonic() - recovered:.1f} s after")
    finally:
        await delivery.stop()
        if subscriber is not None:
            subscriber.close()
        broker.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    args = parser.parse_args()
    gap = args.gap_ms / 1000
    print(
        f"CPU: {cpu_flags()}, {os.cpu_count()} cores; {args.events} recordings, one every {args.gap_ms:g} ms"
    )
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as folder:
        work = Path(folder)
        await latency_run(work, "MQTT alone", args.events, gap, dht_down=False)
        await latency_run(work, "MQTT beside a DHT that is down", args.events, gap, dht_down=True)
        for fault in ("down at start", "killed and restarted", "frozen (SIGSTOP)"):
            await fault_run(work, fault, min(args.events, 40), gap)


if __name__ == "__main__":
    asyncio.run(main())
