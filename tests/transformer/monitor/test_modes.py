"""Modes on live sources: the real monitor, its mode board and the real SQLite outbox. A group the
source's mode does not watch raises nothing; a request changes the mode at once; every change is a
record valid against docs/schemas/audio-mode-change.json. The source's loudness gate (0 dBFS)
keeps every window from VGGish and the predictor: sudden_loud reads loudness only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.detector_beds import Burst, room, with_bursts
from tests.support.gated_monitor import chunks, gated_monitor
from tests.support.records import assert_event_records, assert_mode_records
from transformer.analysis.modes import ModesSpec
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.topics import ANOMALY_TOPIC_NAME, MODE_TOPIC_NAME


async def test_a_group_its_mode_does_not_watch_raises_nothing_until_a_request_arms_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    audio = with_bursts(room(60.0, rng), [Burst(15.0, 18.0), Burst(45.0, 18.0)], rng)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    monitor = gated_monitor(DeliveryService(outbox), modes=ModesSpec(groups={"home": ["glass_break"]}))
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
