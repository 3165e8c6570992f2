"""The monitor end to end in one process: a real ffmpeg capture of a file, the real front end,
VGGish and classifier (synthetic weights in the official formats), events into the real
SQLite outbox; checked against the file path's own analysis of the same recording."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from audioguard.offline import OfflineClassifier
from contract.errors import InvalidConfiguration, ServiceNotReady
from tests.support.records import assert_event_records
from transformer import wiring
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.events import EventChange, LifecycleSettings
from transformer.analysis.labels import load_labels
from transformer.analysis.record_context import RecordContext
from transformer.analysis.types import PredictorScores
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.dht.topics import ANOMALY_TOPIC_NAME
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.loop import EmbedExamples, Monitor, RecordEvents, ScoreWindows
from transformer.monitor.sources import SourceSpec
from transformer.monitor.supervisor import SourceSupervisor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]


def recording(path: Path, seconds: float) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * 16_000)) / 16_000
    signal = 0.3 * np.sin(2 * np.pi * 1200 * t) * (
        np.sin(2 * np.pi * 0.5 * t) > 0
    ) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, signal, 16_000, subtype="PCM_16")


def embedder(offline: OfflineClassifier) -> EmbedExamples:
    """The offline model's VGGish + PCA as the monitor's (awaited) embedder."""

    async def embed(features: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(offline.pipeline.embedder.embed_quantized, features)

    return embed


def instant_monitor(
    sources: list[SourceSpec],
    offline: OfflineClassifier,
    score: ScoreWindows,
    record: RecordEvents,
    *,
    max_not_heard_seconds: float = 60.0,
    embed: EmbedExamples | None = None,
) -> Monitor:
    """A monitor over the synthetic model whose events start on their first hit."""
    return Monitor(
        sources,
        embed=embed or embedder(offline),
        score=score,
        record=record,
        groups=load_anomaly_groups(),
        labels=load_labels(),
        lifecycle=LifecycleSettings(min_hits=1, within_hops=1, max_not_heard_seconds=max_not_heard_seconds),
    )


async def test_a_file_played_as_a_source_gives_the_events_and_records_of_the_file_path(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """One detection path: the recording captured by ffmpeg and listened to as a live source
    (the service's shared embedder, the lifecycle's default 2 hits in 3 hops) raises exactly the
    events the file path finds in the same recording uploaded whole, timed alike."""
    recording(tmp_path / "night.wav", 14.5)
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    delivery = DeliveryService(Outbox(tmp_path / "outbox.sqlite3", 10_000))
    worker = wiring.embedding_worker(offline.settings, offline.pipeline, "test")

    async def score(windows: np.ndarray) -> PredictorScores:
        return PredictorScores(offline.classifier.predict(windows), False)

    spec = SourceSpec(name="replay", url=f"file:{tmp_path / 'night.wav'}", realtime=False)
    monitor = Monitor(
        [spec],
        embed=worker.embed_examples,
        score=score,
        record=delivery.record_events,
        groups=load_anomaly_groups(),
        labels=load_labels(),
        analyzer_id="home-1",
        session="run-1",
    )
    queue: ChunkQueue = ChunkQueue(1000)
    supervisor = SourceSupervisor(spec, queue)
    await asyncio.wait_for(supervisor.run(), 30)  # a file: runs to its end
    assert supervisor.status.state == "finished"
    chunks = []
    while not queue.empty():
        chunks.append(queue.get_nowait())
    chunks.append(Chunk("replay", np.zeros(0), 0.0, 0, final=True, droppable=False))  # as the service ends it
    live = []
    for chunk in chunks:  # one chunk at a time, as they arrive
        live += await monitor.process([chunk])
    worker.close()

    whole = offline.classify((tmp_path / "night.wav").read_bytes())
    assert whole.scanned_seconds == (0.0, pytest.approx(14.4))  # 15 examples: 6 windows at hop 1
    assert whole.changes, "synthetic weights fire groups on any sound: the test needs some"

    def event(change: EventChange) -> dict[str, Any]:
        fields = change.to_dict()
        fields.pop("event_id"), fields.pop("source"), fields.pop("peak_score")
        fields.pop("started_at"), fields.pop("ended_at")  # a live source's wall clock; a file has none
        fields["triggered_by"] = [c["label"] for c in fields["triggered_by"]]
        return fields

    # the scores may differ in float32's last bits (VGGish batched otherwise): never the events
    assert [event(c) for c in live] == [event(c) for c in whole.changes]
    for heard, found in zip(live, whole.changes, strict=True):
        assert heard.peak_score == pytest.approx(found.peak_score, abs=1e-5)
        assert heard.reason in ("", "source finished")
    # what reached the durable outbox: every start and end, valid against the documented schema
    stored = Outbox(tmp_path / "outbox.sqlite3", 10_000).pending()
    assert [message.topic_name for message in stored] == [ANOMALY_TOPIC_NAME] * len(live)
    assert len({message.topic_uuid for message in stored}) == len(stored)
    records = assert_event_records(message.value for message in stored)
    for value in records:
        assert (value["source"], value["origin"], value["session"]) == ("replay", "live", "run-1")
        assert (value["privacy_method"], value["analyzer_id"], value["analysis_id"]) == (
            "none",
            "home-1",
            None,
        )
        # a replay as fast as possible runs ahead of the clock: no wall-clock time, as a file
        assert (value["started_at"], value["ended_at"]) == (None, None)
    assert [r["change"] for r in records] == [c.change for c in live]


def test_unknown_groups_and_a_bad_hop_are_refused(synthetic_model_dir: Path) -> None:
    common = {
        "embed": None,
        "score": None,
        "record": None,
        "groups": load_anomaly_groups(),
        "labels": load_labels(),
    }
    with pytest.raises(InvalidConfiguration, match=r"unknown anomaly group.*glas_break"):
        Monitor([SourceSpec(name="a", url="pulse:x", thresholds={"glas_break": 0.3})], **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfiguration, match="hop"):
        Monitor([], hop=11, **common)  # type: ignore[arg-type]


async def test_a_source_watches_its_own_groups_at_its_own_hop(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    recording(tmp_path / "night.wav", 14.5)  # 15 examples: windows end at examples 10..15
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    scored: list[int] = []

    async def score(windows: np.ndarray) -> PredictorScores:
        scored.append(windows.shape[0])
        return PredictorScores(offline.classifier.predict(windows), False)

    url = f"file:{tmp_path / 'night.wav'}"
    every = SourceSpec(name="every", url=url, realtime=False)
    sparse = SourceSpec(name="sparse", url=url, realtime=False, hop=5, groups=["glass_break"])
    monitor = instant_monitor(
        [every, sparse], offline, score, lambda changes, context: None, max_not_heard_seconds=5.0
    )
    changes = []
    for spec in (every, sparse):
        queue: ChunkQueue = ChunkQueue(1000)
        await asyncio.wait_for(SourceSupervisor(spec, queue).run(), 30)
        changes += await monitor.process([queue.get_nowait() for _ in range(queue.qsize())])
    changes += await monitor.close()
    assert sum(scored) == 6 + 2  # hop 1: windows at examples 10..15; hop 5: at 10 and 15
    assert {c.group for c in changes if c.source == "sparse"} == {"glass_break"}
    assert len({c.group for c in changes if c.source == "every"}) > 1


async def test_a_step_whose_scoring_fails_still_ends_the_sources_that_finished_in_it(
    synthetic_model_dir: Path,
) -> None:
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    down = {"now": False}
    recorded: list[str] = []

    async def score(windows: np.ndarray) -> PredictorScores:
        if down["now"]:
            raise ServiceNotReady("the predictor is unavailable")
        return PredictorScores(offline.classifier.predict(windows), False)

    monitor = instant_monitor(
        [SourceSpec(name="hall", url="pulse:hall")],
        offline,
        score,
        lambda changes, context: recorded.extend(f"{c.change} {c.reason}" for c in changes),
    )
    noise = 0.3 * np.random.default_rng(7).standard_normal(16_000 * 14)
    chunks = [Chunk("hall", part, i * 0.1, 1) for i, part in enumerate(np.split(noise, 140))]
    started = await monitor.process(chunks[:110])  # 11 s: windows scored, events start
    assert started and {c.change for c in started} == {"start"}
    down["now"] = True  # the rest of the audio and the source's end arrive in a step that fails
    with pytest.raises(ServiceNotReady):
        await monitor.process([*chunks[110:], Chunk("hall", np.zeros(0), 14.0, 1, final=True)])
    # the audio of the failed step is lost, but its end is not: every event ends and is recorded
    assert "hall" in monitor.ended and monitor.open_groups("hall") == []
    assert recorded.count("end source finished") == len(started)


async def test_audio_dropped_from_a_live_source_leaves_a_gap_in_time_not_a_splice(
    synthetic_model_dir: Path,
) -> None:
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    windows: list[int] = []

    async def score(stacked: np.ndarray) -> PredictorScores:
        windows.append(stacked.shape[0])
        return PredictorScores(offline.classifier.predict(stacked), False)

    monitor = instant_monitor(
        [SourceSpec(name="hall", url="pulse:hall")], offline, score, lambda c, context: None
    )
    noise = 0.3 * np.random.default_rng(8).standard_normal(16_000 * 14)
    chunks = [Chunk("hall", part, i * 0.1, 1) for i, part in enumerate(np.split(noise, 140))]
    kept = chunks[:50] + chunks[60:]  # the queue dropped 5.0-6.0 s
    changes = [change for chunk in kept for change in await monitor.process([chunk])]
    changes += await monitor.close()
    starts = [c for c in changes if c.change == "start"]
    ends = [c for c in changes if c.change == "end"]
    assert starts and len(ends) == len(starts)  # the events go on across the gap: no second start
    # 0-5 s: 5 examples; 6-14 s: 8 examples from 6.0 s; the ring keeps what was heard before the
    # gap, so windows come at the 10th to 13th example, the last ending at 6 + 8 x 0.96 s
    assert sum(windows) == 4
    assert [end.end_seconds for end in ends] == pytest.approx([6.0 + 8 * 0.96] * len(ends))


def quiet_loud_quiet(seconds: tuple[float, float, float]) -> list[Chunk]:
    """-70 dBFS noise, then noise at -10 dBFS, then -70 dBFS again, as 0.1-s chunks."""
    rng = np.random.default_rng(9)
    levels = zip(seconds, (-70, -10, -70), strict=True)
    parts = [10 ** (db / 20) * rng.standard_normal(int(s * 16_000)) for s, db in levels]
    audio = np.concatenate(parts)
    return [Chunk("door", part, i * 0.1, 1) for i, part in enumerate(np.split(audio, audio.size // 1600))]


@pytest.mark.parametrize("gate", [None, -45.0])
async def test_windows_below_the_gate_cost_no_vggish_and_no_predictor(
    synthetic_model_dir: Path, gate: float | None
) -> None:
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    embedded: list[bytes] = []
    scored: list[int] = []
    changes: list[str] = []

    async def embed(features: np.ndarray) -> np.ndarray:
        embedded.extend(patch.tobytes() for patch in features)
        return offline.pipeline.embedder.embed_quantized(features)

    async def score(windows: np.ndarray) -> PredictorScores:
        scored.append(windows.shape[0])
        return PredictorScores(offline.classifier.predict(windows), False)

    monitor = instant_monitor(
        [SourceSpec(name="door", url="pulse:door", loudness_gate_dbfs=gate)],
        offline,
        score,
        lambda done, context: changes.extend(f"{c.change} {c.reason}" for c in done),
        max_not_heard_seconds=3.0,
        embed=embed,
    )
    chunks = quiet_loud_quiet((11.5, 12.0, 20.0))  # 43.5 s: 45 examples, 36 windows due at hop 1
    await monitor.process(chunks[:115])  # the quiet start: 11 examples, 2 windows due
    if gate is not None:
        assert embedded == [] and scored == []  # nothing of it went to VGGish or the predictor
    for chunk in chunks[115:]:
        await monitor.process([chunk])
    assert len(embedded) == len(set(embedded))  # no example embedded twice
    if gate is None:
        assert (len(embedded), sum(scored)) == (45, 36)  # every example and every window
        assert changes and all(change == "start " for change in changes)  # noise fires them all
    else:
        # examples 11-24 hold loud audio (example i spans 0.96 i to 0.96 i + 0.975 s); the 23
        # windows ending at examples 11-33 hold one of them and are scored; they span examples
        # 2-33, embedded once each; examples 0-1 and 34-44 never reach VGGish
        assert (len(embedded), sum(scored)) == (32, 23)
        # the events end in the quiet that follows, timed by the windows the gate held back
        starts = changes.count("start ")
        assert starts and changes.count("end not heard") == starts and len(changes) == 2 * starts


async def test_after_a_gap_longer_than_a_window_the_ring_starts_again(synthetic_model_dir: Path) -> None:
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    windows: list[int] = []
    ends: list[float] = []

    async def score(stacked: np.ndarray) -> PredictorScores:
        windows.append(stacked.shape[0])
        return PredictorScores(offline.classifier.predict(stacked), False)

    def record(changes: Sequence[EventChange], context: RecordContext) -> None:
        ends.extend(c.end_seconds for c in changes if c.change == "end" and c.end_seconds is not None)

    monitor = instant_monitor([SourceSpec(name="hall", url="pulse:hall")], offline, score, record)
    noise = 0.3 * np.random.default_rng(8).standard_normal(16_000 * 30)
    chunks = [Chunk("hall", part, i * 0.1, 1) for i, part in enumerate(np.split(noise, 300))]
    for kept in chunks[:50] + chunks[170:]:  # the queue dropped 5.0-17.0 s, more than a window
        await monitor.process([kept])
    await monitor.close()
    # 13 examples from 17.0 s: windows at the 10th to 13th; the 5 heard before the gap are in none
    assert sum(windows) == 4
    assert ends and ends == pytest.approx([17.0 + 13 * 0.96] * len(ends))
