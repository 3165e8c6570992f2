"""Whether the predictor serves the model this transformer asks for: checked, remembered, logged once.

The transformer calls its predictor under its own model name (``--model_name``). A
predictor that answers but serves another name fails every call with NOT_FOUND (404), which
KServe's own readiness never notices: it asks at most whether the predictor *server* is up.
``PredictorLink`` asks the predictor about the model itself (v2 ``ModelReady`` over gRPC, ``GET
/v2/models/{name}/ready`` over REST), keeps the answer (``Observation``) and learns from every
call too (``observe_error``). It says:

- why the transformer is not ready (``not_ready_reason``): always when the predictor serves
  another model (a configuration error: one clear line naming both names); when it is
  unreachable or still loading only with ``--enable_predictor_health_check`` (KServe's meaning
  of that flag: without it the transformer's readiness does not follow its predictor's), and
  only until the predictor has served the model once. That gates a new pod (a rollout sends it
  nothing before it can reach the predictor) without emptying the Service in an outage: every
  transformer shares the one predictor, so unready pods would turn the callers' clear 503 +
  Retry-After into refused connections (seen on a real cluster when a predictor pod took over
  30 s to come back);
- which error a call gets without being sent while the names differ (``refusal``: 503);
- each change of state, once, in one line: INFO "waiting for the predictor" while it has never
  answered (a WARNING if that lasts ``GRACE_SECONDS``), a WARNING when a predictor that
  answered becomes unreachable, an ERROR for a model it does not serve, INFO when it serves
  the model again.

``run`` re-checks every ``POLL_SECONDS`` until the predictor serves the model, then every
``HEALTHY_POLL_SECONDS``; readiness probes re-check answers older than ``MAX_AGE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import grpc
import httpx
from kserve.inference_client import InferenceGRPCClient

from contract.availability import served_names_in
from contract.errors import ServiceNotReady

logger = logging.getLogger(__name__)

#: A readiness probe re-asks the predictor when the last answer is older than this.
MAX_AGE_SECONDS: Final = 2.0
#: ``run``'s pace until the predictor serves the model, and once it does.
POLL_SECONDS: Final = 1.0
HEALTHY_POLL_SECONDS: Final = 15.0
#: A predictor that has never answered is waited for quietly this long, then warned about once.
GRACE_SECONDS: Final = 60.0
#: Longest wait for one check (a Kubernetes probe times out after 1 s by default).
CHECK_TIMEOUT_SECONDS: Final = 1.0
# CANCELLED: a predictor pod shutting down cancels the calls still in flight (one such call became a
# 500 in the real cluster's deleted-predictor test): an outage to retry, not a fault
_OUTAGE_CODES: Final = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


class LinkState(enum.Enum):
    UNKNOWN = "not checked yet"
    SERVING = "serving"
    LOADING = "model loading"
    MISSING = "model not served"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Observation:
    """What one check or call found out about the predictor."""

    state: LinkState
    #: UNREACHABLE: the failure (gRPC code, exception type); MISSING: the predictor's message
    detail: str = ""
    #: MISSING: the names the predictor serves, when its message lists them (audioguard's does)
    served: tuple[str, ...] | None = None


#: one check of the predictor (never raises: a failure is an Observation)
ProbePredictor = Callable[[], Awaitable[Observation]]


def observe_error(error: BaseException, model_name: str | None = None) -> Observation | None:
    """What a failed predictor call for ``model_name`` says about the link; None for other
    failures (faults)."""
    if isinstance(error, grpc.RpcError):
        if error.code() in _OUTAGE_CODES:
            return Observation(LinkState.UNREACHABLE, error.code().name)
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return _not_found(error.details() or "", model_name)
        return None
    if isinstance(error, httpx.TransportError):
        return Observation(LinkState.UNREACHABLE, type(error).__name__)
    if isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 404:
        return _missing_from_rest(error.response, model_name)
    return None


def _missing_from_rest(response: httpx.Response, model_name: str | None) -> Observation:
    try:
        message = str(response.json().get("error", ""))
    except ValueError:
        message = ""
    return _not_found(message or "HTTP 404", model_name)


def _not_found(message: str, model_name: str | None) -> Observation:
    """A NOT_FOUND / 404 is another model name (a configuration error), unless the predictor lists
    the very name asked for: then it is starting and has not registered its model yet (seen on a
    real cluster when a new predictor pod answered within a second of starting), which is loading."""
    served = served_names_in(message)
    if served is not None and model_name is not None and model_name in served:
        return Observation(LinkState.LOADING, f"its model {model_name!r} is not registered yet")
    return Observation(LinkState.MISSING, message, served)


def grpc_probe(client: Callable[[], InferenceGRPCClient], model_name: str) -> ProbePredictor:
    """v2 ``ModelReady`` on KServe's gRPC client (the channel the calls use)."""

    async def probe() -> Observation:
        try:
            ready = await client().is_model_ready(model_name, timeout=CHECK_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            return observe_error(error, model_name) or Observation(LinkState.UNREACHABLE, error.code().name)
        return Observation(LinkState.SERVING if ready else LinkState.LOADING)

    return probe


def rest_probe(http: httpx.AsyncClient, base_url: str, model_name: str) -> ProbePredictor:
    """``GET /v2/models/{name}/ready`` (200 serving, 404 not served, 503 loading)."""
    url = f"{base_url.rstrip('/')}/v2/models/{model_name}/ready"

    async def probe() -> Observation:
        try:
            response = await http.get(url, timeout=CHECK_TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            return Observation(LinkState.UNREACHABLE, type(error).__name__)
        if response.status_code == 200:
            return Observation(LinkState.SERVING)
        if response.status_code == 404:
            return _missing_from_rest(response, model_name)
        if response.status_code == 503:
            return Observation(LinkState.LOADING)
        return Observation(LinkState.UNREACHABLE, f"HTTP {response.status_code}")

    return probe


class PredictorLink:
    """The predictor as this transformer sees it (see the module)."""

    def __init__(
        self,
        probe: ProbePredictor,
        *,
        address: str,
        model_name: str,
        health_check: bool,
        clock: Callable[[], float] = time.monotonic,
        grace_seconds: float = GRACE_SECONDS,
    ) -> None:
        self._probe = probe
        self.address = address
        self.model_name = model_name
        self.health_check = health_check
        self._clock = clock
        self.grace_seconds = grace_seconds
        self.current = Observation(LinkState.UNKNOWN)
        self._checked_at: float | None = None
        self._started = clock()
        self._reached = False  # the predictor has served the model once
        self._grace_warned = False
        self._lock = asyncio.Lock()

    # --- what the service asks ---------------------------------------------------------

    def not_ready_reason(self) -> str | None:
        """Why the transformer is not ready as far as the predictor goes; None: it is."""
        state = self.current.state
        if state is LinkState.MISSING:
            return self.mismatch_message()
        if state is LinkState.SERVING or not self.health_check or self._reached:
            return None
        if state is LinkState.LOADING:
            return f"the predictor at {self.address} is up, but model {self.model_name!r} is still loading"
        if state is LinkState.UNREACHABLE:
            return f"the predictor at {self.address} is unreachable ({self.current.detail})"
        return f"the predictor at {self.address} has not been checked yet"

    def refusal(self) -> ServiceNotReady | None:
        """The 503 for a call while the predictor serves another model (not sent); else None."""
        if self.current.state is LinkState.MISSING:
            return ServiceNotReady(self.mismatch_message())
        return None

    def mismatch_message(self) -> str:
        """The transformer's model name, the predictor's, and what to change."""
        served = self.current.served
        head = f"the predictor at {self.address} does not serve model {self.model_name!r}"
        if served is None:
            return f"{head} (it answered: {self.current.detail})"
        if not served:
            return f"{head} (it serves no model)"
        names = ", ".join(repr(name) for name in served)
        return (
            f"{head} (it serves {names}): give both services the same model name "
            f"(--model_name {served[0]} here, or --model_name {self.model_name} on the predictor)"
        )

    # --- checking ----------------------------------------------------------------------

    async def refresh(self, max_age_seconds: float = MAX_AGE_SECONDS) -> Observation:
        """Ask the predictor unless the last answer is younger than ``max_age_seconds``
        (concurrent callers share one check)."""
        if self._fresh(max_age_seconds):
            return self.current
        async with self._lock:
            if not self._fresh(max_age_seconds):
                self.observe(await self._probe())
                self._checked_at = self._clock()
        return self.current

    def _fresh(self, max_age_seconds: float) -> bool:
        return self._checked_at is not None and self._clock() - self._checked_at < max_age_seconds

    async def run(self) -> None:
        """Check at ``POLL_SECONDS`` until the predictor serves the model, then at
        ``HEALTHY_POLL_SECONDS`` (until cancelled)."""
        while True:
            try:
                await self.refresh(max_age_seconds=0.0)
            except Exception as error:  # a bug in a check must not end the watching
                logger.debug("predictor check failed: %s", error, exc_info=error)
            serving = self.current.state is LinkState.SERVING
            await asyncio.sleep(HEALTHY_POLL_SECONDS if serving else POLL_SECONDS)

    # --- learning ----------------------------------------------------------------------

    def observe(self, observation: Observation) -> None:
        """Take what a check or a call found; log the change of state, if any (once)."""
        previous, self.current = self.current, observation
        changed = (previous.state, previous.served) != (observation.state, observation.served)
        if changed:
            self._log_change(previous)
        elif observation.state is LinkState.UNREACHABLE:
            self._warn_after_grace()
        if observation.state is LinkState.SERVING:
            self._reached = True

    def observe_success(self) -> None:
        """A call was answered: the predictor serves the model."""
        if self.current.state is not LinkState.SERVING:
            self.observe(Observation(LinkState.SERVING))

    def _log_change(self, previous: Observation) -> None:
        state, where = self.current.state, f"the predictor at {self.address}"
        if state is LinkState.SERVING:
            level = logging.DEBUG if previous.state is LinkState.UNKNOWN else logging.INFO
            again = " again" if self._reached else ""
            logger.log(level, "%s serves model %r%s", where, self.model_name, again)
        elif state is LinkState.MISSING:
            logger.error("%s; the transformer is not ready until they match", self.mismatch_message())
        elif state is LinkState.LOADING:
            logger.info("%s is up; its model %r is not ready yet", where, self.model_name)
        elif self._reached:
            logger.warning(
                "%s is unreachable (%s): requests answer 503 until it is back", where, self.current.detail
            )
        else:
            logger.info("waiting for the predictor at %s (%s)", self.address, self.current.detail)
            self._warn_after_grace()

    def _warn_after_grace(self) -> None:
        waited = self._clock() - self._started
        if self._reached or self._grace_warned or waited < self.grace_seconds:
            return
        self._grace_warned = True
        logger.warning(
            "the predictor at %s has not answered for %.0f s (%s): is it running, is --predictor_host right?",
            self.address,
            waited,
            self.current.detail,
        )


async def stop_watching(task: asyncio.Task[None] | None) -> None:
    """Cancel ``run``'s task and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
