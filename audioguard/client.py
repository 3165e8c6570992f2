"""``audioguard client``: send audio files to a running transformer over v2.

REST uses the binary tensor extension (the file travels as raw bytes after the
JSON header); ``--grpc`` uses KServe's gRPC client. Prints, per file, a warning
when the service's weights are not the official ones, the top labels of each
window and one line per anomaly; ``--json`` prints the whole record instead.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import numpy as np
import requests
import urllib3

from audioguard.render import describe
from contract.cli_style import CliParser, hyphenated, known_flags
from contract.cli_types import seconds, top_k
from contract.exception_chain import linked_exceptions, os_error_reason
from contract.kserve_import import import_kserve
from contract.rounding import score_value, seconds_value
from contract.weights_status import (
    NOT_OFFICIAL_WARNING,
    WEIGHTS_OFFICIAL,
    WEIGHTS_WARNING,
    weights_official_parameter,
)
from transformer.privacy import PRIVACY_METHODS

AUDIO_INPUT = "audio"
DEFAULT_REST_URL = "http://127.0.0.1:5000"
DEFAULT_GRPC_URL = "127.0.0.1:5001"
BINARY_HEADER = "Inference-Header-Content-Length"


class ServiceError(Exception):
    """The service answered with an error (its message and status)."""

    def __init__(self, status: int | str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class TransportError(Exception):
    """The request did not reach the service, or its answer never came (one-line reason)."""


def transport_failure(url: str, error: requests.RequestException, timeout: float) -> str:
    """One line for a request that failed below HTTP (requests' own text is urllib3's repr).

    E.g. ``cannot connect to http://127.0.0.1:5000 (connection refused)``.
    """
    if isinstance(error, requests.ConnectTimeout):
        return f"cannot connect to {url} (no answer within {timeout:g} s)"
    if isinstance(error, requests.Timeout):
        return f"no answer from {url} within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        causes = linked_exceptions(error)
        if any(_is_http2_greeting(cause) for cause in causes):
            return (
                f"{url} speaks gRPC (HTTP/2), not REST: it is the service's gRPC port; REST is on "
                f"port {_port(DEFAULT_REST_URL)} by default (audioguard serve prints both), or add --grpc"
            )
        if any(isinstance(cause, urllib3.exceptions.NewConnectionError) for cause in causes):
            return f"cannot connect to {url} ({_reason(causes)})"
        return f"the connection to {url} broke before the answer ({_reason(causes)})"
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return f"invalid service URL {url!r}: expected http://host:port"
    return f"the request to {url} failed ({type(error).__name__})"


def _is_http2_greeting(error: BaseException) -> bool:
    """Whether ``error`` is http.client reading an HTTP/2 server's first frame as a status line.

    A gRPC server opens with a SETTINGS frame: 3 length bytes, type 4, flags, stream 0.
    """
    line = getattr(error, "line", None) if isinstance(error, http.client.BadStatusLine) else None
    return isinstance(line, str) and len(line) >= 9 and line[3] == "\x04" and line[5:9] == "\0\0\0\0"


def grpc_answered_by_http1(details: str) -> bool:
    """Whether a failed gRPC call's ``details`` say the port answered HTTP/1 (a REST port)."""
    return any(sign in details for sign in _HTTP1_ANSWER_SIGNS)


#: how gRPC core describes an HTTP/1 answer (uvicorn's 400, or any HTTP/1 server's status line)
_HTTP1_ANSWER_SIGNS: Final = (
    "Trying to connect an http1.x server",
    "Expected SETTINGS frame as the first frame",
)


def grpc_port_mixup(target: str) -> str:
    """The one line for ``--grpc`` sent to a REST port."""
    return (
        f"{target} speaks HTTP/1.1, not gRPC: it is the service's REST port; gRPC is on port "
        f"{_port(DEFAULT_GRPC_URL)} by default (audioguard serve prints both), or leave out --grpc"
    )


def _port(address: str) -> int | None:
    return urlsplit(address if "://" in address else f"//{address}").port


def _reason(causes: Sequence[BaseException]) -> str:
    """The OS's words ("connection refused"), else the HTTP library's ("remote end closed ...")."""
    os_reason = os_error_reason(causes)
    if os_reason is not None:
        return os_reason.lower()
    for cause in causes:
        if isinstance(cause, http.client.HTTPException) and str(cause):
            return str(cause).lower()
    return "no reason given"


def rest_body(audio: bytes, parameters: Mapping[str, Any]) -> tuple[bytes, int]:
    """A v2 body with ``audio`` as one binary BYTES element; returns (body, JSON length)."""
    element = struct.pack("<I", len(audio)) + audio
    header = {
        "inputs": [
            {
                "name": AUDIO_INPUT,
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(element)},
            }
        ],
        "parameters": dict(parameters),
    }
    encoded = json.dumps(header).encode()
    return encoded + element, len(encoded)


def result_from_outputs(outputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis document (``transformer.analysis.document``'s shape, numbers written as
    ``contract.rounding`` says) from the transformer's named outputs and response parameters;
    ``parameters`` keeps the whole v2 record."""
    label_ids, labels, probabilities = outputs["label_id"], outputs["label"], outputs["probability"]
    windows = [
        {
            "start_seconds": seconds_value(outputs["window_start_seconds"][w]),
            "end_seconds": seconds_value(outputs["window_end_seconds"][w]),
            "top": [
                {"label_id": _text(i), "label": _text(n), "probability": score_value(p)}
                for i, n, p in zip(label_ids[w], labels[w], probabilities[w], strict=True)
            ],
        }
        for w in range(labels.shape[0])
    ]
    official = weights_official_parameter(parameters)
    scan = [parameters.get(f"anomaly_scan_{end}_seconds") for end in ("start", "end")]
    document: dict[str, Any] = {
        "duration_seconds": _seconds(parameters.get("duration_seconds")),
        "privacy_method": parameters.get("privacy_method", "?"),
        "privacy_requested": parameters.get("privacy_requested"),
        WEIGHTS_OFFICIAL: bool(official),
    }
    if not official:
        document[WEIGHTS_WARNING] = parameters.get(WEIGHTS_WARNING) or NOT_OFFICIAL_WARNING
    return {
        **document,
        "windows": windows,
        "anomalies": json.loads(_text(outputs["anomalies"].reshape(-1)[0])),
        "anomaly_scan_seconds": None if None in scan else [_seconds(value) for value in scan],
        "analysis_id": parameters.get("analysis_id"),
        "parameters": dict(parameters),
    }


def _seconds(value: object) -> float:
    return seconds_value(float(value)) if isinstance(value, int | float | str) and value != "" else 0.0


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def classify_rest(
    url: str, model_name: str, audio: bytes, parameters: Mapping[str, Any], timeout: float = 300.0
) -> dict[str, Any]:
    """One file through ``POST {url}/v2/models/{model_name}/infer`` (JSON outputs)."""
    body, json_length = rest_body(audio, parameters)
    base = url.rstrip("/")
    try:
        response = requests.post(
            f"{base}/v2/models/{model_name}/infer",
            data=body,
            headers={"Content-Type": "application/octet-stream", BINARY_HEADER: str(json_length)},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise TransportError(transport_failure(base, error, timeout)) from None
    if response.status_code != 200:
        raise ServiceError(response.status_code, _error_message(response))
    document = response.json()
    outputs = {
        o["name"]: np.asarray(o["data"], dtype=object if o["datatype"] == "BYTES" else np.float32).reshape(
            o["shape"]
        )
        for o in document["outputs"]
    }
    return result_from_outputs(outputs, document.get("parameters") or {})


def _error_message(response: requests.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(document, dict):
        return str(document.get("error") or document.get("message") or document)
    return str(document)


def classify_grpc(
    url: str, model_name: str, audio: bytes, parameters: Mapping[str, Any], timeout: float = 300.0
) -> dict[str, Any]:
    """One file through the v2 gRPC ``ModelInfer`` call (raw bytes, no base64)."""
    return asyncio.run(_classify_grpc(url, model_name, audio, parameters, timeout))


def _quiet_kserve_client_errors() -> None:
    """Keep KServe's gRPC client from logging each failed call.

    ``InferenceGRPCClient`` logs every RPC error on ``kserve.trace`` at ERROR
    with a traceback; the command already prints one line per failed file.
    Only the command does this: library callers keep KServe's logging.
    """
    import_kserve()
    from kserve.logging import KSERVE_TRACE_LOGGER_NAME

    logging.getLogger(KSERVE_TRACE_LOGGER_NAME).setLevel(logging.CRITICAL)


async def _classify_grpc(
    url: str, model_name: str, audio: bytes, parameters: Mapping[str, Any], timeout: float
) -> dict[str, Any]:
    # imported here: kserve is heavy and the REST path does not need it
    import_kserve()
    import grpc
    from kserve import InferenceGRPCClient, InferInput, InferRequest
    from kserve.protocol.infer_type import to_http_parameters

    tensor = InferInput(AUDIO_INPUT, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([audio], dtype=np.object_), binary_data=True)
    # gRPC parameters carry no floats: send numbers as text
    grpc_parameters = {k: v if isinstance(v, bool | int | str) else str(v) for k, v in parameters.items()}
    request = InferRequest(model_name, [tensor], parameters=grpc_parameters)
    client = InferenceGRPCClient(url, timeout=timeout, retries=0)
    try:
        response = await client.infer(request)
    except grpc.RpcError as error:
        if grpc_answered_by_http1(error.details() or ""):
            raise TransportError(grpc_port_mixup(url)) from None
        raise ServiceError(error.code().name, error.details() or "") from None
    finally:
        await client.close()
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    return result_from_outputs(outputs, to_http_parameters(response.parameters or {}))


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="audioguard client", description=__doc__, allow_abbrev=False)
    parser.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, MP3, ...)")
    parser.add_argument(
        "--url",
        help=f"service address: host:port or http://host:port, the same forms for REST and gRPC "
        f"(unset: {DEFAULT_REST_URL}, with --grpc {DEFAULT_GRPC_URL})",
    )
    parser.add_argument("--grpc", action="store_true", help="use v2 gRPC instead of REST")
    parser.add_argument("--model-name", default="audioguard", help="the v2 model name the service serves")
    parser.add_argument(
        "--privacy",
        choices=PRIVACY_METHODS,
        help="anonymisation applied before features (unset: the service's minimum)",
    )
    parser.add_argument("--all-windows", action="store_true", help="labels for every window of long files")
    parser.add_argument("--top-k", type=top_k, help="labels per window (unset: the service's default)")
    parser.add_argument("--start-time", type=seconds, help="seconds into the file (MAX's start_time)")
    parser.add_argument(
        "--filter", help="MAX's filter: comma-separated labels kept among the top k (e.g. 'Speech,Music')"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document per file (the full record)"
    )
    return parser


def request_parameters(args: argparse.Namespace) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if args.privacy is not None:
        parameters["privacy"] = args.privacy
    if args.all_windows:
        parameters["all_windows"] = True
    if args.top_k is not None:
        parameters["top_k"] = args.top_k
    if args.start_time is not None:
        parameters["start_time"] = args.start_time  # a JSON number; text over gRPC (no double there)
    if args.filter:
        parameters["filter"] = args.filter
    return parameters


def rest_url(url: str) -> str:
    """``http://host:port`` for REST, also when given as ``host:port`` (or ``grpc://host:port``)."""
    if "://" not in url:
        return f"http://{url}"
    scheme, rest = url.split("://", 1)
    return f"http://{rest}" if scheme == "grpc" else url


def grpc_target(url: str) -> str:
    """``host:port`` for gRPC, also when given as ``http://host:port`` (or ``grpc://``)."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.netloc or url


def main(argv: Sequence[str]) -> int:
    """Classify each file; exit 1 if any request failed, 2 for a usage error."""
    parser = build_parser()
    args = parser.parse_args(hyphenated(argv, known_flags(parser)))
    parameters = request_parameters(args)
    if args.grpc:
        _quiet_kserve_client_errors()
    failures = 0
    for path in args.files:
        try:
            audio = Path(path).read_bytes()
            if args.grpc:
                target = grpc_target(args.url or DEFAULT_GRPC_URL)
                result = classify_grpc(target, args.model_name, audio, parameters, args.timeout)
            else:
                url = rest_url(args.url or DEFAULT_REST_URL)
                result = classify_rest(url, args.model_name, audio, parameters, args.timeout)
        except (OSError, TransportError, ServiceError) as error:
            failures += 1
            print(f"{path}: error: {error}", file=sys.stderr)
            continue
        print(json.dumps({"file": path, **result}) if args.json else describe(path, result), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
