"""The learned loudness baseline: a running percentile per hour of day, stored as numbers only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.errors import InvalidConfiguration
from transformer.analysis.detectors.baseline import ALL_HOURS, BaselineStore, HourlyBaseline


def test_each_hour_learns_its_own_percentile_and_falls_back_to_the_day_while_learning() -> None:
    rng = np.random.default_rng(5)
    baseline = HourlyBaseline(quantile=0.5, min_count=500)
    assert baseline.level(3) is None  # nothing heard: still learning
    for level in rng.normal(-50.0, 3.0, 4000):  # night: quiet
        baseline.add(float(level), 3)
    for level in rng.normal(-30.0, 3.0, 4000):  # afternoon: a street outside
        baseline.add(float(level), 15)
    assert baseline.level(3) == pytest.approx(-50.0, abs=1.0)
    assert baseline.level(15) == pytest.approx(-30.0, abs=1.0)
    assert baseline.counts[ALL_HOURS] == 8000
    assert baseline.level(9) == baseline.levels[ALL_HOURS]  # an hour not heard yet: the whole day's
    high = HourlyBaseline(quantile=0.9, min_count=10)
    for level in rng.normal(-40.0, 5.0, 20000):
        high.add(float(level), 0)
    assert high.level(0) == pytest.approx(-40.0 + 1.2816 * 5.0, abs=1.0)  # the normal's 90th percentile


def test_the_store_keeps_numbers_across_a_restart_and_refuses_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "baselines.json"
    learned = HourlyBaseline()
    for level in np.linspace(-60, -40, 700):
        learned.add(float(level), 22)
    BaselineStore(path).save({"hall": learned})
    document = json.loads(path.read_text())
    assert set(document) == {"version", "sources"} and set(document["sources"]) == {"hall"}
    assert set(document["sources"]["hall"]) == {"levels", "counts"}  # numbers, nothing else
    restored = HourlyBaseline()
    store = BaselineStore(path)  # a new process reads it
    assert store.restore("hall", restored) and not store.restore("kitchen", HourlyBaseline())
    assert restored.level(22) == pytest.approx(learned.level(22), abs=1e-3)
    assert restored.counts == learned.counts
    store.save({"kitchen": HourlyBaseline()})  # another source saved: the first one stays
    assert set(json.loads(path.read_text())["sources"]) == {"hall", "kitchen"}
    assert [p.name for p in path.parent.iterdir()] == ["baselines.json"]  # no temporary left behind

    path.write_text("{not json")
    with pytest.raises(InvalidConfiguration, match=r"baselines file .* is not valid JSON"):
        BaselineStore(path)
    path.write_text(json.dumps({"version": 1, "sources": {"hall": {"levels": [1, 2], "counts": [0, 0]}}}))
    with pytest.raises(InvalidConfiguration, match="source hall: a baseline has 25 levels and counts"):
        BaselineStore(path).restore("hall", HourlyBaseline())
