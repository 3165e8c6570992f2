"""The records audioguard posts to the SIFIS DHT: one schema, one builder for every producer.

- **Event records** on ``SIFIS:Audio_Anomaly``: one when an anomaly event starts and one
  when it ends, whoever heard it: a live source, an upload to the SIFIS endpoint, a DHT
  request, a v2 call. ``EventRecord`` is the schema (``docs/schemas/audio-anomaly-event.json``
  is generated from it); ``event_record`` builds one from an event change and the
  ``RecordContext`` of the recording or stream it happened in.
- The **analysis value** of one recording (``result_value``): the fields the SIFIS
  Analytics-API reads today (``RESULT_FIELDS``) plus the recording's events; it is the DHT
  result record and, without its description, the SIFIS endpoint's answer.

The transport layers (``transformer.dht``, ``transformer.protocol``) only wrap or send these
values; the monitor and the protocol parsers build none (an import contract says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from transformer.analysis.events import EventChange
from transformer.analysis.record_context import RecordContext
from transformer.analysis.types import AnalysisResult, Origin

#: Bumped whenever a field of a record changes meaning or goes away (2: the class-agnostic
#: groups, whose score is a measure in their own unit, with ``measures`` and no classes).
SCHEMA_VERSION: Final = 2
RESULT_DESCRIPTION: Final = "Privacy-aware audio anomaly detection results"
#: the fields SIFIS consumers of the result topic read
RESULT_FIELDS: Final = (
    "description",
    "requestor_id",
    "requestor_type",
    "request_id",
    "analyzer_id",
    "analysis_id",
    "audio_file",
    "method",
    "predictions",
)
#: The event fields of a recording's answer (``result_value``'s ``anomalies``): the record's
#: event part, without what only a start or end says.
_SUMMARY_FIELDS: Final = (
    "event_id",
    "group",
    "label",
    "threshold",
    "peak_score",
    "triggered_by",
    "measures",
    "start_seconds",
    "end_seconds",
    "window_start_seconds",
    "window_end_seconds",
)


class TriggeringClassRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, lt=527, description="AudioSet class index")
    label: str = Field(description="AudioSet display name")
    score: float = Field(ge=0, le=1)


class EventRecord(BaseModel):
    """One value posted to ``SIFIS:Audio_Anomaly``: an anomaly event starting or ending."""

    model_config = ConfigDict(
        extra="forbid",
        title="audioguard anomaly event record",
        # a label group's record (nothing measured) has a probability and the classes behind it
        json_schema_extra={
            "if": {"properties": {"measures": {"maxProperties": 0}}},
            "then": {
                "properties": {
                    "peak_score": {"maximum": 1},
                    "threshold": {"maximum": 1},
                    "triggered_by": {"minItems": 1},
                }
            },
        },
    )

    schema_version: Literal[2]
    description: str = Field(
        description="one line for people, e.g. 'Audio anomaly started: Glass breaking (kitchen)'"
    )
    change: Literal["start", "end"]
    event_id: str = Field(description="the event's id, the same in its start and end records")
    source: str = Field(description="the live source's name, or the recording's file name ('upload' if none)")
    origin: Origin = Field(description="how the audio came in")
    group: str = Field(description="anomaly group name")
    label: str = Field(description="anomaly group label")
    threshold: float = Field(
        gt=0,
        description="the group's threshold: a probability in (0, 1] for a label group, dB for sudden_loud",
    )
    peak_score: float = Field(
        ge=0,
        description="the highest group score of the event so far: a classifier probability (0..1) for a "
        "label group, the rise in dB for sudden_loud",
    )
    triggered_by: list[TriggeringClassRecord] = Field(
        description="classes at the peak (label groups: never empty; sudden_loud: empty)"
    )
    measures: dict[str, float] = Field(
        description="what a class-agnostic detector measured at the peak (sudden_loud: rise_db, peak_dbfs, "
        "reference_dbfs); empty for a label group"
    )
    start_seconds: float = Field(ge=0, description="where the sound starts (seconds of audio)")
    end_seconds: float | None = Field(ge=0, description="where it ends; null in a start record")
    window_start_seconds: float = Field(ge=0, description="start of the first classifier window that fired")
    window_end_seconds: float | None = Field(
        ge=0, description="end of the last window that fired; null in a start"
    )
    started_at: str | None = Field(
        description="wall clock of start_seconds (UTC ISO 8601), live sources only"
    )
    ended_at: str | None = Field(
        description="wall clock of end_seconds (UTC ISO 8601), live end records only"
    )
    reason: str = Field(
        description="why the event ended ('not heard', 'source finished', ...); '' in a start"
    )
    analyzer_id: str
    analysis_id: str | None = Field(description="the recording's SIFIS analysis id; null for a live source")
    session: str | None = Field(description="the listening run's id; null for a recording")
    requestor_id: str | None
    requestor_type: str | None
    request_id: str | None
    audio_file: str | None
    privacy_method: str = Field(description="the anonymisation applied before features were computed")
    privacy_params: dict[str, Any]
    weights_official: bool
    weights_warning: str | None = Field(description="set when the weights are not the official ones")
    detected_at: str = Field(description="when the record was made (UTC ISO 8601)")


def now_iso() -> str:
    """UTC now, ISO 8601 to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def event_record(
    change: EventChange, context: RecordContext, *, detected_at: str | None = None
) -> dict[str, Any]:
    """The ``SIFIS:Audio_Anomaly`` value of one start or end (the ``EventRecord`` fields)."""
    verb = "started" if change.change == "start" else "ended"
    event = change.to_dict()
    return {
        "schema_version": SCHEMA_VERSION,
        "description": f"Audio anomaly {verb}: {change.label} ({context.source})",
        **event,
        "source": context.source,
        "origin": context.origin,
        "analyzer_id": context.analyzer_id,
        "analysis_id": context.analysis_id,
        "session": context.session,
        "requestor_id": context.requestor_id,
        "requestor_type": context.requestor_type,
        "request_id": context.request_id,
        "audio_file": context.audio_file,
        "privacy_method": context.privacy_method,
        "privacy_params": dict(context.privacy_params),
        "weights_official": context.weights.official,
        "weights_warning": context.weights.warning,
        "detected_at": detected_at or now_iso(),
    }


def event_summary(change: EventChange) -> dict[str, Any]:
    """One finished event of a recording as its answer lists it (``_SUMMARY_FIELDS``)."""
    event = change.to_dict()
    return {name: event[name] for name in _SUMMARY_FIELDS}


def recording_context(result: AnalysisResult) -> RecordContext:
    """The record context of one analysed recording."""
    options = result.options
    return RecordContext(
        origin=options.origin,
        source=options.audio_file or "upload",
        analyzer_id=result.analyzer_id,
        privacy_method=result.privacy_applied,
        privacy_params=dict(result.privacy_params),
        weights=result.weights,
        analysis_id=result.analysis_id,
        requestor_id=options.requestor_id,
        requestor_type=options.requestor_type,
        request_id=options.request_id,
        audio_file=options.audio_file,
    )


def recording_event_records(result: AnalysisResult) -> list[dict[str, Any]]:
    """Every start and end record of one analysed recording, in order."""
    context = recording_context(result)
    detected_at = now_iso()
    return [event_record(change, context, detected_at=detected_at) for change in result.changes]


def result_value(result: AnalysisResult) -> dict[str, Any]:
    """The SIFIS analysis value of one recording: the DHT result record and the body of a SIFIS 200.

    The fields the old service's consumers read (``RESULT_FIELDS``), plus ``schema_version``,
    ``privacy_method`` (applied), ``anomalies`` (the recording's events, ``event_summary``),
    ``anomaly_scan_seconds`` ([start, end] of the audio scanned: the whole recording) and
    ``weights_official`` (with ``weights_warning`` when the weights are not the official ones);
    ``predictions`` are the first window's top labels, as before.
    """
    options = result.options
    return {
        "description": RESULT_DESCRIPTION,
        "schema_version": SCHEMA_VERSION,
        "requestor_id": options.requestor_id or "",
        "requestor_type": options.requestor_type or "",
        "request_id": options.request_id or "",
        "analyzer_id": result.analyzer_id,
        "analysis_id": result.analysis_id,
        "audio_file": options.audio_file or "",
        "method": options.sifis_method or result.privacy_requested,
        "privacy_method": result.privacy_applied,
        "predictions": result.windows[0].top,
        "anomalies": result.anomalies,
        "anomaly_scan_seconds": list(result.scanned_seconds),
        **result.weights.fields(),
    }


def summaries(changes: Sequence[EventChange]) -> list[dict[str, Any]]:
    """The finished events among ``changes`` (their end records), in the order they started."""
    ends = {change.event_id: change for change in changes if change.change == "end"}
    order = [change.event_id for change in changes if change.change == "start"]
    return [event_summary(ends[event_id]) for event_id in order if event_id in ends]
