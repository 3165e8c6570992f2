"""The tensors between the transformer and the predictor: embeddings out, scores back.

Names, shapes and datatypes are the contract in ``contract.constants``.
"""

from __future__ import annotations

import numpy as np
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, EMBEDDINGS_TENSOR, NUM_CLASSES


def embeddings_request(
    windows: np.ndarray, *, model_name: str, request_id: str | None, binary: bool
) -> InferRequest:
    """The predictor request: input ``embeddings`` UINT8 ``[W, 10, 128]``.

    ``binary`` sends raw bytes (gRPC); REST forwarding uses JSON because KServe
    0.21 sends binary REST tensors with two Content-Type headers (400).
    """
    expected = (EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE)
    if windows.dtype != np.uint8 or windows.ndim != 3 or windows.shape[1:] != expected:
        raise ValueError(
            f"expected (W, {expected[0]}, {expected[1]}) uint8 windows, got {windows.dtype} {windows.shape}"
        )
    tensor = InferInput(EMBEDDINGS_TENSOR, list(windows.shape), "UINT8")
    tensor.set_data_from_numpy(np.ascontiguousarray(windows), binary_data=binary)
    return InferRequest(model_name=model_name, infer_inputs=[tensor], request_id=request_id)


def scores_from_response(response: InferResponse, num_windows: int) -> np.ndarray:
    """The predictor's (W, 527) float32 scores (its single output)."""
    if len(response.outputs) != 1:
        raise ValueError(f"expected one predictor output, got {[o.name for o in response.outputs]}")
    scores = np.asarray(response.outputs[0].as_numpy(), dtype=np.float32)
    if scores.shape != (num_windows, NUM_CLASSES):
        raise ValueError(
            f"expected predictor scores of shape {(num_windows, NUM_CLASSES)}, got {scores.shape}"
        )
    return scores
