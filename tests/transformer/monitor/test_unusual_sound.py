"""unusual_sound on a live source: the real monitor with the synthetic VGGish and classifier in the
official formats (random weights: the embeddings are random projections of the log-mel, which
still tell a beeping alarm from rain), a model learnt on rain, calibrated, then judging. No label
group is watched, so only the detector can raise an event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from audioguard.offline import OfflineClassifier
from bench.detector_beds import rain
from tests.support import speech_synth as synth
from tests.support.gated_monitor import chunks
from transformer.analysis.detectors.novelty import GROUP, NoveltySettings, NoveltyStore
from transformer.analysis.events import EventChange
from transformer.analysis.labels import load_labels
from transformer.analysis.types import PredictorScores
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec

pytestmark = pytest.mark.slow

SETTINGS = NoveltySettings(learning_seconds=192.0, quantile=0.999)  # 200 examples: 100 + 100


def monitor(offline: OfflineClassifier, store: NoveltyStore, changes: list[EventChange]) -> Monitor:
    async def embed(features: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(offline.pipeline.embedder.embed_quantized, features)

    async def score(windows: np.ndarray) -> PredictorScores:
        return PredictorScores(offline.classifier.predict(windows), False)

    return Monitor(
        [SourceSpec(name="hall", url="pulse:hall")],
        embed=embed,
        score=score,
        record=lambda done, context: changes.extend(done),
        groups=[],  # no label group: the synthetic classifier fires them on any sound
        labels=load_labels(),
        novelty=SETTINGS,
        novelty_store=store,
    )


async def test_quiet_on_the_rain_it_learnt_and_raised_by_an_alarm_it_never_heard(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    rng = np.random.default_rng(41)
    audio = rain(290.0, rng, dbfs=-30.0)
    alarm = synth.beeping_alarm(8.0, level=0.1)
    audio[270 * 16_000 : 270 * 16_000 + alarm.size] += alarm
    changes: list[EventChange] = []
    store = NoveltyStore(tmp_path / "novelty")
    listening = monitor(offline, store, changes)
    pieces = chunks(audio)
    for chunk in pieces[:2600]:  # 260 s of rain: learnt (200 examples), then judged
        await listening.process([chunk])
    novelty = listening.heard("hall").novelty
    assert novelty is not None and novelty.state == "active"
    assert changes == []  # the rain after the learning: nothing
    for chunk in pieces[2600:]:
        await listening.process([chunk])
    await listening.close()
    starts = [c for c in changes if c.change == "start"]
    assert [c.group for c in starts] == [GROUP]
    assert 265.0 <= starts[0].start_seconds <= 271.0  # the window's farthest example holds the alarm
    assert (
        len(starts[0].triggered_by) == 3 and starts[0].measures["novelty"] > starts[0].measures["threshold"]
    )

    restarted = monitor(offline, store, [])  # what was learnt is kept across a restart
    kept = restarted.heard("hall").novelty
    assert kept is not None and (kept.state, kept.threshold) == ("active", novelty.threshold)
