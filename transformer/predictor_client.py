"""The transformer's calls to the predictor: embeddings out, scores back, failures typed.

The transport is KServe's own (``Model.predict`` with the server's predictor
config: gRPC v2 or REST v2, timeouts, retries, and the client its readiness
check shares), handed in as ``send``. This module adds what the product needs
around it: an unreachable predictor is a 503 (``ServiceNotReady``), so is a predictor that
serves another model name (named in the answer; while ``transformer.predictor_link`` knows the
names differ a call is not even sent), any other predictor failure a server fault
(``ServiceFault``, 500 / gRPC INTERNAL), and the scores are checked against the windows that
were sent. Every outcome tells the link (``PredictorLink.observe``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import grpc
import httpx
import numpy as np
from kserve.protocol.infer_type import InferRequest, InferResponse

from contract.errors import AudioGuardError, ServiceFault, ServiceNotReady
from contract.weights_status import weights_official_parameter
from transformer.analysis.types import PredictorScores
from transformer.metrics import PREDICTOR_CALL_FAILURES
from transformer.predictor_link import LinkState, PredictorLink, observe_error
from transformer.protocol.predictor_tensors import embeddings_request, scores_from_response

#: gRPC reconnect backoff towards the predictor: short, so that a restarted
#: predictor is used again within about a second (the default grows to 120 s).
PREDICTOR_CHANNEL_ARGS: Final = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
#: Retry-After of the 503 a call gets while the predictor is unreachable or not ready: a deleted
#: predictor pod was back in 20-35 s on the test cluster (docs/deploy.md), so a caller retrying at
#: this pace gets through within seconds of its return.
PREDICTOR_RETRY_AFTER_SECONDS: Final = 5

#: ``send(request, headers)``: KServe's call to the predictor
SendRequest = Callable[[InferRequest, dict[str, str] | None], Awaitable[Any]]


class PredictorClient:
    """Scores windows of embeddings on the predictor."""

    def __init__(self, send: SendRequest, *, model_name: str, binary: bool) -> None:
        """
        Args:
            send: KServe's call to the predictor.
            model_name: the model the predictor serves (the name in the request).
            binary: send raw tensor bytes (gRPC). REST forwarding must use JSON:
                KServe 0.21 sends binary REST tensors with two Content-Type headers (400).
        """
        self._send = send
        self.model_name = model_name
        self.binary = binary
        #: what the service knows of the predictor (set once it is connected; None in tests)
        self.link: PredictorLink | None = None

    def request(self, windows: np.ndarray, request_id: str | None) -> InferRequest:
        """The predictor request for (W, 10, 128) uint8 windows."""
        return embeddings_request(
            windows, model_name=self.model_name, request_id=request_id, binary=self.binary
        )

    async def call(self, request: InferRequest, headers: Mapping[str, str] | None) -> InferResponse:
        """Send a predictor request.

        Raises:
            ServiceNotReady: the predictor is unreachable, not ready, or serves another model (503).
            ServiceFault: it failed or answered nonsense (500).
        """
        refusal = None if self.link is None else self.link.refusal()
        if refusal is not None:
            PREDICTOR_CALL_FAILURES.labels(reason=_failure_reason(refusal)).inc()
            raise refusal
        try:
            response = await self._send(request, None if headers is None else dict(headers))
        except (grpc.RpcError, httpx.HTTPError) as error:
            failure = self._failure(error)
            PREDICTOR_CALL_FAILURES.labels(reason=_failure_reason(failure)).inc()
            raise failure from None
        if not isinstance(response, InferResponse):
            PREDICTOR_CALL_FAILURES.labels(reason="error").inc()
            raise ServiceFault(f"unexpected predictor response type {type(response).__name__}")
        if self.link is not None:
            self.link.observe_success()
        return response

    def _failure(self, error: grpc.RpcError | httpx.HTTPError) -> AudioGuardError:
        """The typed error for a failed call (the link learns from it first)."""
        observed = observe_error(error, self.model_name)
        if observed is not None and self.link is not None:
            self.link.observe(observed)
        if observed is not None and observed.state is LinkState.MISSING:
            refusal = None if self.link is None else self.link.refusal()
            return refusal or ServiceNotReady(
                f"the predictor does not serve model {self.model_name!r} ({observed.detail})"
            )
        if observed is not None:
            return ServiceNotReady(
                f"the predictor is unavailable ({observed.detail})",
                retry_after_seconds=PREDICTOR_RETRY_AFTER_SECONDS,
            )
        if isinstance(error, grpc.RpcError):
            return ServiceFault(f"the predictor failed: {error.code().name}: {error.details()}")
        if isinstance(error, httpx.HTTPStatusError):
            if error.response.status_code == 503:
                return ServiceNotReady(
                    "the predictor is not ready", retry_after_seconds=PREDICTOR_RETRY_AFTER_SECONDS
                )
            return ServiceFault(f"the predictor failed with HTTP {error.response.status_code}")
        return ServiceNotReady(
            f"the predictor is unavailable ({type(error).__name__})",
            retry_after_seconds=PREDICTOR_RETRY_AFTER_SECONDS,
        )

    @staticmethod
    def scores(response: InferResponse, num_windows: int) -> PredictorScores:
        """The (W, 527) float32 scores of a predictor response and its weights verdict;
        ServiceFault if malformed."""
        try:
            values = scores_from_response(response, num_windows)
        except ValueError as error:
            raise ServiceFault(f"the predictor answered unexpectedly: {error}") from None
        return PredictorScores(values, weights_official_parameter(response.parameters))

    async def score(
        self, windows: np.ndarray, request_id: str | None, headers: Mapping[str, str] | None
    ) -> PredictorScores:
        """(W, 10, 128) uint8 windows -> (W, 527) float32 scores (the analysis' ``score``)."""
        response = await self.call(self.request(windows, request_id), headers)
        return self.scores(response, windows.shape[0])


def _failure_reason(failure: AudioGuardError) -> str:
    """The ``reason`` label of ``audioguard_predictor_call_failures_total`` for a failed call."""
    return "unavailable" if isinstance(failure, ServiceNotReady) else "error"
