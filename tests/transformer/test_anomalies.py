"""Anomaly groups: shipped defaults, overrides and their validation, detection on hand-built scores."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from contract.errors import AudioGuardError, InvalidConfiguration
from transformer.anomalies import Anomaly, AnomalyGroup, detect_anomalies, load_anomaly_groups
from transformer.loudness import EXAMPLE_HOP_SAMPLES, example_dbfs, window_dbfs

CSV = Path(__file__).resolve().parents[2] / "transformer" / "data" / "class_labels_indices.csv"

# anomaly-classes.md, transcribed by hand: group -> {index: display name}
EXPECTED_GROUPS = {
    "glass_break": {
        441: "Glass", 442: "Chink, clink", 443: "Shatter", 469: "Smash, crash", 470: "Breaking", 440: "Crack",
    },
    "scream": {
        14: "Screaming", 8: "Shout", 11: "Yell", 9: "Bellow", 13: "Children shouting",
        22: "Crying, sobbing", 25: "Wail, moan",
    },
    "baby_cry": {23: "Baby cry, infant cry"},
    "smoke_fire_alarm": {399: "Smoke detector, smoke alarm", 400: "Fire alarm", 388: "Alarm"},
    "fire": {298: "Fire", 299: "Crackle"},
    "siren": {
        396: "Siren", 397: "Civil defense siren", 322: "Emergency vehicle", 323: "Police car (siren)",
        324: "Ambulance (siren)", 325: "Fire engine, fire truck (siren)",
    },
    "gunshot_explosion": {
        427: "Gunshot, gunfire", 428: "Machine gun", 429: "Fusillade", 430: "Artillery fire",
        426: "Explosion", 436: "Boom",
    },
    "impact": {466: "Bang", 460: "Thump, thud", 358: "Slam", 484: "Clang"},
    "car_alarm": {310: "Car alarm"},
    "dog_alert": {75: "Bark", 77: "Howl", 79: "Growling"},
    "water_leak": {370: "Water tap, faucet", 448: "Drip", 451: "Gush", 445: "Splash, splatter"},
}  # fmt: skip


def _csv_names() -> dict[int, str]:
    with CSV.open(newline="", encoding="utf-8") as handle:
        return {int(row["index"]): row["display_name"] for row in csv.DictReader(handle)}


def _write(tmp_path: Path, document: object, name: str = "groups.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def _group(name: str, members: tuple[int, ...], threshold: float, enabled: bool = True) -> AnomalyGroup:
    return AnomalyGroup(name, name.replace("_", " ").title(), members, threshold, enabled)


def _bounds(num_windows: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(num_windows) * 9.6
    return starts, starts + 9.6


# --- shipped defaults ---------------------------------------------------------------------


def test_shipped_groups_are_the_documented_table() -> None:
    groups = {group.name: group for group in load_anomaly_groups(None)}
    names = _csv_names()

    assert set(groups) == set(EXPECTED_GROUPS)
    for name, members in EXPECTED_GROUPS.items():
        assert set(groups[name].members) == set(members), name
        assert {index: names[index] for index in groups[name].members} == members
        assert 0 < groups[name].threshold <= 1
        assert groups[name].label.strip()
    assert [g.name for g in groups.values() if not g.enabled] == ["water_leak"]


# --- detection ------------------------------------------------------------------------------


def test_threshold_is_inclusive_and_just_below_does_not_fire() -> None:
    group = _group("glass_break", (441, 443), 0.5)
    scores = np.zeros((2, 527))
    scores[0, 443] = 0.5  # exactly the threshold
    scores[1, 443] = np.nextafter(0.5, 0.0)  # the largest double below it
    starts, ends = _bounds(2)

    anomalies = detect_anomalies(scores, starts, ends, [group])

    assert [a.window_index for a in anomalies] == [0]
    assert anomalies[0].score == 0.5


def test_float32_scores_compare_as_their_exact_value() -> None:
    group = _group("siren", (396,), 0.4)
    scores = np.zeros((2, 527), dtype=np.float32)
    scores[0, 396] = np.float32(0.4)  # 0.4000000059604645 >= 0.4
    scores[1, 396] = np.nextafter(np.float32(0.4), np.float32(0))  # 0.39999998
    starts, ends = _bounds(2)

    anomalies = detect_anomalies(scores, starts, ends, [group])

    assert [a.window_index for a in anomalies] == [0]
    assert anomalies[0].score == float(np.float32(0.4))


def test_several_windows_and_groups_in_window_then_group_order() -> None:
    names = _csv_names()
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
    anomalies = detect_anomalies(scores, *_bounds(1), [scream])
    assert len(anomalies) == 1
    assert anomalies[0].score == 0.61
    assert [c.index for c in anomalies[0].triggered_by] == [11]

    scores[0, 11] = 0.59
    assert detect_anomalies(scores, *_bounds(1), [scream]) == []


def test_disabled_groups_never_fire() -> None:
    scores = np.ones((2, 527))
    groups = [_group("water_leak", (448,), 0.1, enabled=False), _group("fire", (298,), 0.9)]
    anomalies = detect_anomalies(scores, *_bounds(2), groups)
    assert {a.group for a in anomalies} == {"fire"}
    assert len(anomalies) == 2


def test_loudness_gate_skips_quiet_windows_and_keeps_the_boundary() -> None:
    group = _group("impact", (358,), 0.5)
    scores = np.zeros((3, 527))
    scores[:, 358] = 0.8
    levels = np.array([-70.0, -50.0, -49.999])

    gated = detect_anomalies(scores, *_bounds(3), [group], window_dbfs=levels, gate_dbfs=-50.0)
    assert [a.window_index for a in gated] == [1, 2]

    ungated = detect_anomalies(scores, *_bounds(3), [group], window_dbfs=levels, gate_dbfs=None)
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
        detect_anomalies(np.zeros((2, 527)), *_bounds(3), [group])
    with pytest.raises(ValueError, match="NaN"):
        detect_anomalies(np.full((1, 527), np.nan), *_bounds(1), [group])
    with pytest.raises(ValueError, match="window_dbfs"):
        detect_anomalies(np.zeros((1, 527)), *_bounds(1), [group], gate_dbfs=-50)
    with pytest.raises(ValueError, match="score columns"):
        detect_anomalies(np.zeros((1, 100)), *_bounds(1), [group])


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
    }
    assert json.loads(json.dumps(dataclasses.asdict(anomaly))) == record
    assert isinstance(anomaly, Anomaly)


# --- overrides --------------------------------------------------------------------------------


def test_override_retunes_disables_and_adds_groups(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "groups": [
                {"name": "glass_break", "threshold": 0.8},
                {"name": "dog_alert", "enabled": False},
                {"name": "water_leak", "enabled": True, "members": [448]},
                {"name": "door_knock", "label": "Knocking", "members": [461, 462], "threshold": 0.7},
            ]
        },
    )
    groups = {group.name: group for group in load_anomaly_groups(path)}

    assert groups["glass_break"].threshold == 0.8
    assert set(groups["glass_break"].members) == set(EXPECTED_GROUPS["glass_break"])  # unchanged
    assert groups["dog_alert"].enabled is False
    assert groups["water_leak"].enabled and groups["water_leak"].members == (448,)
    assert groups["door_knock"] == AnomalyGroup("door_knock", "Knocking", (461, 462), 0.7, True)
    assert list(groups)[-1] == "door_knock"  # new groups after the shipped ones


def test_override_can_replace_the_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "replace_defaults": True,
            "groups": [{"name": "only", "label": "Only", "members": [0], "threshold": 1}],
        },
    )
    assert load_anomaly_groups(path) == (AnomalyGroup("only", "Only", (0,), 1.0, True),)


def test_overridden_group_changes_detection(tmp_path: Path) -> None:
    scores = np.zeros((1, 527))
    scores[0, 448] = 0.65  # Drip
    assert detect_anomalies(scores, *_bounds(1), load_anomaly_groups(None)) == []

    path = _write(tmp_path, {"groups": [{"name": "water_leak", "enabled": True}]})
    anomalies = detect_anomalies(scores, *_bounds(1), load_anomaly_groups(path))
    assert [(a.group, a.triggered_by[0].label) for a in anomalies] == [("water_leak", "Drip")]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([{"name": "x", "label": "X", "members": [527], "threshold": 0.5}], "unknown AudioSet index 527"),
        ([{"name": "x", "label": "X", "members": [-1], "threshold": 0.5}], "unknown AudioSet index -1"),
        ([{"name": "x", "label": "X", "members": ["441"], "threshold": 0.5}], "not an integer index"),
        ([{"name": "glass_break", "threshold": 0}], r"threshold 0 is outside \(0, 1\]"),
        ([{"name": "glass_break", "threshold": 1.5}], r"threshold 1.5 is outside \(0, 1\]"),
        ([{"name": "glass_break", "threshold": -0.2}], r"outside \(0, 1\]"),
        ([{"name": "glass_break", "threshold": True}], r"outside \(0, 1\]"),
        ([{"name": "glass_break", "members": []}], "non-empty list"),
        ([{"name": "glass_break", "members": [441, 441]}], "listed more than once"),
        ([{"name": "glass_break", "label": " "}], "'label' must be a non-empty string"),
        ([{"name": "glass_break", "enabled": "yes"}], "'enabled' must be true or false"),
        ([{"name": "glass_break", "threshhold": 0.5}], "unknown key 'threshhold'"),
        ([{"name": "fire", "threshold": 0.5}, {"name": "fire", "threshold": 0.6}], "duplicate group name"),
        ([{"name": "new_group", "members": [1]}], "new group needs 'label', 'threshold'"),
        ([{"name": "glas_break", "threshold": 0.5}], r"unknown group 'glas_break'.*existing: glass_break, "),
        ([{"name": "bad name!", "label": "X", "members": [1], "threshold": 0.5}], "'name' must match"),
        ([{"label": "X", "members": [1], "threshold": 0.5}], "'name' must match"),
        (["glass_break"], r"groups\[0\] is not an object"),
    ],
)
def test_invalid_override_is_refused_with_a_clear_message(
    tmp_path: Path, groups: list[object], message: str
) -> None:
    path = _write(tmp_path, {"groups": groups})
    with pytest.raises(InvalidConfiguration, match=message) as caught:
        load_anomaly_groups(path)
    assert str(path) in str(caught.value)


def test_invalid_documents_are_refused(tmp_path: Path) -> None:
    cases = {
        "not json": ("{", "not valid JSON"),
        "nan": ('{"groups": [{"name": "fire", "threshold": NaN}]}', r"outside \(0, 1\]"),
        "duplicate key": (
            '{"groups": [{"name": "fire", "threshold": 0.5, "threshold": 0.6}]}',
            "duplicate JSON key",
        ),
        "not an object": ("[1, 2]", "must hold a JSON object"),
        "no groups": ('{"group": []}', "unknown top-level key 'group'"),
        "replace flag": (
            '{"replace_defaults": "yes", "groups": []}',
            "'replace_defaults' must be true or false",
        ),
    }
    for case, (text, message) in cases.items():
        with pytest.raises(InvalidConfiguration, match=message):
            load_anomaly_groups(_write(tmp_path, text, f"{case.replace(' ', '_')}.json"))

    with pytest.raises(InvalidConfiguration, match="cannot read anomaly groups file"):
        load_anomaly_groups(tmp_path / "missing.json")


def test_every_problem_is_listed_at_once_and_the_error_is_typed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"groups": [{"name": "fire", "threshold": 2}, {"name": "siren", "members": [9999]}]},
    )
    with pytest.raises(InvalidConfiguration) as caught:
        load_anomaly_groups(path)
    text = str(caught.value)
    assert "group 'fire': threshold 2" in text and "unknown AudioSet index 9999" in text
    assert isinstance(caught.value, AudioGuardError) and isinstance(caught.value, ValueError)
    assert caught.value.status_code == 500


def test_num_classes_bounds_the_indices(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"replace_defaults": True, "groups": [{"name": "a", "label": "A", "members": [9], "threshold": 0.5}]},
    )
    assert load_anomaly_groups(path, num_classes=10)[0].members == (9,)
    with pytest.raises(InvalidConfiguration, match=r"valid: 0\.\.8"):
        load_anomaly_groups(path, num_classes=9)
