"""The Keras reference: the classifier on TensorFlow, as the predictor served it before ONNX Runtime.

Not served any more (``predictor.classifier`` is), and not in the predictor image:
the tests and ``bench/classifier_benchmark.py`` hold the ONNX conversion to it.
``load_keras_classifier`` checks the file's layout (``predictor.h5_check``), builds
the Keras 3 graph (``predictor.network``), reads the weights by layer name and
compares every loaded variable with its dataset. ``KerasAttentionClassifier`` runs
it: one traced forward pass per batch bucket, thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import h5py
import keras
import numpy as np
import tensorflow as tf

from contract.constants import NUM_CLASSES
from contract.errors import ModelLayoutMismatch
from predictor.h5_check import inspect_h5_model_config, string_list_attr
from predictor.network import WINDOW_SHAPE, build_classifier
from predictor.windows import validated_windows

#: Batch sizes the compiled forward pass is traced for; a call is padded to the
#: next one, and larger inputs run in chunks of the biggest.
BATCH_BUCKETS: Final = (1, 4, 16, 64, 256)


def _weighted_layers(model: keras.Model) -> Iterable[keras.layers.Layer]:
    return (layer for layer in model.layers if layer.weights)


def _verify_loaded_weights(model: keras.Model, path: Path) -> None:
    """Every variable of the model equals its dataset in the file (Keras 2 weight order)."""
    with h5py.File(path, "r") as handle:
        model_weights = handle["model_weights"]
        for layer in _weighted_layers(model):
            group = model_weights[layer.name]
            names = string_list_attr(group, "weight_names") or []
            variables = layer.trainable_weights + layer.non_trainable_weights
            if len(names) != len(variables):
                raise ModelLayoutMismatch(
                    f"layer {layer.name} has {len(variables)} weights, file {path} has {len(names)}"
                )
            for name, variable in zip(names, variables, strict=True):
                if not np.array_equal(keras.ops.convert_to_numpy(variable), group[name][()]):
                    raise ModelLayoutMismatch(
                        f"weight {variable.path} did not load from "
                        f"model_weights/{layer.name}/{name} of {path}"
                    )


def load_keras_classifier(path: Path) -> keras.Model:
    """Build the classifier and load the weights of the Keras 2 file at ``path``.

    The layout is inspected first (``inspect_h5_model_config``); Keras 3's
    legacy-h5 loader then reads ``model_weights`` by layer name, and every
    loaded variable is compared with its dataset.
    """
    path = Path(path)
    inspect_h5_model_config(path)
    model = build_classifier()
    try:
        model.load_weights(str(path), by_name=True)
    except ValueError as error:
        raise ModelLayoutMismatch(f"could not load the weights of {path}: {error}") from error
    _verify_loaded_weights(model, path)
    return model


# --- Inference ----------------------------------------------------------------------


def _bucket_for(batch: int) -> int:
    return next(bucket for bucket in BATCH_BUCKETS if bucket >= batch)


class KerasAttentionClassifier:
    """Thread-safe inference wrapper around the Keras 3 classifier.

    The forward pass is one ``tf.function`` per batch bucket (traced at
    construction, so concurrent calls never trace); a batch is zero-padded to
    the next bucket and cut back, and inputs above the largest bucket run in
    chunks of it. Rows never interact (batch norm uses moving statistics), so
    padding does not change the scores.
    """

    def __init__(self, model: keras.Model) -> None:
        self._model = model
        self._forward: dict[int, Any] = {}
        for bucket in BATCH_BUCKETS:
            function = tf.function(
                self._call_model,
                input_signature=[tf.TensorSpec((bucket, *WINDOW_SHAPE), tf.float32)],
                reduce_retracing=False,
            )
            self._forward[bucket] = function.get_concrete_function()

    @classmethod
    def from_file(cls, path: Path) -> KerasAttentionClassifier:
        """Load ``classifier_model.h5`` (see ``load_keras_classifier``) and wrap it."""
        return cls(load_keras_classifier(path))

    @property
    def model(self) -> keras.Model:
        """The underlying Keras 3 model."""
        return self._model

    def _call_model(self, windows: tf.Tensor) -> tf.Tensor:
        return self._model(windows, training=False)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Scores (B, 527) float32 for windows (B, 10, 128): the served classifier's contract
        (``predictor.classifier.AttentionClassifier.predict``), computed by Keras on TensorFlow."""
        scaled = validated_windows(windows)
        batch = scaled.shape[0]
        largest = BATCH_BUCKETS[-1]
        parts = []
        for start in range(0, batch, largest):
            chunk = scaled[start : start + largest]
            bucket = _bucket_for(chunk.shape[0])
            padded = np.zeros((bucket, *WINDOW_SHAPE), np.float32)
            padded[: chunk.shape[0]] = chunk
            scores = self._forward[bucket](tf.constant(padded))
            parts.append(scores.numpy()[: chunk.shape[0]])
        if not parts:
            return np.zeros((0, NUM_CLASSES), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)
