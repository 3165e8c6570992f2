"""voices_while_armed on a live source: the real monitor, its modes, speech_mask's speech detector
and the real SQLite outbox, on synthesised speech and alarms (tests/support/speech_synth.py). The
loudness gate (0 dBFS) keeps every window from VGGish and the predictor: the detector reads
speech times only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.detector_beds import rain, room
from tests.support import speech_synth as synth
from tests.support.gated_monitor import chunks, gated_monitor, stereo_wav
from tests.support.leakscan import AudioFingerprints
from tests.support.records import assert_event_records
from transformer.analysis.detectors.voices import GROUP, VoicesSettings
from transformer.analysis.events import EventChange
from transformer.analysis.modes import ModesSpec
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.topics import ANOMALY_TOPIC_NAME
from transformer.monitor.loop import Monitor


def monitor(delivery: DeliveryService) -> Monitor:
    return gated_monitor(delivery, modes=ModesSpec(), sudden_loud=False, voices=VoicesSettings())


def scene(parts: list[tuple[float, np.ndarray]], seconds: float, bed: np.ndarray | None = None) -> np.ndarray:
    """``bed`` (default: room tone) with each sound added at its time."""
    audio = room(seconds, np.random.default_rng(31), dbfs=-45.0) if bed is None else bed
    for at, sound in parts:
        start = round(at * 16_000)
        audio[start : start + sound.size] += sound
    return np.clip(audio, -1, 1)


async def heard(target: Monitor, audio: np.ndarray, arm_at: float | None = None) -> list[EventChange]:
    """``audio`` through the monitor in 0.1-s chunks; the source armed (away) at ``arm_at``."""
    changes = []
    for chunk in chunks(audio):
        if arm_at is not None and chunk.start_seconds == pytest.approx(arm_at):
            voices = target.heard("hall").voices
            assert voices is not None and target.modes is not None
            assert voices.intervals == []  # at home the speech was not even analysed
            await target.modes.request("away", "hall", "api")
        changes += await target.process([chunk])
    return changes + await target.close()


async def test_voices_raise_one_event_only_once_the_source_is_armed(tmp_path: Path) -> None:
    # rain, not room tone: the leak scan below looks for runs of printed PCM values, and room
    # tone's slow waves make runs of small integers that timestamps in the records can match
    bed = rain(60.0, np.random.default_rng(32), dbfs=-30.0)
    speech = [(8.0, synth.speech_like(8.0, seed=1)), (40.0, synth.speech_like(8.0, seed=2))]
    audio = scene(speech, 60.0, bed)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    changes = await heard(monitor(DeliveryService(outbox)), audio, arm_at=30.0)
    assert [(c.change, c.group) for c in changes] == [("start", GROUP), ("end", GROUP)]  # the first: at home
    start, end = changes
    assert start.start_seconds == pytest.approx(40.3, abs=0.4)  # its first syllables (0.1 s in) decide late
    assert end.end_seconds is not None and end.end_seconds == pytest.approx(48.0, abs=0.6)
    assert end.measures["speech_seconds"] >= 5.0
    assert end.triggered_by == () and 0 < end.peak_score <= 1  # the fraction of a window that is speech
    records = assert_event_records(m.value for m in outbox.pending() if m.topic_name == ANOMALY_TOPIC_NAME)
    assert [r["description"] for r in records] == [
        "Audio anomaly started: Voices while nobody should be home (hall)",
        "Audio anomaly ended: Voices while nobody should be home (hall)",
    ]
    outbox.close()
    found = AudioFingerprints.of_wav(stereo_wav(audio), [9.0, 12.0, 41.0, 44.0]).find(
        (tmp_path / "outbox.sqlite3").read_bytes(), "outbox"
    )
    assert found == []


async def test_alarms_sirens_and_screams_are_no_voices_even_when_armed(tmp_path: Path) -> None:
    audio = scene(
        [
            (5.0, synth.beeping_alarm(8.0, level=0.3)),
            (18.0, synth.siren(8.0, level=0.3)),
            (31.0, synth.scream(4.0, level=0.3)),
            (40.0, synth.tone(6.0, 440.0, level=0.3)),
        ],
        50.0,
    )
    changes = await heard(
        monitor(DeliveryService(Outbox(tmp_path / "outbox.sqlite3", 1000))), audio, arm_at=0.0
    )
    assert changes == []
