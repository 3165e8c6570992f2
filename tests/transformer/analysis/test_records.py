"""The one record schema: the documented file is the code's, the documented examples are valid,
and what the analysis produces matches them field for field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.analysis_rig import analysed
from tests.support.records import EVENT_SCHEMA_PATH, assert_event_records, event_validator
from tests.support.serverutil import PROJECT_ROOT
from transformer.analysis.record_schema import event_record_schema
from transformer.analysis.records import SCHEMA_VERSION, recording_event_records
from transformer.analysis.types import AnalysisOptions

DOC = PROJECT_ROOT / "docs" / "anomalies-and-dht.md"


def golden(name: str) -> dict[str, Any]:
    """The JSON block after ``<!-- golden:NAME -->`` in docs/anomalies-and-dht.md."""
    match = re.search(rf"<!-- golden:{name} -->\s*```json\n(.*?)\n```", DOC.read_text(), re.S)
    assert match, f"docs/anomalies-and-dht.md has no golden example {name!r}"
    return json.loads(match.group(1))


def test_the_documented_schema_is_the_codes() -> None:
    written = json.loads(EVENT_SCHEMA_PATH.read_text())
    assert written == event_record_schema(), (
        "run `python -m transformer.analysis.record_schema > docs/schemas/audio-anomaly-event.json`"
    )


@pytest.mark.parametrize("kind", ["start-record", "end-record"])
def test_the_documented_examples_are_valid_records(kind: str) -> None:
    (example,) = assert_event_records([golden(kind)])
    assert example["schema_version"] == SCHEMA_VERSION
    assert example["change"] == kind.split("-")[0]


def test_the_schema_refuses_what_is_not_a_record() -> None:
    start = golden("start-record")
    for broken in (
        {**start, "score": 0.9},  # a field of the old per-window shape
        {k: v for k, v in start.items() if k != "privacy_method"},
        {**start, "change": "begin"},
        {**start, "peak_score": 1.5},
        {**start, "triggered_by": []},
        {**start, "threshold": 12.0},  # over 1 only for a group that measures (sudden_loud)
        {k: v for k, v in start.items() if k != "measures"},
    ):
        assert list(event_validator().iter_errors(broken)), broken


def test_a_recordings_records_have_the_documented_fields_and_are_valid() -> None:
    result = analysed(
        {"glass_break": [3, 4, 5]},
        AnalysisOptions(requestor_id="nssd-1", request_id="req-42", audio_file="kitchen.wav", origin="sifis"),
    )
    start, end = assert_event_records(recording_event_records(result))
    assert set(start) == set(golden("start-record")) and set(end) == set(golden("end-record"))
    assert (start["change"], end["change"], start["event_id"]) == ("start", "end", end["event_id"])
    assert set(result.sifis_value) == set(golden("result")) | {"weights_warning"}  # synthetic: warned
    (summary,) = result.anomalies
    assert set(summary) == set(golden("result")["anomalies"][0])
    assert {name: end[name] for name in summary} == summary
