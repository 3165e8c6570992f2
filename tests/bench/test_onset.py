"""The onset benchmark on the synthetic weights: every burst becomes one event, placed where it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import onset_benchmark

pytestmark = pytest.mark.slow


def test_a_trial_knows_where_its_burst_is() -> None:
    case = onset_benchmark.trial(3)
    assert 12.0 <= case.onset < case.end <= case.onset + 2.0
    rate = onset_benchmark.RATE
    before = case.audio[int((case.onset - 1.0) * rate) : int((case.onset - 0.1) * rate)]
    during = case.audio[int(case.onset * rate) : int((case.onset + 0.1) * rate)]
    assert (during**2).mean() > 4 * (before**2).mean()  # the burst stands out of the background


def test_events_of_files_and_live_sources_are_placed_within_a_fraction_of_a_second(
    synthetic_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        onset_benchmark.main(
            ["--model_dir", str(synthetic_model_dir), "--trials", "3", "--methods", "none,speech_mask"]
        )
        == 0
    )
    rows = re.findall(
        r"^\| (\S+) \| (file|live) \| (\d+)/3 \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) s \|",
        capsys.readouterr().out,
        re.M,
    )
    assert {(method, road) for method, road, *_ in rows} == {
        (method, road) for method in ("none", "speech_mask") for road in ("file", "live")
    }
    for _method, _road, found, _p50, _p95, worst in rows:
        assert int(found) == 3 and float(worst) <= 0.25  # the goal is 1 s
