"""What the classifier takes: windows of 10 quantised embeddings, checked and scaled to its input."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, QUANTISED_CENTRE
from contract.errors import InvalidInput

WINDOW_SHAPE: Final = (EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE)


def validated_windows(windows: Any) -> np.ndarray:
    """(B, 10, 128) float32 of (x - 128) / 128 from uint8 or float32 quantised values.

    Raises:
        InvalidInput: not an array, wrong shape or dtype, or float values outside 0..255 (or NaN).
    """
    expected = f"(batch, {EMBEDDINGS_PER_WINDOW}, {EMBEDDING_SIZE})"
    if not isinstance(windows, np.ndarray):
        raise InvalidInput(f"windows must be a numpy array of shape {expected}, got {type(windows).__name__}")
    if windows.ndim != 3 or windows.shape[1:] != WINDOW_SHAPE:
        raise InvalidInput(f"windows must have shape {expected}, got {windows.shape}")
    if windows.dtype == np.uint8:
        quantised = windows.astype(np.float32)
    elif windows.dtype == np.float32:
        # NaN fails both comparisons, so it is rejected too.
        if windows.size and not (np.all(windows >= 0.0) and np.all(windows <= 255.0)):
            raise InvalidInput(
                "float32 windows must hold quantised embedding values in 0..255 "
                "(finite, as the uint8 embeddings they stand for)"
            )
        quantised = windows
    else:
        raise InvalidInput(
            f"windows must be uint8 (quantised embeddings) or float32 holding the same 0..255 values, "
            f"got {windows.dtype}"
        )
    # (x - 128) / 128 is exact in float32 for every value 0..255
    return (quantised - np.float32(QUANTISED_CENTRE)) / np.float32(QUANTISED_CENTRE)
