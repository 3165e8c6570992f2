"""The v2 REST ``/infer`` route of both services, decoded here instead of by KServe 0.21.

KServe 0.21 re-encodes binary BYTES inputs as UTF-8 text, so an audio file sent
with the binary tensor extension fails with a 500 whose message echoes the file
(on the transformer, and on the predictor when someone posts audio to it).
``decode_rest_body`` parses the body itself: binary elements stay bytes (the
representation KServe's gRPC path builds from ``raw_input_contents``), every
malformed body is an ``InvalidInput`` (400) naming the problem, and no message
contains payload bytes. ``read_bounded_body`` reads at most a limit, in memory;
``rest_response`` encodes the answer (``contract.v2_json``: shortest float32
decimals, typed parameters). tests/contract/test_v2_rest.py
has a test that fails once KServe keeps raw bytes itself, so the workaround can go.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, ParamSpec, TypeVar

import orjson
from fastapi import Request, Response
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

from contract.errors import AudioGuardError, InvalidInput, InvalidParameter
from contract.kserve_compat import set_raw_data
from contract.v2_json import encode_response

INFERENCE_HEADER: Final = "inference-header-content-length"
#: bodies above this are parsed (JSON, base64, multipart) in a worker thread: the event
#: loop keeps answering health probes while a 100-MB upload is taken apart
OFF_LOOP_BYTES: Final = 1024 * 1024

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def off_the_loop_if_large(
    size: int, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """``function(*args, **kwargs)``, in a worker thread when ``size`` exceeds ``OFF_LOOP_BYTES``."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(function, *args, **kwargs)
    return function(*args, **kwargs)


def declared_length(request: Request, fallback: int) -> int:
    """The body size the request announces (Content-Length), else ``fallback``."""
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else fallback


async def read_bounded_body(request: Request, limit: int, too_large: Callable[[], AudioGuardError]) -> bytes:
    """The request body, in memory; ``too_large()`` is raised as soon as it exceeds ``limit`` bytes
    (from Content-Length when it says so, else while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def rest_response(response: InferResponse, response_headers: Mapping[str, str]) -> Response:
    """The HTTP answer for a v2 response: JSON, or the binary extension when outputs are binary
    (numbers and parameters written as ``contract.v2_json`` says)."""
    content, json_length = encode_response(response)
    headers = {
        k: v for k, v in response_headers.items() if k.lower() not in ("content-length", "content-type")
    }
    if json_length is None:
        return Response(content, media_type="application/json", headers=headers)
    headers[INFERENCE_HEADER] = str(json_length)
    return Response(content, media_type="application/octet-stream", headers=headers)


def decode_rest_body(
    body: bytes,
    header_length: str | None,
    model_name: str,
    *,
    output_names: Collection[str] | None = None,
) -> InferRequest:
    """Parse a v2 REST inference body without KServe's UTF-8 re-encoding of BYTES.

    Args:
        body: the whole HTTP request body.
        header_length: the ``Inference-Header-Content-Length`` header (binary
            extension) or None for a JSON-only body.
        model_name: the model named in the URL.
        output_names: the model's outputs; a request for another is a 400 (None: not checked).

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
        request_outputs=_requested_outputs(document.get("outputs"), output_names),
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
        set_raw_data(infer_input, body[offset : offset + size])
        return infer_input, offset + size
    if "data" not in entry:
        raise InvalidInput(f'input {name!r} has neither "data" nor a binary_data_size parameter')
    infer_input.data = entry["data"]
    return infer_input, offset


def _requested_outputs(value: object, output_names: Collection[str] | None) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in value
    ):
        raise InvalidInput('"outputs" must be a list of objects with a "name"')
    requested = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in value]
    unknown = [] if output_names is None else sorted({o.name for o in requested} - set(output_names))
    if unknown and output_names is not None:
        raise InvalidParameter(
            f"unknown output(s) {', '.join(map(repr, unknown))}: this model outputs {', '.join(output_names)}"
        )
    return requested or None
