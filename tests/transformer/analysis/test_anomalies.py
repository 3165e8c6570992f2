"""Anomaly detection on hand-built scores (the groups file: test_anomaly_groups.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from tests.support.anomaly_table import csv_display_names, window_bounds
from transformer.analysis.anomalies import Anomaly, detect_anomalies
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.audio.loudness import EXAMPLE_HOP_SAMPLES, example_dbfs, window_dbfs


def _group(name: str, members: tuple[int, ...], threshold: float, enabled: bool = True) -> AnomalyGroup:
    return AnomalyGroup(name, name.replace("_", " ").title(), members, threshold, enabled)


# --- detection ------------------------------------------------------------------------------


def test_threshold_is_inclusive_and_just_below_does_not_fire() -> None:
    group = _group("glass_break", (441, 443), 0.5)
    scores = np.zeros((2, 527))
    scores[0, 443] = 0.5  # exactly the threshold
    scores[1, 443] = np.nextafter(0.5, 0.0)  # the largest double below it
    starts, ends = window_bounds(2)

    anomalies = detect_anomalies(scores, starts, ends, [group])

    assert [a.window_index for a in anomalies] == [0]
    assert anomalies[0].score == 0.5


def test_float32_scores_compare_as_their_exact_value() -> None:
    group = _group("siren", (396,), 0.4)
    scores = np.zeros((2, 527), dtype=np.float32)
    scores[0, 396] = np.float32(0.4)  # 0.4000000059604645 >= 0.4
    scores[1, 396] = np.nextafter(np.float32(0.4), np.float32(0))  # 0.39999998
    starts, ends = window_bounds(2)

    anomalies = detect_anomalies(scores, starts, ends, [group])

    assert [a.window_index for a in anomalies] == [0]
    assert anomalies[0].score == float(np.float32(0.4))


def test_several_windows_and_groups_in_window_then_group_order() -> None:
    names = csv_display_names()
    glass = _group("glass_break", (441, 442, 443), 0.5)
    alarm = _group("smoke_fire_alarm", (399, 400, 388), 0.4)
    scores = np.zeros((3, 527))
    scores[0, 441], scores[0, 443], scores[0, 442] = 0.9, 0.7, 0.2  # glass: two members above
    scores[0, 0] = 0.99  # Speech: loud but no group's member
    scores[2, 388], scores[2, 400] = 0.45, 0.41  # alarm via generic "Alarm" and "Fire alarm"
    scores[2, 443] = 0.5
    starts = np.array([0.0, 4.8, 9.6])
    ends = np.array([9.6, 14.4, 12.48])

    anomalies = detect_anomalies(scores, starts, ends, [glass, alarm])

    assert [(a.window_index, a.group) for a in anomalies] == [
        (0, "glass_break"),
        (2, "glass_break"),
        (2, "smoke_fire_alarm"),
    ]
    first, _, last = anomalies
    assert (first.start_seconds, first.end_seconds) == (0.0, 9.6)
    assert (last.start_seconds, last.end_seconds) == (9.6, 12.48)
    assert first.score == 0.9 and last.score == 0.45
    assert [(c.index, c.label, c.score) for c in first.triggered_by] == [
        (441, names[441], 0.9),
        (443, names[443], 0.7),
    ]
    assert [(c.index, c.score) for c in last.triggered_by] == [(388, 0.45), (400, 0.41)]
    assert last.label == alarm.label and last.threshold == 0.4


def test_group_fires_on_its_best_member_only() -> None:
    scream = _group("scream", (14, 8, 11), 0.6)
    scores = np.zeros((1, 527))
    scores[0, [14, 8, 11]] = [0.3, 0.59, 0.61]
    anomalies = detect_anomalies(scores, *window_bounds(1), [scream])
    assert len(anomalies) == 1
    assert anomalies[0].score == 0.61
    assert [c.index for c in anomalies[0].triggered_by] == [11]

    scores[0, 11] = 0.59
    assert detect_anomalies(scores, *window_bounds(1), [scream]) == []


def test_disabled_groups_never_fire() -> None:
    scores = np.ones((2, 527))
    groups = [_group("water_leak", (448,), 0.1, enabled=False), _group("fire", (298,), 0.9)]
    anomalies = detect_anomalies(scores, *window_bounds(2), groups)
    assert {a.group for a in anomalies} == {"fire"}
    assert len(anomalies) == 2


def test_loudness_gate_skips_quiet_windows_and_keeps_the_boundary() -> None:
    group = _group("impact", (358,), 0.5)
    scores = np.zeros((3, 527))
    scores[:, 358] = 0.8
    levels = np.array([-70.0, -50.0, -49.999])

    gated = detect_anomalies(scores, *window_bounds(3), [group], window_dbfs=levels, gate_dbfs=-50.0)
    assert [a.window_index for a in gated] == [1, 2]

    ungated = detect_anomalies(scores, *window_bounds(3), [group], window_dbfs=levels, gate_dbfs=None)
    assert [a.window_index for a in ungated] == [0, 1, 2]


def test_gate_with_levels_measured_from_a_waveform() -> None:
    """A -6 dBFS sine for 10 examples then silence: only the first window passes a -40 dBFS gate."""
    rate = 16_000
    examples = 20
    samples = np.zeros(examples * EXAMPLE_HOP_SAMPLES + 240)
    loud = 10 * EXAMPLE_HOP_SAMPLES
    amplitude = 10 ** (-6 / 20) * math.sqrt(2)  # RMS of a sine is amplitude / sqrt(2)
    samples[:loud] = amplitude * np.sin(2 * np.pi * 1000 * np.arange(loud) / rate)
    starts = np.array([0.0, 9.6])
    ends = np.array([9.6, 19.2])
    levels = window_dbfs(example_dbfs(samples, examples), starts, ends)
    assert levels[0] == pytest.approx(-6.0, abs=0.05)

    scores = np.zeros((2, 527))
    scores[:, 396] = 0.7
    anomalies = detect_anomalies(
        scores, starts, ends, [_group("siren", (396,), 0.5)], window_dbfs=levels, gate_dbfs=-40
    )
    assert [a.window_index for a in anomalies] == [0]


def test_detection_rejects_inconsistent_inputs() -> None:
    group = _group("fire", (298,), 0.5)
    with pytest.raises(ValueError, match="window bounds"):
        detect_anomalies(np.zeros((2, 527)), *window_bounds(3), [group])
    with pytest.raises(ValueError, match="NaN"):
        detect_anomalies(np.full((1, 527), np.nan), *window_bounds(1), [group])
    with pytest.raises(ValueError, match="window_dbfs"):
        detect_anomalies(np.zeros((1, 527)), *window_bounds(1), [group], gate_dbfs=-50)
    with pytest.raises(ValueError, match="score columns"):
        detect_anomalies(np.zeros((1, 100)), *window_bounds(1), [group])


def test_anomaly_record_is_json_ready() -> None:
    scores = np.zeros((1, 527), dtype=np.float32)
    scores[0, 441] = 0.75
    (anomaly,) = detect_anomalies(
        scores, np.array([1.92]), np.array([11.52]), [_group("glass_break", (441,), 0.5)]
    )
    record = json.loads(json.dumps(anomaly.to_dict()))
    assert record == {
        "group": "glass_break",
        "label": "Glass Break",
        "score": 0.75,
        "threshold": 0.5,
        "start_seconds": 1.92,
        "end_seconds": 11.52,
        "window_index": 0,
        "triggered_by": [{"index": 441, "label": "Glass", "score": 0.75}],
        "measures": {},  # a label group's: only class-agnostic detectors measure
    }
    fields = dataclasses.asdict(anomaly)
    # not located (no loudness profile): the sound is placed at the window itself
    assert (fields.pop("onset_seconds"), fields.pop("offset_seconds"), fields.pop("located")) == (
        1.92,
        11.52,
        False,
    )
    assert json.loads(json.dumps(fields)) == record
    assert isinstance(anomaly, Anomaly)
