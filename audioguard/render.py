"""What a person reads: one analysis document (``transformer.analysis.document``) as text.

``audioguard classify`` and ``audioguard client`` print the same lines for the
same recording: a header, a warning line when the weights are not the official
ones, the top labels of each window, then one line per anomaly event (group, peak
score to two decimals against its threshold, where the sound was heard, the classes
that triggered it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract.weights_status import NOT_OFFICIAL_WARNING, WEIGHTS_OFFICIAL, WEIGHTS_WARNING

#: Classes named on an anomaly line; the rest are counted.
TRIGGERS_SHOWN = 3


def span(start: float, end: float) -> str:
    return f"{start:.2f}-{end:.2f} s"


def event_detail(anomaly: Mapping[str, Any]) -> str:
    """What fired an event: its classes (``Glass 0.92, Shatter 0.71``) and, for a class-agnostic
    group, what it measured (``rise_db 17.2, peak_dbfs -31.5, reference_dbfs -48.7``)."""
    triggers = list(anomaly.get("triggered_by") or [])
    named = ", ".join(f"{t['label']} {t['score']:.2f}" for t in triggers[:TRIGGERS_SHOWN])
    more = f" (+{len(triggers) - TRIGGERS_SHOWN} more)" if len(triggers) > TRIGGERS_SHOWN else ""
    measured = ", ".join(f"{name} {value:g}" for name, value in (anomaly.get("measures") or {}).items())
    return "; ".join(part for part in (named + more, measured) if part)


def anomaly_line(anomaly: Mapping[str, Any]) -> str:
    """``Glass breaking [glass_break] 0.92 (threshold 0.50) 12.00-12.48 s: Glass 0.92, Shatter 0.71``."""
    return (
        f"{anomaly['label']} [{anomaly['group']}] {anomaly['peak_score']:.2f} "
        f"(threshold {anomaly['threshold']:.2f}) {span(anomaly['start_seconds'], anomaly['end_seconds'])}: "
        f"{event_detail(anomaly)}"
    )


def describe(path: str, document: Mapping[str, Any]) -> str:
    """The lines for one file's analysis."""
    header = f"{path}  ({document['duration_seconds']:.2f} s, privacy {document['privacy_method']}"
    if document.get("privacy_requested") not in (None, document["privacy_method"]):
        header += f", asked for {document['privacy_requested']}"
    lines = [header + ")"]
    if not document.get(WEIGHTS_OFFICIAL, False):
        lines.append(f"  WARNING: {document.get(WEIGHTS_WARNING) or NOT_OFFICIAL_WARNING}")
    for window in document["windows"]:
        lines.append(f"  {span(window['start_seconds'], window['end_seconds'])}")
        for rank, item in enumerate(window["top"], 1):
            lines.append(f"    {rank}. {item['label']:<40} {item['probability']:.2f}")
    anomalies = document["anomalies"]
    scanned = document.get("anomaly_scan_seconds")
    where = f" in {span(*scanned)}" if scanned else ""
    if not anomalies:
        lines.append(f"  no anomaly{where}")
    else:
        lines.append(f"  {len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}{where}:")
        lines.extend(f"    {anomaly_line(anomaly)}" for anomaly in anomalies)
    return "\n".join(lines)
