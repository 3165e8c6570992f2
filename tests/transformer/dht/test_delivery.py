"""What one analysis posts to the DHT (messages, topics, post mode) and the delivery service."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from contract.errors import InvalidConfiguration, ServiceNotReady
from tests.support.dht_broker import DhtBroker
from tests.support.dht_standin import eventually
from transformer.analysis.anomalies import Anomaly, TriggeringClass
from transformer.dht.clients import DhtRestClient, DhtWebSocketClient
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.records import build_messages
from transformer.dht.topics import ANOMALY_TOPIC_NAME as ANOMALY_TOPIC
from transformer.dht.topics import RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID
from transformer.settings import TransformerSettings

RESULTS_TOPIC = (RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID)

#: the namespace documented in docs/anomalies-and-dht.md, written out independently
EVENT_NAMESPACE = uuid.UUID("6f1d3c2a-8e4b-5a7c-9d0e-a1b2c3d4e5f6")
ANALYSIS_ID = "analyzer-12024-05-01T10:00:00.000000Zabc123"


def result_value(**changes: Any) -> dict[str, Any]:
    """A SIFIS result value as ``transformer.dht.records.result_value`` produces it."""
    return {
        "description": "Privacy-Aware Audio Anomaly Detection Results",
        "requestor_id": "nssd-1",
        "requestor_type": "NSSD",
        "request_id": "req-9",
        "analyzer_id": "analyzer-1",
        "analysis_id": ANALYSIS_ID,
        "audio_file": "kitchen.wav",
        "method": "scrample",
        "privacy_method": "scramble",
        "predictions": [{"label_id": "/m/07q0yl5", "label": "Shatter", "probability": 0.8}],
        "anomalies": [],
        "weights_official": False,
        "weights_warning": "not the official weights",
        **changes,
    }


def anomaly(group: str, window: int, score: float = 0.8) -> Anomaly:
    return Anomaly(
        group=group,
        label=group.replace("_", " ").capitalize(),
        score=score,
        threshold=0.4,
        start_seconds=9.6 * window,
        end_seconds=9.6 * (window + 1),
        window_index=window,
        triggered_by=(TriggeringClass(443, "Shatter", score),),
    )


def event_uuid(group: str, window: int) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{ANALYSIS_ID}\n{group}\n{window}"))


# --- messages --------------------------------------------------------------------------------------


def test_default_topics_are_the_sifis_ones() -> None:
    assert RESULTS_TOPIC == (
        "SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results",
        "Audio_Anomaly_Detection_Results",
    )
    assert ANOMALY_TOPIC == "SIFIS:Audio_Anomaly"


def test_each_anomaly_gets_its_own_event_then_the_result_carries_them_all() -> None:
    found = [anomaly("glass_break", 0), anomaly("scream", 0, 0.6), anomaly("glass_break", 1)]
    messages = build_messages(result_value(), found)

    assert [(m.topic_name, m.topic_uuid, m.kind) for m in messages] == [
        (ANOMALY_TOPIC, event_uuid("glass_break", 0), "anomaly"),
        (ANOMALY_TOPIC, event_uuid("scream", 0), "anomaly"),
        (ANOMALY_TOPIC, event_uuid("glass_break", 1), "anomaly"),
        (*RESULTS_TOPIC, "result"),
    ]
    assert len({m.topic_uuid for m in messages[:3]}) == 3  # events never overwrite each other

    event = messages[2].value
    assert event["description"] == "Audio anomaly: Glass break"
    assert event["event_id"] == event_uuid("glass_break", 1)
    assert (event["group"], event["window_index"], event["score"]) == ("glass_break", 1, 0.8)
    assert (event["start_seconds"], event["end_seconds"]) == pytest.approx((9.6, 19.2))
    assert event["triggered_by"] == [{"index": 443, "label": "Shatter", "score": 0.8}]
    for name in ("analyzer_id", "analysis_id", "requestor_id", "requestor_type", "request_id", "audio_file"):
        assert event[name] == result_value()[name]
    # an event raised by synthetic weights says so on its own, as the result does
    assert (event["weights_official"], event["weights_warning"]) == (False, "not the official weights")
    assert event["detected_at"].endswith("+00:00")

    result = messages[3].value
    assert {k: v for k, v in result.items() if k != "anomalies"} == {
        k: v for k, v in result_value().items() if k != "anomalies"
    }
    assert [(a["group"], a["window_index"]) for a in result["anomalies"]] == [
        ("glass_break", 0),
        ("scream", 0),
        ("glass_break", 1),
    ]


def test_post_mode_decides_whether_a_quiet_result_is_posted() -> None:
    assert build_messages(result_value(), [], post_mode="anomalies") == []
    (only,) = build_messages(result_value(), [], post_mode="all")
    assert (only.topic_name, only.topic_uuid, only.kind, only.value["anomalies"]) == (
        *RESULTS_TOPIC,
        "result",
        [],
    )
    # with an anomaly, the result is posted in both modes
    assert len(build_messages(result_value(), [anomaly("siren", 0)], post_mode="anomalies")) == 2


def test_a_result_without_the_sifis_fields_is_refused() -> None:
    value = result_value()
    del value["predictions"], value["request_id"]
    with pytest.raises(ValueError, match="lacks request_id, predictions"):
        build_messages(value, [])


def test_same_analysis_gives_the_same_event_uuids_so_a_resend_overwrites_itself() -> None:
    first = build_messages(result_value(), [anomaly("fire", 2)])
    again = build_messages(result_value(), [anomaly("fire", 2)])
    other = build_messages(result_value(analysis_id="another"), [anomaly("fire", 2)])
    assert first[0].topic_uuid == again[0].topic_uuid != other[0].topic_uuid


# --- the service -------------------------------------------------------------------------------------


def test_record_stores_durably_before_returning(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_items=100)
    service = DeliveryService(outbox, post_mode="anomalies")
    service.record(result_value(), [])  # nothing to post
    service.record(result_value(), [anomaly("glass_break", 0)])
    outbox.close()

    reopened = Outbox(tmp_path / "outbox.sqlite3", max_items=100)
    try:
        assert [(m.topic_name, m.topic_uuid) for m in reopened.pending()] == [
            (ANOMALY_TOPIC, event_uuid("glass_break", 0)),
            RESULTS_TOPIC,
        ]
    finally:
        reopened.close()


def test_an_unwritable_outbox_is_a_503_not_a_silent_loss(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_items=100)
    service = DeliveryService(outbox)
    outbox.close()  # the database is gone from under the service
    with pytest.raises(ServiceNotReady, match="could not be written") as caught:
        service.record(result_value(), [anomaly("glass_break", 0)])
    assert caught.value.status_code == 503


def test_from_settings_validates_and_selects_the_transport(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="needs dht_url"):
        DeliveryService.from_settings(TransformerSettings(outbox_path=tmp_path / "a.sqlite3"))
    with pytest.raises(InvalidConfiguration, match="must start with"):
        DeliveryService.from_settings(
            TransformerSettings(dht_url="ftp://h", dht_transport="websocket", outbox_path=tmp_path / "b")
        )
    with pytest.raises(InvalidConfiguration, match="dht_post"):
        DeliveryService(Outbox(tmp_path / "c.sqlite3", 10), post_mode="some")  # type: ignore[arg-type]

    for transport, kind in (("rest", DhtRestClient), ("websocket", DhtWebSocketClient)):
        service = DeliveryService.from_settings(
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
    service = DeliveryService.from_settings(settings)
    try:
        await service.start()
        await asyncio.to_thread(service.record, result_value(request_id="quiet"), [])
        await asyncio.to_thread(service.record, result_value(), [anomaly("smoke_fire_alarm", 0)])
        await eventually(lambda: len(service.outbox) == 0, 20, "delivery")
        await service.stop()

        assert [w.value["request_id"] for w in broker.writes_to("Home:Results")] == ["quiet", "req-9"]
        assert broker.get("Home:Results", "latest")["anomalies"][0]["group"] == "smoke_fire_alarm"
        assert list(broker.entries("Home:Alarm")) == [event_uuid("smoke_fire_alarm", 0)]
        assert broker.entries(ANOMALY_TOPIC) == {} and broker.get(*RESULTS_TOPIC) is None
    finally:
        await service.stop()
        await asyncio.to_thread(broker.stop)
