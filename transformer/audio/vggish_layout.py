"""The VGGish layout (docs/reference/model.md §2) and its official checkpoint's weights, no TensorFlow.

Four conv blocks (3x3 SAME + ReLU, 2x2 max-pool) on a (96, 64, 1) log-mel patch,
flatten in NHWC order, then fc1_1/fc1_2 (4096, ReLU) and fc2 (128). Every
runtime (``vggish.py`` on TensorFlow, ``vggish_onnx.py`` on ONNX Runtime)
builds from these names and shapes, and checks a checkpoint with the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.constants import EMBEDDING_SIZE
from contract.errors import MissingModelAsset, ModelLayoutMismatch
from transformer.audio.constants import EXAMPLE_FRAMES, NUM_MEL_BANDS
from transformer.audio.tf1_checkpoint import TF1Checkpoint

#: Total weights + biases of VGGish (docs/reference/model.md §2).
VGGISH_PARAMETER_COUNT = 72_141_184


@dataclass(frozen=True)
class VGGishLayer:
    """One weighted layer: its Keras name, checkpoint scope and width."""

    name: str
    scope: str
    units: int
    is_conv: bool

    @property
    def weights_variable(self) -> str:
        return f"{self.scope}/weights"

    @property
    def biases_variable(self) -> str:
        return f"{self.scope}/biases"


#: The weighted layers in order. Keras 3 forbids "/" in layer names, hence the scope field.
VGGISH_LAYERS: tuple[VGGishLayer, ...] = (
    VGGishLayer("conv1", "vggish/conv1", 64, is_conv=True),
    VGGishLayer("conv2", "vggish/conv2", 128, is_conv=True),
    VGGishLayer("conv3_1", "vggish/conv3/conv3_1", 256, is_conv=True),
    VGGishLayer("conv3_2", "vggish/conv3/conv3_2", 256, is_conv=True),
    VGGishLayer("conv4_1", "vggish/conv4/conv4_1", 512, is_conv=True),
    VGGishLayer("conv4_2", "vggish/conv4/conv4_2", 512, is_conv=True),
    VGGishLayer("fc1_1", "vggish/fc1/fc1_1", 4096, is_conv=False),
    VGGishLayer("fc1_2", "vggish/fc1/fc1_2", 4096, is_conv=False),
    VGGishLayer("fc2", "vggish/fc2", EMBEDDING_SIZE, is_conv=False),
)
#: A max-pool follows the last conv of each block.
POOL_AFTER = {"conv1": "pool1", "conv2": "pool2", "conv3_2": "pool3", "conv4_2": "pool4"}
#: Spatial size after pool4: (96/16, 64/16); times its 512 channels = fc1_1's inputs.
POOLED_HEIGHT, POOLED_WIDTH = EXAMPLE_FRAMES // 16, NUM_MEL_BANDS // 16
FLAT_FEATURES = POOLED_HEIGHT * POOLED_WIDTH * 512


def checkpoint_variable_shapes() -> dict[str, tuple[int, ...]]:
    """Official checkpoint variable name -> shape, e.g. ``vggish/conv1/weights`` -> (3, 3, 1, 64)."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = 1
    for layer in VGGISH_LAYERS:
        if layer.is_conv:
            shapes[layer.weights_variable] = (3, 3, fan_in, layer.units)
        else:
            shapes[layer.weights_variable] = (
                FLAT_FEATURES if layer.name == "fc1_1" else fan_in,
                layer.units,
            )
        shapes[layer.biases_variable] = (layer.units,)
        fan_in = layer.units
    return shapes


def layout_problems(stored_shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Every official variable that is missing from ``stored_shapes`` or has another shape."""
    problems: list[str] = []
    for name, expected in checkpoint_variable_shapes().items():
        if name not in stored_shapes:
            problems.append(f"missing variable {name} {list(expected)}")
        elif tuple(stored_shapes[name]) != expected:
            problems.append(
                f"variable {name} has shape {list(stored_shapes[name])}, expected {list(expected)}"
            )
    return problems


def missing_checkpoint(path: Path) -> MissingModelAsset:
    """The error for an absent ``vggish_model.ckpt``, with the two ways to get one."""
    return MissingModelAsset(
        f"VGGish checkpoint {path.name} not found in {path.parent}; run "
        "`audioguard weights download` (official) or `audioguard weights synthetic` "
        "(test weights)"
    )


def read_vggish_weights(checkpoint_path: Path) -> dict[str, np.ndarray]:
    """``vggish_model.ckpt`` -> official variable name -> float32 array, layout checked.

    Raises:
        MissingModelAsset: the file does not exist.
        ModelAssetError: the file is not a readable V1 checkpoint.
        ModelLayoutMismatch: variables missing or with the wrong shape (all named).
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise missing_checkpoint(path)
    checkpoint = TF1Checkpoint.read(path, frozenset(checkpoint_variable_shapes()))
    problems = layout_problems({name: v.shape for name, v in checkpoint.variables.items()})
    if problems:
        raise ModelLayoutMismatch(f"{path.name} does not match the VGGish layout: " + "; ".join(problems))
    return {
        name: checkpoint.tensor(name).astype(np.float32, copy=False) for name in checkpoint_variable_shapes()
    }


def embed_in_batches(
    examples: np.ndarray, batch_size: int, forward: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """(N, 96, 64) log-mel examples -> (N, 128) float32, ``forward`` called on contiguous float32
    (n <= batch_size, 96, 64) chunks (bounds memory; N may be 0). Every runtime embeds through this."""
    batch = np.asarray(examples)
    if batch.ndim != 3 or batch.shape[1:] != (EXAMPLE_FRAMES, NUM_MEL_BANDS):
        raise ValueError(f"expected (N, {EXAMPLE_FRAMES}, {NUM_MEL_BANDS}) examples, got shape {batch.shape}")
    embeddings = np.empty((batch.shape[0], EMBEDDING_SIZE), dtype=np.float32)
    for start in range(0, batch.shape[0], batch_size):
        chunk = np.ascontiguousarray(batch[start : start + batch_size], dtype=np.float32)
        embeddings[start : start + chunk.shape[0]] = forward(chunk)
    return embeddings
