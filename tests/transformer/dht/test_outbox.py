"""The SQLite outbox (durability, ordering, capacity policy) and its sender.

The sender meets the real SIFIS DHT broker (tests/support/dht_broker.py): delivery in order, the
broker down at start, killed mid-stream and restarted on its own SQLite file, frozen with SIGSTOP,
and a producer killed with messages queued. The stand-in (tests/support/dht_standin.py) stays for
what the broker cannot be made to do: answer a 5xx or a 4xx, fail one topic only, and hold one post
open at an exact moment; those tests say so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from contract.errors import InvalidConfiguration
from tests.support.dht_broker import DhtBroker
from tests.support.dht_standin import DhtStandIn, Write, eventually
from tests.support.serverutil import PROJECT_ROOT as REPO
from transformer.dht import dead_letters
from transformer.dht.backoff import Backoff
from transformer.dht.clients import DhtClient, DhtRestClient, DhtWebSocketClient
from transformer.dht.outbox import Outbox, OutboxMessage
from transformer.dht.sender import OutboxSender

ANOMALY = "SIFIS:Audio_Anomaly"
RESULT = "SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results"


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _first_seen(writes: list[Write]) -> list[str]:
    """uuids in first-arrival order (a crash may re-send a message; order is what counts)."""
    seen: list[str] = []
    for write in writes:
        if write.topic_uuid not in seen:
            seen.append(write.topic_uuid)
    return seen


def _anomaly(i: int) -> OutboxMessage:
    return OutboxMessage(ANOMALY, f"event-{i:03d}", {"group": "glass_break", "n": i}, "anomaly")


def _result(i: int) -> OutboxMessage:
    return OutboxMessage(RESULT, "Audio_Anomaly_Detection_Results", {"n": i}, "result")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "state" / "outbox.sqlite3", max_items=1000)
    yield box
    box.close()


# --- the outbox on its own ----------------------------------------------------------------------


def test_enqueue_is_durable_in_wal_mode_with_full_sync(outbox: Outbox) -> None:
    ids = outbox.enqueue_many([_anomaly(1), _result(1)])
    assert ids[0] is not None and ids[1] is not None and ids[0] < ids[1]

    # another connection (as a restarted process would) sees the committed rows
    other = sqlite3.connect(outbox.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = other.execute(
            "SELECT topic_name, topic_uuid, kind, attempts FROM outbox ORDER BY id"
        ).fetchall()
    finally:
        other.close()
    assert rows == [
        (ANOMALY, "event-001", "anomaly", 0),
        (RESULT, "Audio_Anomaly_Detection_Results", "result", 0),
    ]
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL

    reopened = Outbox(outbox.path, max_items=1000)
    try:
        assert [m.value for m in reopened.pending()] == [{"group": "glass_break", "n": 1}, {"n": 1}]
        assert reopened.depth() == {"anomaly": 1, "result": 1}
    finally:
        reopened.close()


def test_heads_are_the_oldest_message_of_each_topic(outbox: Outbox) -> None:
    outbox.enqueue_many([_anomaly(1), _result(1), _anomaly(2), _result(2)])
    heads = outbox.heads()
    assert [(h.topic_name, h.value["n"]) for h in heads] == [(ANOMALY, 1), (RESULT, 1)]

    outbox.mark_failed(heads[0].id, next_attempt_at=123.0)
    outbox.mark_delivered(heads[1].id)
    heads = outbox.heads()
    assert [(h.topic_name, h.value["n"], h.attempts, h.next_attempt_at) for h in heads] == [
        (ANOMALY, 1, 1, 123.0),
        (RESULT, 2, 0, 0.0),
    ]
    outbox.reschedule_all(0.0)
    assert outbox.heads()[0].next_attempt_at == 0.0
    assert outbox.depth() == {"anomaly": 2, "result": 1}


def test_values_that_are_not_json_are_refused_and_nothing_is_stored(outbox: Outbox) -> None:
    with pytest.raises(ValueError):
        outbox.enqueue_many([_anomaly(1), OutboxMessage(ANOMALY, "x", {"score": float("nan")}, "anomaly")])
    with pytest.raises(ValueError, match="unknown outbox message kind"):
        outbox.enqueue_many([OutboxMessage(ANOMALY, "x", {}, "other")])  # type: ignore[arg-type]
    assert len(outbox) == 0


def test_full_outbox_drops_results_first_and_counts_every_drop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "full.sqlite3", max_items=3)
    dropped_results = _metric("audioguard_outbox_dropped_total", kind="result")
    dropped_anomalies = _metric("audioguard_outbox_dropped_total", kind="anomaly")
    try:
        box.enqueue_many([_result(1), _anomaly(1), _result(2)])
        box.enqueue_many([_anomaly(2)])  # full: the oldest result (r1) goes
        assert [(m.kind, m.value["n"]) for m in box.pending()] == [
            ("anomaly", 1),
            ("result", 2),
            ("anomaly", 2),
        ]
        box.enqueue_many([_anomaly(3)])  # the next oldest result (r2) goes
        assert [(m.kind, m.value["n"]) for m in box.pending()] == [
            ("anomaly", 1),
            ("anomaly", 2),
            ("anomaly", 3),
        ]
        assert _metric("audioguard_outbox_dropped_total", kind="result") == dropped_results + 2

        # only anomalies left: a new result is refused, never an anomaly pushed out for it
        assert box.enqueue_many([OutboxMessage(RESULT, "r", {"n": 3}, "result")]) == [None]
        assert [m.value["n"] for m in box.pending()] == [1, 2, 3]
        assert _metric("audioguard_outbox_dropped_total", kind="result") == dropped_results + 3

        # a new anomaly replaces the oldest anomaly, loudly
        with caplog.at_level(logging.ERROR, logger="transformer.dht.outbox"):
            box.enqueue_many([_anomaly(4)])
        assert [m.value["n"] for m in box.pending()] == [2, 3, 4]
        assert _metric("audioguard_outbox_dropped_total", kind="anomaly") == dropped_anomalies + 1
        assert "dropped the oldest undelivered anomaly SIFIS:Audio_Anomaly/event-001" in caplog.text
        assert _metric("audioguard_outbox_depth", kind="anomaly") == 3
        assert _metric("audioguard_outbox_depth", kind="result") == 0
    finally:
        box.close()


def test_counts_stay_exact_while_threads_record_and_deliver(tmp_path: Path) -> None:
    """Many threads enqueue while another delivers: the counts match the table, and with
    fewer anomalies than the capacity no anomaly is ever dropped (results are, first)."""
    box = Outbox(tmp_path / "race.sqlite3", max_items=40)
    dropped_before = _metric("audioguard_outbox_dropped_total", kind="anomaly")
    stop = threading.Event()
    delivered: list[str] = []

    def deliver() -> None:
        while not stop.is_set() or len(box):
            for head in box.heads():
                box.mark_delivered(head.id)
                if head.kind == "anomaly":
                    delivered.append(head.topic_uuid)

    def record(worker: int) -> None:
        for i in range(25):
            number = worker * 1000 + i
            messages = [_result(number)] * 3
            if i % 5 == 0:  # 5 anomalies per worker, 30 in all: fewer than the 40 places
                messages.append(_anomaly(number))
            box.enqueue_many(messages)
            counts = dict(box.depth())
            assert sum(counts.values()) <= box.max_items

    try:
        courier = threading.Thread(target=deliver)
        courier.start()
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(record, range(6)))
        stop.set()
        courier.join(30)
        assert not courier.is_alive()
        stored = dict(box._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
        assert box.depth() == {"anomaly": stored.get("anomaly", 0), "result": stored.get("result", 0)}
        assert _metric("audioguard_outbox_dropped_total", kind="anomaly") == dropped_before
        every_anomaly = [f"event-{w * 1000 + i:03d}" for w in range(6) for i in range(0, 25, 5)]
        assert sorted(delivered) == sorted(every_anomaly)
    finally:
        box.close()


def test_the_sender_uses_the_default_backoff_unless_given_one(outbox: Outbox) -> None:
    client = DhtRestClient("http://127.0.0.1:9", 1)
    default = OutboxSender(outbox, client).backoff
    assert (default.base, default.maximum) == (0.5, 60.0)
    given = Backoff(0.05, 0.2)
    assert OutboxSender(outbox, client, backoff=given).backoff is given


# --- the sender against the real broker (and the stand-in where it must) ------------------------------

Broker = DhtBroker | DhtStandIn


@dataclass
class Rig:
    broker: Broker
    outbox: Outbox
    sender: OutboxSender
    client: DhtClient


def _client(transport: str, broker: Broker, timeout: float) -> DhtClient:
    if transport == "rest":
        return DhtRestClient(broker.url, timeout)
    return DhtWebSocketClient(broker.ws_url, timeout)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """``rest`` unless a test parametrizes it (indirect) with ``websocket``."""
    return str(getattr(request, "param", "rest"))


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Broker:
    """The real broker, not started; ``standin`` (indirect) for the faults only the stand-in makes."""
    if getattr(request, "param", "real") == "standin":
        return DhtStandIn()
    return DhtBroker(tmp_path / "dht")


@pytest.fixture
async def rig(transport: str, broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    """Broker (not started), outbox, client per ``transport`` and a fast-retrying sender."""
    box = Outbox(tmp_path / "outbox.sqlite3", max_items=1000)
    client = _client(transport, broker, timeout=0.5)
    sender = OutboxSender(box, client, backoff=Backoff(0.05, 0.2), poll_seconds=0.5)
    yield Rig(broker, box, sender, client)
    await sender.stop()
    await client.aclose()
    box.close()
    await asyncio.to_thread(broker.stop)


def _enqueue_batch(box: Outbox, numbers: range) -> None:
    for i in numbers:
        messages = [_anomaly(i)] + ([_result(i)] if i % 2 == 0 else [])
        box.enqueue_many(messages)


def _assert_broadcasts_in_order(broker: Broker, expected: list[str]) -> None:
    """The broadcasts the observer saw came in outbox order. A sender retrying while the broker
    starts may deliver before the observer connects (it needs the same port up), so the first ones
    can be missing from the broadcasts; the broker's store (``entries``) is the completeness check."""
    seen = _first_seen(broker.writes_to(ANOMALY))
    assert seen == sorted(seen) and set(seen) <= set(expected), seen


def _all_arrived(rig: Rig, count: int) -> Callable[[], bool]:
    return lambda: len(rig.outbox) == 0 and len(_first_seen(rig.broker.writes_to(ANOMALY))) == count


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["rest", "websocket"], indirect=True)
async def test_sender_delivers_everything_in_order(rig: Rig) -> None:
    await asyncio.to_thread(rig.broker.start)
    latency_count = _metric("audioguard_dht_delivery_latency_seconds_count", kind="anomaly")
    await rig.sender.start()
    _enqueue_batch(rig.outbox, range(10))

    await eventually(_all_arrived(rig, 10), 20, "10 anomalies at the DHT")

    assert _first_seen(rig.broker.writes_to(ANOMALY)) == [f"event-{i:03d}" for i in range(10)]
    assert [w.value["n"] for w in rig.broker.writes_to(RESULT)] == [0, 2, 4, 6, 8]
    assert rig.broker.get(RESULT, "Audio_Anomaly_Detection_Results") == {"n": 8}  # newest wins
    assert _metric("audioguard_dht_delivery_latency_seconds_count", kind="anomaly") >= latency_count + 10
    assert _metric("audioguard_outbox_depth", kind="anomaly") == 0


@pytest.mark.slow
async def test_dht_down_at_start_then_up_delivers_everything(rig: Rig) -> None:
    failures = _metric("audioguard_dht_delivery_failures_total", reason="connection")
    await rig.sender.start()
    _enqueue_batch(rig.outbox, range(5))
    await eventually(lambda: all(h.attempts >= 2 for h in rig.outbox.heads()), 10, "retries while down")
    assert _metric("audioguard_dht_delivery_failures_total", reason="connection") >= failures + 4
    assert len(rig.outbox) == 8

    await asyncio.to_thread(rig.broker.start)
    await eventually(lambda: len(rig.outbox) == 0, 20, "5 anomalies after the DHT came up")
    expected = [f"event-{i:03d}" for i in range(5)]
    assert sorted(rig.broker.entries(ANOMALY)) == expected
    _assert_broadcasts_in_order(rig.broker, expected)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["rest", "websocket"], indirect=True)
async def test_dht_killed_mid_stream_then_restarted_on_its_store_loses_nothing(rig: Rig) -> None:
    broker = rig.broker
    assert isinstance(broker, DhtBroker)
    await asyncio.to_thread(broker.start)
    await rig.sender.start()
    _enqueue_batch(rig.outbox, range(0, 10))
    await eventually(_all_arrived(rig, 10), 20, "the first 10 anomalies")

    await asyncio.to_thread(broker.kill)  # SIGKILL: no shutdown, sockets reset
    _enqueue_batch(rig.outbox, range(10, 20))
    await eventually(lambda: any(h.attempts >= 1 for h in rig.outbox.heads()), 10, "a failed attempt")
    _enqueue_batch(rig.outbox, range(20, 30))  # more arrive while the DHT is down
    assert rig.outbox.depth()["anomaly"] == 20

    await asyncio.to_thread(broker.start)  # same port, same SQLite file
    await eventually(lambda: len(rig.outbox) == 0, 30, "the outbox to drain after the restart")
    # the broker's own store has all 30: the 10 from before the kill survived it
    assert sorted(broker.entries(ANOMALY)) == [f"event-{i:03d}" for i in range(30)]
    assert broker.get(RESULT, "Audio_Anomaly_Detection_Results") == {"n": 28}
    # what the observer saw (it reconnects after the restart) came in outbox order
    seen = _first_seen(broker.writes_to(ANOMALY))
    assert seen[:10] == [f"event-{i:03d}" for i in range(10)] and seen == sorted(seen)


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["standin"], indirect=True)
async def test_5xx_is_retried_until_the_dht_recovers(rig: Rig) -> None:
    """Stand-in: the real broker never answers a 5xx on demand."""
    assert isinstance(rig.broker, DhtStandIn)
    failures = _metric("audioguard_dht_delivery_failures_total", reason="status")
    await asyncio.to_thread(rig.broker.start)
    rig.broker.fail_with(503)
    await rig.sender.start()
    _enqueue_batch(rig.outbox, range(3))
    await eventually(
        lambda: _metric("audioguard_dht_delivery_failures_total", reason="status") >= failures + 3, 10, "5xx"
    )
    assert rig.broker.writes == []

    rig.broker.fail_with(None)
    await eventually(_all_arrived(rig, 3), 20, "3 anomalies after the 5xx stopped")


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["rest", "websocket"], indirect=True)
async def test_frozen_dht_times_out_then_delivers(rig: Rig) -> None:
    """The real broker stopped with SIGSTOP: connections open, nothing answers."""
    broker = rig.broker
    assert isinstance(broker, DhtBroker)
    failures = _metric("audioguard_dht_delivery_failures_total", reason="timeout")
    await asyncio.to_thread(broker.start)
    broker.freeze()
    await rig.sender.start()
    _enqueue_batch(rig.outbox, range(3))
    await eventually(
        lambda: _metric("audioguard_dht_delivery_failures_total", reason="timeout") >= failures + 2,
        15,
        "timeouts",
    )
    assert rig.outbox.depth()["anomaly"] == 3
    broker.thaw()
    await eventually(_all_arrived(rig, 3), 20, "3 anomalies after the broker was thawed")
    assert _first_seen(rig.broker.writes_to(ANOMALY)) == [f"event-{i:03d}" for i in range(3)]


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["standin"], indirect=True)
async def test_a_failing_topic_blocks_only_itself(rig: Rig) -> None:
    """Stand-in: only it can fail one topic and serve another."""
    assert isinstance(rig.broker, DhtStandIn)
    await asyncio.to_thread(rig.broker.start)
    rig.broker.fail_with(500, topic_name=RESULT)
    await rig.sender.start()
    _enqueue_batch(rig.outbox, range(6))

    await eventually(
        lambda: len(rig.broker.writes_to(ANOMALY)) == 6 and rig.outbox.depth()["anomaly"] == 0,
        20,
        "anomalies past a failing topic",
    )
    assert rig.broker.writes_to(RESULT) == []
    assert [m.value["n"] for m in rig.outbox.pending()] == [0, 2, 4]  # results wait, in order

    rig.broker.fail_with(None)
    await eventually(lambda: len(rig.outbox) == 0, 20, "the results")
    assert [w.value["n"] for w in rig.broker.writes_to(RESULT)] == [0, 2, 4]


@pytest.mark.slow
async def test_stop_is_prompt_while_a_post_hangs_and_keeps_the_message(tmp_path: Path) -> None:
    """Stand-in: it tells the moment the post arrived and holds it open."""
    broker = DhtStandIn().start()
    box = Outbox(tmp_path / "outbox.sqlite3", max_items=10)
    client = DhtRestClient(broker.url, timeout=30)
    sender = OutboxSender(box, client, backoff=Backoff(0.05, 0.1))
    try:
        broker.hang(True)
        await sender.start()
        box.enqueue_many([_anomaly(1)])
        await eventually(lambda: len(broker.raw_paths) == 1, 10, "the post to hang")
        started = time.monotonic()
        await sender.stop()
        assert time.monotonic() - started < 2
        assert not sender.running
        assert [m.topic_uuid for m in box.pending()] == ["event-001"]
    finally:
        await client.aclose()
        box.close()
        broker.hang(False)
        await asyncio.to_thread(broker.stop)


_CRASHING_PRODUCER = """
import asyncio, sys
from pathlib import Path
from transformer.dht.backoff import Backoff
from transformer.dht.clients import DhtRestClient
from transformer.dht.outbox import Outbox, OutboxMessage
from transformer.dht.sender import OutboxSender

async def main() -> None:
    outbox = Outbox(Path(sys.argv[1]), max_items=1000)
    # the DHT is unreachable: the sender fails and backs off while we enqueue
    sender = OutboxSender(outbox, DhtRestClient(sys.argv[2], 0.2), backoff=Backoff(0.05, 0.1))
    await sender.start()
    for i in range(int(sys.argv[3])):
        outbox.enqueue_many([OutboxMessage("SIFIS:Audio_Anomaly", f"event-{i:03d}", {"n": i}, "anomaly")])
    print("enqueued", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_messages_of_a_killed_process_are_delivered_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    broker = DhtBroker(tmp_path / "dht")  # the real broker, down while the producer runs
    producer = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_PRODUCER, str(path), broker.url, "25"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert producer.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(producer.stdout.readline), 60)
        assert line.strip() == "enqueued"
        os.kill(producer.pid, signal.SIGKILL)  # no shutdown, no flush, no goodbye
        assert await asyncio.to_thread(producer.wait, 10) == -signal.SIGKILL
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()

    box = Outbox(path, max_items=1000)
    await asyncio.to_thread(broker.start)
    client = DhtRestClient(broker.url, timeout=1)
    sender = OutboxSender(box, client, backoff=Backoff(0.05, 0.2))
    try:
        assert len(box) == 25
        await sender.start()
        await eventually(lambda: len(box) == 0, 20, "the dead process's 25 anomalies")
        assert sorted(broker.entries(ANOMALY)) == [f"event-{i:03d}" for i in range(25)]
        seen = _first_seen(broker.writes_to(ANOMALY))  # the observer connected before the sender
        assert seen == [f"event-{i:03d}" for i in range(25)]
        assert broker.get(ANOMALY, "event-024") == {"n": 24}
    finally:
        await sender.stop()
        await client.aclose()
        box.close()
        await asyncio.to_thread(broker.stop)


def test_an_unusable_outbox_path_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidConfiguration, match="cannot open the DHT outbox"):
        Outbox(blocker / "outbox.sqlite3", max_items=10)
    with pytest.raises(InvalidConfiguration, match="at least 1"):
        Outbox(tmp_path / "o.sqlite3", max_items=0)


@pytest.mark.slow
async def test_full_outbox_while_the_dht_is_down_delivers_what_it_kept(rig: Rig, tmp_path: Path) -> None:
    box = Outbox(tmp_path / "small.sqlite3", max_items=5)
    sender = OutboxSender(box, rig.client, backoff=Backoff(0.05, 0.2), poll_seconds=0.5)
    dropped = _metric("audioguard_outbox_dropped_total", kind="anomaly")
    try:
        await sender.start()  # the DHT is down
        box.enqueue_many([_result(0)])
        for i in range(8):
            box.enqueue_many([_anomaly(i)])
        # policy: the result went first, then the three oldest anomalies
        assert [m.topic_uuid for m in box.pending()] == [f"event-{i:03d}" for i in range(3, 8)]
        assert _metric("audioguard_outbox_dropped_total", kind="anomaly") == dropped + 3
        assert _metric("audioguard_outbox_depth", kind="anomaly") == 5

        await asyncio.to_thread(rig.broker.start)
        await eventually(lambda: len(box) == 0, 20, "the 5 kept anomalies")
        kept = [f"event-{i:03d}" for i in range(3, 8)]
        assert sorted(rig.broker.entries(ANOMALY)) == kept
        assert rig.broker.entries(RESULT) == {}
        _assert_broadcasts_in_order(rig.broker, kept)
    finally:
        await sender.stop()
        box.close()


# --- dead letters ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["standin"], indirect=True)
async def test_a_refused_message_is_set_aside_and_later_anomalies_still_arrive(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stand-in broker (it can refuse one message with a 4xx on demand). A 422 for an anomaly
    is final: it moves to the dead letters instead of blocking its topic forever; a 503 is not."""
    await asyncio.to_thread(rig.broker.start)
    await rig.sender.start()
    refused_before = _metric("audioguard_dht_delivery_failures_total", reason="refused")
    rig.broker.fail_with(422, ANOMALY)
    rig.outbox.enqueue_many([_anomaly(1)])
    await eventually(lambda: rig.outbox.dead_letter_depth()["anomaly"] == 1, 10, "the dead letter")
    rig.broker.fail_with(None)
    rig.outbox.enqueue_many([_anomaly(2), _anomaly(3)])
    await eventually(_all_arrived(rig, 2), 10, "the later anomalies")
    assert _first_seen(rig.broker.writes_to(ANOMALY)) == ["event-002", "event-003"]
    assert _metric("audioguard_dht_delivery_failures_total", reason="refused") == refused_before + 1
    assert _metric("audioguard_outbox_dead_letters", kind="anomaly") == 1

    # a transient refusal is retried, never set aside
    rig.broker.fail_with(503, ANOMALY)
    rig.outbox.enqueue_many([_anomaly(4)])
    await eventually(lambda: rig.outbox.pending() and rig.outbox.pending()[0].attempts >= 2, 10, "retries")
    assert rig.outbox.dead_letter_depth()["anomaly"] == 1
    rig.broker.fail_with(None)
    await eventually(_all_arrived(rig, 3), 10, "the retried anomaly")

    # the command line lists the dead letter and sends it again
    assert dead_letters.main(["list", "--outbox", str(rig.outbox.path), "--values"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert (listed["topic_uuid"], listed["kind"]) == ("event-001", "anomaly")
    assert listed["value"] == {"group": "glass_break", "n": 1}
    assert "422" in listed["reason"]
    assert dead_letters.main(["resend", "--outbox", str(rig.outbox.path), "--id", str(listed["id"])]) == 0
    await eventually(_all_arrived(rig, 4), 10, "the re-sent anomaly")  # within the sender's poll
    assert _first_seen(rig.broker.writes_to(ANOMALY))[-1] == "event-001"
    assert rig.outbox.dead_letter_depth() == {"anomaly": 0, "result": 0}
    assert dead_letters.main(["resend", "--outbox", str(rig.outbox.path), "--id", "999"]) == 2
