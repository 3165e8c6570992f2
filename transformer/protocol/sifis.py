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

The form is parsed in memory (``sifis_form``); the analysis is the same one the
v2 path runs, reached through the served model's ``analyze``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from kserve.errors import InferenceError
from starlette.routing import Match

from contract.disconnects import CLIENT_CLOSED_REQUEST, ClientGone, while_connected
from contract.errors import AudioGuardError, ServiceNotReady, upload_too_large
from contract.http import retry_headers
from contract.v2_rest import declared_length, off_the_loop_if_large, read_bounded_body
from transformer.analysis.types import AnalysisOptions, AnalysisResult
from transformer.privacy import PRIVACY_METHODS
from transformer.protocol.sifis_form import audio_part, parse_multipart
from transformer.protocol.sifis_schema import SifisConfig, http_answer, options_from_form

logger = logging.getLogger(__name__)

PREDICT_PATH: Final = "/model/predict/{audio_file}/{method}/{requestor_id}/{requestor_type}/{request_id}"
METADATA_PATH: Final = "/model/metadata"
#: Every other path under /model/ answers in the SIFIS error format (see ``unmatched_path``).
UNMATCHED_PATH: Final = "/model/{unmatched:path}"
_UNMATCHED_METHODS: Final = ["GET", "POST", "PUT", "PATCH", "DELETE"]
#: Room for the multipart framing and the small text fields around the file.
FORM_OVERHEAD_BYTES: Final = 64 * 1024

router = APIRouter(tags=["SIFIS"])


class AnalysisService(Protocol):
    """What the routes need of the served model (``app.state.audio_transformer``)."""

    sifis: SifisConfig
    assets: dict[str, object]

    @property
    def ready(self) -> bool: ...

    async def analyze(
        self, audio: bytes, options: AnalysisOptions, headers: Mapping[str, str] | None = None
    ) -> AnalysisResult: ...

    def admitted(self, body_bytes: int) -> AbstractContextManager[None]: ...


def error_response(error: AudioGuardError) -> JSONResponse:
    return JSONResponse(
        status_code=error.status_code,
        content={"status": "error", "message": error.message},
        headers=retry_headers(error),
    )


def bound_model(request: Request) -> AnalysisService:
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
        config = model.sifis
        limit = config.max_upload_bytes + FORM_OVERHEAD_BYTES
        # admitted before the body is read: a refused upload never occupies memory
        with model.admitted(declared_length(request, limit)):
            form = await read_bounded_body(request, limit, lambda: upload_too_large(config.max_upload_mb))
            parts = await off_the_loop_if_large(
                len(form), parse_multipart, form, request.headers.get("content-type")
            )
            upload = audio_part(parts)
            path = {
                "audio_file": audio_file,
                "method": method,
                "requestor_id": requestor_id,
                "requestor_type": requestor_type,
                "request_id": request_id,
            }
            options = options_from_form(config, parts, path)
            # a client that hangs up stops the analysis (``contract.disconnects``)
            result = await while_connected(
                request, model.analyze(upload.data, options, dict(request.headers)), "sifis"
            )
    except ClientGone:
        return JSONResponse(status_code=CLIENT_CLOSED_REQUEST, content=None)
    except AudioGuardError as error:
        if error.status_code >= 500:
            logger.warning("SIFIS request %s: %s %s", request_id, error.status_code, error.message)
        return error_response(error)
    except InferenceError as error:
        # KServe's own may quote the payload: the type only
        logger.error("SIFIS request %s failed: %s", request_id, type(error).__name__)
        message = f"internal error ({type(error).__name__})"
        return JSONResponse(status_code=500, content={"status": "error", "message": message})
    return JSONResponse(http_answer(result))


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
