"""Centred moving averages along one axis (cumulative sums, no Python loops)."""

from __future__ import annotations

import numpy as np


def moving_average(values: np.ndarray, width: int, axis: int = 0) -> np.ndarray:
    """Centred mean over ``width`` neighbours along ``axis`` (float64, same shape).

    Near the edges the mean is over the neighbours that exist, so a constant
    input stays constant (no decay towards zero at the clip ends).
    """
    width = max(1, int(width))
    if width == 1:
        return np.asarray(values, dtype=np.float64)
    moved = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    length = moved.shape[0]
    before = width // 2
    after = width - before - 1
    cumulative = np.concatenate([np.zeros((1, *moved.shape[1:])), np.cumsum(moved, axis=0)])
    index = np.arange(length)
    upper = np.minimum(index + after + 1, length)
    lower = np.maximum(index - before, 0)
    counts = (upper - lower).reshape(-1, *([1] * (moved.ndim - 1)))
    averaged = (cumulative[upper] - cumulative[lower]) / counts
    return np.moveaxis(averaged, 0, axis)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(n,) bool: True wherever a True of ``mask`` lies within ``radius`` frames."""
    if radius <= 0:
        return mask.copy()
    return moving_average(mask.astype(np.float64), 2 * radius + 1) > 0.0
