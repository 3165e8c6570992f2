"""A v2 inference request to the transformer: the audio file and the options.

- one input tensor ``audio``, datatype ``BYTES``, shape ``[1]``: the encoded audio
  file (WAV, FLAC, OGG, ...). With the binary tensor extension and over gRPC the
  element travels as raw bytes (4-byte little-endian length + bytes). In JSON it
  is a base64 string and the request or the input carries the parameter
  ``content_encoding: "base64"``.
- optional request parameters: ``privacy`` (method) and ``privacy_<name>`` (its
  parameters, e.g. ``privacy_epsilon``), ``start_time`` (seconds), ``top_k``,
  ``all_windows``, ``filter`` (MAX's comma-separated labels), and the SIFIS ids
  ``requestor_id``, ``requestor_type``, ``request_id``. Numbers may be sent as strings
  (gRPC parameters carry no floats).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferInput, InferRequest, to_http_parameters

from contract.errors import InvalidInput, InvalidParameter
from contract.kserve_compat import raw_data
from contract.parsing import describe_value
from transformer.analysis.labels import parse_label_filter
from transformer.analysis.types import AnalysisOptions
from transformer.protocol.params import (
    bool_parameter,
    parse_identifier,
    parse_start_time,
    parse_top_k,
)

AUDIO_INPUT = "audio"
CONTENT_ENCODING = "content_encoding"
BASE64 = "base64"
PRIVACY_PARAMETER = "privacy"
PRIVACY_PARAMETER_PREFIX = "privacy_"
SIFIS_ID_PARAMETERS = ("requestor_id", "requestor_type", "request_id")
#: Parameters other v2 clients add on their own (tritonclient, KServe); accepted, not used here.
PASSTHROUGH_PARAMETERS = frozenset(
    {"binary_data_output", "priority", "timeout", "sequence_id", "sequence_start", "sequence_end"}
)
#: MAX's ``filter``: comma-separated display names kept among the top k (as in the SIFIS form).
FILTER_PARAMETER = "filter"
KNOWN_PARAMETERS = frozenset(
    {
        PRIVACY_PARAMETER,
        "start_time",
        "top_k",
        "all_windows",
        FILTER_PARAMETER,
        CONTENT_ENCODING,
        *SIFIS_ID_PARAMETERS,
    }
)

_LENGTH_PREFIX = struct.Struct("<I")


@dataclass(frozen=True)
class AudioCall:
    """A decoded v2 request: the encoded audio file and the validated options."""

    audio: bytes
    options: AnalysisOptions


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
        raise InvalidParameter(f"privacy must be a method name, got {describe_value(method)}")
    ids = {name: parse_identifier(name, params[name]) for name in SIFIS_ID_PARAMETERS if name in params}
    label_filter = params.get(FILTER_PARAMETER)
    if label_filter is not None and not isinstance(label_filter, str):
        raise InvalidParameter(f"filter must be comma-separated labels, got {describe_value(label_filter)}")
    return AnalysisOptions(
        privacy_method=method,
        privacy_params=privacy_params,
        start_time=parse_start_time(params["start_time"]) if "start_time" in params else 0.0,
        top_k=parse_top_k(params["top_k"]) if "top_k" in params else None,
        all_windows=bool_parameter("all_windows", params.get("all_windows", False)),
        label_filter=parse_label_filter(label_filter),
        requestor_id=ids.get("requestor_id"),
        requestor_type=ids.get("requestor_type"),
        request_id=ids.get("request_id"),
        audio_file=ids.get("audio_file"),
        origin="v2",
    )


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
        raise InvalidParameter(f"{CONTENT_ENCODING} must be {BASE64!r}, got {describe_value(encoding)}")
    raw = raw_data(audio_input)
    if raw is not None:
        return _single_serialized_element(raw)
    elements = _flatten(audio_input.data)
    if len(elements) != 1:
        raise InvalidInput(f"input {AUDIO_INPUT!r} must hold exactly one element, got {len(elements)}")
    element = elements[0]
    if isinstance(element, bytes):
        return element
    if not isinstance(element, str):
        raise InvalidInput(f"input {AUDIO_INPUT!r} must hold the audio file, got {describe_value(element)}")
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


def request_bytes(request: object) -> int:
    """The bytes a v2 request carries in its inputs (gRPC raw contents or data elements)."""
    if not isinstance(request, InferRequest):
        return 0
    total = 0
    for infer_input in request.inputs:
        raw = raw_data(infer_input)
        if raw is not None:
            total += len(raw)
        elif isinstance(infer_input.data, list):
            total += sum(len(item) for item in infer_input.data if isinstance(item, bytes | str))
    return total
