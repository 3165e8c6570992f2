"""The DHT request listener: file-name safety, and subscription against the real SIFIS DHT broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contract.errors import InvalidConfiguration, InvalidInput, InvalidParameter
from tests.support.dht_broker import DhtBroker
from tests.support.dht_standin import eventually
from tests.support.serverutil import free_port
from transformer import wiring
from transformer.dht.backoff import Backoff
from transformer.dht.listener import RequestListener, resolve_audio_file
from transformer.dht.topics import REQUEST_TOPIC_NAME as REQUEST_TOPIC
from transformer.settings import TransformerSettings

REQUEST_UUID = "Audio_Anomaly_Detection"


def request_value(audio_file: object, request_id: str, **extra: Any) -> dict[str, Any]:
    """A request as the SIFIS NSSD writes it (docs/reference/sifis.md)."""
    return {
        "description": "Privacy-Aware Audio Anomaly Detection",
        "requestor_id": "nssd-1",
        "requestor_type": "NSSD",
        "request_id": request_id,
        "Type": "Audio_file",
        "audio_file": audio_file,
        "method": "scrample",
        **extra,
    }


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "kitchen.wav").write_bytes(b"RIFF-kitchen-bytes")
    (folder / "hall.flac").write_bytes(b"fLaC-hall-bytes")
    (tmp_path / "secret.wav").write_bytes(b"outside the folder")
    os.symlink(tmp_path / "secret.wav", folder / "link.wav")
    (folder / "sub").mkdir()
    return folder


# --- file names ----------------------------------------------------------------------------------


def test_plain_file_names_inside_the_folder_resolve(audio_dir: Path) -> None:
    assert resolve_audio_file(audio_dir, "kitchen.wav") == (audio_dir / "kitchen.wav").resolve()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../secret.wav", "plain file name"),
        ("sub/../kitchen.wav", "plain file name"),
        ("/etc/passwd", "plain file name"),
        ("..\\secret.wav", "plain file name"),
        ("..", "plain file name"),
        ("", "plain file name"),
        ("kitchen.wav\x00.txt", "plain file name"),
        (42, "plain file name"),
        (None, "plain file name"),
        ("link.wav", "leads outside the audio folder"),
        ("sub", "is not a file"),
        ("missing.wav", "is not a file"),
    ],
)
def test_names_that_leave_the_folder_or_name_no_file_are_refused(
    audio_dir: Path, name: object, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_audio_file(audio_dir, name)


def test_the_root_needs_a_dht_url_and_an_existing_folder(tmp_path: Path, audio_dir: Path) -> None:
    async def process(audio: bytes, request: dict[str, Any]) -> None:
        return None

    with pytest.raises(InvalidConfiguration, match="needs dht_url"):
        wiring.request_listener(TransformerSettings(listener_audio_dir=audio_dir), process)
    with pytest.raises(InvalidConfiguration, match="existing folder"):
        wiring.request_listener(
            TransformerSettings(dht_url="http://h:3000", listener_audio_dir=tmp_path / "nope"), process
        )
    with pytest.raises(InvalidConfiguration, match="must start with"):
        wiring.request_listener(TransformerSettings(dht_url="ftp://h", listener_audio_dir=audio_dir), process)
    listener = wiring.request_listener(
        TransformerSettings(
            dht_url="http://dht:3000/",
            listener_audio_dir=audio_dir,
            listener_topic="Home:Requests",
            max_upload_mb=0.5,
        ),
        process,
    )
    assert (listener.ws_url, listener.topic_name) == ("ws://dht:3000/ws", "Home:Requests")
    assert listener.max_file_bytes == 512 * 1024

    # unless renamed, it answers the topic the SIFIS NSSD writes its requests to
    default = wiring.request_listener(
        TransformerSettings(dht_url="http://dht:3000/", listener_audio_dir=audio_dir), process
    )
    reference = (Path(__file__).parents[3] / "docs" / "reference" / "sifis.md").read_text("utf-8")
    assert f"- request: topic `{default.topic_name}`, uuid `{REQUEST_UUID}`" in reference


class CountingBackoff(Backoff):
    """A fast backoff that records the failure counts the listener asks delays for."""

    def __init__(self) -> None:
        super().__init__(0.01, 0.02)
        self.failures: list[int] = []

    def delay(self, failures: int) -> float:
        self.failures.append(failures)
        return super().delay(failures)


async def test_the_listener_backs_off_by_consecutive_failures_while_the_dht_is_unreachable(
    audio_dir: Path,
) -> None:
    async def process(audio: bytes, request: dict[str, Any]) -> None:
        return None

    backoff = CountingBackoff()
    listener = RequestListener(f"ws://127.0.0.1:{free_port()}/ws", audio_dir, process, backoff=backoff)
    await listener.start()
    try:
        await eventually(lambda: len(backoff.failures) >= 3, 10, "three failed connections")
    finally:
        await listener.stop()
    assert backoff.failures[:3] == [1, 2, 3] and listener.connections == 0

    # without one, the first reconnect comes within 0.5 s and a long outage is retried every 15-30 s
    default = RequestListener("ws://h/ws", audio_dir, process).backoff
    assert 0.25 <= default.delay(1) <= 0.5 and 15.0 <= default.delay(1000) <= 30.0


# --- against the stand-in DHT ------------------------------------------------------------------------


@dataclass
class Recorder:
    """The injected ``process``: records what it was given; fails for request ids in ``failing``."""

    calls: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    async def __call__(self, audio: bytes, request: dict[str, Any]) -> None:
        self.calls.append((audio, request))
        if request["request_id"] in self.failing:
            raise RuntimeError("analysis failed")

    def request_ids(self) -> list[str]:
        return [request["request_id"] for _, request in self.calls]


@dataclass
class ListenerRig:
    broker: DhtBroker
    listener: RequestListener
    recorder: Recorder


@pytest.fixture
async def rig(audio_dir: Path, tmp_path: Path) -> AsyncIterator[ListenerRig]:
    """A running broker and a listener (not started) with fast reconnects."""
    broker = DhtBroker(tmp_path / "dht")
    await asyncio.to_thread(broker.start)
    recorder = Recorder()
    listener = RequestListener(
        broker.ws_url, audio_dir, recorder, max_file_bytes=1000, backoff=Backoff(0.05, 0.2)
    )
    yield ListenerRig(broker, listener, recorder)
    await listener.stop()
    await asyncio.to_thread(broker.stop)


async def _subscribed(rig: ListenerRig, connections: int = 1) -> None:
    # the broker subscribes a WebSocket to its broadcasts before it completes the handshake
    await eventually(lambda: rig.listener.connections >= connections, 10, "the listener's subscription")


async def _post_request(broker: DhtBroker, value: Any, topic: str = REQUEST_TOPIC) -> None:
    await asyncio.to_thread(broker.post, topic, REQUEST_UUID, value)


@pytest.mark.slow
async def test_a_request_on_the_topic_processes_the_named_file(rig: ListenerRig, audio_dir: Path) -> None:
    await rig.listener.start()
    await _subscribed(rig)
    request = request_value("kitchen.wav", "req-1")
    await _post_request(rig.broker, request)

    await eventually(lambda: len(rig.recorder.calls) == 1, 10, "the request to be processed")
    assert rig.recorder.calls[0] == ((audio_dir / "kitchen.wav").read_bytes(), request)


@pytest.mark.slow
async def test_a_request_without_a_type_is_processed_as_the_analytics_api_does(
    rig: ListenerRig, audio_dir: Path
) -> None:
    await rig.listener.start()
    await _subscribed(rig)
    request = request_value("kitchen.wav", "untyped")
    del request["Type"]
    await _post_request(rig.broker, request)

    await eventually(lambda: len(rig.recorder.calls) == 1, 10, "the untyped request to be processed")
    assert rig.recorder.calls[0] == ((audio_dir / "kitchen.wav").read_bytes(), request)


@pytest.mark.slow
async def test_unsafe_foreign_and_malformed_requests_are_ignored(rig: ListenerRig) -> None:
    await rig.listener.start()
    await _subscribed(rig)
    ignored = [
        request_value("../secret.wav", "traversal"),
        request_value("link.wav", "symlink-out"),
        request_value("/etc/passwd", "absolute"),
        request_value("missing.wav", "missing"),
        request_value("kitchen.wav", "wrong-type", Type="Video_file"),
    ]
    for value in ignored:
        await _post_request(rig.broker, value)
    await _post_request(rig.broker, ["not", "an", "object"])
    await _post_request(rig.broker, request_value("kitchen.wav", "other-topic"), topic="SIFIS:Other")
    await asyncio.to_thread(rig.broker.post, "SIFIS:Other", "x", {"unrelated": True})
    # the broker broadcasts in order: once this one is processed, the others were seen
    await _post_request(rig.broker, request_value("hall.flac", "last"))

    await eventually(lambda: "last" in rig.recorder.request_ids(), 10, "the last request")
    assert rig.recorder.request_ids() == ["last"]
    assert rig.recorder.calls[0][0] == b"fLaC-hall-bytes"


@pytest.mark.slow
async def test_a_file_above_the_size_limit_is_refused(rig: ListenerRig, audio_dir: Path) -> None:
    (audio_dir / "long.wav").write_bytes(b"x" * 1001)
    await rig.listener.start()
    await _subscribed(rig)
    await _post_request(rig.broker, request_value("long.wav", "too-big"))
    await _post_request(rig.broker, request_value("kitchen.wav", "fits"))
    await eventually(lambda: "fits" in rig.recorder.request_ids(), 10, "the small file")
    assert rig.recorder.request_ids() == ["fits"]


@pytest.mark.slow
async def test_a_failing_analysis_does_not_stop_the_listener(rig: ListenerRig) -> None:
    rig.recorder.failing.add("boom")
    await rig.listener.start()
    await _subscribed(rig)
    await _post_request(rig.broker, request_value("kitchen.wav", "boom"))
    await eventually(lambda: rig.recorder.request_ids() == ["boom"], 10, "the failing request")
    await _post_request(rig.broker, request_value("kitchen.wav", "after"))
    await eventually(lambda: rig.recorder.request_ids() == ["boom", "after"], 10, "the next request")


@pytest.mark.slow
async def test_listener_reconnects_after_the_dht_goes_down_and_comes_back(rig: ListenerRig) -> None:
    await rig.listener.start()
    await _subscribed(rig)
    await _post_request(rig.broker, request_value("kitchen.wav", "before"))
    await eventually(lambda: rig.recorder.request_ids() == ["before"], 10, "the first request")

    await asyncio.to_thread(rig.broker.stop)
    await eventually(lambda: not rig.listener.connected.is_set(), 10, "the listener to notice")
    await asyncio.to_thread(rig.broker.start)
    await _subscribed(rig, connections=2)

    await _post_request(rig.broker, request_value("kitchen.wav", "after"))
    await eventually(lambda: rig.recorder.request_ids() == ["before", "after"], 10, "the request after")


@pytest.mark.slow
async def test_listener_started_while_the_dht_is_down_connects_when_it_comes_up(
    audio_dir: Path, tmp_path: Path
) -> None:
    broker = DhtBroker(tmp_path / "dht")  # not started: connection refused
    recorder = Recorder()
    listener = RequestListener(broker.ws_url, audio_dir, recorder, backoff=Backoff(0.05, 0.2))
    try:
        await listener.start()
        assert listener.connections == 0
        await asyncio.to_thread(broker.start)
        await eventually(lambda: listener.connected.is_set(), 10, "the first connection")
        await _post_request(broker, request_value("kitchen.wav", "first"))
        await eventually(lambda: recorder.request_ids() == ["first"], 10, "the request")
    finally:
        await listener.stop()
        await asyncio.to_thread(broker.stop)


@pytest.mark.slow
async def test_a_mode_request_goes_to_the_modes_callback_and_a_bad_one_does_not_stop_the_listener(
    rig: ListenerRig, audio_dir: Path
) -> None:
    applied: list[dict[str, Any]] = []

    async def modes(request: dict[str, Any]) -> object:
        if request.get("mode") not in ("home", "away", "night"):
            raise InvalidParameter("'mode' must be one of home, away, night")
        applied.append(request)
        return None

    listener = RequestListener(
        rig.broker.ws_url, audio_dir, rig.recorder, backoff=Backoff(0.05, 0.2), modes=modes
    )
    await listener.start()
    try:
        await eventually(lambda: listener.connections >= 1, 10, "the listener's subscription")
        await _post_request(rig.broker, {"Type": "Audio_mode", "mode": "holiday", "request_id": "bad"})
        mode = {"Type": "Audio_mode", "mode": "away", "source": "hall", "request_id": "m-1", "note": "x"}
        await _post_request(rig.broker, mode)
        await _post_request(rig.broker, request_value("kitchen.wav", "after"))  # still listening
        await eventually(lambda: "after" in rig.recorder.request_ids(), 10, "the file request after them")
        assert applied == [{"mode": "away", "source": "hall"}]  # only the mode's own fields
        assert rig.recorder.request_ids() == ["after"]  # a mode request is never read as a file one
    finally:
        await listener.stop()
