"""The transformer's v2 response and model metadata.

Outputs: ``label_id``, ``label`` (BYTES ``[W, K]``), ``probability`` (FP32
``[W, K]``), ``window_start_seconds``, ``window_end_seconds`` (FP32 ``[W]``) and
``anomalies`` (BYTES ``[1]``: one UTF-8 JSON array, the only way a v2 tensor
carries nested records). Response parameters name the privacy method applied
and requested and echo the analysis and SIFIS ids. Numbers over REST:
``contract.v2_json``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from contract.rounding import SECONDS_DECIMALS, seconds_value
from contract.v2_json import NumberParameter
from transformer.analysis.types import AnalysisResult
from transformer.protocol.v2_request import AUDIO_INPUT, SIFIS_ID_PARAMETERS

OUTPUT_LABEL_ID = "label_id"
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITY = "probability"
OUTPUT_WINDOW_START = "window_start_seconds"
OUTPUT_WINDOW_END = "window_end_seconds"
OUTPUT_ANOMALIES = "anomalies"
OUTPUT_NAMES = (
    OUTPUT_LABEL_ID,
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
    OUTPUT_WINDOW_START,
    OUTPUT_WINDOW_END,
    OUTPUT_ANOMALIES,
)


def encode_result(result: AnalysisResult, request: InferRequest) -> InferResponse:
    """The v2 response for ``result``; JSON or binary outputs as the request asks."""
    windows = result.windows
    width = len(windows[0].top) if windows else 0
    label_ids = np.array([[p["label_id"] for p in w.top] for w in windows], dtype=np.object_)
    labels = np.array([[p["label"] for p in w.top] for w in windows], dtype=np.object_)
    outputs = {
        OUTPUT_LABEL_ID: label_ids.reshape(len(windows), width),
        OUTPUT_LABEL: labels.reshape(len(windows), width),
        OUTPUT_PROBABILITY: np.array(
            [[p["probability"] for p in w.top] for w in windows], dtype=np.float32
        ).reshape(len(windows), width),
        OUTPUT_WINDOW_START: np.array([seconds_value(w.start_seconds) for w in windows], dtype=np.float32),
        OUTPUT_WINDOW_END: np.array([seconds_value(w.end_seconds) for w in windows], dtype=np.float32),
        OUTPUT_ANOMALIES: np.array([json.dumps(result.anomalies)], dtype=np.object_),
    }
    # flat lists, not arrays: KServe's to_grpc tests ``output.data`` for truth,
    # which fails for a multi-element array when the caller sent raw inputs
    infer_outputs = [
        InferOutput(
            name=name,
            shape=list(array.shape),
            datatype="BYTES" if array.dtype == np.object_ else "FP32",
            data=array.reshape(-1).tolist(),
        )
        for name, array in outputs.items()
    ]
    return InferResponse(
        response_id=request.id or "",
        model_name=request.model_name,
        infer_outputs=infer_outputs,
        parameters=response_parameters(result),
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def response_parameters(result: AnalysisResult) -> dict[str, str | int | bool]:
    """Response parameters: the privacy applied, the analysis ids, the span scanned for
    anomalies (the whole recording, even when the labels cover MAX's one window), whether
    the weights are the official ones (``weights_official``, and ``weights_warning`` when
    not), the echoed SIFIS ids.

    ``privacy_requested`` is the method the request named; a request that named
    none asked for the service default, the operator minimum, which is then
    also ``privacy_method``. Strings, integers and booleans, which cross gRPC too; the
    seconds are ``NumberParameter``: JSON numbers over REST, text over gRPC (KServe's gRPC
    parameters have no floating-point type).
    """
    parameters: dict[str, str | int | bool] = {
        "privacy_method": result.privacy_applied,
        "privacy_requested": result.privacy_requested,
        "analyzer_id": result.analyzer_id,
        "analysis_id": result.analysis_id,
        "anomaly_count": len(result.anomalies),
        "duration_seconds": NumberParameter.of(result.duration_seconds, SECONDS_DECIMALS),
        "anomaly_scan_start_seconds": NumberParameter.of(result.scanned_seconds[0], SECONDS_DECIMALS),
        "anomaly_scan_end_seconds": NumberParameter.of(result.scanned_seconds[1], SECONDS_DECIMALS),
        **result.weights.fields(),
    }
    for name in SIFIS_ID_PARAMETERS:
        value = getattr(result.options, name)
        if value is not None:
            parameters[name] = value
    return parameters


def input_metadata() -> list[dict[str, Any]]:
    """v2 model metadata of the transformer's input."""
    return [{"name": AUDIO_INPUT, "datatype": "BYTES", "shape": [1]}]


def output_metadata() -> list[dict[str, Any]]:
    """v2 model metadata of the transformer's outputs (-1 = varies per request)."""
    return [
        {"name": OUTPUT_LABEL_ID, "datatype": "BYTES", "shape": [-1, -1]},
        {"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1, -1]},
        {"name": OUTPUT_PROBABILITY, "datatype": "FP32", "shape": [-1, -1]},
        {"name": OUTPUT_WINDOW_START, "datatype": "FP32", "shape": [-1]},
        {"name": OUTPUT_WINDOW_END, "datatype": "FP32", "shape": [-1]},
        {"name": OUTPUT_ANOMALIES, "datatype": "BYTES", "shape": [1]},
    ]
