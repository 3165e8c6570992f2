"""contract.service_logs: a summarized service (the predictor) logs its requests at DEBUG and one
summary line at INFO at most every few minutes and at stop; the others one INFO line per request.

(End to end, with real processes: tests/e2e/test_local.py.) The summary's clock is injected.
"""

from __future__ import annotations

import logging
import os

import pytest

from contract import service_logs
from contract.native_logs import LOG_LEVEL_ENV, NATIVE_LOG_ENV, quiet_native_logs
from contract.service_logs import RequestSummary, log_request

REQUESTS = "contract.requests"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == REQUESTS and r.levelno == level]


def test_without_a_summary_each_request_is_one_info_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service_logs, "_summary", None)
    with caplog.at_level(logging.DEBUG, logger=REQUESTS):
        log_request("POST", "/v2/models/audioguard/infer", 200, 0.012, "r-1")
        log_request("GET", "/v2/health/ready", 200, 0.001, None)  # a probe: DEBUG
    assert records(caplog, logging.INFO) == ["POST /v2/models/audioguard/infer 200 12.0 ms id=r-1"]
    assert records(caplog, logging.DEBUG) == ["GET /v2/health/ready 200 1.0 ms id=-"]


def test_a_summarized_service_writes_one_line_per_interval_and_one_at_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    monkeypatch.setattr(service_logs, "_summary", RequestSummary("predictor", 300.0, clock))
    infer = "/inference.GRPCInferenceService/ModelInfer"
    with caplog.at_level(logging.DEBUG, logger=REQUESTS):
        for _ in range(299):  # a live source's hop every second for five minutes
            clock.now += 1.0
            log_request("gRPC", infer, "OK", 0.002, None)
        assert records(caplog, logging.INFO) == []
        clock.now += 1.0
        log_request("gRPC", infer, "NOT_FOUND", 0.004, None)  # 300 s after the start: the summary
        log_request("gRPC", "/inference.GRPCInferenceService/ModelReady", "OK", 0.001, None)  # probe
        clock.now += 12.0
        log_request("gRPC", infer, "OK", 0.010, None)
        service_logs.flush_request_summary()  # the service stops
        service_logs.flush_request_summary()  # nothing new: no line
    assert records(caplog, logging.INFO) == [
        "predictor: 300 request(s) in the last 300 s: 299 OK, 1 NOT_FOUND; mean 2.0 ms, slowest 4.0 ms"
        " (each at DEBUG)",
        "predictor: 1 request(s) in the last 12 s: 1 OK; mean 10.0 ms, slowest 10.0 ms (each at DEBUG)",
    ]
    assert len(records(caplog, logging.DEBUG)) == 302  # every request and the probe, at DEBUG


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({}, "2"), ({NATIVE_LOG_ENV: "0"}, "0"), ({LOG_LEVEL_ENV: "debug"}, None)],
    ids=["default", "user-set", "debug-logging"],
)
def test_tensorflow_native_lines_are_off_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str | None
) -> None:
    monkeypatch.delenv(NATIVE_LOG_ENV, raising=False)
    monkeypatch.delenv(LOG_LEVEL_ENV, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    quiet_native_logs()
    assert os.environ.get(NATIVE_LOG_ENV) == expected
