"""``python -m transformer.analysis.record_schema``: print the JSON Schema of the event records.

``docs/schemas/audio-anomaly-event.json`` is this output; a test keeps the two equal.
"""

from __future__ import annotations

import json
from typing import Any

from transformer.analysis.records import EventRecord


def event_record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``SIFIS:Audio_Anomaly`` value."""
    schema = EventRecord.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "audioguard/audio-anomaly-event.json",
        **schema,
    }


if __name__ == "__main__":
    print(json.dumps(event_record_schema(), indent=2))
