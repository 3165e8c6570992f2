"""The threshold control counts what the service raises: stored window scores replayed through
the real lifecycle give, at any threshold, the events the monitor itself raised at that threshold
on the same scores.

The monitor runs for real (its front end, ring, loudness gate, detection step, event tracker,
a reconnect) over generated audio; only the two model calls are scripted so that both runs see
the same scores window by window: the embedder gives zeros and the scorer a fixed sequence of
glass_break scores (bursty, with runs above and below the thresholds tried).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.events import EventChange, LifecycleSettings
from transformer.analysis.labels import load_labels
from transformer.analysis.record_context import RecordContext
from transformer.analysis.types import PredictorScores
from transformer.monitor.chunks import Chunk
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec
from transformer.ui.store import UiStore
from transformer.ui.tune import groups_snippet, replay

LIFECYCLE = LifecycleSettings(min_hits=2, within_hops=3, max_not_heard_seconds=3.0)
GROUP = "glass_break"


def chunks() -> list[Chunk]:
    """70 s of noise in two capture segments (a reconnect after 40 s), loud with a quiet stretch
    longer than a window in each (windows the gate holds back), as 0.1-s chunks."""
    rng = np.random.default_rng(26)
    out = []
    for segment, blocks in ((1, ((15, -10.0), (13, -70.0), (12, -10.0))), (2, ((18, -10.0), (12, -70.0)))):
        levels = np.concatenate([np.full(seconds * 10, db) for seconds, db in blocks])
        for i, db in enumerate(levels):
            out.append(Chunk("door", 10 ** (db / 20) * rng.standard_normal(1600), i * 0.1, segment))
    return out


def scripted_scores() -> np.ndarray:
    """Glass-break scores of successive scored windows: bursts of high and low values."""
    rng = np.random.default_rng(7)
    steps = rng.choice([0.1, 0.35, 0.55, 0.8], size=400, p=[0.4, 0.2, 0.2, 0.2])
    return np.repeat(steps, rng.integers(1, 4, size=400))[:400]


async def run_monitor(threshold: float, store: UiStore) -> list[EventChange]:
    groups = load_anomaly_groups()
    members = list(next(group for group in groups if group.name == GROUP).members)
    script = iter(scripted_scores())
    raised: list[EventChange] = []

    async def embed(features: np.ndarray) -> np.ndarray:
        return np.zeros((features.shape[0], 128), dtype=np.uint8)

    async def score(windows: np.ndarray) -> PredictorScores:
        rows = np.zeros((windows.shape[0], 527), dtype=np.float32)
        for row in rows:
            row[members] = next(script)
        return PredictorScores(rows, False)

    def record(changes: list[EventChange], context: RecordContext) -> None:
        raised.extend(changes)
        store.add_events(changes, context)

    monitor = Monitor(
        [SourceSpec(name="door", url="pulse:door", loudness_gate_dbfs=-40.0, thresholds={GROUP: threshold})],
        embed=embed,
        score=score,
        record=record,
        groups=groups,
        labels=load_labels(),
        lifecycle=LIFECYCLE,
        session=f"run-{threshold}",
        observe=store.add_windows,
    )
    for chunk in chunks():
        await monitor.process([chunk])
    await monitor.close()
    return [change for change in raised if change.group == GROUP and change.change == "start"]


@pytest.mark.parametrize("other", [0.3, 0.5, 0.7])
async def test_the_count_at_a_candidate_threshold_is_what_the_monitor_raised_there(
    tmp_path: Path, other: float
) -> None:
    first = UiStore(tmp_path / "first.sqlite3", 1)
    raised_first = await run_monitor(0.5, first)
    raised_other = await run_monitor(other, UiStore(tmp_path / "other.sqlite3", 1))
    windows = first.windows("door", 0.0)
    assert {w.segment for w in windows} == {1, 2}  # the reconnect is in the stored windows
    assert any(w.scores is None for w in windows)  # and windows the gate held back
    assert len(raised_first) >= 3  # something to count
    at_current = replay(windows, GROUP, 0.5, LIFECYCLE)
    assert len(at_current.starts) == len(raised_first)
    at_other = replay(windows, GROUP, other, LIFECYCLE)
    assert len(at_other.starts) == len(raised_other)
    # the same events: they start on the same windows
    assert [c.window_start_seconds for c in at_other.starts] == [c.window_start_seconds for c in raised_other]


def test_the_mqtt_cooldown_keeps_back_starts_soon_after_an_end(tmp_path: Path) -> None:
    from transformer.monitor.window_scores import WindowScores

    hits = [0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0]
    windows = [
        WindowScores("door", "s", 1, i * 0.96, i * 0.96 + 9.6, 1000.0 + i * 0.96, -10.0, {GROUP: s}, {})
        for i, s in enumerate(hits * 2)
    ]
    lifecycle = LifecycleSettings(min_hits=2, within_hops=2, max_not_heard_seconds=2.0)
    counted = replay(windows, GROUP, 0.5, lifecycle)
    assert len(counted.starts) == 4 and counted.published == 4
    quieted = replay(windows, GROUP, 0.5, lifecycle, cooldown_seconds=60.0)
    assert len(quieted.starts) == 4 and quieted.published == 1


def test_the_snippet_is_a_sources_file_entry() -> None:
    import yaml

    snippet = groups_snippet(GROUP, 0.62, "hall")
    assert yaml.safe_load(snippet) == {"sources": [{"name": "hall", "thresholds": {GROUP: 0.62}}]}
