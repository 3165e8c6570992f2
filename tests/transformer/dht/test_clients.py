"""DHT clients (REST, WebSocket) against the real SIFIS DHT broker, and the stand-in's own protocol.

The stand-in (tests/support/dht_standin.py) is used where only it can show something: the exact
request path sent, a 5xx, a socket closed instead of a write; those tests name it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from contract.errors import DeliveryError
from tests.support.dht_broker import DhtBroker
from tests.support.dht_standin import DhtStandIn, free_port, wait_until
from transformer.dht.clients import (
    DhtRestClient,
    DhtWebSocketClient,
    make_dht_client,
    same_json,
    topic_path,
    websocket_url,
)

TOPIC = "SIFIS:Audio_Anomaly"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def standin() -> Iterator[DhtStandIn]:
    broker = DhtStandIn().start()
    yield broker
    broker.stop()


@pytest.fixture
def real(tmp_path: Path) -> Iterator[DhtBroker]:
    """The real broker, running."""
    broker = DhtBroker(tmp_path / "dht").start()
    yield broker
    broker.stop()


async def _eventually_posts(client: DhtWebSocketClient, value: object, timeout: float) -> None:
    """Retry one post until it succeeds (the socket may be noticed closed only on first use)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.post_persistent(TOPIC, "again", value)
            return
        except DeliveryError:
            if time.monotonic() > deadline:
                raise


# --- pure helpers ---------------------------------------------------------------------------


def test_topic_path_keeps_colons_and_escapes_the_rest() -> None:
    assert (
        topic_path("SIFIS:Audio_Anomaly", "a b/c") == "/topic_name/SIFIS:Audio_Anomaly/topic_uuid/a%20b%2Fc"
    )


def test_websocket_url_from_base_urls() -> None:
    assert websocket_url("http://localhost:3000") == "ws://localhost:3000/ws"
    assert websocket_url("https://dht.home:8443/") == "wss://dht.home:8443/ws"
    assert websocket_url("http://h:1/prefix") == "ws://h:1/prefix/ws"
    assert websocket_url("ws://h:3000") == "ws://h:3000/ws"
    assert websocket_url("ws://h:3000/custom") == "ws://h:3000/custom"
    with pytest.raises(ValueError, match="must start with"):
        websocket_url("ftp://h")


def test_same_json_tolerates_last_bit_float_differences_only() -> None:
    assert same_json({"a": [0.1 + 0.2, 1]}, {"a": [0.3 + 5e-17, 1.0]})
    assert not same_json({"a": 0.3}, {"a": 0.3001})
    assert not same_json({"a": 1}, {"a": True})
    assert not same_json({"a": 1}, {"a": 1, "b": 2})
    assert not same_json([1, 2], [1, 2, 3])
    assert same_json({"x": None, "y": "s"}, {"y": "s", "x": None})


def test_make_dht_client_selects_the_transport() -> None:
    assert isinstance(make_dht_client("http://h:3000", "rest", 1.0), DhtRestClient)
    ws = make_dht_client("http://h:3000", "websocket", 1.0)
    assert isinstance(ws, DhtWebSocketClient) and ws.ws_url == "ws://h:3000/ws"
    with pytest.raises(ValueError, match="unknown DHT transport"):
        make_dht_client("http://h", "mqtt", 1.0)


# --- the stand-in itself: the documented protocol ------------------------------------------------


@pytest.mark.slow
def test_standin_rest_protocol(standin: DhtStandIn) -> None:
    base = standin.url
    assert requests.get(f"{base}/get_all", timeout=5).json() == []
    assert requests.get(f"{base}/topic_name/{TOPIC}", timeout=5).json() == []
    assert requests.get(f"{base}/topic_name/{TOPIC}/topic_uuid/x", timeout=5).json() == {}

    posted = requests.post(
        f"{base}/topic_name/{TOPIC}/topic_uuid/x", data='{"a": 1}', headers=JSON, timeout=5
    )
    assert (posted.status_code, posted.json()) == (200, {"a": 1})
    assert requests.post(f"{base}/topic_name/T/topic_uuid/x", data='{"a": 1}', timeout=5).status_code == 415
    assert (
        requests.post(f"{base}/topic_name/T/topic_uuid/x", data="{", headers=JSON, timeout=5).status_code
        == 400
    )
    requests.post(f"{base}/topic_name/A/topic_uuid/z", data="[2]", headers=JSON, timeout=5)

    assert requests.get(f"{base}/get_all", timeout=5).json() == [
        {"topic_name": "A", "topic_uuid": "z", "value": [2]},
        {"topic_name": TOPIC, "topic_uuid": "x", "value": {"a": 1}},
    ]
    assert requests.get(f"{base}/topic_name/{TOPIC}/topic_uuid/x", timeout=5).json() == {
        "topic_name": TOPIC,
        "topic_uuid": "x",
        "value": {"a": 1},
    }
    assert requests.delete(f"{base}/topic_name/{TOPIC}/topic_uuid/x", timeout=5).json() == {}
    assert requests.get(f"{base}/topic_name/{TOPIC}", timeout=5).json() == []
    assert requests.post(f"{base}/pub", data='{"v": 1}', headers=JSON, timeout=5).json() == {"v": 1}
    assert [w.topic_uuid for w in standin.writes] == ["x", "z"]  # pub is volatile, not stored


@pytest.mark.slow
async def test_standin_websocket_protocol_broadcasts_to_everyone(standin: DhtStandIn) -> None:
    async with connect(standin.ws_url) as writer, connect(standin.ws_url) as observer:
        post = {"RequestPostTopicUUID": {"topic_name": "T", "topic_uuid": "u", "value": {"n": 1}}}
        await writer.send(json.dumps(post))
        expected = {"Persistent": {"value": {"n": 1}, "topic_name": "T", "topic_uuid": "u", "deleted": False}}
        assert json.loads(await asyncio.wait_for(writer.recv(), 5)) == expected  # the writer too
        assert json.loads(await asyncio.wait_for(observer.recv(), 5)) == expected

        await writer.send('"RequestGetAll"')
        answer = {"Response": {"value": [{"topic_name": "T", "topic_uuid": "u", "value": {"n": 1}}]}}
        assert json.loads(await asyncio.wait_for(writer.recv(), 5)) == answer
        await writer.send(json.dumps({"RequestGetTopicUUID": {"topic_name": "T", "topic_uuid": "nope"}}))
        assert json.loads(await asyncio.wait_for(writer.recv(), 5)) == {"Response": {"value": {}}}

        # a REST write reaches WebSocket clients; volatile and delete broadcasts too
        await asyncio.to_thread(
            requests.post, f"{standin.url}/pub", data='{"hello": 1}', headers=JSON, timeout=5
        )
        assert json.loads(await asyncio.wait_for(observer.recv(), 5)) == {"Volatile": {"value": {"hello": 1}}}
        await writer.send(json.dumps({"RequestDeleteTopicUUID": {"topic_name": "T", "topic_uuid": "u"}}))
        deleted = json.loads(await asyncio.wait_for(observer.recv(), 5))["Persistent"]
        assert deleted["deleted"] is True and deleted["value"] == {"n": 1}

        await writer.send("not json")  # the broker drops a client that sends garbage
        with pytest.raises(ConnectionClosed):
            for _ in range(10):  # broadcasts still queued for the writer come first
                await asyncio.wait_for(writer.recv(), 5)


# --- REST client ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_rest_client_posts_persistently_to_the_broker(real: DhtBroker) -> None:
    client = DhtRestClient(real.url + "/", timeout=5)
    value = {"group": "glass_break", "score": 0.93, "triggered_by": [{"index": 441}]}
    try:
        await client.post_persistent(TOPIC, "event-1", value)
        await client.post_persistent(TOPIC, "event-1", {**value, "score": 0.95})  # same key: overwrites
    finally:
        await client.aclose()
    assert real.get(TOPIC, "event-1") == {**value, "score": 0.95}
    assert real.entries(TOPIC) == {"event-1": {**value, "score": 0.95}}


@pytest.mark.slow
async def test_rest_client_keeps_the_colon_unescaped(standin: DhtStandIn) -> None:
    """Stand-in: it records the raw request path (the broker decodes either spelling)."""
    client = DhtRestClient(standin.url, timeout=5)
    try:
        await client.post_persistent(TOPIC, "event-1", {"v": 1})
    finally:
        await client.aclose()
    assert b"/topic_name/SIFIS:Audio_Anomaly/topic_uuid/event-1" in standin.raw_paths


@pytest.mark.slow
async def test_rest_client_fails_on_5xx_hang_and_down(standin: DhtStandIn) -> None:
    """Stand-in: a 5xx on demand (the hang and the outage are also shown on the real broker)."""
    client = DhtRestClient(standin.url, timeout=0.3)
    try:
        standin.fail_with(503)
        with pytest.raises(DeliveryError, match="HTTP 503") as caught:
            await client.post_persistent(TOPIC, "a", {"v": 1})
        assert caught.value.reason == "status"
        standin.fail_with(None)

        standin.hang(True)
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out") as caught:
            await client.post_persistent(TOPIC, "b", {"v": 2})
        assert caught.value.reason == "timeout"
        assert time.monotonic() - started < 3
        standin.hang(False)

        await asyncio.to_thread(standin.stop)
        with pytest.raises(DeliveryError) as caught:
            await client.post_persistent(TOPIC, "c", {"v": 3})
        assert caught.value.reason == "connection"

        await asyncio.to_thread(standin.start)
        await client.post_persistent(TOPIC, "d", {"v": 4})
    finally:
        await client.aclose()
    assert standin.get(TOPIC, "a") is None and standin.get(TOPIC, "d") == {"v": 4}


# --- WebSocket client ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_websocket_client_is_acknowledged_by_the_broadcast(real: DhtBroker) -> None:
    client = DhtWebSocketClient(real.ws_url, timeout=5)
    value = {"score": 0.1 + 0.2, "labels": ("Glass", "Shatter")}  # tuple: JSON makes it a list
    try:
        await asyncio.gather(
            client.post_persistent(TOPIC, "e1", value),
            client.post_persistent(TOPIC, "e2", {"n": 2}),
            client.post_persistent("Other", "e1", {"n": 3}),
        )
    finally:
        await client.aclose()
    # each post returned only once the broker broadcast it back: by then it is stored
    assert real.get(TOPIC, "e1") == {"score": 0.1 + 0.2, "labels": ["Glass", "Shatter"]}
    assert real.get(TOPIC, "e2") == {"n": 2} and real.get("Other", "e1") == {"n": 3}


@pytest.mark.slow
async def test_websocket_client_times_out_on_a_frozen_broker_then_reconnects(real: DhtBroker) -> None:
    client = DhtWebSocketClient(real.ws_url, timeout=0.3)
    try:
        await client.post_persistent(TOPIC, "h", {"v": 0})
        real.freeze()  # SIGSTOP: the socket stays open, no broadcast comes
        with pytest.raises(DeliveryError, match="no echo") as caught:
            await client.post_persistent(TOPIC, "h", {"v": 1})
        assert caught.value.reason == "timeout"
        real.thaw()
        # The broker still applies the held write once thawed (it had received it);
        # wait for that, so the late {"v": 1} cannot land after {"v": 2}.
        await asyncio.to_thread(
            wait_until, lambda: {"v": 1} in [w.value for w in real.writes], 10, "the held write"
        )
        await client.post_persistent(TOPIC, "h", {"v": 2})
    finally:
        await client.aclose()
    assert real.get(TOPIC, "h") == {"v": 2}


@pytest.mark.slow
async def test_websocket_client_survives_a_killed_and_restarted_broker(real: DhtBroker) -> None:
    client = DhtWebSocketClient(real.ws_url, timeout=2)
    try:
        await client.post_persistent(TOPIC, "before", {"v": 0})
        await asyncio.to_thread(real.kill)
        with pytest.raises(DeliveryError) as caught:
            await client.post_persistent(TOPIC, "during", {"v": 1})
        assert caught.value.reason == "connection"
        with pytest.raises(DeliveryError, match="unreachable"):
            await DhtWebSocketClient(real.ws_url, timeout=1).post_persistent(TOPIC, "x", {})
        await asyncio.to_thread(real.start)
        await _eventually_posts(client, {"v": 2}, timeout=10)
    finally:
        await client.aclose()
    assert real.get(TOPIC, "before") == {"v": 0}  # kept in the broker's own SQLite store
    assert real.get(TOPIC, "during") is None
    assert real.get(TOPIC, "again") == {"v": 2}


@pytest.mark.slow
async def test_websocket_client_reconnects_after_a_closed_write(standin: DhtStandIn) -> None:
    """Stand-in: it closes the socket instead of storing a write (the broker never does on demand)."""
    client = DhtWebSocketClient(standin.ws_url, timeout=2)
    try:
        await client.post_persistent(TOPIC, "before", {"v": 0})
        standin.fail_with(500)
        with pytest.raises(DeliveryError) as caught:
            await client.post_persistent(TOPIC, "failing", {"v": 1})
        assert caught.value.reason == "connection"
        standin.fail_with(None)
        await _eventually_posts(client, {"v": 2}, timeout=10)
    finally:
        await client.aclose()
    assert standin.get(TOPIC, "failing") is None
    assert standin.get(TOPIC, "again") == {"v": 2}


@pytest.mark.slow
async def test_websocket_client_reports_an_absent_broker() -> None:
    client = DhtWebSocketClient(f"ws://127.0.0.1:{free_port()}/ws", timeout=1)
    with pytest.raises(DeliveryError, match="unreachable") as caught:
        await client.post_persistent(TOPIC, "x", {"v": 1})
    assert caught.value.reason == "connection"
    await client.aclose()
