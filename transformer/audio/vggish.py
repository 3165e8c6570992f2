"""VGGish in Keras 3 (TF backend), loaded from the official TF1 checkpoint: the reference runtime.

The layout is ``vggish_layout.py``'s (docs/reference/model.md §2). IBM MAX keeps a ReLU on fc2;
upstream dropped it in 2020, so it is a switch here. The services run VGGish on
ONNX Runtime by default (``vggish_onnx.py``); this module is the reference it is
tested against and ``--vggish_runtime tensorflow``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from contract.errors import ModelAssetError, ModelLayoutMismatch
from transformer.audio.constants import EXAMPLE_FRAMES, NUM_MEL_BANDS
from transformer.audio.pca import PCAQuantizer
from transformer.audio.vggish_layout import (
    POOL_AFTER,
    VGGISH_LAYERS,
    embed_in_batches,
    layout_problems,
    missing_checkpoint,
)


def build_vggish(*, fc2_relu: bool = True) -> keras.Model:
    """Uninitialised VGGish: (N, 96, 64, 1) float32 log-mel -> (N, 128) float32 fc2 output."""
    inputs = keras.Input(shape=(EXAMPLE_FRAMES, NUM_MEL_BANDS, 1), name="log_mel")
    x = inputs
    for layer in VGGISH_LAYERS:
        if layer.is_conv:
            x = keras.layers.Conv2D(
                layer.units,
                3,
                padding="same",
                activation="relu",
                data_format="channels_last",
                name=layer.name,
            )(x)
            if layer.name in POOL_AFTER:
                x = keras.layers.MaxPooling2D(
                    2, strides=2, data_format="channels_last", name=POOL_AFTER[layer.name]
                )(x)
        else:
            if layer.name == "fc1_1":
                # channels_last flatten = row-major (H, W, C), the TF1 reshape order.
                x = keras.layers.Flatten(data_format="channels_last", name="flatten")(x)
            activation = "relu" if (layer.name != "fc2" or fc2_relu) else None
            x = keras.layers.Dense(layer.units, activation=activation, name=layer.name)(x)
    return keras.Model(inputs, x, name="vggish")


def load_vggish_checkpoint(model: keras.Model, checkpoint_path: Path) -> None:
    """Copy ``vggish_model.ckpt`` (single-file TF1 V1 checkpoint) into ``model``.

    Every variable is checked against the model before anything is assigned;
    kernels copy without transposes (TF1 HWIO / (in, out) = Keras layout).

    Raises:
        MissingModelAsset: the file does not exist.
        ModelAssetError: the file is not a readable TF checkpoint.
        ModelLayoutMismatch: variables missing or with the wrong shape (all named).
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise missing_checkpoint(path)
    try:
        reader = tf.train.load_checkpoint(str(path))
    except (tf.errors.OpError, ValueError) as error:
        raise ModelAssetError(f"{path.name} is not a readable TF checkpoint: {error}") from error
    stored_shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    problems = layout_problems(stored_shapes)
    if problems:
        raise ModelLayoutMismatch(f"{path.name} does not match the VGGish layout: " + "; ".join(problems))
    for layer in VGGISH_LAYERS:
        keras_layer = model.get_layer(layer.name)
        pairs = ((keras_layer.kernel, layer.weights_variable), (keras_layer.bias, layer.biases_variable))
        for variable, name in pairs:
            variable.assign(reader.get_tensor(name).astype(np.float32, copy=False))


class VGGishEmbedder:
    """Log-mel examples -> VGGish embeddings (raw float32 or PCA-quantised uint8).

    The model runs through one traced ``tf.function`` whose batch dimension is
    dynamic, so any N reuses the same graph (no retracing per length). Examples
    are fed ``batch_size`` at a time to bound memory. Safe to call from several
    threads: tracing happens once in the constructor, and graph execution is
    thread-safe.
    """

    runtime = "tensorflow"
    precision = "fp32"

    def __init__(self, model: keras.Model, quantizer: PCAQuantizer, *, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.quantizer = quantizer
        self.batch_size = batch_size
        self._forward = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[
                tf.TensorSpec((None, EXAMPLE_FRAMES, NUM_MEL_BANDS, 1), tf.float32, name="log_mel")
            ],
            reduce_retracing=True,
        )
        self._forward.get_concrete_function()

    @classmethod
    def from_files(
        cls,
        checkpoint_path: Path,
        pca_params_path: Path,
        *,
        fc2_relu: bool = True,
        batch_size: int = 64,
    ) -> VGGishEmbedder:
        """Build VGGish, load ``vggish_model.ckpt`` and ``vggish_pca_params.npz``.

        The PCA file is read first: it is small, so a missing or malformed one
        fails before the 289 MB checkpoint is read.
        """
        quantizer = PCAQuantizer.from_npz(Path(pca_params_path))
        model = build_vggish(fc2_relu=fc2_relu)
        load_vggish_checkpoint(model, Path(checkpoint_path))
        return cls(model, quantizer, batch_size=batch_size)

    def tracing_count(self) -> int:
        """How many times the forward graph was traced (stays 1 in normal use)."""
        return int(self._forward.experimental_get_tracing_count())

    def embed(self, examples: np.ndarray) -> np.ndarray:
        """(N, 96, 64) float log-mel examples -> (N, 128) float32 raw fc2 output (N may be 0)."""
        return embed_in_batches(
            examples, self.batch_size, lambda chunk: self._forward(tf.constant(chunk[..., None])).numpy()
        )

    def embed_quantized(self, examples: np.ndarray) -> np.ndarray:
        """(N, 96, 64) float log-mel examples -> (N, 128) uint8 PCA-quantised embeddings."""
        return self.quantizer(self.embed(examples))
