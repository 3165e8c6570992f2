"""Modes on live sources: the real monitor, its mode board and the real SQLite outbox. A group the
source's mode does not watch raises nothing; a request changes the mode at once; every change is a
record valid against docs/schemas/audio-mode-change.json. The source's loudness gate (0 dBFS)
keeps every window from VGGish and the predictor: sudden_loud reads loudness only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.detector_beds import Burst, room, with_bursts
from tests.support.records import assert_event_records, assert_mode_records
from tests.transformer.monitor.test_sudden_loud import chunks, never_embedded, never_scored
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.detectors import DETECTOR_GROUPS
from transformer.analysis.labels import load_labels
from transformer.analysis.modes import ModeBoard, ModesSpec
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.topics import ANOMALY_TOPIC_NAME, MODE_TOPIC_NAME
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec


async def test_a_group_its_mode_does_not_watch_raises_nothing_until_a_request_arms_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    audio = with_bursts(room(60.0, rng), [Burst(15.0, 18.0), Burst(45.0, 18.0)], rng)
    groups = load_anomaly_groups()
    board = ModeBoard(
        ModesSpec(groups={"home": ["glass_break"]}),  # at home only glass; away: every group
        {"hall": None},
        [group.name for group in groups] + list(DETECTOR_GROUPS),
    )
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    delivery = DeliveryService(outbox)
    monitor = Monitor(
        [SourceSpec(name="hall", url="pulse:hall", loudness_gate_dbfs=0.0, sudden_loud=True)],
        embed=never_embedded,
        score=never_scored,
        record=delivery.record_events,
        groups=groups,
        labels=load_labels(),
        session="run-1",
        modes=board,
        record_modes=delivery.record_mode_changes,
    )
    pieces = chunks(audio)
    heard = []
    for chunk in pieces[:300]:  # 30 s at home: the first burst is not watched for
        heard += await monitor.process([chunk])
    assert heard == []
    assert monitor.modes is not None
    [armed] = await monitor.modes.request("away", "hall", "api")
    assert (armed.mode, armed.previous) == ("away", "home")
    for chunk in pieces[300:]:
        heard += await monitor.process([chunk])
    heard += await monitor.close()
    assert [(c.change, c.group) for c in heard] == [("start", "sudden_loud"), ("end", "sudden_loud")]
    assert heard[0].start_seconds == pytest.approx(45.0, abs=0.12)

    stored = outbox.pending()
    modes = assert_mode_records(m.value for m in stored if m.topic_name == MODE_TOPIC_NAME)
    assert [(r["mode"], r["previous_mode"], r["set_by"]) for r in modes] == [
        ("home", None, "start"),
        ("away", "home", "api"),
    ]
    assert modes[0]["groups"] == ["glass_break"] and "sudden_loud" in modes[1]["groups"]
    assert len({m.topic_uuid for m in stored if m.topic_name == MODE_TOPIC_NAME}) == 2  # the history kept
    events = assert_event_records(m.value for m in stored if m.topic_name == ANOMALY_TOPIC_NAME)
    assert [r["change"] for r in events] == ["start", "end"]
