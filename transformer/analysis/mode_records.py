"""The record of a live source's mode changing (``transformer.analysis.modes``): one schema, one builder.

Posted to ``SIFIS:Audio_Mode`` (``dht_mode_topic``) through the same outbox as the event records,
one per change (its own ``topic_uuid``: the history stays), so a consumer knows what each
source was watching for when an event came, or did not. ``docs/schemas/audio-mode-change.json``
is generated from ``ModeRecord`` (``python -m transformer.analysis.mode_records``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from transformer.analysis.modes import Mode, ModeChange, SetBy
from transformer.analysis.record_context import RecordContext

MODE_SCHEMA_VERSION: Final = 1
#: Fixed namespace: the same session, source and time give the same record key.
MODE_RECORD_NAMESPACE: Final = uuid.UUID("8d3b1f0e-5c2a-4e7b-a1d9-6f4c2e8b0a37")


class ModeRecord(BaseModel):
    """One value posted to ``SIFIS:Audio_Mode``: a live source's mode changing."""

    model_config = ConfigDict(extra="forbid", title="audioguard mode change record")

    schema_version: Literal[1]
    description: str = Field(description="one line for people, e.g. 'Audio monitoring mode away (hall)'")
    record_id: str = Field(description="the record's id (its topic_uuid)")
    source: str = Field(description="the live source's name")
    mode: Mode
    previous_mode: Mode | None = Field(description="null at start")
    set_by: SetBy = Field(description="start, the schedule, an API call or a DHT request")
    changed_at: str = Field(description="when (UTC ISO 8601)")
    groups: list[str] = Field(description="the groups that raise events in this mode")
    analyzer_id: str
    session: str | None = Field(description="the listening run's id")


def mode_record(change: ModeChange, context: RecordContext) -> dict[str, Any]:
    """The ``SIFIS:Audio_Mode`` value of one change (the ``ModeRecord`` fields)."""
    stamp = change.at.astimezone(UTC).isoformat(timespec="milliseconds")
    record_id = uuid.uuid5(MODE_RECORD_NAMESPACE, f"{context.session}\n{change.source}\n{stamp}")
    return {
        "schema_version": MODE_SCHEMA_VERSION,
        "description": f"Audio monitoring mode {change.mode} ({change.source})",
        "record_id": str(record_id),
        "source": change.source,
        "mode": change.mode,
        "previous_mode": change.previous,
        "set_by": change.set_by,
        "changed_at": stamp,
        "groups": list(change.groups),
        "analyzer_id": context.analyzer_id,
        "session": context.session,
    }


def mode_record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``SIFIS:Audio_Mode`` value."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "audioguard/audio-mode-change.json",
        **ModeRecord.model_json_schema(),
    }


if __name__ == "__main__":
    print(json.dumps(mode_record_schema(), indent=2))
