"""The SIFIS-Home endpoint the Analytics-API calls, on the transformer's HTTP port.

``POST /model/predict/{audio_file}/{method}/{requestor_id}/{requestor_type}/{request_id}``
with the audio file in the multipart field ``audio`` (or ``file``) and the
optional form fields ``start_time`` (seconds) and ``filter`` (comma-separated
labels kept among the top 5). ``method``: ``scrample``/``scramble``,
``dp_noise``, ``speech_mask``; ``none``/``nothing`` mean no transformation. The
old service treated any other name as none too; here it is a 400 unless the
operator sets ``sifis_unknown_method=none``. The privacy minimum applies either way.

200: ``{"status": "ok", "predictions": [top 5], "audio_file", "method",
"requestor_id", "requestor_type", "request_id", "analyzer_id", "analysis_id",
"anomalies", "privacy_method"}``. Errors: ``{"status": "error", "message"}``
with 400 (bad type, undecodable, too short, start outside the clip, bad
field), 403 (below the privacy minimum with enforcement "reject"), 413 (too
large), 503 (not ready / predictor unreachable). Any other path under
``/model/`` gets the same format: 404 naming the expected path shape (wrong
number of segments, an empty one, a trailing slash, an encoded slash ``%2F``
in one), 405 for a SIFIS path called with the wrong method. A trailing slash is
a 404 that says so, not an alias: one URL per request, as the Analytics-API
sends it.

The multipart body is parsed here, in memory: Starlette's form parser spools
uploads above 1 MiB to a temporary file, and audio must never touch the disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from kserve.errors import InferenceError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.routing import Match

from audioguard.errors import AudioGuardError, AudioTooLarge, InvalidInput, InvalidParameter, ServiceNotReady
from transformer.labels import parse_label_filter
from transformer.privacy import PRIVACY_METHODS, canonical_method
from transformer.v2_codec import AnalysisOptions, AnalysisResult, parse_identifier, parse_start_time

if TYPE_CHECKING:  # the model imports this module for ``result_value``
    from transformer.model import AudioTransformer

logger = logging.getLogger(__name__)

PREDICT_PATH: Final = "/model/predict/{audio_file}/{method}/{requestor_id}/{requestor_type}/{request_id}"
METADATA_PATH: Final = "/model/metadata"
#: Every other path under /model/ answers in the SIFIS error format (see ``unmatched_path``).
UNMATCHED_PATH: Final = "/model/{unmatched:path}"
_UNMATCHED_METHODS: Final = ["GET", "POST", "PUT", "PATCH", "DELETE"]
AUDIO_FIELDS: Final = ("audio", "file")
SIFIS_TOP_K: Final = 5
#: Room for the multipart framing and the small text fields around the file.
FORM_OVERHEAD_BYTES: Final = 64 * 1024
MAX_FIELD_BYTES: Final = 4096
RESULT_DESCRIPTION: Final = "Privacy-aware audio anomaly detection results"
_ACCEPTED_NON_AUDIO_TYPES: Final = ("", "application/octet-stream")

router = APIRouter(tags=["SIFIS"])


@dataclass(frozen=True)
class FormPart:
    """One multipart field: text fields have no file name."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


# --- request bodies, in memory and bounded -----------------------------------------------


async def read_limited_body(request: Request, limit: int, max_upload_mb: float) -> bytes:
    """The request body; AudioTooLarge (413) as soon as it exceeds ``limit`` bytes.

    ``limit`` is the body size that an upload of ``max_upload_mb`` MiB can
    reach with its framing (multipart, base64/JSON); the 413 message names
    ``max_upload_mb``, the limit the operator set.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise upload_too_large(max_upload_mb)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise upload_too_large(max_upload_mb)
        chunks.append(chunk)
    return b"".join(chunks)


def upload_too_large(max_upload_mb: float) -> AudioTooLarge:
    """The 413 of every path (v2 REST, v2 gRPC, SIFIS), naming the configured limit."""
    return AudioTooLarge(
        f"the audio upload exceeds the {max_upload_mb:g} MiB limit (max_upload_mb / AUDIOGUARD_MAX_UPLOAD_MB)"
    )


def parse_multipart(body: bytes, content_type: str | None) -> dict[str, FormPart]:
    """multipart/form-data fields by name (first occurrence wins), parsed in memory."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            "expected a multipart/form-data body with the audio file in the field 'audio' (or 'file')"
        )
    parts: dict[str, FormPart] = {}
    headers: dict[bytes, bytes] = {}
    field: list[bytes] = []
    value: list[bytes] = []
    data: list[bytes] = []

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        field.append(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        value.append(chunk[start:end])

    def on_header_end() -> None:
        headers[b"".join(field).lower()] = b"".join(value)
        field.clear()
        value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.append(chunk[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        part_type, _ = parse_options_header(headers.get(b"content-type"))
        if name and name not in parts:
            parts[name] = FormPart(
                name=name,
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                content_type=part_type.decode("latin-1"),
                data=b"".join(data),
            )
        headers.clear()
        data.clear()

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise InvalidInput("the multipart/form-data body is malformed") from None
    if parser.state != MultipartState.END:
        raise InvalidInput("the multipart/form-data body is incomplete (no closing boundary)")
    return parts


# --- form fields -> options ---------------------------------------------------------------


def audio_part(parts: dict[str, FormPart]) -> FormPart:
    """The uploaded file: field ``audio`` or ``file``, of an audio (or unstated) type."""
    part = next((parts[name] for name in AUDIO_FIELDS if name in parts), None)
    if part is None:
        raise InvalidInput(
            f"no audio file in the form: send it in the field 'audio' (or 'file'); got {sorted(parts)}"
        )
    kind = part.content_type.lower()
    if not (kind.startswith("audio/") or kind in _ACCEPTED_NON_AUDIO_TYPES):
        shown = "".join(c for c in kind if c.isprintable())[:100]
        raise InvalidInput(
            f"Invalid file type/extension: {shown} (send an audio file, e.g. audio/wav or audio/flac)"
        )
    return part


def text_field(parts: dict[str, FormPart], name: str) -> str | None:
    """A text form field, or None when absent or empty."""
    part = parts.get(name)
    if part is None:
        return None
    if len(part.data) > MAX_FIELD_BYTES:
        raise InvalidParameter(f"form field {name!r} is longer than {MAX_FIELD_BYTES} bytes")
    try:
        text = part.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidParameter(f"form field {name!r} must be UTF-8 text") from None
    return text or None


def sifis_privacy_method(method: str, unknown: str = "reject") -> str:
    """The path's ``{method}`` as a privacy method.

    ``none``, ``nothing`` (and an empty name) mean no transformation. The old
    service treated *any* other name as none as well, so a typo such as
    ``scramlbe`` silently disabled the anonymisation the caller wanted; with
    ``unknown="reject"`` (the default setting) such a name is a 400 listing the
    valid methods, with ``unknown="none"`` the old behaviour is kept.

    Raises:
        InvalidParameter: an unknown name with ``unknown="reject"``.
    """
    try:
        return canonical_method(method)
    except InvalidParameter:
        if unknown == "none":
            return "none"
        raise


def sifis_options(
    parts: dict[str, FormPart],
    audio_file: str,
    method: str,
    requestor_id: str,
    requestor_type: str,
    request_id: str,
    unknown_method: str = "reject",
) -> AnalysisOptions:
    """Validated options from the path and the form fields (typed 400s)."""
    start_time = text_field(parts, "start_time")
    return AnalysisOptions(
        privacy_method=sifis_privacy_method(method, unknown_method),
        start_time=0.0 if start_time is None else parse_start_time(start_time),
        top_k=SIFIS_TOP_K,
        # every window is checked for anomalies; predictions stay MAX's first window
        all_windows=True,
        label_filter=parse_label_filter(text_field(parts, "filter")),
        requestor_id=parse_identifier("requestor_id", requestor_id),
        requestor_type=parse_identifier("requestor_type", requestor_type),
        request_id=parse_identifier("request_id", request_id),
        audio_file=parse_identifier("audio_file", audio_file),
        sifis_method=method,
    )


def result_value(result: AnalysisResult) -> dict[str, Any]:
    """The SIFIS result value (the fields the old service's consumers read) plus
    ``privacy_method`` (applied) and ``anomalies``: the DHT record and the body of
    a 200 answer. ``predictions`` are the first window's top labels, as before.
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
    }


def error_response(error: AudioGuardError) -> JSONResponse:
    return JSONResponse(status_code=error.status_code, content={"status": "error", "message": error.message})


def bound_model(request: Request) -> AudioTransformer:
    """The transformer model this app serves; 503 until it is loaded."""
    model = getattr(request.app.state, "audio_transformer", None)
    if model is None or not model.ready:
        raise ServiceNotReady("the audio classifier is not ready yet (weights loading)")
    return model


def describe_segments(rest: str) -> str:
    """The segment count after ``/model/predict/`` and what is wrong, e.g. ``5 and a trailing slash``.

    Counts every segment, empty ones included, so that a trailing slash or a
    double slash is named instead of hidden in the count.
    """
    segments = rest.split("/") if rest else []
    trailing_slash = bool(segments) and segments[-1] == ""
    if trailing_slash:
        segments.pop()
    empty = [str(position) for position, segment in enumerate(segments, 1) if not segment]
    described = f"{len(segments)}"
    if empty:
        described += f", segment {', '.join(empty)} empty"
    if trailing_slash:
        described += ", and a trailing slash (remove it)" if empty else " and a trailing slash (remove it)"
    return described


# --- routes ---------------------------------------------------------------------------------


@router.post(PREDICT_PATH)
async def predict(
    request: Request, audio_file: str, method: str, requestor_id: str, requestor_type: str, request_id: str
) -> JSONResponse:
    """Classify the uploaded recording; the old MAX/SIFIS response plus anomalies."""
    try:
        model = bound_model(request)
        settings = model.settings
        form = await read_limited_body(
            request, settings.max_upload_bytes + FORM_OVERHEAD_BYTES, settings.max_upload_mb
        )
        parts = parse_multipart(form, request.headers.get("content-type"))
        upload = audio_part(parts)
        options = sifis_options(
            parts, audio_file, method, requestor_id, requestor_type, request_id, settings.sifis_unknown_method
        )
        result = await model.analyze(upload.data, options, dict(request.headers))
    except AudioGuardError as error:
        if error.status_code >= 500:
            logger.warning("SIFIS request %s: %s %s", request_id, error.status_code, error.message)
        return error_response(error)
    except InferenceError as error:
        logger.error("SIFIS request %s failed: %s", request_id, error.reason)
        return JSONResponse(status_code=500, content={"status": "error", "message": error.reason})
    body: dict[str, Any] = {"status": "ok", **result_value(result)}
    body.pop("description")
    return JSONResponse(body)


@router.get(METADATA_PATH)
async def metadata(request: Request) -> dict[str, Any]:
    """The old MAX metadata (id, name, description, license) plus what this service offers."""
    model = getattr(request.app.state, "audio_transformer", None)
    assets = model.assets if model is not None else {}
    return {
        "id": "audioguard-audio-classifier",
        "name": "AudioGuard privacy-aware audio classifier",
        "description": "VGGish embeddings + multi-level attention classifier over the 527 AudioSet "
        "classes, with anonymisation before feature extraction and safety anomaly detection.",
        "license": "Apache-2.0",
        "type": "Audio Classification",
        "privacy_methods": list(PRIVACY_METHODS),
        "ready": bool(model is not None and model.ready),
        "weights_official": bool(assets.get("official", False)),
    }


# Registered last: the router tries its routes in order, so this only sees what they refuse.
@router.api_route(UNMATCHED_PATH, methods=_UNMATCHED_METHODS, include_in_schema=False)
async def unmatched_path(request: Request, unmatched: str) -> JSONResponse:
    """A path under /model/ that no SIFIS route takes, answered in the SIFIS error format.

    405 (with ``Allow``) for a SIFIS path called with the wrong method; 404
    otherwise, naming the expected path shape. ``unmatched`` is the decoded
    rest of the path, so an encoded slash (``%2F``) in a segment has become a
    separator here, as it did when the routes were matched.
    """
    allowed = sorted(
        method
        for route in router.routes
        if isinstance(route, APIRoute) and route.endpoint is not unmatched_path
        if route.matches(request.scope)[0] is Match.PARTIAL
        for method in route.methods or ()
    )
    if allowed:
        return JSONResponse(
            status_code=405,
            content={"status": "error", "message": f"this SIFIS path takes {', '.join(allowed)} only"},
            headers={"Allow": ", ".join(allowed)},
        )
    head, _, rest = unmatched.partition("/")
    if head == "predict":
        message = (
            f"no SIFIS endpoint at this path: expected POST {PREDICT_PATH}, five non-empty segments "
            f"after /model/predict/, got {describe_segments(rest)}; an encoded slash %2F inside a "
            "segment counts as a separator"
        )
    else:
        message = (
            f"no SIFIS endpoint at this path: the endpoints are POST {PREDICT_PATH} and GET {METADATA_PATH}"
        )
    return JSONResponse(status_code=404, content={"status": "error", "message": message})
