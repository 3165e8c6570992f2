"""Calibration on synthetic score streams: the thresholds it picks meet the budget on held-out
streams of the same kind, it refuses too little audio with the minimum, and its groups file
loads as the service's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioguard.evaluation.calibrate import (
    TooLittleAudio,
    calibrate,
    event_counts,
    groups_document,
    minimum_hours,
    parse_budget,
    refuse_short,
    upper_rate,
)
from audioguard.evaluation.drive import Heard
from contract.constants import EXAMPLE_SECONDS
from contract.errors import InvalidParameter
from tests.support.cli import run_audioguard
from transformer.analysis.anomalies import Detector, WindowSpan
from transformer.analysis.anomaly_groups import AnomalyGroup, load_anomaly_groups
from transformer.analysis.events import LifecycleSettings
from transformer.analysis.labels import load_labels

GRID = tuple(round(float(t), 2) for t in np.arange(0.3, 1.0, 0.05))
#: a group of one class (column 0 of the synthetic rows), its shipped threshold 0.5
GROUP = AnomalyGroup("siren", "Siren", (0,), 0.5)


def household(hours: float, seed: int) -> Heard:
    """A source's window scores for ``hours``: a low background, and now and then (10 per hour
    on average) a few windows of something siren-like scoring 0.3-0.95, as a television would."""
    rng = np.random.default_rng(seed)
    count = int(hours * 3600 / EXAMPLE_SECONDS)
    scores = rng.beta(2, 14, count)
    for start in rng.integers(0, count - 8, rng.poisson(10 * hours)):
        scores[start : start + rng.integers(2, 7)] = rng.uniform(0.3, 0.95)
    heard = Heard(detector=Detector((GROUP,), load_labels()), lifecycle=LifecycleSettings())
    for index, score in enumerate(scores):
        end = (index + 10) * EXAMPLE_SECONDS
        heard.hops.append(end)
        heard.windows[end] = (WindowSpan(end - 10 * EXAMPLE_SECONDS, end), np.array([score], np.float32))
    heard.seconds = count * EXAMPLE_SECONDS
    return heard


def test_the_thresholds_chosen_meet_the_budget_on_held_out_streams() -> None:
    per_hour = parse_budget("2/hour")
    training = [household(4.0, seed) for seed in (1, 2)]
    (choice,) = calibrate(training, ["siren"], per_hour, grid=GRID)
    assert choice.threshold is not None
    # the shipped 0.5 would cry wolf far more often than the budget on this household
    shipped = event_counts(training, ["siren"], [0.5])["siren"][0.5]
    assert shipped / 8.0 > 3 * per_hour
    # tight: the next lower threshold of the grid would not be shown within the budget
    lower = GRID[GRID.index(choice.threshold) - 1]
    assert upper_rate(choice.counts[lower], 8.0, 0.95) > per_hour
    for seed in (11, 12, 13):
        held_out = household(4.0, seed)
        events = event_counts([held_out], ["siren"], [choice.threshold])["siren"][choice.threshold]
        assert events / 4.0 <= per_hour, f"seed {seed}: {events} events in 4 h"


def test_too_little_audio_is_refused_with_the_minimum_needed() -> None:
    assert minimum_hours(1 / 168, 0.95) == pytest.approx(503.3, abs=0.1)  # 1/week: 3.0 weeks
    with pytest.raises(
        TooLittleAudio,
        match=r"10 minutes of audio cannot show at most 1 false alarm per week .* "
        r"at least 503.3 h \(21.0 days\)",
    ):
        refuse_short(10 / 60, parse_budget("1/week"), 0.95)
    with pytest.raises(TooLittleAudio, match=r"^12 seconds of audio cannot show"):  # not "0 minutes"
        refuse_short(12 / 3600, parse_budget("1/week"), 0.95)
    with pytest.raises(TooLittleAudio, match=r"at least 71.9 h \(3.0 days\)"):
        calibrate([household(1.0, 0)], ["siren"], parse_budget("1/day"), grid=GRID)
    for bad in ("1 per day", "0/day", "2/month", "x/hour"):
        with pytest.raises(InvalidParameter, match="budget"):
            parse_budget(bad)
    # zero events in T hours bound the rate at -ln(0.05)/T: the "rule of three"
    assert upper_rate(0, 10.0, 0.95) == pytest.approx(-np.log(0.05) / 10)


def test_the_groups_file_written_is_loaded_by_the_service(tmp_path: Path) -> None:
    (choice,) = calibrate([household(2.0, 5)], ["siren"], parse_budget("4/hour"), grid=GRID)
    document = groups_document([choice], 4.0, 2.0, 0.95)
    path = tmp_path / "calibrated.json"
    path.write_text(json.dumps(document))
    groups = {group.name: group for group in load_anomaly_groups(path)}
    assert groups["siren"].threshold == choice.threshold != 0.5
    assert groups["glass_break"].threshold == 0.4  # the others keep the shipped thresholds
    assert "4 false alarms per hour" in str(document["description"])


def test_the_command_refuses_short_audio_before_the_model_loads(tmp_path: Path) -> None:
    import soundfile as sf

    sf.write(tmp_path / "ten-minutes.wav", np.zeros(16000 * 600, np.int16), 16000)
    done = run_audioguard(
        "calibrate",
        str(tmp_path / "ten-minutes.wav"),
        "--budget",
        "1/week",
        "--model-dir",
        str(tmp_path / "none"),
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "refused: 10 minutes of audio cannot show at most 1 false alarm per week at 95% confidence: "
        "that takes at least 503.3 h (21.0 days) of audio (with no false alarm in it); "
        "give more audio, a looser budget or a lower --confidence"
    ]
