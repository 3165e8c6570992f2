"""sudden_loud on a live source: the real monitor (front end, ring, lifecycle), the real SQLite
outbox and baselines file. The source's loudness gate (0 dBFS) holds every window back from
VGGish and the predictor: the detector reads loudness only, so nothing is embedded or scored."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from bench.detector_beds import Burst, rain, room, with_bursts
from contract.errors import InvalidConfiguration
from tests.support.gated_monitor import EPOCH, chunks, gated_monitor, stereo_wav
from tests.support.leakscan import AudioFingerprints
from tests.support.records import assert_event_records
from transformer.analysis.detectors.baseline import BaselineStore
from transformer.analysis.detectors.sudden_loud import GROUP
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import parse_sources
from transformer.settings import TransformerSettings


def monitor(delivery: DeliveryService, store: BaselineStore | None) -> Monitor:
    return gated_monitor(delivery, baselines=store)


async def listen(target: Monitor, audio: np.ndarray) -> list[str]:
    changes = []
    for chunk in chunks(audio):
        changes += await target.process([chunk])
    changes += await target.close()
    return [f"{c.change} {c.group} {c.start_seconds:.2f}" for c in changes]


async def test_a_burst_on_a_live_source_is_one_recorded_event_and_nothing_of_the_audio_is_stored(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(11)
    # a bed whose PCM values are no run of small integers a record (or SQLite's bytes) shows by
    # chance: band-limited noise, loud enough (room tone's slow waves cross zero in runs of 0s)
    bed = rain(40.0, rng, dbfs=-25.0)
    audio = np.round(with_bursts(bed, [Burst(25.0, 18.0)], rng) * 32767) / 32767
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    store = BaselineStore(tmp_path / "baselines.json")
    heard = await listen(monitor(DeliveryService(outbox), store), audio)
    assert [line.rsplit(" ", 1)[0] for line in heard] == [f"start {GROUP}", f"end {GROUP}"]
    assert float(heard[0].rsplit(" ", 1)[1]) == pytest.approx(25.0, abs=0.12)
    records = assert_event_records(message.value for message in outbox.pending())
    assert [r["change"] for r in records] == ["start", "end"]
    assert records[0]["origin"] == "live" and records[0]["started_at"] is not None
    assert records[0]["measures"]["rise_db"] >= 12.0
    outbox.close()
    fingerprints = AudioFingerprints.of_wav(stereo_wav(audio), [5.0, 25.0, 25.1, 30.0])
    for path in (tmp_path / "outbox.sqlite3", tmp_path / "baselines.json"):
        assert path.exists() and fingerprints.find(path.read_bytes(), path.name) == []


async def test_the_learned_baseline_survives_a_restart_and_judges_a_burst_before_any_background(
    tmp_path: Path,
) -> None:
    """After a restart the source's baseline for the hour is known at once: a burst one second in
    (before a short-term background exists) is an event; a monitor without the stored baseline
    has nothing to judge it against."""
    rng = np.random.default_rng(12)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    path = tmp_path / "baselines.json"
    assert await listen(monitor(DeliveryService(outbox), BaselineStore(path)), room(70.0, rng)) == []
    hour = datetime.fromtimestamp(EPOCH + 35.0).hour
    learned = json.loads(path.read_text())["sources"]["hall"]
    assert learned["counts"][hour] == 72 * 8  # each 0.12-s part of the 72 examples of 70 s, once
    assert learned["levels"][hour] == pytest.approx(-50.0, abs=1.5)

    early = with_bursts(room(20.0, rng), [Burst(1.0, 18.0)], rng)
    restarted = await listen(monitor(DeliveryService(outbox), BaselineStore(path)), early)
    assert [line.rsplit(" ", 1)[0] for line in restarted] == [f"start {GROUP}", f"end {GROUP}"]
    fresh = await listen(monitor(DeliveryService(outbox), BaselineStore(tmp_path / "none.json")), early)
    assert fresh == []


def test_a_sources_file_turns_it_on_per_source_and_bad_values_are_named() -> None:
    [on, off, tuned] = parse_sources(
        {
            "sources": [
                {"name": "a", "url": "pulse:a", "sudden_loud": True},
                {"name": "b", "url": "pulse:b", "sudden_loud": False},
                {"name": "c", "url": "pulse:c", "sudden_loud": {"rise_db": 20, "floor_dbfs": -30}},
            ]
        }
    )
    assert on.sudden_loud is True and off.sudden_loud is False
    assert tuned.sudden_loud is not None and not isinstance(tuned.sudden_loud, bool)
    assert (tuned.sudden_loud.rise_db, tuned.sudden_loud.floor_dbfs) == (20, -30)
    with pytest.raises(InvalidConfiguration) as raised:
        parse_sources({"sources": [{"name": "a", "url": "pulse:a", "sudden_loud": {"rise_db": 100}}]})
    assert "sources.0.sudden_loud" in raised.value.message
    assert "rise_db must be between 3 and 60 dB, got 100" in raised.value.message
    with pytest.raises(InvalidConfiguration, match=r"sudden_loud.*rise.*Extra inputs are not permitted"):
        parse_sources({"sources": [{"name": "a", "url": "pulse:a", "sudden_loud": {"rise": 10}}]})
    with pytest.raises(ValidationError, match=r"sudden_loud_rise_db must be between 3 and 60 dB, got 1\.0"):
        TransformerSettings(sudden_loud_rise_db=1.0)
