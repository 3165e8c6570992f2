"""Anomaly groups: the shipped table, operator overrides and their validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.errors import AudioGuardError, InvalidConfiguration
from tests.support.anomaly_table import EXPECTED_GROUPS, csv_display_names, window_bounds, write_groups_file
from transformer.analysis.anomalies import detect_anomalies
from transformer.analysis.anomaly_groups import AnomalyGroup, load_anomaly_groups

# --- shipped defaults ---------------------------------------------------------------------


def test_shipped_groups_are_the_documented_table() -> None:
    groups = {group.name: group for group in load_anomaly_groups(None)}
    names = csv_display_names()

    assert set(groups) == set(EXPECTED_GROUPS)
    for name, members in EXPECTED_GROUPS.items():
        assert set(groups[name].members) == set(members), name
        assert {index: names[index] for index in groups[name].members} == members
        assert 0 < groups[name].threshold <= 1
        assert groups[name].label.strip()
    assert [g.name for g in groups.values() if not g.enabled] == ["water_leak"]


# --- overrides --------------------------------------------------------------------------------


def test_override_retunes_disables_and_adds_groups(tmp_path: Path) -> None:
    path = write_groups_file(
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
    path = write_groups_file(
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
    assert detect_anomalies(scores, *window_bounds(1), load_anomaly_groups(None)) == []

    path = write_groups_file(tmp_path, {"groups": [{"name": "water_leak", "enabled": True}]})
    anomalies = detect_anomalies(scores, *window_bounds(1), load_anomaly_groups(path))
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
        ([{"name": "glass_break", "threshold": True}], r"'threshold' must be a number in \(0, 1\]"),
        ([{"name": "glass_break", "threshold": "0.5"}], r"'threshold' must be a number in \(0, 1\]"),
        ([{"name": "glass_break", "threshold": None}], "'threshold' must not be null"),
        ([{"name": "glass_break", "members": []}], "non-empty list"),
        ([{"name": "glass_break", "members": [441.0]}], r"member 0 \(counted from 0\) is not an integer"),
        ([{"name": "glass_break", "members": 441}], "non-empty list"),
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
    path = write_groups_file(tmp_path, {"groups": groups})
    with pytest.raises(InvalidConfiguration, match=message) as caught:
        load_anomaly_groups(path)
    assert str(path) in str(caught.value)


def test_a_bad_text_value_is_named_but_never_quoted(tmp_path: Path) -> None:
    path = write_groups_file(
        tmp_path, {"groups": [{"name": "x y secret", "label": "X", "members": ["secret"], "threshold": 0.5}]}
    )
    with pytest.raises(InvalidConfiguration) as caught:
        load_anomaly_groups(path)
    text = str(caught.value)
    assert "groups[0]: 'name' must match" in text and "groups[0]: member 0 (counted from 0)" in text
    assert "secret" not in text


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
            load_anomaly_groups(write_groups_file(tmp_path, text, f"{case.replace(' ', '_')}.json"))

    with pytest.raises(InvalidConfiguration, match="cannot read anomaly groups file"):
        load_anomaly_groups(tmp_path / "missing.json")


def test_every_problem_is_listed_at_once_and_the_error_is_typed(tmp_path: Path) -> None:
    path = write_groups_file(
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
    path = write_groups_file(
        tmp_path,
        {"replace_defaults": True, "groups": [{"name": "a", "label": "A", "members": [9], "threshold": 0.5}]},
    )
    assert load_anomaly_groups(path, num_classes=10)[0].members == (9,)
    with pytest.raises(InvalidConfiguration, match=r"valid: 0\.\.8"):
        load_anomaly_groups(path, num_classes=9)
