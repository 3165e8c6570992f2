"""The transformer's side of the Open Inference Protocol (v2): requests in, results out.

Request (REST JSON, REST binary extension or gRPC):

- one input tensor ``audio``, datatype ``BYTES``, shape ``[1]``: the encoded audio
  file (WAV, FLAC, OGG, ...). With the binary tensor extension and over gRPC the
  element travels as raw bytes (4-byte little-endian length + bytes). In JSON it
  is a base64 string and the request or the input carries the parameter
  ``content_encoding: "base64"``.
- optional request parameters: ``privacy`` (method) and ``privacy_<name>`` (its
  parameters, e.g. ``privacy_epsilon``), ``start_time`` (seconds), ``top_k``,
  ``all_windows``, and the SIFIS ids ``requestor_id``, ``requestor_type``,
  ``request_id``. Numbers may be sent as strings (gRPC parameters carry no floats).

KServe 0.21 re-encodes binary BYTES inputs as UTF-8 text (an audio file fails
with a 500 whose message echoes the file), so REST bodies are decoded here
instead: binary elements stay bytes, and no error message contains payload bytes.

Response outputs: ``label_id``, ``label`` (BYTES ``[W, K]``), ``probability``
(FP32 ``[W, K]``), ``window_start_seconds``, ``window_end_seconds`` (FP32 ``[W]``)
and ``anomalies`` (BYTES ``[1]``, a JSON array); response parameters name the
privacy method applied and the SIFIS ids.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from kserve.protocol.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    to_http_parameters,
)

from audioguard.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, NUM_CLASSES
from audioguard.errors import InvalidInput, InvalidParameter
from transformer.privacy.request import names_a_method

AUDIO_INPUT = "audio"
EMBEDDINGS_INPUT = "embeddings"
CONTENT_ENCODING = "content_encoding"
BASE64 = "base64"
PRIVACY_PARAMETER = "privacy"
PRIVACY_PARAMETER_PREFIX = "privacy_"
SIFIS_ID_PARAMETERS = ("requestor_id", "requestor_type", "request_id")
#: Parameters other v2 clients add on their own (tritonclient, KServe); accepted, not used here.
PASSTHROUGH_PARAMETERS = frozenset(
    {"binary_data_output", "priority", "timeout", "sequence_id", "sequence_start", "sequence_end"}
)
KNOWN_PARAMETERS = frozenset(
    {PRIVACY_PARAMETER, "start_time", "top_k", "all_windows", CONTENT_ENCODING, *SIFIS_ID_PARAMETERS}
)
MAX_ID_LENGTH = 256

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

_LENGTH_PREFIX = struct.Struct("<I")


# --- what a caller asks for and what it gets -----------------------------------------


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


@dataclass(frozen=True)
class WindowPrediction:
    """Top labels of one classifier window: ``top`` = [{label_id, label, probability}]."""

    start_seconds: float
    end_seconds: float
    top: list[dict[str, Any]]


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one analysed recording gives back (no audio, no embeddings).

    Attributes:
        windows: one entry per classifier window, in time order.
        anomalies: JSON-ready anomaly records (group, score, window bounds, classes).
        privacy_requested: the method the caller named (canonical name; "none"
            when it named none, see ``options.privacy_method``).
        privacy_applied: the method actually applied (the operator minimum may upgrade it).
        analyzer_id, analysis_id: SIFIS identifiers of this analysis.
        duration_seconds: length of the decoded recording.
        options: the request options (ids echoed in responses).
    """

    windows: list[WindowPrediction]
    anomalies: list[dict[str, Any]]
    privacy_requested: str
    privacy_applied: str
    analyzer_id: str
    analysis_id: str
    duration_seconds: float
    options: AnalysisOptions


@dataclass(frozen=True)
class AudioCall:
    """A decoded v2 request: the encoded audio file and the validated options."""

    audio: bytes
    options: AnalysisOptions


# --- scalar parameter validation (shared with the SIFIS form fields) -------------------


def parse_start_time(value: object) -> float:
    """``start_time`` as finite seconds >= 0 (numbers or numeric strings)."""
    number = _parse_number("start_time", value)
    if number < 0:
        raise InvalidParameter(f"start_time must be >= 0 seconds, got {number:g}")
    return number


def parse_top_k(value: object) -> int:
    """``top_k`` as an integer between 1 and the number of classes."""
    number = _parse_number("top_k", value)
    if not number.is_integer() or not 1 <= number <= NUM_CLASSES:
        raise InvalidParameter(f"top_k must be an integer between 1 and {NUM_CLASSES}, got {value!r}")
    return int(number)


def parse_bool(name: str, value: object) -> bool:
    """A boolean parameter: true/false, or the strings true/false/1/0/yes/no."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise InvalidParameter(f"{name} must be a boolean (true or false), got {_describe(value)}")


def parse_identifier(name: str, value: object) -> str:
    """A SIFIS id: a printable string (integers are accepted and converted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a string, got {_describe(value)}")
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise InvalidParameter(
            f"{name} must be 1 to {MAX_ID_LENGTH} printable characters, got {len(value)} characters"
        )
    return value


def _parse_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParameter(f"{name} must be a number, got {_describe(value)}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidParameter(f"{name} must be a number, got {_describe(value)}") from None
    if not math.isfinite(number):
        raise InvalidParameter(f"{name} must be a finite number, got {value!r}")
    return number


def _describe(value: object) -> str:
    """A short, payload-free description of a bad value for error messages."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)
    return f"a value of type {type(value).__name__}"


def parse_options(parameters: Mapping[str, object] | None) -> AnalysisOptions:
    """Validate v2 request parameters into ``AnalysisOptions``.

    Unknown names are refused (400) so that a misspelt ``privacy`` can never
    silently fall back to no anonymisation.
    """
    params = dict(parameters or {})
    privacy_params = {
        name[len(PRIVACY_PARAMETER_PREFIX) :]: value
        for name, value in params.items()
        if name.startswith(PRIVACY_PARAMETER_PREFIX)
    }
    unknown = sorted(
        name
        for name in params
        if name not in KNOWN_PARAMETERS
        and name not in PASSTHROUGH_PARAMETERS
        and not name.startswith(PRIVACY_PARAMETER_PREFIX)
    )
    if unknown:
        known = ", ".join(sorted(KNOWN_PARAMETERS)) + ", privacy_<parameter>"
        raise InvalidParameter(
            f"unknown request parameter(s) {', '.join(map(repr, unknown))}: known parameters are {known}"
        )
    method = params.get(PRIVACY_PARAMETER)
    if method is not None and not isinstance(method, str):
        raise InvalidParameter(f"privacy must be a method name, got {_describe(method)}")
    ids = {name: parse_identifier(name, params[name]) for name in SIFIS_ID_PARAMETERS if name in params}
    return AnalysisOptions(
        privacy_method=method,
        privacy_params=privacy_params,
        start_time=parse_start_time(params["start_time"]) if "start_time" in params else 0.0,
        top_k=parse_top_k(params["top_k"]) if "top_k" in params else None,
        all_windows=parse_bool("all_windows", params["all_windows"]) if "all_windows" in params else False,
        **ids,
    )


# --- REST body -> InferRequest (binary BYTES kept as bytes) --------------------------------


def decode_rest_body(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """Parse a v2 REST inference body without KServe's UTF-8 re-encoding of BYTES.

    Args:
        body: the whole HTTP request body.
        header_length: the ``Inference-Header-Content-Length`` header (binary
            extension) or None for a JSON-only body.
        model_name: the model named in the URL.

    Returns:
        An ``InferRequest`` whose binary inputs hold their raw serialized bytes,
        as KServe's gRPC path does with ``raw_input_contents``.
    """
    json_length = len(body) if header_length is None else _parse_header_length(header_length, len(body))
    try:
        document = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as error:
        raise InvalidInput(_json_failure(body, json_length, header_length is not None, error)) from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise InvalidInput('the v2 inference request needs an "inputs" list')
    parameters = _parameters_object(document.get("parameters"), "request")
    inputs = []
    offset = json_length
    for entry in document["inputs"]:
        infer_input, offset = _decode_input(entry, body, offset)
        inputs.append(infer_input)
    if offset != len(body):
        raise InvalidInput(
            f"the binary part of the request has {len(body) - json_length} bytes but the inputs' "
            f"binary_data_size values add up to {offset - json_length}"
        )
    request_id = document.get("id")
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=request_id if isinstance(request_id, str) else None,
        parameters=parameters,
        request_outputs=_requested_outputs(document.get("outputs")),
    )


def _json_failure(body: bytes, json_length: int, has_header: bool, error: orjson.JSONDecodeError) -> str:
    """Why the JSON part does not parse, in words that point at the likely fix.

    Only the parser's own description and position are quoted, never body bytes.
    """
    where = f"{error.msg} at line {error.lineno} column {error.colno}"
    not_json = "NaN, Infinity and numbers beyond the double range such as 1e309 are not JSON"
    binary_hint = (
        "binary tensors need the Inference-Header-Content-Length header giving the JSON part's length"
    )
    if has_header:
        return (
            f"the request body is not a v2 inference request: its JSON part (the first {json_length} "
            f"bytes, per Inference-Header-Content-Length) is not valid JSON ({where}; {not_json}); "
            "the header must give the JSON part's length in bytes"
        )
    # surrogateescape keeps non-UTF-8 bytes countable without failing the decode
    text = body.decode("utf-8", errors="surrogateescape").lstrip()
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        end = None
    if end is not None and text[end:].strip():
        return f"the request body is not a v2 inference request: more data follows its JSON ({binary_hint})"
    if any("\udc80" <= char <= "\udcff" for char in text):
        return (
            "the request body is not a v2 inference request: it is binary data, not JSON (send the "
            f"audio as a BYTES input, base64 in JSON or binary; {binary_hint})"
        )
    return f"the request body is not valid JSON ({where}; {not_json})"


def _parse_header_length(value: str, body_length: int) -> int:
    try:
        length = int(value)
    except ValueError:
        raise InvalidInput("Inference-Header-Content-Length must be an integer") from None
    if not 0 < length <= body_length:
        raise InvalidInput(
            f"Inference-Header-Content-Length ({length}) must be between 1 and "
            f"the body length ({body_length})"
        )
    return length


def _parameters_object(value: object, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"the {where} parameters must be a JSON object")
    return value


def _decode_input(entry: object, body: bytes, offset: int) -> tuple[InferInput, int]:
    if not isinstance(entry, dict):
        raise InvalidInput("each v2 input must be a JSON object")
    name, shape, datatype = entry.get("name"), entry.get("shape"), entry.get("datatype")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InvalidInput('each v2 input needs a string "name" and "datatype"')
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput(f'input {name!r} needs a "shape" list of non-negative integers')
    parameters = _parameters_object(entry.get("parameters"), f"input {name!r}")
    infer_input = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
    size = (parameters or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise InvalidInput(
                f"input {name!r}: binary_data_size must be a byte count within the request body"
            )
        # the same representation KServe's gRPC path builds from raw_input_contents
        infer_input._raw_data = body[offset : offset + size]
        return infer_input, offset + size
    if "data" not in entry:
        raise InvalidInput(f'input {name!r} has neither "data" nor a binary_data_size parameter')
    infer_input.data = entry["data"]
    return infer_input, offset


def _requested_outputs(value: object) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in value
    ):
        raise InvalidInput('"outputs" must be a list of objects with a "name"')
    requested = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in value]
    unknown = sorted({o.name for o in requested} - set(OUTPUT_NAMES))
    if unknown:
        raise InvalidParameter(
            f"unknown output(s) {', '.join(map(repr, unknown))}: this model outputs {', '.join(OUTPUT_NAMES)}"
        )
    return requested or None


# --- InferRequest -> audio bytes and options -----------------------------------------------


def parse_audio_request(request: InferRequest) -> AudioCall:
    """The encoded audio file and the options of a v2 request (REST or gRPC)."""
    parameters = _plain_parameters(request.parameters)
    names = [infer_input.name for infer_input in request.inputs]
    if names != [AUDIO_INPUT]:
        raise InvalidInput(
            f"expected exactly one input named {AUDIO_INPUT!r} (BYTES, shape [1], the encoded "
            f"audio file), got {names}"
        )
    audio_input = request.inputs[0]
    input_parameters = _plain_parameters(audio_input.parameters)
    encoding = input_parameters.get(CONTENT_ENCODING, parameters.get(CONTENT_ENCODING))
    return AudioCall(audio=audio_bytes(audio_input, encoding), options=parse_options(parameters))


def _plain_parameters(parameters: object) -> dict[str, Any]:
    """REST dicts and gRPC ``InferParameter`` maps as one plain dict."""
    if not parameters:
        return {}
    return to_http_parameters(parameters)  # type: ignore[arg-type]


def audio_bytes(audio_input: InferInput, encoding: object = None) -> bytes:
    """The single BYTES element of the ``audio`` input, as the bytes the caller sent.

    Raw (binary extension / gRPC raw contents) and gRPC ``bytes_contents`` are
    used as they are; JSON strings must be base64 with ``content_encoding`` set.
    """
    if audio_input.datatype != "BYTES":
        raise InvalidInput(f"input {AUDIO_INPUT!r} must have datatype BYTES, got {audio_input.datatype}")
    if int(np.prod(audio_input.shape)) != 1:
        raise InvalidInput(
            f"input {AUDIO_INPUT!r} must hold exactly one element (shape [1]), got shape {audio_input.shape}"
        )
    if encoding is not None and encoding != BASE64:
        raise InvalidParameter(f"{CONTENT_ENCODING} must be {BASE64!r}, got {_describe(encoding)}")
    raw = audio_input._raw_data
    if raw is not None:
        return _single_serialized_element(raw)
    elements = _flatten(audio_input.data)
    if len(elements) != 1:
        raise InvalidInput(f"input {AUDIO_INPUT!r} must hold exactly one element, got {len(elements)}")
    element = elements[0]
    if isinstance(element, bytes):
        return element
    if not isinstance(element, str):
        raise InvalidInput(f"input {AUDIO_INPUT!r} must hold the audio file, got {_describe(element)}")
    if encoding != BASE64:
        raise InvalidParameter(
            f"audio sent as JSON text must be base64 with the parameter {CONTENT_ENCODING}: "
            f'"{BASE64}" (or use the binary tensor extension or gRPC)'
        )
    try:
        return base64.b64decode(element, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"input {AUDIO_INPUT!r} is not valid base64") from None


def _flatten(data: object) -> list[object]:
    if isinstance(data, list):
        return [item for element in data for item in _flatten(element)]
    if data is None:
        return []
    return [data]


def _single_serialized_element(raw: bytes) -> bytes:
    """One v2 BYTES element from its serialization: 4-byte LE length + bytes."""
    if len(raw) < _LENGTH_PREFIX.size:
        raise InvalidInput(
            f"binary input {AUDIO_INPUT!r} is too short for a BYTES element (4-byte length + data)"
        )
    (length,) = _LENGTH_PREFIX.unpack_from(raw)
    if length != len(raw) - _LENGTH_PREFIX.size:
        raise InvalidInput(
            f"binary input {AUDIO_INPUT!r} must be one BYTES element: a 4-byte little-endian length "
            f"({length}) followed by exactly that many bytes ({len(raw) - _LENGTH_PREFIX.size} sent)"
        )
    return raw[_LENGTH_PREFIX.size :]


# --- transformer <-> predictor --------------------------------------------------------------


def embeddings_request(
    windows: np.ndarray, *, model_name: str, request_id: str | None, binary: bool
) -> InferRequest:
    """The predictor request: input ``embeddings`` UINT8 ``[W, 10, 128]``.

    ``binary`` sends raw bytes (gRPC); REST forwarding uses JSON because KServe
    0.21 sends binary REST tensors with two Content-Type headers (400).
    """
    expected = (EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE)
    if windows.dtype != np.uint8 or windows.ndim != 3 or windows.shape[1:] != expected:
        raise ValueError(
            f"expected (W, {expected[0]}, {expected[1]}) uint8 windows, got {windows.dtype} {windows.shape}"
        )
    tensor = InferInput(EMBEDDINGS_INPUT, list(windows.shape), "UINT8")
    tensor.set_data_from_numpy(np.ascontiguousarray(windows), binary_data=binary)
    return InferRequest(model_name=model_name, infer_inputs=[tensor], request_id=request_id)


def scores_from_response(response: InferResponse, num_windows: int) -> np.ndarray:
    """The predictor's (W, 527) float32 scores (its single output)."""
    if len(response.outputs) != 1:
        raise ValueError(f"expected one predictor output, got {[o.name for o in response.outputs]}")
    scores = np.asarray(response.outputs[0].as_numpy(), dtype=np.float32)
    if scores.shape != (num_windows, NUM_CLASSES):
        raise ValueError(
            f"expected predictor scores of shape {(num_windows, NUM_CLASSES)}, got {scores.shape}"
        )
    return scores


# --- result -> v2 response --------------------------------------------------------------------


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
        OUTPUT_WINDOW_START: np.array([w.start_seconds for w in windows], dtype=np.float32),
        OUTPUT_WINDOW_END: np.array([w.end_seconds for w in windows], dtype=np.float32),
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


def response_parameters(result: AnalysisResult) -> dict[str, str | int]:
    """Response parameters: the privacy applied, the analysis ids, the echoed SIFIS ids.

    ``privacy_requested`` is the method the request named; a request that named
    none asked for the service default, the operator minimum, which is then
    also ``privacy_method``. Strings and integers only, so they cross gRPC too.
    """
    named = names_a_method(result.options.privacy_method)
    parameters: dict[str, str | int] = {
        "privacy_method": result.privacy_applied,
        "privacy_requested": result.privacy_requested if named else result.privacy_applied,
        "analyzer_id": result.analyzer_id,
        "analysis_id": result.analysis_id,
        "anomaly_count": len(result.anomalies),
        "duration_seconds": f"{result.duration_seconds:.3f}",
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
