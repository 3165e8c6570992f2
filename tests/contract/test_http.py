"""The error answers both services share: client mistakes 4xx, server faults 500, nothing echoed."""

from __future__ import annotations

import json

import pytest
from fastapi import Request
from kserve.errors import InferenceError

from contract.errors import AudioTooLarge, InvalidInput, PrivacyPolicyViolation, ServiceFault, ServiceNotReady
from contract.http import (
    ClientRequestError,
    ServerFaultError,
    ServiceUnavailableError,
    inference_error_handler,
    to_kserve_error,
    value_error_handler,
)


def infer_request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": []})


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (InvalidInput("bad"), ClientRequestError, 400),
        (PrivacyPolicyViolation("weak"), ClientRequestError, 403),
        (AudioTooLarge("big"), ClientRequestError, 413),
        (ServiceNotReady("down"), ServiceUnavailableError, 503),
        (ServiceFault("the predictor failed: NOT_FOUND"), ServerFaultError, 500),
    ],
)
def test_typed_errors_keep_their_status_in_kserve_clothes(error: object, kind: type, status: int) -> None:
    converted = to_kserve_error(error)  # type: ignore[arg-type]
    assert isinstance(converted, kind)
    assert getattr(converted, "status_code", 503) == status


async def test_a_bare_value_error_on_infer_is_a_500_not_a_client_mistake() -> None:
    answer = await value_error_handler(infer_request(), ValueError("b'RIFF\\x00\\x01 secret'"))
    assert answer.status_code == 500
    assert b"RIFF" not in answer.body and b"secret" not in answer.body


async def test_kserve_inference_errors_are_500_without_their_message() -> None:
    leaky = InferenceError("Failed to encode \"b'RIFF\\xa4\\x0c...'\"")
    answer = await inference_error_handler(infer_request(), leaky)
    assert answer.status_code == 500
    assert b"RIFF" not in answer.body and b"encode" not in answer.body
    ours = await inference_error_handler(infer_request(), ServerFaultError("the predictor failed: NOT_FOUND"))
    assert ours.status_code == 500
    assert json.loads(ours.body)["error"] == "the predictor failed: NOT_FOUND"
