"""The layout of Kong's multi-attention graph as Keras 2.2.4 saved it: the one description
that both the loader's check (``predictor.h5_check``) and the synthetic-weights writer
(``audioguard.synthetic.classifier``) read.

Every layer is listed in Keras 2's ``model.layers`` order (by decreasing depth,
ties by traversal order from the output, which puts dense_4..dense_7 before both
Lambdas) with its class, inputs, the config entries that change the computation
and its weights (name, shape) in Keras 2 weight order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, NUM_CLASSES

HIDDEN_UNITS: Final = 1024
DROPOUT_RATE: Final = 0.5
BATCH_NORM_EPSILON: Final = 1e-3
MODEL_NAME: Final = "model_1"
#: Kong's clip on the attention weights before normalising over time (inside the Lambda layers).
ATTENTION_EPSILON: Final = 1e-7


@dataclass(frozen=True)
class LayerSpec:
    """What one layer of the Keras 2 file must look like.

    ``config`` holds the config entries that change the computation;
    ``weights`` the (name, shape) of its datasets in Keras 2 weight order.
    """

    class_name: str
    inbound: tuple[str, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    weights: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _dense_spec(units: int, activation: str, fan_in: int, inbound: str) -> LayerSpec:
    return LayerSpec(
        "Dense",
        (inbound,),
        {"units": units, "activation": activation, "use_bias": True},
        (("kernel", (fan_in, units)), ("bias", (units,))),
    )


_BATCH_NORM_WEIGHTS: Final = ("gamma", "beta", "moving_mean", "moving_variance")


def _expected_layers() -> dict[str, LayerSpec]:
    """Layer name -> spec for all 22 layers of Kong's graph as Keras 2.2.4 named them."""
    specs: dict[str, LayerSpec] = {
        "input_1": LayerSpec(
            "InputLayer", (), {"batch_input_shape": [None, EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE]}
        )
    }
    previous, fan_in = "input_1", EMBEDDING_SIZE
    for level in (1, 2, 3):
        dense, norm = f"dense_{level}", f"batch_normalization_{level}"
        activation, dropout = f"activation_{level}", f"dropout_{level}"
        specs[dense] = _dense_spec(HIDDEN_UNITS, "linear", fan_in, previous)
        specs[norm] = LayerSpec(
            "BatchNormalization",
            (dense,),
            {"axis": -1, "epsilon": BATCH_NORM_EPSILON, "center": True, "scale": True},
            tuple((weight, (HIDDEN_UNITS,)) for weight in _BATCH_NORM_WEIGHTS),
        )
        specs[activation] = LayerSpec("Activation", (norm,), {"activation": "relu"})
        specs[dropout] = LayerSpec("Dropout", (activation,))
        previous, fan_in = dropout, HIDDEN_UNITS
    specs["dense_4"] = _dense_spec(NUM_CLASSES, "sigmoid", HIDDEN_UNITS, "dropout_2")
    specs["dense_5"] = _dense_spec(NUM_CLASSES, "softmax", HIDDEN_UNITS, "dropout_2")
    specs["dense_6"] = _dense_spec(NUM_CLASSES, "sigmoid", HIDDEN_UNITS, "dropout_3")
    specs["dense_7"] = _dense_spec(NUM_CLASSES, "softmax", HIDDEN_UNITS, "dropout_3")
    # The Lambda bodies are Python 3.6 bytecode and cannot be checked; their
    # inputs (cla first, att second) are.
    specs["lambda_1"] = LayerSpec("Lambda", ("dense_4", "dense_5"))
    specs["lambda_2"] = LayerSpec("Lambda", ("dense_6", "dense_7"))
    specs["concatenate_1"] = LayerSpec("Concatenate", ("lambda_1", "lambda_2"), {"axis": -1})
    specs["dense_8"] = _dense_spec(NUM_CLASSES, "linear", 2 * NUM_CLASSES, "concatenate_1")
    specs["activation_4"] = LayerSpec("Activation", ("dense_8",), {"activation": "sigmoid"})
    return specs


EXPECTED_LAYERS: Final = _expected_layers()
MODEL_INPUT: Final = "input_1"
MODEL_OUTPUT: Final = "activation_4"
