"""The transformer's calls to the predictor: embeddings out, scores back, failures typed.

The transport is KServe's own (``Model.predict`` with the server's predictor
config: gRPC v2 or REST v2, timeouts, retries, and the client its readiness
check shares), handed in as ``send``. This module adds what the product needs
around it: an unreachable predictor is a 503 (``ServiceNotReady``), any other
predictor failure a server fault (``ServiceFault``, 500 / gRPC INTERNAL), and the scores are
checked against the windows that were sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import grpc
import httpx
import numpy as np
from kserve.protocol.infer_type import InferRequest, InferResponse

from contract.errors import ServiceFault, ServiceNotReady
from contract.weights_status import weights_official_parameter
from transformer.analysis.types import PredictorScores
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
_UNAVAILABLE_CODES: Final = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

#: ``send(request, headers)``: KServe's call to the predictor
SendRequest = Callable[[InferRequest, dict[str, str] | None], Awaitable[Any]]


def is_predictor_outage(error: BaseException) -> bool:
    """True for a gRPC failure that means "predictor unreachable" (answered 503), not a fault."""
    return isinstance(error, grpc.RpcError) and error.code() in _UNAVAILABLE_CODES


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

    def request(self, windows: np.ndarray, request_id: str | None) -> InferRequest:
        """The predictor request for (W, 10, 128) uint8 windows."""
        return embeddings_request(
            windows, model_name=self.model_name, request_id=request_id, binary=self.binary
        )

    async def call(self, request: InferRequest, headers: Mapping[str, str] | None) -> InferResponse:
        """Send a predictor request.

        Raises:
            ServiceNotReady: the predictor is unreachable or not ready (503).
            ServiceFault: it failed or answered nonsense (500).
        """
        try:
            response = await self._send(request, None if headers is None else dict(headers))
        except grpc.RpcError as error:
            if is_predictor_outage(error):
                raise ServiceNotReady(f"the predictor is unavailable ({error.code().name})") from None
            raise ServiceFault(f"the predictor failed: {error.code().name}: {error.details()}") from None
        except httpx.TransportError as error:
            raise ServiceNotReady(f"the predictor is unavailable ({type(error).__name__})") from None
        except httpx.HTTPStatusError as error:
            if error.response.status_code == 503:
                raise ServiceNotReady("the predictor is not ready") from None
            raise ServiceFault(f"the predictor failed with HTTP {error.response.status_code}") from None
        if not isinstance(response, InferResponse):
            raise ServiceFault(f"unexpected predictor response type {type(response).__name__}")
        return response

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
