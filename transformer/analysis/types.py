"""What a caller asks of one analysis and what it gets back, whatever the transport.

The v2 protocol, the SIFIS form and the DHT listener all produce
``AnalysisOptions``; the analysis (``transformer.analysis.analyzer``) produces an
``AnalysisResult``, which each transport encodes in its own way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from contract.weights_status import WeightsStatus
from transformer.analysis.events import EventChange

#: Where a recording or stream came in (the ``origin`` of its records).
Origin = Literal["live", "sifis", "dht_request", "v2", "offline"]


@dataclass(frozen=True)
class AnalysisOptions:
    """Validated per-request options, whatever the transport (v2 or the SIFIS form).

    Attributes:
        privacy_method: requested anonymisation (None = not given).
        privacy_params: its parameters, names without the ``privacy_`` prefix.
        start_time: seconds into the clip where the (first) window starts.
        top_k: labels per window, None = the service default.
        all_windows: score every window of a long recording instead of MAX's one.
        label_filter: MAX's ``filter``: only these display names among the top k.
        requestor_id, requestor_type, request_id: SIFIS ids echoed in the result.
        audio_file: SIFIS file name echoed in the result (the path's ``{audio_file}``).
        sifis_method: the SIFIS path's ``{method}`` as written (echoed; it may be an
            old spelling such as ``scrample`` or ``nothing``).
        origin: the transport the recording came by (its records say so).
    """

    privacy_method: str | None = None
    privacy_params: Mapping[str, object] = field(default_factory=dict)
    start_time: float = 0.0
    top_k: int | None = None
    all_windows: bool = False
    label_filter: Sequence[str] | None = None
    requestor_id: str | None = None
    requestor_type: str | None = None
    request_id: str | None = None
    audio_file: str | None = None
    sifis_method: str | None = None
    origin: Origin = "v2"


@dataclass(frozen=True)
class PredictorScores:
    """The predictor's answer for a batch of windows.

    Attributes:
        values: (W, 527) float32 scores, one row per window sent.
        weights_official: the predictor's verdict on its classifier file (None: it did not say).
    """

    values: np.ndarray
    weights_official: bool | None


@dataclass(frozen=True)
class WindowPrediction:
    """Top labels of one classifier window: ``top`` = [{label_id, label, probability}].

    ``scores`` is the window's whole (527,) float32 score row, kept for in-process
    callers (the timeline plot, benchmarks); no transport encodes it.
    """

    start_seconds: float
    end_seconds: float
    top: list[dict[str, Any]]
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one analysed recording gives back (no audio, no embeddings).

    Attributes:
        windows: one entry per classifier window, in time order.
        anomalies: the recording's anomaly events, JSON-ready (``records.event_summary``:
            group, peak score, where the sound lies, the windows that fired, classes).
        privacy_requested: the method the caller asked for (canonical name); a
            request that named none asked for the service default, the operator
            minimum, so this is then the method applied.
        privacy_applied: the method actually applied (the operator minimum may upgrade it).
        analyzer_id, analysis_id: SIFIS identifiers of this analysis.
        duration_seconds: length of the decoded recording.
        options: the request options (ids echoed in responses).
        scanned_seconds: (start, end) of the audio scanned for anomalies: the whole
            recording, whatever windows the labels were asked for.
        weights: whether the files behind the scores are the official ones.
        changes: the starts and ends of the recording's events, in order (what the DHT gets).
        privacy_params: the parameters of the method applied.
        sifis_value: the SIFIS analysis value (``records.result_value``), made once: the DHT
            result record and the SIFIS endpoint's answer.
    """

    windows: list[WindowPrediction]
    anomalies: list[dict[str, Any]]
    privacy_requested: str
    privacy_applied: str
    analyzer_id: str
    analysis_id: str
    duration_seconds: float
    options: AnalysisOptions
    scanned_seconds: tuple[float, float]
    weights: WeightsStatus
    changes: tuple[EventChange, ...] = ()
    privacy_params: Mapping[str, Any] = field(default_factory=dict)
    sifis_value: Mapping[str, Any] = field(default_factory=dict, repr=False)
