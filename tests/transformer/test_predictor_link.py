"""transformer.predictor_link: what the transformer knows of its predictor, and how it says it.

The predictor here is a scripted check (a list of observations played in order) and a clock
the test moves: the states, the readiness they give and the one log line per change are the
subject. The real predictor and transformer processes are in tests/e2e/test_model_mismatch.py.
"""

from __future__ import annotations

import logging

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY

from contract.availability import not_served_message
from contract.errors import ServiceFault, ServiceNotReady
from transformer.predictor_client import PredictorClient
from transformer.predictor_link import LinkState, Observation, PredictorLink, observe_error

ADDRESS = "127.0.0.1:8081"
LOGGER = "transformer.predictor_link"
SERVING = Observation(LinkState.SERVING)
UNREACHABLE = Observation(LinkState.UNREACHABLE, "UNAVAILABLE")
MISSING = Observation(LinkState.MISSING, not_served_message("other", ["audioguard"]), ("audioguard",))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedPredictor:
    """The answers of successive checks; the last one repeats."""

    def __init__(self, *answers: Observation) -> None:
        self.answers = list(answers)
        self.checks = 0

    async def __call__(self) -> Observation:
        self.checks += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def link_for(predictor: ScriptedPredictor, clock: Clock, *, health_check: bool = False) -> PredictorLink:
    return PredictorLink(
        predictor,
        address=ADDRESS,
        model_name="other",
        health_check=health_check,
        clock=clock,
        grace_seconds=60,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def poll(link: PredictorLink, clock: Clock, times: int, step: float = 1.0) -> None:
    for _ in range(times):
        await link.refresh()
        clock.now += step


@pytest.mark.parametrize("health_check", [False, True])
async def test_a_predictor_serving_another_model_is_not_ready_with_one_error_line_naming_both(
    clock: Clock, caplog: pytest.LogCaptureFixture, health_check: bool
) -> None:
    link = link_for(ScriptedPredictor(MISSING), clock, health_check=health_check)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        await poll(link, clock, 30, step=2.5)  # a probe every few seconds for over a minute
    reason = link.not_ready_reason()
    assert reason is not None and "does not serve model 'other'" in reason and "'audioguard'" in reason
    assert "--model_name audioguard" in reason
    (error,) = logged(caplog, logging.ERROR)
    assert error.startswith(
        f"the predictor at {ADDRESS} does not serve model 'other' (it serves 'audioguard')"
    )
    assert logged(caplog, logging.WARNING) == []
    refusal = link.refusal()
    assert isinstance(refusal, ServiceNotReady) and refusal.message == reason


async def test_a_predictor_that_has_never_answered_is_waited_for_quietly_then_warned_about_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    link = link_for(ScriptedPredictor(UNREACHABLE), clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await poll(link, clock, 59)
        assert logged(caplog, logging.INFO) == [f"waiting for the predictor at {ADDRESS} (UNAVAILABLE)"]
        assert logged(caplog, logging.WARNING) == []
        await poll(link, clock, 120)
    (warning,) = logged(caplog, logging.WARNING)
    assert warning.startswith(f"the predictor at {ADDRESS} has not answered for 60 s (UNAVAILABLE)")
    # without --enable_predictor_health_check an unreachable predictor does not make it unready
    assert link.not_ready_reason() is None and link.refusal() is None


async def test_with_the_health_check_an_unreachable_predictor_is_a_reason(clock: Clock) -> None:
    link = link_for(
        ScriptedPredictor(UNREACHABLE, Observation(LinkState.LOADING), SERVING), clock, health_check=True
    )
    assert link.not_ready_reason() == f"the predictor at {ADDRESS} has not been checked yet"
    await poll(link, clock, 1, step=3)
    assert link.not_ready_reason() == f"the predictor at {ADDRESS} is unreachable (UNAVAILABLE)"
    await poll(link, clock, 1, step=3)
    assert link.not_ready_reason() == f"the predictor at {ADDRESS} is up, but model 'other' is still loading"
    await poll(link, clock, 1, step=3)
    assert link.not_ready_reason() is None


async def test_each_change_is_one_line_at_its_level(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    predictor = ScriptedPredictor(SERVING, SERVING, UNREACHABLE, UNREACHABLE, SERVING, MISSING, SERVING)
    link = link_for(predictor, clock)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        await poll(link, clock, 7, step=3)
    changes = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [level for level, _ in changes] == ["DEBUG", "WARNING", "INFO", "ERROR", "INFO"]
    assert changes[0][1] == f"the predictor at {ADDRESS} serves model 'other'"  # the first contact: quiet
    assert (
        changes[1][1]
        == f"the predictor at {ADDRESS} is unreachable (UNAVAILABLE): requests answer 503 until it is back"
    )
    assert changes[2][1] == f"the predictor at {ADDRESS} serves model 'other' again"
    assert changes[4][1] == f"the predictor at {ADDRESS} serves model 'other' again"


async def test_answers_are_reused_for_a_couple_of_seconds(clock: Clock) -> None:
    predictor = ScriptedPredictor(SERVING)
    link = link_for(predictor, clock)
    for _ in range(5):  # five probes within the same second: one check
        await link.refresh()
    assert predictor.checks == 1
    clock.now += 2.0
    await link.refresh()
    assert predictor.checks == 2


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def test_what_a_failed_call_says_about_the_link() -> None:
    assert observe_error(rpc_error(grpc.StatusCode.UNAVAILABLE)) == UNREACHABLE
    assert observe_error(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED)) == Observation(
        LinkState.UNREACHABLE, "DEADLINE_EXCEEDED"
    )
    # a predictor pod shutting down cancels the calls in flight: retry (503), not a fault (500)
    assert observe_error(rpc_error(grpc.StatusCode.CANCELLED)) == Observation(
        LinkState.UNREACHABLE, "CANCELLED"
    )
    message = not_served_message("other", ["audioguard", "spare"])
    assert observe_error(rpc_error(grpc.StatusCode.NOT_FOUND, message)) == Observation(
        LinkState.MISSING, message, ("audioguard", "spare")
    )
    # a predictor that is not audioguard's: its words, no list of names
    foreign = observe_error(rpc_error(grpc.StatusCode.NOT_FOUND, "Model with name other does not exist."))
    assert foreign == Observation(LinkState.MISSING, "Model with name other does not exist.", None)
    assert observe_error(rpc_error(grpc.StatusCode.INTERNAL, "boom")) is None  # a fault, not the link
    assert observe_error(httpx.ConnectError("refused")) == Observation(LinkState.UNREACHABLE, "ConnectError")
    request = httpx.Request("POST", "http://p/v2/models/other/infer")
    response = httpx.Response(404, json={"error": message}, request=request)
    assert observe_error(httpx.HTTPStatusError("404", request=request, response=response)) == Observation(
        LinkState.MISSING, message, ("audioguard", "spare")
    )
    # the predictor lists the very name asked for: it is starting (KServe has not registered the
    # model yet), not serving another name (a real cluster's new predictor pod answered so)
    starting = Observation(LinkState.LOADING, "its model 'spare' is not registered yet")
    assert observe_error(rpc_error(grpc.StatusCode.NOT_FOUND, message), "spare") == starting
    not_found = httpx.HTTPStatusError("404", request=request, response=response)
    assert observe_error(not_found, "spare") == starting
    assert observe_error(rpc_error(grpc.StatusCode.NOT_FOUND, message), "third").state is LinkState.MISSING


class FailingSend:
    """KServe's call to the predictor, failing as a predictor does (counted)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def __call__(self, request: object, headers: object) -> object:
        self.calls += 1
        raise self.error


@pytest.fixture
def windows() -> np.ndarray:
    return np.zeros((1, 10, 128), dtype=np.uint8)


async def test_a_call_to_a_predictor_without_the_model_is_a_503_naming_it_and_the_next_is_not_sent(
    clock: Clock, windows: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    send = FailingSend(rpc_error(grpc.StatusCode.NOT_FOUND, not_served_message("other", ["audioguard"])))
    client = PredictorClient(send, model_name="other", binary=True)
    client.link = link_for(ScriptedPredictor(SERVING), clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(10):
            with pytest.raises(ServiceNotReady) as refused:
                await client.score(windows, None, None)
            assert "does not serve model 'other' (it serves 'audioguard')" in refused.value.message
    assert send.calls == 1  # the link knows: the other nine were refused without a call
    assert len(logged(caplog, logging.ERROR)) == 1


async def test_other_predictor_failures_keep_their_meaning(windows: np.ndarray) -> None:
    unreachable = PredictorClient(
        FailingSend(rpc_error(grpc.StatusCode.UNAVAILABLE)), model_name="m", binary=True
    )
    with pytest.raises(ServiceNotReady, match=r"the predictor is unavailable \(UNAVAILABLE\)"):
        await unreachable.score(windows, None, None)
    faulty = PredictorClient(
        FailingSend(rpc_error(grpc.StatusCode.INTERNAL, "boom")), model_name="m", binary=True
    )
    with pytest.raises(ServiceFault, match="the predictor failed: INTERNAL: boom"):
        await faulty.score(windows, None, None)
    # a predictor without the model and no link yet (start-up): still a 503 naming it
    missing = PredictorClient(
        FailingSend(rpc_error(grpc.StatusCode.NOT_FOUND, "Model with name m does not exist.")),
        model_name="m",
        binary=True,
    )
    with pytest.raises(ServiceNotReady, match="the predictor does not serve model 'm'"):
        await missing.score(windows, None, None)


async def test_with_the_health_check_only_a_predictor_never_reached_keeps_the_transformer_unready(
    clock: Clock,
) -> None:
    """Readiness gates a new pod until the predictor has served once; a later outage leaves it
    ready (callers get 503 + Retry-After instead of a Service with no endpoints)."""
    link = link_for(
        ScriptedPredictor(UNREACHABLE, UNREACHABLE, SERVING, UNREACHABLE), clock, health_check=True
    )
    await poll(link, clock, 2, step=3.0)
    assert link.not_ready_reason() == f"the predictor at {ADDRESS} is unreachable (UNAVAILABLE)"
    await poll(link, clock, 1, step=3.0)
    assert link.not_ready_reason() is None
    await poll(link, clock, 2, step=3.0)
    assert link.current.state is LinkState.UNREACHABLE
    assert link.not_ready_reason() is None


async def test_a_predictor_serving_another_model_after_serving_ours_makes_the_transformer_unready(
    clock: Clock,
) -> None:
    link = link_for(ScriptedPredictor(SERVING, MISSING), clock, health_check=True)
    await poll(link, clock, 2, step=3.0)
    assert link.not_ready_reason() is not None and "does not serve model 'other'" in link.not_ready_reason()  # type: ignore[operator]


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("audioguard_predictor_call_failures_total", {"reason": reason}) or 0.0


async def test_each_failed_predictor_call_is_counted_by_what_the_caller_got(
    clock: Clock, windows: np.ndarray
) -> None:
    """``audioguard_predictor_call_failures_total`` (the PredictorErrors alert): unavailable for a
    503, error for a 500, and a call the link refuses without sending is counted too."""
    before = {reason: _failures(reason) for reason in ("unavailable", "error")}
    unreachable = PredictorClient(
        FailingSend(rpc_error(grpc.StatusCode.UNAVAILABLE)), model_name="m", binary=True
    )
    faulty = PredictorClient(
        FailingSend(rpc_error(grpc.StatusCode.INTERNAL, "boom")), model_name="m", binary=True
    )
    for _ in range(2):
        with pytest.raises(ServiceNotReady):
            await unreachable.score(windows, None, None)
    with pytest.raises(ServiceFault):
        await faulty.score(windows, None, None)
    assert _failures("unavailable") - before["unavailable"] == 2
    assert _failures("error") - before["error"] == 1
    send = FailingSend(rpc_error(grpc.StatusCode.NOT_FOUND, not_served_message("other", ["audioguard"])))
    refusing = PredictorClient(send, model_name="other", binary=True)
    refusing.link = link_for(ScriptedPredictor(SERVING), clock)
    for _ in range(3):
        with pytest.raises(ServiceNotReady):
            await refusing.score(windows, None, None)
    assert send.calls == 1 and _failures("unavailable") - before["unavailable"] == 5
