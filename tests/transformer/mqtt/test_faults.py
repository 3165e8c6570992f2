"""The MQTT sink through the faults of issue 27, against real Mosquitto (and the real DHT broker).

After each: every record's start and end arrived (at least once, under its own event id:
nothing under an id that was not recorded), and the retained state ends OFF.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.dht_broker import DhtBroker
from tests.support.dht_standin import eventually, free_port
from tests.support.mosquitto import Mosquitto, Subscriber, make_tls_files, retained
from tests.support.serverutil import PROJECT_ROOT
from tests.transformer.mqtt.test_sender import KITCHEN, config, mqtt_delivery, recording
from transformer.dht.backoff import Backoff
from transformer.dht.clients import DhtRestClient
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.sender import OutboxSender
from transformer.dht.topics import ANOMALY_TOPIC_NAME
from transformer.metrics import SINK_FAILURES
from transformer.mqtt.config import MqttConfig, broker_config
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import MqttSender

STATE = "audioguard/kitchen/glass_break/state"
EVENT = "audioguard/kitchen/glass_break/event"


async def record(service: DeliveryService, count: int) -> set[tuple[str, str]]:
    """``count`` recordings with one glass break each; their (event_id, change) pairs."""
    expected = set()
    for _ in range(count):
        result = await asyncio.to_thread(recording, {"glass_break": [0, 1]})
        await asyncio.to_thread(service.record_analysis, result)
        expected |= {(result.anomalies[0]["event_id"], change) for change in ("start", "end")}
    return expected


def received(subscriber: Subscriber) -> set[tuple[str, str]]:
    return {(m.json()["event_id"], m.json()["change"]) for m in subscriber.on(EVENT)}


def assert_complete(subscriber: Subscriber, expected: set[tuple[str, str]]) -> None:
    """All recorded, nothing under another id, each event's end after its start."""
    assert received(subscriber) == expected
    order = [(m.json()["event_id"], m.json()["change"]) for m in subscriber.on(EVENT)]
    for event_id, _ in expected:
        assert order.index((event_id, "start")) < order.index((event_id, "end"))


def pending_metric(sink: str) -> float:
    """``audioguard_sink_pending{sink}`` as a scrape reads it."""
    return float(REGISTRY.get_sample_value("audioguard_sink_pending", {"sink": sink}) or 0.0)


def failures(reason: str) -> float:
    return SINK_FAILURES.labels(sink="mqtt", reason=reason)._value.get()


async def test_broker_down_at_start_then_up_delivers_everything(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")  # not started
    service, sender = mqtt_delivery(tmp_path, config(broker), sources=[KITCHEN])
    before = failures("connection")
    try:
        await service.start()
        expected = await record(service, 3)
        await eventually(lambda: failures("connection") > before, 10, "a failed connection counted")
        status = sender.status()
        assert status["connected"] is False and status["pending"] == 13  # 1 OFF + 3 x 4
        assert "unreachable" in status["last_error"] and status["oldest_pending_seconds"] >= 0
        await asyncio.to_thread(broker.start)
        subscriber = Subscriber(broker.port, ["audioguard/#"])
        expected |= await record(service, 1)
        await eventually(lambda: received(subscriber) >= expected, 20, "every record after the outage")
        await eventually(lambda: sender.status()["pending"] == 0, 10, "an empty MQTT table")
        assert_complete(subscriber, expected)
        subscriber.close()
    finally:
        await service.stop()
        broker.stop()


async def test_broker_killed_mid_stream_and_restarted_loses_nothing(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    # a durable session (as Home Assistant's): the broker keeps its subscription across restarts
    subscriber = Subscriber(broker.port, ["audioguard/#"], session="home-assistant")
    subscribed = time.time()
    await eventually(lambda: broker.saved_after(subscribed), 10, "the broker's autosave of the session")
    service, sender = mqtt_delivery(tmp_path, config(broker), sources=[KITCHEN])
    try:
        await service.start()
        expected = await record(service, 3)
        await eventually(lambda: received(subscriber) == expected, 20, "the first records")
        broker.kill()
        expected |= await record(service, 3)  # while the broker is dead
        await eventually(lambda: not sender.connected, 10, "the loss noticed")
        broker.start()
        expected |= await record(service, 2)
        await eventually(lambda: received(subscriber) >= expected, 30, "every record after the restart")
        await eventually(lambda: sender.status()["pending"] == 0, 10, "an empty MQTT table")
        assert_complete(subscriber, expected)
    finally:
        await service.stop()
        subscriber.close()
    assert (await asyncio.to_thread(retained, broker.port, STATE))[STATE] == b"OFF"
    broker.stop()


async def test_a_frozen_broker_is_dropped_and_everything_follows_once_it_resumes(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    subscriber = Subscriber(broker.port, ["audioguard/#"], session="home-assistant")
    service, sender = mqtt_delivery(tmp_path, config(broker, timeout=1.0), sources=[KITCHEN])
    before = failures("timeout")
    try:
        await service.start()
        expected = await record(service, 1)
        await eventually(lambda: received(subscriber) == expected, 20, "the first record")
        broker.freeze()
        expected |= await record(service, 2)
        await eventually(lambda: failures("timeout") > before, 15, "a publish timed out")
        assert (
            "no acknowledgement" in sender.status()["last_error"]
            or "no CONNACK" in sender.status()["last_error"]
        )
        broker.thaw()
        await eventually(lambda: received(subscriber) >= expected, 30, "every record after the thaw")
        await eventually(lambda: sender.status()["pending"] == 0, 10, "an empty MQTT table")
        assert_complete(subscriber, expected)
    finally:
        await service.stop()
        subscriber.close()
        broker.stop()


@pytest.mark.slow
async def test_a_wrong_password_is_said_and_retried_while_the_dht_gets_everything(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", users={"audioguard": "right", "ha": "ha"}).start()
    dht = DhtBroker(tmp_path / "dht")
    await asyncio.to_thread(dht.start)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    mqtt = MqttSender(
        config(broker, username="audioguard", password="wrong"),
        outbox,
        MqttQueue(outbox),
        sources=[KITCHEN],
        backoff=Backoff(0.05, 0.2),
    )
    dht_sender = OutboxSender(outbox, DhtRestClient(dht.url, 2.0), backoff=Backoff(0.05, 0.2))
    service = DeliveryService(outbox, sender=dht_sender, others=[mqtt])
    before = failures("auth")
    try:
        await service.start()
        expected = await record(service, 3)
        await eventually(lambda: len(outbox) == 0, 20, "the DHT's rows delivered")
        stored = await asyncio.to_thread(dht.entries, ANOMALY_TOPIC_NAME)
        assert {(value["event_id"], value["change"]) for value in stored.values()} == expected
        await eventually(lambda: failures("auth") >= before + 2, 10, "refusals retried and counted")
        status = mqtt.status()
        assert status["connected"] is False and status["pending"] == 13
        assert "refused" in status["last_error"] and "wrong" not in status["last_error"]
        dht_line, mqtt_line = await asyncio.to_thread(service.sink_status)
        assert mqtt_line["sink"] == "mqtt" and mqtt_line["connected"] is False
        assert dht_line["sink"] == "dht" and dht_line["connected"] is True
        assert (dht_line["pending"], dht_line["delivered"], dht_line["oldest_pending_seconds"]) == (0, 9, 0)
    finally:
        await service.stop()
        dht.stop()
        broker.stop()


async def test_a_dht_outage_does_not_hold_up_mqtt_and_each_catches_up(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    subscriber = Subscriber(broker.port, ["audioguard/#"])
    dht_port = free_port()  # nothing listens: the DHT is down
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    mqtt = MqttSender(
        config(broker), outbox, MqttQueue(outbox), sources=[KITCHEN], backoff=Backoff(0.05, 0.2)
    )
    dht_sender = OutboxSender(
        outbox, DhtRestClient(f"http://127.0.0.1:{dht_port}", 1.0), backoff=Backoff(0.05, 0.2)
    )
    service = DeliveryService(outbox, sender=dht_sender, others=[mqtt])
    try:
        await service.start()
        expected = await record(service, 3)
        await eventually(lambda: received(subscriber) == expected, 20, "MQTT during the DHT outage")
        assert len(outbox) == 9  # the DHT's rows wait: 3 x (start, end, the analysis value)
        await eventually(
            lambda: mqtt.status()["pending"] == 0, 10, "the MQTT rows deleted after their PUBACKs"
        )
        dht_line, mqtt_line = await asyncio.to_thread(service.sink_status)
        assert dht_line["connected"] is False and dht_line["failures"] >= 1 and dht_line["pending"] == 9
        assert dht_line["oldest_pending_seconds"] > 0 and "ConnectError" in dht_line["last_error"]
        assert mqtt_line["connected"] is True
        assert pending_metric("dht") == 9 and pending_metric("mqtt") == 0
        broker.stop()  # now MQTT is down too, and the DHT comes back
        dht = DhtBroker(tmp_path / "dht", port=dht_port)
        await asyncio.to_thread(dht.start)
        expected |= await record(service, 1)
        await eventually(lambda: len(outbox) == 0, 30, "the DHT's backlog delivered while MQTT is down")
        stored = await asyncio.to_thread(dht.entries, ANOMALY_TOPIC_NAME)
        assert {(value["event_id"], value["change"]) for value in stored.values()} == expected
        assert mqtt.status()["pending"] == 4
        dht.stop()
    finally:
        await service.stop()
        subscriber.close()


async def test_stop_ends_the_sender_while_it_retries_an_unreachable_broker(tmp_path: Path) -> None:
    """A stop that lands as a failed connect returns must still end the sender: Python 3.11's
    wait_for swallowed that cancellation and the sender retried forever (it hung a CI run).
    Before the fix this hung within the first two of these rounds."""
    port = free_port()  # nothing listens
    for round_ in range(40):
        outbox = Outbox(tmp_path / f"outbox-{round_}.sqlite3", 1000, dht=False)
        address = broker_config(f"mqtt://127.0.0.1:{port}", timeout=2.0, discovery_prefix="")
        sender = MqttSender(address, outbox, MqttQueue(outbox), backoff=Backoff(0.0001, 0.0002))
        await sender.start()
        refusals = 1 + round_ % 5  # stop at different points of the retry loop
        await eventually(lambda s=sender, n=refusals: s.failures >= n, 10, "connects refused")
        async with asyncio.timeout(10):
            await sender.stop()
        assert sender.connected is False
        outbox.close()


async def test_tls_with_the_tests_own_ca(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    other = make_tls_files(tmp_path / "other", "other-ca")
    broker = Mosquitto(tmp_path / "mosquitto", tls=tls).start()
    subscriber = Subscriber(broker.port, ["audioguard/#"])
    try:
        wrong, wrong_sender = mqtt_delivery(tmp_path / "wrong", _tls_config(broker, other.ca))
        before = failures("tls")
        await wrong.start()
        await eventually(lambda: failures("tls") > before, 10, "a certificate refused")
        assert "certificate" in wrong_sender.status()["last_error"].lower()
        await wrong.stop()

        service, sender = mqtt_delivery(tmp_path / "right", _tls_config(broker, tls.ca), sources=[KITCHEN])
        await service.start()
        expected = await record(service, 2)
        await eventually(lambda: received(subscriber) == expected, 20, "the records over TLS")
        assert sender.config.address == broker.tls_url
        await service.stop()
    finally:
        subscriber.close()
        broker.stop()


def _tls_config(broker: Mosquitto, ca: Path) -> MqttConfig:
    return broker_config(broker.tls_url, ca_file=ca, timeout=2.0, discovery_prefix="")


CHILD = """
import sys
from pathlib import Path
from tests.support.analysis_rig import analysed
from transformer.analysis.records import recording_event_records
from transformer.analysis.types import AnalysisOptions
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.records import event_messages
from transformer.mqtt.queue import MqttQueue

outbox = Outbox(Path(sys.argv[1]), 1000, dht=False)
MqttQueue(outbox)
service = DeliveryService(outbox)
whole = analysed({"glass_break": [0, 1]}, AnalysisOptions(audio_file="kitchen", origin="v2"))
service.record_analysis(whole)
cut = analysed({"glass_break": [0, 1]}, AnalysisOptions(audio_file="kitchen", origin="v2"))
start = recording_event_records(cut)[0]  # a live start whose end never comes: killed mid-event
outbox.enqueue_many(event_messages([start]))
print(whole.anomalies[0]["event_id"], cut.anomalies[0]["event_id"], flush=True)
sys.stdin.read()
"""


async def test_a_sigkilled_process_loses_nothing_and_leaves_no_state_on(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert child.stdout is not None
    whole, cut = (await asyncio.to_thread(child.stdout.readline)).decode().split()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    broker = Mosquitto(tmp_path / "mosquitto").start()
    subscriber = Subscriber(broker.port, ["audioguard/#"])
    service, sender = mqtt_delivery(tmp_path, config(broker), sources=[KITCHEN])
    try:
        await service.start()
        expected = {(whole, "start"), (whole, "end"), (cut, "start")}
        await eventually(lambda: received(subscriber) == expected, 20, "the killed run's records")
        await eventually(lambda: sender.status()["pending"] == 0, 10, "an empty MQTT table")
        states = [m.payload for m in subscriber.on(STATE)]
        assert states == [b"ON", b"OFF", b"ON", b"OFF"]  # the cut event's ON, then this start's OFF
    finally:
        await service.stop()
        subscriber.close()
    assert (await asyncio.to_thread(retained, broker.port, STATE))[STATE] == b"OFF"
    broker.stop()


async def test_a_broker_that_forgot_everything_gets_the_states_again(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", persistence=False).start()
    service, sender = mqtt_delivery(tmp_path, config(broker), sources=[KITCHEN])
    try:
        await service.start()
        await record(service, 1)
        await eventually(lambda: sender.status()["pending"] == 0, 10, "the records published")
        broker.restart()  # no persistence: the retained state is gone with it
        await eventually(lambda: sender.failures >= 1 and sender.connected, 20, "the sender back")
        want = {"audioguard/status": b"online", STATE: b"OFF"}
        deadline = time.monotonic() + 10
        while (held := await asyncio.to_thread(retained, broker.port, "audioguard/#")) != want:
            assert time.monotonic() < deadline, held  # what the broker holds when the time ran out
    finally:
        await service.stop()
        broker.stop()
