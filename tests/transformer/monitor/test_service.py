"""The running monitor (``MonitorService``): real ffmpeg captures, the real VGGish and classifier
in process, the real outbox. The predictor's outage is the one thing made to happen: its first
calls raise as a gRPC call to a stopped predictor would, and the listening must go on."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from prometheus_client import REGISTRY, generate_latest

from audioguard.offline import OfflineClassifier
from contract.errors import ServiceNotReady
from tests.transformer.monitor.test_loop import embedder, recording
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.labels import load_labels
from transformer.analysis.types import PredictorScores
from transformer.dht.delivery import DeliveryService
from transformer.dht.outbox import Outbox
from transformer.monitor.loop import Monitor
from transformer.monitor.notices import Notice
from transformer.monitor.service import MonitorService
from transformer.monitor.sources import SourceSpec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]


async def test_a_predictor_outage_costs_its_steps_not_the_listening(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    recording(tmp_path / "a.wav", 30.0)
    recording(tmp_path / "b.wav", 30.0)
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 10_000)
    calls = {"score": 0}

    async def score(windows: np.ndarray) -> PredictorScores:
        calls["score"] += 1
        if calls["score"] == 1:
            raise ServiceNotReady("the predictor is unavailable")
        return PredictorScores(offline.classifier.predict(windows), False)

    sources = [
        SourceSpec(name="kitchen", url=f"file:{tmp_path / 'a.wav'}", realtime=False),
        SourceSpec(name="hall", url=f"file:{tmp_path / 'b.wav'}", realtime=False),
    ]
    monitor = Monitor(
        sources,
        embed=embedder(offline),
        score=score,
        record=DeliveryService(outbox).record_events,
        groups=load_anomaly_groups(),
        labels=load_labels(),
        session="run-1",
    )
    notices: list[Notice] = []
    # a replay waits: steps of 2 s at most
    service = MonitorService(sources, monitor, queue_chunks=20, notify=notices.append)
    await service.start()
    try:
        await service.wait_sources_done()
        status = service.status()
        metrics = generate_latest(REGISTRY).decode()
    finally:
        await service.stop()

    assert service.failed_steps == 1 and status["failed_steps"] == 1 and status["steps"] >= 2
    # the windows of the failed step are said in their source's last line, never "no anomaly"
    lost = {name: monitor.heard(name).lost_windows for name in ("kitchen", "hall")}
    assert sum(lost.values()) >= 1, lost
    finished = {n.source: n.line() for n in notices if n.kind == "finished"}
    for name, count in lost.items():
        said = f"{count} window{'s' if count > 1 else ''} not analysed (detection failed)"
        assert (said in finished[name]) == (count > 0), finished[name]
    states = {source["name"]: source for source in status["sources"]}
    assert states["kitchen"]["state"] == states["hall"]["state"] == "finished"
    assert states["kitchen"]["seconds_captured"] == pytest.approx(30.0, abs=0.01)
    assert all(source["open_events"] == [] for source in status["sources"])
    # the sources that played out ended their events themselves, each start with its end
    values = [message.value for message in outbox.pending()]
    assert values, "synthetic weights fire groups on any sound"
    for name in ("kitchen", "hall"):
        mine = [v for v in values if v["source"] == name]
        starts = {v["event_id"] for v in mine if v["change"] == "start"}
        ends = {v["event_id"]: v for v in mine if v["change"] == "end"}
        assert starts and starts == set(ends), name
        assert {v["reason"] for v in ends.values()} <= {"source finished", "not heard"}
    assert all(v["weights_official"] is False and "weights_warning" in v for v in values)
    # the figures on /metrics while it ran, and none once it stopped
    assert "audioguard_monitor_failed_steps_total 1.0" in metrics
    assert 'audioguard_monitor_source_up{source="kitchen"} 0.0' in metrics
    assert "audioguard_monitor_source_restarts_total" in metrics
    assert "audioguard_monitor_" not in generate_latest(REGISTRY).decode()


async def test_a_source_whose_every_step_failed_says_so_not_too_short(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """The predictor serves another model for the whole file: its last line says that nothing
    was analysed because detection failed (before: "too short"), and the windows count as lost."""
    recording(tmp_path / "a.wav", 12.0)
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)

    async def score(windows: np.ndarray) -> PredictorScores:
        raise ServiceNotReady("the predictor does not serve model 'audioguard'")

    sources = [SourceSpec(name="hall", url=f"file:{tmp_path / 'a.wav'}", realtime=False)]
    monitor = Monitor(
        sources,
        embed=embedder(offline),
        score=score,
        record=lambda changes, context: None,
        groups=load_anomaly_groups(),
        labels=load_labels(),
    )
    notices: list[Notice] = []
    service = MonitorService(sources, monitor, queue_chunks=20, notify=notices.append)
    await service.start()
    try:
        await service.wait_sources_done()
    finally:
        await service.stop()
    assert service.failed_steps >= 1
    assert monitor.heard("hall").windows == 0 and monitor.heard("hall").lost_windows >= 1
    (finished,) = [n.line() for n in notices if n.kind == "finished"]
    assert finished.endswith("after 12.00 s of audio: nothing analysed (every detection step failed)")


async def test_many_live_sources_at_once_each_get_their_own_events_and_lose_no_audio(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    offline = OfflineClassifier.from_model_dir(synthetic_model_dir)
    recorded: list[dict[str, object]] = []

    async def score(windows: np.ndarray) -> PredictorScores:
        return PredictorScores(offline.classifier.predict(windows), False)

    names = [f"room-{index}" for index in range(12)]
    sources = []
    for index, name in enumerate(names):  # each its own recording, all played at real time
        noise = 0.2 * np.random.default_rng(100 + index).standard_normal(16_000 * 11)
        sf.write(tmp_path / f"{name}.wav", noise, 16_000, subtype="PCM_16")
        sources.append(SourceSpec(name=name, url=f"file:{tmp_path / name}.wav"))
    monitor = Monitor(
        sources,
        embed=embedder(offline),
        score=score,
        record=lambda changes, context: recorded.extend(change.to_dict() for change in changes),
        groups=load_anomaly_groups(),
        labels=load_labels(),
    )
    service = MonitorService(sources, monitor)
    await service.start(register_metrics=False)
    try:
        await service.wait_sources_done()
        status = service.status()
    finally:
        await service.stop()

    for source in status["sources"]:
        assert source["state"] == "finished" and source["dropped_chunks"] == 0, source
        assert source["seconds_captured"] == pytest.approx(11.0, abs=0.01)
    assert len({record["event_id"] for record in recorded}) == len(recorded) // 2  # ids never shared
    for name in names:  # 11 examples: windows at the 10th and 11th, both loud enough to start
        mine = [record for record in recorded if record["source"] == name]
        starts = {record["event_id"] for record in mine if record["change"] == "start"}
        ends = {record["event_id"]: record for record in mine if record["change"] == "end"}
        assert starts and starts == set(ends), name
        assert all(end["reason"] == "source finished" and end["end_seconds"] <= 11 for end in ends.values())
