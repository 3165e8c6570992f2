"""contract.log_limit: one line per cause per interval, the repeats counted, tracebacks at DEBUG.

The clock is injected (a list the test moves on) instead of waiting a minute.
"""

from __future__ import annotations

import logging

import pytest

from contract.errors import ServiceNotReady
from contract.log_limit import RateLimitedLog, describe_failure, failure_cause

LOGGER = "tests.log_limit"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def test_a_cause_is_logged_once_per_interval_and_the_next_line_counts_the_repeats(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    limited = RateLimitedLog(logging.getLogger(LOGGER), 60.0, clock=clock)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert limited.log(logging.WARNING, "down", "predictor down (%d)", 1) is True
        for second in range(1, 15):  # a failure every hop: 14 more within the minute
            clock.now += 1.0
            assert limited.log(logging.WARNING, "down", "predictor down (%d)", second + 1) is False
        clock.now += 46.0  # 60 s after the first line
        assert limited.log(logging.WARNING, "down", "predictor down (%d)", 16) is True
    assert lines(caplog, logging.WARNING) == [
        "predictor down (1)",
        "predictor down (16) (14 more like this in the last 60 s)",
    ]
    # the repeats are still there for whoever logs at DEBUG
    assert len(lines(caplog, logging.DEBUG)) == 14
    assert lines(caplog, logging.DEBUG)[0] == "predictor down (2) (repeat, not logged at WARNING)"


def test_causes_are_limited_apart(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger(LOGGER), 60.0, clock=clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        limited.log(logging.WARNING, "a", "first cause")
        limited.log(logging.WARNING, "b", "second cause")
        limited.log(logging.WARNING, "a", "first cause")
        limited.forget("b")  # the failure ended: its next occurrence is news
        limited.log(logging.WARNING, "b", "second cause again")
    assert lines(caplog, logging.WARNING) == ["first cause", "second cause", "second cause again"]


def test_a_traceback_is_written_at_debug_only(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger(LOGGER), 60.0, clock=clock)
    try:
        raise ServiceNotReady("the predictor is unavailable (UNAVAILABLE)")
    except ServiceNotReady as caught:
        error = caught
    with caplog.at_level(logging.INFO, logger=LOGGER):
        limited.log(logging.WARNING, "x", "failed: %s", describe_failure(error), error=error)
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]
    caplog.clear()
    clock.now += 61
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        limited.log(logging.WARNING, "x", "failed: %s", describe_failure(error), error=error)
    warning, debug = caplog.records
    assert warning.exc_info is None and "Traceback" not in caplog.text.split("\n")[0]
    assert debug.levelno == logging.DEBUG and debug.exc_info is not None
    # the line points at the caller, not at the limiter
    assert warning.filename == "test_log_limit.py"


def test_a_failure_cause_ignores_the_numbers_in_its_message() -> None:
    first = ValueError("the predictor answered 3 rows for 4 windows")
    second = ValueError("the predictor answered 7 rows for 9 windows")
    assert failure_cause(first) == failure_cause(second)
    assert failure_cause(first) != failure_cause(RuntimeError("the predictor answered 3 rows for 4 windows"))
    assert failure_cause(ServiceNotReady("a")) != failure_cause(ServiceNotReady("b"))
    assert describe_failure(ServiceNotReady("the predictor is not ready")) == "the predictor is not ready"
    assert describe_failure(first) == "ValueError: the predictor answered 3 rows for 4 windows"
