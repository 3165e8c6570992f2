"""Modes: schedules, requests that hold until the next switch, the groups each mode watches."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from contract.errors import InvalidParameter
from transformer.analysis.modes import ModeBoard, ModesSpec, ScheduleEntry, mode_request, unknown_mode_groups

GROUPS = ["glass_break", "scream", "sudden_loud", "voices_while_armed"]
NIGHTLY = [ScheduleEntry(at="23:00", mode="night"), ScheduleEntry(at="07:00", mode="home")]


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A time of the host's local clock (schedules are in local time)."""
    return datetime(2026, 12, day, hour, minute).astimezone()


def modes(board: ModeBoard, at: datetime) -> dict[str, str]:
    board.update(at)
    return {name: str(state["mode"]) for name, state in board.status().items()}


def test_a_schedule_switches_daily_and_wraps_past_midnight() -> None:
    board = ModeBoard(ModesSpec(schedule=NIGHTLY), {"hall": None, "garage": []}, GROUPS)
    [hall, garage] = board.update(local(7, 3))
    assert (hall.source, hall.mode, hall.previous, hall.set_by) == ("hall", "night", None, "schedule")
    assert (garage.mode, garage.set_by) == ("home", "start")  # its own schedule: none
    assert board.update(local(7, 6, 59)) == []  # nothing changed: nothing to record
    [change] = board.update(local(7, 7))
    assert (change.mode, change.previous, change.set_by) == ("home", "night", "schedule")
    assert modes(board, local(7, 23, 30)) == {"hall": "night", "garage": "home"}


def test_a_request_holds_until_the_next_scheduled_switch_or_for_good_without_one() -> None:
    board = ModeBoard(ModesSpec(schedule=NIGHTLY), {"hall": None, "garage": []}, GROUPS)
    board.update(local(7, 12))
    changes = board.request("away", None, "api", local(7, 12, 5))
    assert [(c.source, c.mode, c.previous, c.set_by) for c in changes] == [
        ("hall", "away", "home", "api"),
        ("garage", "away", "home", "api"),
    ]
    assert modes(board, local(7, 22, 59)) == {"hall": "away", "garage": "away"}
    assert modes(board, local(7, 23)) == {"hall": "night", "garage": "away"}  # the schedule takes over
    assert modes(board, local(9, 12)) == {"hall": "home", "garage": "away"}
    with pytest.raises(KeyError):
        board.request("home", "attic", "api", local(9, 12))


def test_each_mode_watches_its_configured_groups_and_only_away_hears_voices_by_default() -> None:
    default = ModeBoard(ModesSpec(), {"hall": None}, GROUPS)
    assert default.groups_of("home") == default.groups_of("night") == {"glass_break", "scream", "sudden_loud"}
    assert default.groups_of("away") == set(GROUPS)
    default.update(local(7, 12))
    assert not default.active("hall", "voices_while_armed") and default.active("hall", "sudden_loud")
    [change] = default.request("away", "hall", "dht", local(7, 12))
    assert change.groups == tuple(sorted(GROUPS)) and default.active("hall", "voices_while_armed")
    chosen = ModeBoard(ModesSpec(groups={"home": ["glass_break"], "night": "all"}), {"hall": None}, GROUPS)
    assert chosen.groups_of("home") == {"glass_break"} and chosen.groups_of("night") == set(GROUPS)


def test_a_modes_section_and_requests_are_validated_with_the_problem_named() -> None:
    with pytest.raises(ValidationError, match=r"'at' must be a time of day as HH:MM"):
        ModesSpec.model_validate({"schedule": [{"at": "25:00", "mode": "night"}]})
    with pytest.raises(ValidationError, match=r"the schedule switches twice at 07:00"):
        ModesSpec.model_validate(
            {"schedule": [{"at": "07:00", "mode": "home"}, {"at": "07:00", "mode": "away"}]}
        )
    with pytest.raises(ValidationError, match=r"schedule\.0\.mode"):
        ModesSpec.model_validate({"schedule": [{"at": "07:00", "mode": "holiday"}]})
    assert unknown_mode_groups(ModesSpec(groups={"away": ["glas_break"]}), GROUPS) == [
        "modes.groups.away: unknown group(s) glas_break "
        "(known: glass_break, scream, sudden_loud, voices_while_armed)"
    ]
    assert mode_request({"mode": "night"}, ["hall"]) == ("night", None)
    assert mode_request({"mode": "away", "source": "hall"}, ["hall"]) == ("away", "hall")
    for bad, problem in (
        ([], "a mode request is a JSON object"),
        ({"mode": "holiday-secret"}, "'mode' must be one of home, away, night"),
        ({"mode": "away", "source": "attic"}, "'source' must be one of the sources listened to (hall)"),
        ({"mode": "away", "until": "x"}, "unknown key(s) in a mode request"),
    ):
        with pytest.raises(InvalidParameter) as raised:
            mode_request(bad, ["hall"])
        assert problem in raised.value.message and "holiday-secret" not in raised.value.message


def test_the_day_before_is_used_for_times_before_the_first_switch() -> None:
    board = ModeBoard(ModesSpec(schedule=[ScheduleEntry(at="22:00", mode="night")]), {"hall": None}, GROUPS)
    [change] = board.update(local(7, 1))
    assert change.mode == "night"
    assert board.status()["hall"]["since"] == (local(7, 1) - timedelta(hours=3)).isoformat(timespec="seconds")
