"""A synthetic ``classifier_model.h5`` in the layout Keras 2.2.4's ``save_model`` wrote.

The official file is a Keras 2.2.4 *full-model* HDF5 of Kong's
``decision_level_multi_attention`` network. This module writes the same
structure with plain h5py (Keras 3 cannot write Keras 2 configs), from the one
layout description the loader checks files against (``predictor.keras2_layout``):

- root attrs ``keras_version`` = b"2.2.4", ``backend`` = b"tensorflow",
  ``model_config`` (JSON of a Keras 2.2.4 functional ``Model``) and
  ``training_config`` (JSON: Adam + binary cross-entropy);
- group ``model_weights`` with attrs ``layer_names`` (every layer, model order),
  ``backend``, ``keras_version``; one group per layer with attr ``weight_names``
  (empty for weightless layers) and float32 datasets at
  ``model_weights/<layer>/<layer>/<weight>:0``.

The two attention poolings are ``Lambda`` layers whose ``function`` field is a
``[base64 marshalled bytecode, null, null]`` triple, as 2.2.4's ``func_dump``
stored it; here the string is a base64 placeholder, never executable code.

Weights are random but scaled so that scores are spread over (0, 1) and depend
on the input: Glorot-uniform kernels, small biases, and batch-norm moving
statistics roughly matching the pre-activation statistics of inputs drawn from
the uint8 range.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from contract.constants import EMBEDDING_SIZE, NUM_CLASSES
from predictor.keras2_layout import (
    DROPOUT_RATE,
    EXPECTED_LAYERS,
    HIDDEN_UNITS,
    MODEL_INPUT,
    MODEL_NAME,
    MODEL_OUTPUT,
    LayerSpec,
)

KERAS_VERSION: Final = b"2.2.4"
BACKEND: Final = b"tensorflow"

#: Stands in for the marshalled Python 3.6 bytecode of Kong's ``attention_pooling``.
_LAMBDA_PLACEHOLDER: Final = base64.encodebytes(
    b"synthetic placeholder for the marshalled bytecode of attention_pooling (not executable)"
).decode("ascii")
_SHAPE_PLACEHOLDER: Final = base64.encodebytes(
    b"synthetic placeholder for the marshalled bytecode of pooling_shape (not executable)"
).decode("ascii")


def _glorot_uniform() -> dict[str, Any]:
    return {
        "class_name": "VarianceScaling",
        "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
    }


def _initializer(class_name: str) -> dict[str, Any]:
    return {"class_name": class_name, "config": {}}


def _format_extras(spec: LayerSpec) -> dict[str, Any]:
    """Config entries Keras 2.2.4 wrote besides the computation-relevant ones (``spec.config``)."""
    if spec.class_name == "InputLayer":
        return {"dtype": "float32", "sparse": False}
    extras: dict[str, Any] = {"trainable": True}
    if spec.class_name == "Dense":
        extras |= {
            "kernel_initializer": _glorot_uniform(),
            "bias_initializer": _initializer("Zeros"),
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        }
    elif spec.class_name == "BatchNormalization":
        extras |= {
            "momentum": 0.99,
            "beta_initializer": _initializer("Zeros"),
            "gamma_initializer": _initializer("Ones"),
            "moving_mean_initializer": _initializer("Zeros"),
            "moving_variance_initializer": _initializer("Ones"),
            "beta_regularizer": None,
            "gamma_regularizer": None,
            "beta_constraint": None,
            "gamma_constraint": None,
        }
    elif spec.class_name == "Dropout":
        extras |= {"rate": DROPOUT_RATE, "noise_shape": None, "seed": None}
    elif spec.class_name == "Lambda":
        extras |= {
            "function": [_LAMBDA_PLACEHOLDER, None, None],
            "function_type": "lambda",
            "output_shape": [_SHAPE_PLACEHOLDER, None, None],
            "output_shape_type": "lambda",
            "arguments": {},
        }
    return extras


def keras2_layer_configs() -> list[dict[str, Any]]:
    """The layer entries of the Keras 2.2.4 config, from ``predictor.keras2_layout``, in its order.

    Each inbound node is tensor 0 of node 0 of each input layer, as Keras 2 wrote it.
    """
    return [
        {
            "name": name,
            "class_name": spec.class_name,
            "config": {"name": name, **_format_extras(spec), **spec.config},
            "inbound_nodes": [[[inbound, 0, 0, {}] for inbound in spec.inbound]] if spec.inbound else [],
        }
        for name, spec in EXPECTED_LAYERS.items()
    ]


def keras2_model_config() -> dict[str, Any]:
    """``model_config`` as Keras 2.2.4 serialised a functional ``Model``."""
    return {
        "class_name": "Model",
        "config": {
            "name": MODEL_NAME,
            "layers": keras2_layer_configs(),
            "input_layers": [[MODEL_INPUT, 0, 0]],
            "output_layers": [[MODEL_OUTPUT, 0, 0]],
        },
    }


def keras2_training_config() -> dict[str, Any]:
    """``training_config``: Kong's ``Adam(lr=1e-3)`` and binary cross-entropy, float32-rounded."""
    adam = {
        "lr": float(np.float32(1e-3)),
        "beta_1": float(np.float32(0.9)),
        "beta_2": float(np.float32(0.999)),
        "decay": 0.0,
        "epsilon": 1e-07,
        "amsgrad": False,
    }
    return {
        "optimizer_config": {"class_name": "Adam", "config": adam},
        "loss": "binary_crossentropy",
        "metrics": [],
        "sample_weight_mode": None,
        "loss_weights": None,
    }


def _glorot_kernel(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def _synthetic_weights(rng: np.random.Generator) -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
    """(layer name, [(weight name, array)]) for every weighted layer, Keras 2 weight order.

    Moving statistics follow the pre-activation statistics: inputs (x-128)/128
    of uint8 values have mean ~0 and variance ~1/3; a Glorot-uniform layer
    multiplies the variance by about 2 * fan_in / (fan_in + fan_out); ReLU
    halves the second moment.
    """
    fan_in = EMBEDDING_SIZE
    input_variance = 1.0 / 3.0
    for level in (1, 2, 3):
        kernel = _glorot_kernel(rng, fan_in, HIDDEN_UNITS)
        expected_variance = input_variance * fan_in * float(np.mean(kernel**2))
        dense = f"dense_{level}"
        yield (
            dense,
            [
                ("kernel", kernel),
                ("bias", rng.normal(0.0, 0.05, HIDDEN_UNITS).astype(np.float32)),
            ],
        )
        batch_norm = f"batch_normalization_{level}"
        yield (
            batch_norm,
            [
                ("gamma", rng.uniform(0.8, 1.2, HIDDEN_UNITS).astype(np.float32)),
                ("beta", rng.normal(0.0, 0.1, HIDDEN_UNITS).astype(np.float32)),
                ("moving_mean", rng.normal(0.0, 0.05, HIDDEN_UNITS).astype(np.float32)),
                (
                    "moving_variance",
                    (expected_variance * rng.uniform(0.7, 1.3, HIDDEN_UNITS)).astype(np.float32),
                ),
            ],
        )
        fan_in = HIDDEN_UNITS
        input_variance = 0.5
    for name in ("dense_4", "dense_5", "dense_6", "dense_7"):
        # Doubled kernels sharpen the per-frame probabilities and attention so
        # the pooled values (and the final scores) vary with the input.
        yield (
            name,
            [
                ("kernel", 2.0 * _glorot_kernel(rng, HIDDEN_UNITS, NUM_CLASSES)),
                ("bias", rng.normal(0.0, 0.1, NUM_CLASSES).astype(np.float32)),
            ],
        )
    yield (
        "dense_8",
        [
            ("kernel", 4.0 * _glorot_kernel(rng, 2 * NUM_CLASSES, NUM_CLASSES)),
            ("bias", rng.normal(-1.0, 0.5, NUM_CLASSES).astype(np.float32)),
        ],
    )


def _json_attr(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode("utf8")


def write_synthetic_classifier_h5(path: Path, *, seed: int = 0) -> None:
    """Write a synthetic Keras 2.2.4 full-model ``classifier_model.h5`` to ``path``.

    Same seed, same weights. The file is written to a temporary name and
    renamed, so a reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    layers = keras2_layer_configs()
    weights = dict(_synthetic_weights(rng))
    partial = path.with_name(path.name + ".partial")
    with h5py.File(partial, "w") as handle:
        handle.attrs["keras_version"] = KERAS_VERSION
        handle.attrs["backend"] = BACKEND
        handle.attrs["model_config"] = _json_attr(keras2_model_config())
        handle.attrs["training_config"] = _json_attr(keras2_training_config())
        model_weights = handle.create_group("model_weights")
        model_weights.attrs["layer_names"] = np.asarray([layer["name"].encode("utf8") for layer in layers])
        model_weights.attrs["backend"] = BACKEND
        model_weights.attrs["keras_version"] = KERAS_VERSION
        for layer in layers:
            name = layer["name"]
            group = model_weights.create_group(name)
            layer_weights = weights.get(name, [])
            # the generator must produce exactly the layout's weights, names and shapes
            assert [(w, v.shape) for w, v in layer_weights] == list(EXPECTED_LAYERS[name].weights), name
            weight_names = [f"{name}/{weight}:0".encode() for weight, _ in layer_weights]
            # Keras 2 stored the plain Python list: an empty float64 array for weightless layers.
            group.attrs["weight_names"] = np.asarray(weight_names) if weight_names else np.zeros(0)
            for weight_name, (_, value) in zip(weight_names, layer_weights, strict=True):
                group.create_dataset(weight_name.decode("utf8"), data=value)
    partial.replace(path)
