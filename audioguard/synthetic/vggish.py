"""Synthetic ``vggish_model.ckpt`` and ``vggish_pca_params.npz`` in the official formats.

The checkpoint is a single-file TF1 **V1** checkpoint with the official variable
names and shapes, written by TensorFlow's own V1 writer (the ``Save`` op that
``tf.compat.v1.train.Saver(write_version=V1)`` runs), so it loads exactly like the
published file.

Scaling: convolutions and fc1 are He-normal with zero biases, so activations
keep their size through the ReLUs. fc2 is deliberately quieter (std
``FC2_WEIGHT_STD``) around a constant bias ``FC2_BIAS``; the synthetic PCA
subtracts that same constant, so quantised embeddings sit around 127 with a
spread of roughly +-50 levels for ordinary audio instead of clipping at 0 or 255.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from contract.constants import EMBEDDING_SIZE
from transformer.audio.constants import PCA_EIGEN_VECTORS_NAME, PCA_MEANS_NAME
from transformer.audio.vggish_layout import VGGISH_LAYERS, checkpoint_variable_shapes

#: Constant fc2 bias; also the synthetic PCA mean of every component.
FC2_BIAS = 2.0
#: fc2 weight std. fc1_2 outputs of typical log-mel input have an L2 norm of
#: ~150-400 under He scaling, so this gives fc2 a spread of ~0.4-1.0 around FC2_BIAS
#: (the quantiser's range is +-2).
FC2_WEIGHT_STD = 0.0025


def _synthetic_vggish_tensors(seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """(official variable name, float32 array of the official shape), one at a time."""
    rng = np.random.default_rng(seed)
    shapes = checkpoint_variable_shapes()
    for layer in VGGISH_LAYERS:
        weight_shape = shapes[layer.weights_variable]
        fan_in = int(np.prod(weight_shape[:-1]))
        std = FC2_WEIGHT_STD if layer.name == "fc2" else float(np.sqrt(2.0 / fan_in))
        weights = rng.standard_normal(weight_shape, dtype=np.float32)
        weights *= np.float32(std)
        yield layer.weights_variable, weights
        bias = FC2_BIAS if layer.name == "fc2" else 0.0
        yield layer.biases_variable, np.full(layer.units, bias, dtype=np.float32)


def write_synthetic_vggish_checkpoint(path: Path, *, seed: int = 0) -> None:
    """Write a random VGGish as ONE file ``path`` in TF1 V1 checkpoint format (~289 MB).

    Same seed -> same values. The parent directory must exist. TensorFlow's
    writer goes through a temporary file and renames it, so a reader never sees
    a half-written checkpoint.
    """
    import tensorflow as tf  # heavy; only this writer needs it

    # Each array becomes a TF tensor as soon as it is drawn, so only one NumPy
    # copy (at most fc1_1's 201 MB) exists at a time.
    names: list[str] = []
    tensors: list[tf.Tensor] = []
    for name, values in _synthetic_vggish_tensors(seed):
        names.append(name)
        tensors.append(tf.convert_to_tensor(values))
        del values
    # The V1 ``Save`` op writes exactly ``path``: no .index/.data shards, no
    # "checkpoint" state file, no meta graph.
    tf.raw_ops.Save(filename=str(Path(path)), tensor_names=names, data=tensors)


def write_synthetic_pca_params(path: Path, *, seed: int = 0) -> None:
    """Write ``vggish_pca_params.npz``: a random orthonormal (128, 128) float64 basis
    (rows = components) and (128,) float64 means equal to the synthetic fc2 bias."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((EMBEDDING_SIZE, EMBEDDING_SIZE)))
    # Fix QR's sign ambiguity so the basis is a deterministic function of the seed.
    eigen_vectors = (q * np.sign(np.diag(r))).T
    arrays: dict[str, np.ndarray] = {
        PCA_EIGEN_VECTORS_NAME: eigen_vectors,
        PCA_MEANS_NAME: np.full(EMBEDDING_SIZE, FC2_BIAS, dtype=np.float64),
    }
    with Path(path).open("wb") as handle:  # a handle: np.savez would append ".npz" to a path
        np.savez(handle, allow_pickle=False, **arrays)
