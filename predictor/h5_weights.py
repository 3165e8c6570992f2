"""The classifier's weights read from the official ``classifier_model.h5`` with h5py (no TensorFlow).

The file's layout is checked first (``predictor.h5_check``); the arrays are then
read from ``model_weights/<layer>/<layer>/<weight>:0`` for every weight that
``predictor.keras2_layout`` lists, as float32.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from predictor.h5_check import inspect_h5_model_config
from predictor.keras2_layout import EXPECTED_LAYERS


def read_classifier_weights(path: Path) -> dict[str, np.ndarray]:
    """``"<layer>/<weight>"`` (e.g. ``dense_1/kernel``) -> float32 array, for all 28 weights.

    Raises:
        MissingModelAsset: the file does not exist.
        ModelAssetError: the file is not HDF5.
        ModelLayoutMismatch: the file is not Kong's multi-attention graph (every difference named).
    """
    path = Path(path)
    inspect_h5_model_config(path)
    weights: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        model_weights = handle["model_weights"]
        for layer, spec in EXPECTED_LAYERS.items():
            for weight, _shape in spec.weights:
                dataset = model_weights[f"{layer}/{layer}/{weight}:0"]
                weights[f"{layer}/{weight}"] = np.asarray(dataset[()], dtype=np.float32)
    return weights
