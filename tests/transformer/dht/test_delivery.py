"""What one analysis posts to the DHT (messages, topics, post mode) and the delivery service."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.errors import InvalidConfiguration, ServiceNotReady
from tests.support.analysis_rig import analysed
from tests.support.dht_broker import DhtBroker
from tests.support.dht_standin import eventually
from tests.support.live_events import live_context, live_event, onset_to_delivery
from tests.support.records import assert_event_records
from transformer import wiring
from transformer.analysis.records import recording_event_records
from transformer.analysis.types import AnalysisOptions, AnalysisResult
from transformer.dht.clients import DhtRestClient, DhtWebSocketClient
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox, OutboxMessage
from transformer.dht.records import PostMode, analysis_messages
from transformer.dht.topics import ANOMALY_TOPIC_NAME as ANOMALY_TOPIC
from transformer.dht.topics import RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID
from transformer.settings import TransformerSettings

RESULTS_TOPIC = (RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID)
SIFIS = AnalysisOptions(
    requestor_id="nssd-1",
    requestor_type="NSSD",
    request_id="req-9",
    audio_file="kitchen.wav",
    sifis_method="scrample",
    privacy_method="scramble",
    origin="sifis",
)


def recording(hot_windows: dict[str, list[int]], **options: Any) -> AnalysisResult:
    """A recording analysed by the real analysis (tests/support/analysis_rig.py)."""
    return analysed(hot_windows, dataclasses.replace(SIFIS, **options))


def record_uuid(event_id: str, change: str) -> str:
    """The topic uuid docs/anomalies-and-dht.md documents, written out independently."""
    return str(uuid.uuid5(uuid.UUID(event_id), change))


# --- messages --------------------------------------------------------------------------------------


def test_default_topics_are_the_sifis_ones() -> None:
    assert RESULTS_TOPIC == (
        "SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results",
        "Audio_Anomaly_Detection_Results",
    )
    assert ANOMALY_TOPIC == "SIFIS:Audio_Anomaly"


def messages_of(result: AnalysisResult, post_mode: PostMode = "anomalies") -> list[OutboxMessage]:
    return analysis_messages(result.sifis_value, recording_event_records(result), post_mode=post_mode)


def test_each_event_posts_a_start_and_an_end_then_the_result_lists_the_events() -> None:
    result = recording({"glass_break": [0, 1, 2], "scream": [4, 5]})
    messages = messages_of(result)

    glass, scream = result.anomalies
    assert [(m.topic_name, m.topic_uuid, m.kind) for m in messages] == [
        (ANOMALY_TOPIC, record_uuid(glass["event_id"], "start"), "anomaly"),
        (ANOMALY_TOPIC, record_uuid(scream["event_id"], "start"), "anomaly"),
        (ANOMALY_TOPIC, record_uuid(glass["event_id"], "end"), "anomaly"),
        (ANOMALY_TOPIC, record_uuid(scream["event_id"], "end"), "anomaly"),
        (*RESULTS_TOPIC, "result"),
    ]
    records = assert_event_records(m.value for m in messages[:4])
    assert len({m.topic_uuid for m in messages[:4]}) == 4  # records never overwrite each other
    start, end = records[0], records[2]
    assert start["description"] == "Audio anomaly started: Glass breaking (kitchen.wav)"
    assert (start["change"], start["end_seconds"], start["window_end_seconds"]) == ("start", None, None)
    # glass: hits 0-2, unheard for 5 s from window 2's end (11.52 s) at window 7's end (16.32 s)
    assert (end["change"], end["reason"], end["group"]) == ("end", "not heard", "glass_break")
    assert (end["window_start_seconds"], end["window_end_seconds"]) == (0.0, 11.52)
    assert records[3]["reason"] == "source finished"  # scream: heard until 14.4 s
    for name, value in (("requestor_id", "nssd-1"), ("request_id", "req-9"), ("audio_file", "kitchen.wav")):
        assert start[name] == value and end[name] == value
    assert (start["origin"], start["source"], start["analysis_id"]) == (
        "sifis",
        "kitchen.wav",
        result.analysis_id,
    )
    assert (start["session"], start["privacy_method"]) == (None, "scramble")
    # a record raised by synthetic weights says so on its own, as the result does
    assert start["weights_official"] is False and "official model weights" in start["weights_warning"]
    assert start["detected_at"].endswith("+00:00")

    value = messages[4].value
    assert (
        value["anomalies"]
        == result.anomalies
        == [
            {k: end[k] for k in glass},
            {k: records[3][k] for k in scream},
        ]
    )
    assert (value["request_id"], value["method"], value["privacy_method"]) == (
        "req-9",
        "scrample",
        "scramble",
    )


def test_post_mode_decides_whether_a_quiet_result_is_posted() -> None:
    quiet = recording({})
    assert messages_of(quiet, "anomalies") == []
    (only,) = messages_of(quiet, "all")
    assert (only.topic_name, only.topic_uuid, only.kind, only.value["anomalies"]) == (
        *RESULTS_TOPIC,
        "result",
        [],
    )
    # with an event, the result is posted in both modes
    assert len(messages_of(recording({"siren": [0, 1]}), "anomalies")) == 3


def test_the_same_event_record_always_has_the_same_uuid_so_a_resend_overwrites_itself() -> None:
    result = recording({"fire": [2, 3]})
    first = messages_of(result)
    again = messages_of(result)
    other = messages_of(recording({"fire": [2, 3]}))  # another analysis: another event
    assert [m.topic_uuid for m in first] == [m.topic_uuid for m in again]
    assert first[0].topic_uuid != other[0].topic_uuid


# --- the service -------------------------------------------------------------------------------------


def test_record_stores_durably_before_returning(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_items=100)
    service = DeliveryService(outbox, post_mode="anomalies")
    service.record_analysis(recording({}))  # nothing to post
    loud = recording({"glass_break": [0, 1]})
    service.record_analysis(loud)
    outbox.close()

    reopened = Outbox(tmp_path / "outbox.sqlite3", max_items=100)
    try:
        event_id = loud.anomalies[0]["event_id"]
        assert [(m.topic_name, m.topic_uuid) for m in reopened.pending()] == [
            (ANOMALY_TOPIC, record_uuid(event_id, "start")),
            (ANOMALY_TOPIC, record_uuid(event_id, "end")),
            RESULTS_TOPIC,
        ]
    finally:
        reopened.close()


def test_an_unwritable_outbox_is_a_503_not_a_silent_loss(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_items=100)
    service = DeliveryService(outbox)
    outbox.close()  # the database is gone from under the service
    with pytest.raises(ServiceNotReady, match="could not be written") as caught:
        service.record_analysis(recording({"glass_break": [0, 1]}))
    assert caught.value.status_code == 503


def test_the_root_validates_and_selects_the_transport(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="needs dht_url"):
        wiring.delivery_service(TransformerSettings(outbox_path=tmp_path / "a.sqlite3"))
    with pytest.raises(InvalidConfiguration, match="must start with"):
        wiring.delivery_service(
            TransformerSettings(dht_url="ftp://h", dht_transport="websocket", outbox_path=tmp_path / "b")
        )
    with pytest.raises(InvalidConfiguration, match="dht_post"):
        DeliveryService(Outbox(tmp_path / "c.sqlite3", 10), post_mode="some")  # type: ignore[arg-type]

    for transport, kind in (("rest", DhtRestClient), ("websocket", DhtWebSocketClient)):
        service = wiring.delivery_service(
            TransformerSettings(
                dht_url="http://dht:3000",
                dht_transport=transport,
                dht_timeout_seconds=2.5,
                outbox_path=tmp_path / f"{transport}.sqlite3",
            )
        )
        assert service.sender is not None
        assert isinstance(service.sender.client, kind)
        service.outbox.close()


@pytest.mark.slow
async def test_configured_topics_and_mode_reach_the_dht(tmp_path: Path) -> None:
    broker = DhtBroker(tmp_path / "dht")
    await asyncio.to_thread(broker.start)
    settings = TransformerSettings(
        dht_url=broker.url,
        dht_post="all",
        outbox_path=tmp_path / "outbox.sqlite3",
        dht_results_topic="Home:Results",
        dht_results_uuid="latest",
        dht_anomaly_topic="Home:Alarm",
    )
    service = wiring.delivery_service(settings)
    try:
        await service.start()
        loud = await asyncio.to_thread(recording, {"smoke_fire_alarm": [0, 1]})
        await asyncio.to_thread(
            service.record_analysis, await asyncio.to_thread(recording, {}, request_id="quiet")
        )
        await asyncio.to_thread(service.record_analysis, loud)
        await eventually(lambda: len(service.outbox) == 0, 20, "delivery")
        await service.stop()

        assert [w.value["request_id"] for w in broker.writes_to("Home:Results")] == ["quiet", "req-9"]
        assert broker.get("Home:Results", "latest")["anomalies"][0]["group"] == "smoke_fire_alarm"
        event_id = loud.anomalies[0]["event_id"]
        assert sorted(broker.entries("Home:Alarm")) == sorted(
            record_uuid(event_id, change) for change in ("start", "end")
        )
        assert_event_records(broker.entries("Home:Alarm").values())
        assert broker.entries(ANOMALY_TOPIC) == {} and broker.get(*RESULTS_TOPIC) is None
    finally:
        await service.stop()
        await asyncio.to_thread(broker.stop)


async def test_a_live_start_record_delivered_is_observed_from_its_sound(tmp_path: Path) -> None:
    """``audioguard_event_delivery_seconds{sink="dht"}``: a live event's start (its ``started_at``)
    to the DHT's acknowledgement of its start record (the outbox holds records, not JSON text)."""
    broker = DhtBroker(tmp_path / "dht")
    await asyncio.to_thread(broker.start)
    settings = TransformerSettings(dht_url=broker.url, outbox_path=tmp_path / "outbox.sqlite3")
    service = wiring.delivery_service(settings)
    count, total = onset_to_delivery("dht", "count"), onset_to_delivery("dht", "sum")
    try:
        await service.start()
        changes = live_event("hall", datetime.now(UTC) - timedelta(seconds=3))
        await asyncio.to_thread(service.record_events, changes, live_context("hall"))
        await eventually(lambda: len(service.outbox) == 0, 20, "delivery")
        assert len(broker.entries(ANOMALY_TOPIC)) == 2
    finally:
        await service.stop()
        await asyncio.to_thread(broker.stop)
    assert onset_to_delivery("dht", "count") == count + 1
    assert 3.0 <= onset_to_delivery("dht", "sum") - total < 3.0 + 20


@pytest.mark.slow
async def test_a_burst_over_several_topics_reaches_the_real_broker_one_post_at_a_time(tmp_path: Path) -> None:
    """The pinned broker stops answering for good under concurrent REST posts (two clients posting at
    once hung it after ~64 posts, found on the cluster): the sender keeps one post in flight, so a
    backlog of four topics (an outbox flushed after an outage) all arrives and the broker still answers."""
    from transformer.dht.sender import OutboxSender

    broker = DhtBroker(tmp_path / "dht")
    await asyncio.to_thread(broker.start)
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_items=10_000)
    topics = [f"Burst:{n}" for n in range(4)]
    messages = [
        OutboxMessage(
            topic, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{i}")), {"i": i, "pad": "x" * 400}, "anomaly"
        )
        for i in range(150)
        for topic in topics
    ]
    outbox.enqueue_many(messages)
    sender = OutboxSender(outbox, DhtRestClient(broker.url, timeout=5.0))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(sender._inflight))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        await sender.start()
        await eventually(lambda: len(outbox) == 0, 120, "the burst delivered")
        assert all(len(broker.entries(topic)) == 150 for topic in topics)
        assert broker.get(topics[0], messages[0].topic_uuid) == {"i": 0, "pad": "x" * 400}
        assert peak == 1
    finally:
        watcher.cancel()
        await sender.stop()
        await asyncio.to_thread(broker.stop)
