"""Kong's multi-attention classifier transcribed in float64 numpy, weights read straight from the h5.

The independent reference both classifier runtimes are held to (tests/predictor).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np


def random_windows(batch: int, seed: int) -> np.ndarray:
    """(batch, 10, 128) uint8 windows of random quantised embeddings."""
    return np.random.default_rng(seed).integers(0, 256, size=(batch, 10, 128), dtype=np.uint8)


def numpy_scores(path: Path, windows: np.ndarray) -> np.ndarray:
    """Kong's decision_level_multi_attention in float64 numpy, weights read with h5py."""
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"]
        weights = {
            f"{layer}/{name}": group[f"{layer}/{layer}/{name}:0"][()].astype(np.float64)
            for layer in group
            for name in ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")
            if f"{layer}/{layer}/{name}:0" in group
        }

    def dense(h: np.ndarray, layer: str) -> np.ndarray:
        return h @ weights[f"{layer}/kernel"] + weights[f"{layer}/bias"]

    def batch_norm(h: np.ndarray, layer: str) -> np.ndarray:
        normalised = (h - weights[f"{layer}/moving_mean"]) / np.sqrt(
            weights[f"{layer}/moving_variance"] + 1e-3
        )
        return weights[f"{layer}/gamma"] * normalised + weights[f"{layer}/beta"]

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    def softmax_over_classes(z: np.ndarray) -> np.ndarray:
        exp = np.exp(z - z.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def attention_pool(cla: np.ndarray, att: np.ndarray) -> np.ndarray:
        att = np.clip(att, 1e-7, 1 - 1e-7)
        att = att / att.sum(axis=1, keepdims=True)
        return (cla * att).sum(axis=1)

    hidden = (windows.astype(np.float64) - 128.0) / 128.0
    levels = []
    for level in (1, 2, 3):
        hidden = np.maximum(batch_norm(dense(hidden, f"dense_{level}"), f"batch_normalization_{level}"), 0.0)
        levels.append(hidden)
    a2, a3 = levels[1], levels[2]
    pooled_2 = attention_pool(sigmoid(dense(a2, "dense_4")), softmax_over_classes(dense(a2, "dense_5")))
    pooled_3 = attention_pool(sigmoid(dense(a3, "dense_6")), softmax_over_classes(dense(a3, "dense_7")))
    return sigmoid(dense(np.concatenate([pooled_2, pooled_3], axis=-1), "dense_8"))


def assert_matches_numpy(path: Path, predict: Callable[[np.ndarray], np.ndarray]) -> None:
    """A classifier's scores for 5 random windows equal the numpy transcription's to 1e-5."""
    windows = random_windows(5, seed=11)
    scores = predict(windows)
    assert scores.shape == (5, 527) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, numpy_scores(path, windows), rtol=0, atol=1e-5)
