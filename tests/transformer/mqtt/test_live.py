"""Live sources to MQTT: real ffmpeg captures, the real VGGish and classifier (synthetic
official-format weights) in process, the real outbox, a real Mosquitto; states follow events."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioguard.offline import OfflineClassifier
from tests.support.dht_standin import eventually
from tests.support.leakscan import AudioFingerprints
from tests.support.mosquitto import Mosquitto, Subscriber, retained
from tests.transformer.monitor.test_loop import embedder, recording
from tests.transformer.mqtt.test_sender import config
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.labels import load_labels
from transformer.analysis.types import PredictorScores
from transformer.dht.backoff import Backoff
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.monitor.loop import Monitor
from transformer.monitor.service import MonitorService
from transformer.monitor.sources import SourceSpec
from transformer.mqtt.queue import MqttQueue
from transformer.mqtt.sender import MqttSender
from transformer.wiring.mqtt import mqtt_sources, source_levels

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]


async def test_states_follow_a_live_sources_events_and_no_audio_leaks(
    synthetic_model_dir: Path, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    audio = tmp_path / "a.wav"
    recording(audio, 30.0)
    mono, rate = sf.read(audio)
    sf.write(audio, np.stack([mono, 0.8 * mono], axis=1), rate, subtype="PCM_16")  # the leak scan's stereo
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)

    async def score(windows):  # type: ignore[no-untyped-def]
        return PredictorScores(offline.classifier.predict(windows), False)

    sources = [SourceSpec(name="kitchen", url=f"file:{audio}", realtime=False)]
    groups = load_anomaly_groups()
    outbox = Outbox(tmp_path / "outbox.sqlite3", 10_000, dht=False)
    entities = mqtt_sources(sources, groups)
    sender = MqttSender(
        config(mosquitto, discovery_prefix="homeassistant", level_seconds=0.5),
        outbox,
        MqttQueue(outbox),
        sources=entities,
        backoff=Backoff(0.05, 0.2),
    )
    delivery = DeliveryService(outbox, others=[sender])
    subscriber = Subscriber(mosquitto.port, ["audioguard/#", "homeassistant/#"])
    monitor = Monitor(
        sources, embed=embedder(offline), score=score, record=delivery.record_events, groups=groups,
        labels=load_labels(), session="run-1",
    )  # fmt: skip
    service = MonitorService(sources, monitor, queue_chunks=20)
    sender.levels = source_levels(service)
    await delivery.start()
    await service.start()
    try:
        await service.wait_sources_done()
        await eventually(lambda: sender.status()["pending"] == 0, 20, "every record published")
    finally:
        await service.stop()
        await delivery.stop()
        subscriber.close()

    records = [m.json() for m in subscriber.all() if m.topic.endswith("/event")]
    assert records, "synthetic weights fire groups on any sound"
    for group in {record["group"] for record in records}:
        topic = f"audioguard/kitchen/{group}/state"
        # a repeated OFF is no change (the source's OFF when it played out may precede its ends')
        states = [payload for payload, _ in itertools.groupby(m.payload for m in subscriber.on(topic))]
        # OFF at the start, then ON and OFF in turn: one pair per event of the group
        assert states[0] == b"OFF" and states[1:] == [b"ON", b"OFF"] * (len(states[1:]) // 2), states
        events = [r for r in records if r["group"] == group]
        assert len(states[1:]) == len(events)
    held = await asyncio.to_thread(retained, mosquitto.port, "audioguard/+/+/state")
    assert held and set(held.values()) == {b"OFF"}  # nothing stuck ON
    watched = {group.name for group in entities[0].groups}
    assert {
        m.topic.split("/")[3] for m in subscriber.all() if m.topic.startswith("homeassistant/binary_sensor")
    } == {f"kitchen_{name}" for name in watched}
    # no audio and no fingerprint of it (samples, digests) in anything published
    fingerprints = AudioFingerprints.of_wav(audio.read_bytes(), [0.5, 3.0, 7.5, 12.0])
    published = b"\n".join(m.topic.encode() + b" " + m.payload for m in subscriber.all())
    findings = fingerprints.find(published, "MQTT messages")
    assert not findings, "audio found:\n" + "\n".join(map(str, findings))
