"""Validation of posted records against the documented schema (docs/schemas/), as a consumer would.

The schema is read from the documentation file, not from the code that produces records, so a
record that drifts from what is documented fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.support.serverutil import PROJECT_ROOT

EVENT_SCHEMA_PATH = PROJECT_ROOT / "docs" / "schemas" / "audio-anomaly-event.json"
MODE_SCHEMA_PATH = PROJECT_ROOT / "docs" / "schemas" / "audio-mode-change.json"


@cache
def event_validator() -> Draft202012Validator:
    schema = json.loads(EVENT_SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def mode_validator() -> Draft202012Validator:
    schema = json.loads(MODE_SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _assert_valid(
    records: Iterable[Mapping[str, Any]], validator: Draft202012Validator, name: str
) -> list[Mapping[str, Any]]:
    checked = list(records)
    for record in checked:
        problems = [
            f"{'/'.join(map(str, e.path)) or '(record)'}: {e.message}" for e in validator.iter_errors(record)
        ]
        assert not problems, f"a record breaks docs/schemas/{name}:\n" + "\n".join(problems)
    return checked


def assert_event_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every record is valid against the documented event schema (the errors listed if not)."""
    return _assert_valid(records, event_validator(), "audio-anomaly-event.json")


def assert_mode_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every record is valid against the documented mode change schema."""
    return _assert_valid(records, mode_validator(), "audio-mode-change.json")
