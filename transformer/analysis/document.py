"""One analysis as a JSON document: what ``audioguard classify --json`` prints, and the
shape ``audioguard client --json`` rebuilds from a v2 response, so both read alike.

Numbers as ``contract.rounding`` writes them; the weights verdict always there
(``weights_warning`` too when the weights are not the official ones).
"""

from __future__ import annotations

from typing import Any

from contract.rounding import seconds_value
from transformer.analysis.types import AnalysisResult


def result_document(result: AnalysisResult) -> dict[str, Any]:
    """``{duration_seconds, privacy_method, privacy_requested, weights_official[, weights_warning],
    windows: [{start_seconds, end_seconds, top}], anomalies, anomaly_scan_seconds, analysis_id}``."""
    return {
        "duration_seconds": seconds_value(result.duration_seconds),
        "privacy_method": result.privacy_applied,
        "privacy_requested": result.privacy_requested,
        **result.weights.fields(),
        "windows": [
            {"start_seconds": w.start_seconds, "end_seconds": w.end_seconds, "top": w.top}
            for w in result.windows
        ],
        "anomalies": result.anomalies,
        "anomaly_scan_seconds": list(result.scanned_seconds),
        "analysis_id": result.analysis_id,
    }
