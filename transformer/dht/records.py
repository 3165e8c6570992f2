"""The messages one analysis posts to the SIFIS DHT: the result value and the anomaly events.

- The **result** value is what SIFIS consumers read today (``RESULT_FIELDS``)
  plus ``privacy_method`` (applied) and ``anomalies``; it goes to
  ``SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results`` /
  ``Audio_Anomaly_Detection_Results``, so each result overwrites the previous
  one (as the Analytics-API does). The SIFIS endpoint answers the same value.
- One **anomaly event** per detected anomaly goes to ``SIFIS:Audio_Anomaly``
  under its own ``topic_uuid`` (a UUIDv5 of analysis id, group and window), so
  events never overwrite each other and a re-sent duplicate lands on the same key.

Message shapes are documented in docs/anomalies-and-dht.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from contract.weights_status import WEIGHTS_OFFICIAL, WEIGHTS_WARNING
from transformer.analysis.anomalies import Anomaly
from transformer.analysis.types import AnalysisResult
from transformer.dht.outbox import OutboxMessage
from transformer.dht.topics import ANOMALY_TOPIC_NAME, RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID

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
#: copied from the result into every anomaly event so it stands on its own
_CONTEXT_FIELDS: Final = (
    "analyzer_id",
    "analysis_id",
    "requestor_id",
    "requestor_type",
    "request_id",
    "audio_file",
    "method",
    WEIGHTS_OFFICIAL,
    WEIGHTS_WARNING,
)
#: fixed namespace: the same (analysis, group, window) always gives the same event uuid
EVENT_NAMESPACE: Final = uuid.UUID("6f1d3c2a-8e4b-5a7c-9d0e-a1b2c3d4e5f6")

PostMode = Literal["anomalies", "all"]


def result_value(result: AnalysisResult) -> dict[str, Any]:
    """The SIFIS result value of one analysis: the DHT record and the body of a SIFIS 200.

    The fields the old service's consumers read, plus ``privacy_method``
    (applied), ``anomalies``, ``anomaly_scan_seconds`` ([start, end] of the
    audio scanned: the whole recording) and ``weights_official`` (with
    ``weights_warning`` when the weights are not the official ones);
    ``predictions`` are the first window's top labels, as before.
    """
    options = result.options
    return {
        "description": RESULT_DESCRIPTION,
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


def anomaly_event_uuid(analysis_id: str, anomaly: Anomaly) -> str:
    """The topic_uuid of one anomaly event: UUIDv5 of analysis id, group and window index."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{analysis_id}\n{anomaly.group}\n{anomaly.window_index}"))


def anomaly_event_value(result: Mapping[str, Any], anomaly: Anomaly, event_uuid: str) -> dict[str, Any]:
    """The value posted to the anomaly topic: the anomaly, its event id and the analysis context."""
    return {
        "description": f"Audio anomaly: {anomaly.label}",
        "event_id": event_uuid,
        **anomaly.to_dict(),
        **{field: result[field] for field in _CONTEXT_FIELDS if field in result},
        "detected_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def build_messages(
    result: Mapping[str, Any],
    anomalies: Sequence[Anomaly],
    *,
    post_mode: PostMode = "anomalies",
    results_topic: tuple[str, str] = (RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID),
    anomaly_topic: str = ANOMALY_TOPIC_NAME,
) -> list[OutboxMessage]:
    """The outbox messages for one analysis' result value: anomaly events first, then the
    result itself when ``post_mode`` is "all" or anything was found.

    Raises:
        ValueError: ``result`` lacks one of ``RESULT_FIELDS``.
    """
    missing = [field for field in RESULT_FIELDS if field not in result]
    if missing:
        raise ValueError(f"the SIFIS result value lacks {', '.join(missing)}")
    analysis_id = str(result["analysis_id"])
    messages = []
    for anomaly in anomalies:
        event_uuid = anomaly_event_uuid(analysis_id, anomaly)
        value = anomaly_event_value(result, anomaly, event_uuid)
        messages.append(OutboxMessage(anomaly_topic, event_uuid, value, "anomaly"))
    if post_mode == "all" or anomalies:
        value = {**result, "anomalies": [anomaly.to_dict() for anomaly in anomalies]}
        messages.append(OutboxMessage(results_topic[0], results_topic[1], value, "result"))
    return messages
