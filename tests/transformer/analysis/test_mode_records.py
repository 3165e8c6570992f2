"""The mode change record: the documented schema is the code's, and a built record is valid."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.support.records import MODE_SCHEMA_PATH, assert_mode_records
from transformer.analysis.mode_records import mode_record, mode_record_schema
from transformer.analysis.modes import ModeChange
from transformer.analysis.record_context import RecordContext


def test_the_documented_schema_is_the_codes() -> None:
    assert json.loads(MODE_SCHEMA_PATH.read_text()) == mode_record_schema(), (
        "run `python -m transformer.analysis.mode_records > docs/schemas/audio-mode-change.json`"
    )


def test_a_change_is_a_valid_record_with_its_own_key() -> None:
    context = RecordContext(
        origin="live", source="hall", analyzer_id="home-1", privacy_method="none", session="s1"
    )
    at = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    change = ModeChange("hall", "night", "home", "schedule", at, ("glass_break", "sudden_loud"))
    [record] = assert_mode_records([mode_record(change, context)])
    assert record["description"] == "Audio monitoring mode night (hall)"
    assert (record["changed_at"], record["groups"]) == (
        "2026-12-07T22:00:00.000+00:00",
        ["glass_break", "sudden_loud"],
    )
    later = mode_record(ModeChange("hall", "home", "night", "api", at.replace(hour=23)), context)
    assert later["record_id"] != record["record_id"]  # one key per change: the history stays
    assert mode_record(change, context)["record_id"] == record["record_id"]  # a re-send, the same key
