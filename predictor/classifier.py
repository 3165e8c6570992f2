"""The multi-level attention classifier (Kong's ``decision_level_multi_attention``, as
IBM MAX trained it), rebuilt natively in Keras 3.

The official ``classifier_model.h5`` is a Keras 2.2.4 full-model file whose two
attention poolings are ``Lambda`` layers holding marshalled Python 3.6
bytecode, which Keras 3 cannot deserialise. So the graph is rebuilt here with
the Keras 2 layer names (``AttentionPooling`` replaces the Lambdas and keeps
their names ``lambda_1``/``lambda_2``); the file's ``model_config`` is checked
against the expected layout, and the weights are read from its
``model_weights`` group by layer name.

Computation for one window x (10, 128) of (uint8 - 128) / 128 values::

    a1 = drop(relu(bn(dense_1(x))))           (10, 1024)   dropout is off at inference
    a2 = drop(relu(bn(dense_2(a1))))          (10, 1024)
    a3 = drop(relu(bn(dense_3(a2))))          (10, 1024)
    level_k = pool(sigmoid(cla_k(a)), softmax_over_classes(att_k(a)))  for a in (a2, a3)
    scores = sigmoid(dense_8(concat(level_1, level_2)))                (527,)

with ``pool(cla, att) = sum_t cla * att' ``, ``att' = clip(att, 1e-7, 1-1e-7)``
normalised over time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import h5py
import keras
import numpy as np
import tensorflow as tf

from contract.assets import HOW_TO_GET_WEIGHTS
from contract.constants import (
    EMBEDDING_SIZE,
    EMBEDDINGS_PER_WINDOW,
    NUM_CLASSES,
    QUANTISED_CENTRE,
)
from contract.errors import InvalidInput, MissingModelAsset, ModelAssetError, ModelLayoutMismatch

HIDDEN_UNITS: Final = 1024
DROPOUT_RATE: Final = 0.5
BATCH_NORM_EPSILON: Final = 1e-3
#: Kong's clip on the attention weights before normalising over time.
ATTENTION_EPSILON: Final = 1e-7
#: Batch sizes the compiled forward pass is traced for; a call is padded to the
#: next one, and larger inputs run in chunks of the biggest.
BATCH_BUCKETS: Final = (1, 4, 16, 64, 256)
WINDOW_SHAPE: Final = (EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE)


@keras.saving.register_keras_serializable(package="audioguard")
class AttentionPooling(keras.layers.Layer):
    """Kong's decision-level attention pooling over time.

    Inputs ``[cla, att]``, both (B, T, C) float32: per-frame class
    probabilities and attention weights. ``att`` is clipped to
    [1e-7, 1 - 1e-7] and normalised to sum to 1 over time (axis 1) for every
    class; the output is the attention-weighted sum of ``cla`` over time, (B, C).
    """

    def call(self, inputs: list[Any]) -> Any:
        cla, att = inputs
        att = keras.ops.clip(att, ATTENTION_EPSILON, 1.0 - ATTENTION_EPSILON)
        att = att / keras.ops.sum(att, axis=1, keepdims=True)
        return keras.ops.sum(cla * att, axis=1)

    def compute_output_shape(self, input_shape: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        batch, _time, classes = input_shape[0]
        return (batch, classes)


def build_classifier() -> keras.Model:
    """The classifier graph with the Keras 2 layer names, untrained.

    Input (B, 10, 128) float32, output (B, 527) float32 sigmoid scores.
    4,960,269 parameters, of which 6,144 (batch-norm moving statistics) are
    non-trainable.
    """
    inputs = keras.Input(shape=WINDOW_SHAPE, dtype="float32", name="input_1")
    hidden = inputs
    levels = []
    for level in (1, 2, 3):
        hidden = keras.layers.Dense(HIDDEN_UNITS, name=f"dense_{level}")(hidden)
        hidden = keras.layers.BatchNormalization(
            epsilon=BATCH_NORM_EPSILON, name=f"batch_normalization_{level}"
        )(hidden)
        hidden = keras.layers.Activation("relu", name=f"activation_{level}")(hidden)
        hidden = keras.layers.Dropout(DROPOUT_RATE, name=f"dropout_{level}")(hidden)
        levels.append(hidden)
    pooled = []
    # (a2, a3) feed the two attention levels; Keras 2 created dense_4..7 in this order.
    for level_input, cla_name, att_name, pool_name in (
        (levels[1], "dense_4", "dense_5", "lambda_1"),
        (levels[2], "dense_6", "dense_7", "lambda_2"),
    ):
        cla = keras.layers.Dense(NUM_CLASSES, activation="sigmoid", name=cla_name)(level_input)
        att = keras.layers.Dense(NUM_CLASSES, activation="softmax", name=att_name)(level_input)
        pooled.append(AttentionPooling(name=pool_name)([cla, att]))
    merged = keras.layers.Concatenate(axis=-1, name="concatenate_1")(pooled)
    logits = keras.layers.Dense(NUM_CLASSES, name="dense_8")(merged)
    scores = keras.layers.Activation("sigmoid", name="activation_4")(logits)
    return keras.Model(inputs, scores, name="model_1")


# --- The expected layout of the Keras 2 file --------------------------------------------


@dataclass(frozen=True)
class _LayerSpec:
    """What one layer of the Keras 2 file must look like.

    ``config`` holds the config entries that change the computation;
    ``weights`` the (name, shape) of its datasets in Keras 2 weight order.
    """

    class_name: str
    inbound: tuple[str, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    weights: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _dense_spec(units: int, activation: str, fan_in: int, inbound: str) -> _LayerSpec:
    return _LayerSpec(
        "Dense",
        (inbound,),
        {"units": units, "activation": activation, "use_bias": True},
        (("kernel", (fan_in, units)), ("bias", (units,))),
    )


_BATCH_NORM_WEIGHTS: Final = ("gamma", "beta", "moving_mean", "moving_variance")


def _expected_layers() -> dict[str, _LayerSpec]:
    """Layer name -> spec for all 22 layers of Kong's graph as Keras 2.2.4 named them."""
    specs: dict[str, _LayerSpec] = {
        "input_1": _LayerSpec(
            "InputLayer", (), {"batch_input_shape": [None, EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE]}
        )
    }
    previous, fan_in = "input_1", EMBEDDING_SIZE
    for level in (1, 2, 3):
        dense, norm = f"dense_{level}", f"batch_normalization_{level}"
        activation, dropout = f"activation_{level}", f"dropout_{level}"
        specs[dense] = _dense_spec(HIDDEN_UNITS, "linear", fan_in, previous)
        specs[norm] = _LayerSpec(
            "BatchNormalization",
            (dense,),
            {"axis": -1, "epsilon": BATCH_NORM_EPSILON, "center": True, "scale": True},
            tuple((weight, (HIDDEN_UNITS,)) for weight in _BATCH_NORM_WEIGHTS),
        )
        specs[activation] = _LayerSpec("Activation", (norm,), {"activation": "relu"})
        specs[dropout] = _LayerSpec("Dropout", (activation,))
        previous, fan_in = dropout, HIDDEN_UNITS
    specs["dense_4"] = _dense_spec(NUM_CLASSES, "sigmoid", HIDDEN_UNITS, "dropout_2")
    specs["dense_5"] = _dense_spec(NUM_CLASSES, "softmax", HIDDEN_UNITS, "dropout_2")
    specs["dense_6"] = _dense_spec(NUM_CLASSES, "sigmoid", HIDDEN_UNITS, "dropout_3")
    specs["dense_7"] = _dense_spec(NUM_CLASSES, "softmax", HIDDEN_UNITS, "dropout_3")
    # The Lambda bodies are Python 3.6 bytecode and cannot be checked; their
    # inputs (cla first, att second) are.
    specs["lambda_1"] = _LayerSpec("Lambda", ("dense_4", "dense_5"))
    specs["lambda_2"] = _LayerSpec("Lambda", ("dense_6", "dense_7"))
    specs["concatenate_1"] = _LayerSpec("Concatenate", ("lambda_1", "lambda_2"), {"axis": -1})
    specs["dense_8"] = _dense_spec(NUM_CLASSES, "linear", 2 * NUM_CLASSES, "concatenate_1")
    specs["activation_4"] = _LayerSpec("Activation", ("dense_8",), {"activation": "sigmoid"})
    return specs


EXPECTED_LAYERS: Final = _expected_layers()
MODEL_INPUT: Final = "input_1"
MODEL_OUTPUT: Final = "activation_4"


def _same_value(found: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(found, int | float) and not isinstance(found, bool):
        return math.isclose(found, expected, rel_tol=1e-6)
    return bool(found == expected)


def _inbound_layer_names(entry: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Names of the layers feeding a Keras 2 layer entry (one inbound node), None if malformed."""
    nodes = entry.get("inbound_nodes")
    if nodes == []:
        return ()
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], list):
        return None
    try:
        return tuple(str(tensor[0]) for tensor in nodes[0])
    except (TypeError, IndexError, KeyError):
        return None


def _entry_name(entry: Mapping[str, Any]) -> str:
    """A layer entry's name: top-level in Keras 2 configs, inside ``config`` in Keras 3 ones."""
    config = entry.get("config")
    nested = config.get("name") if isinstance(config, dict) else None
    return str(entry.get("name", nested))


def _config_differences(model_config: Any) -> list[str]:
    """Every way ``model_config`` (decoded JSON) differs from Kong's graph."""
    if not isinstance(model_config, dict) or not isinstance(model_config.get("config"), dict):
        return ["model_config is not a Keras model config (no 'config' object)"]
    differences = []
    class_name = model_config.get("class_name")
    if class_name not in ("Model", "Functional"):
        differences.append(f"model class is {class_name!r}, expected a functional 'Model'")
    config = model_config["config"]
    entries = {_entry_name(entry): entry for entry in config.get("layers", []) if isinstance(entry, dict)}
    missing = [name for name in EXPECTED_LAYERS if name not in entries]
    if missing:
        differences.append(f"layers missing from model_config: {', '.join(missing)}")
    unexpected = [name for name in entries if name not in EXPECTED_LAYERS]
    if unexpected:
        differences.append(f"unexpected layers in model_config: {', '.join(unexpected)}")
    for name, spec in EXPECTED_LAYERS.items():
        entry = entries.get(name)
        if entry is None:
            continue
        if entry.get("class_name") != spec.class_name:
            differences.append(f"layer {name} is a {entry.get('class_name')}, expected {spec.class_name}")
            continue
        inbound = _inbound_layer_names(entry)
        if inbound != spec.inbound:
            differences.append(f"layer {name} takes input from {inbound}, expected {spec.inbound}")
        layer_config = entry["config"] if isinstance(entry.get("config"), dict) else {}
        for key, expected in spec.config.items():
            found = layer_config.get(key)
            if not _same_value(found, expected):
                differences.append(f"layer {name} has {key}={found!r}, expected {expected!r}")
    if config.get("input_layers") != [[MODEL_INPUT, 0, 0]]:
        differences.append(
            f"model inputs are {config.get('input_layers')}, expected [['{MODEL_INPUT}', 0, 0]]"
        )
    if config.get("output_layers") != [[MODEL_OUTPUT, 0, 0]]:
        differences.append(
            f"model outputs are {config.get('output_layers')}, expected [['{MODEL_OUTPUT}', 0, 0]]"
        )
    return differences


def _string_list_attr(group: h5py.Group, name: str) -> list[str] | None:
    """A Keras 2 list-of-names attribute, also when split into ``name0``, ``name1``... chunks."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    elif f"{name}0" in group.attrs:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    else:
        return None
    items = [item for chunk in chunks for item in chunk]
    return [item.decode("utf8") if isinstance(item, bytes) else str(item) for item in items]


def _weights_differences(model_weights: h5py.Group) -> list[str]:
    """Every way the ``model_weights`` group differs from the expected layer names and shapes."""
    layer_names = _string_list_attr(model_weights, "layer_names")
    if layer_names is None:
        return ["model_weights has no layer_names attribute"]
    differences = []
    absent = [name for name in EXPECTED_LAYERS if name not in layer_names]
    if absent:
        differences.append(f"model_weights layer_names lack {', '.join(absent)}")
    extra = [name for name in layer_names if name not in EXPECTED_LAYERS]
    if extra:
        differences.append(f"model_weights layer_names have unexpected {', '.join(extra)}")
    for name, spec in EXPECTED_LAYERS.items():
        group = model_weights.get(name)
        if not isinstance(group, h5py.Group):
            differences.append(f"model_weights/{name} is missing")
            continue
        expected_names = [f"{name}/{weight}:0" for weight, _ in spec.weights]
        weight_names = _string_list_attr(group, "weight_names")
        if weight_names != expected_names:
            differences.append(
                f"model_weights/{name} weight_names are {weight_names}, expected {expected_names}"
            )
        for weight_name, (_, shape) in zip(expected_names, spec.weights, strict=True):
            dataset = group.get(weight_name)
            location = f"model_weights/{name}/{weight_name}"
            if not isinstance(dataset, h5py.Dataset):
                differences.append(f"dataset {location} is missing")
            elif dataset.shape != shape:
                differences.append(f"dataset {location} has shape {dataset.shape}, expected {shape}")
            elif dataset.dtype.kind != "f":
                differences.append(f"dataset {location} has dtype {dataset.dtype}, expected float")
    return differences


def _open_model_file(path: Path) -> h5py.File:
    if not path.is_file():
        raise MissingModelAsset(f"classifier model file {path} not found: {HOW_TO_GET_WEIGHTS}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ModelAssetError(f"classifier model file {path} is not a readable HDF5 file: {error}") from error


#: An unrelated file differs everywhere; the first differences say enough.
_MAX_REPORTED_DIFFERENCES: Final = 12


def inspect_h5_model_config(path: Path) -> None:
    """Check that ``path`` is a Keras 2 full-model HDF5 of Kong's multi-attention graph.

    Compares the ``model_config`` attribute (layer classes, names, units,
    activations, connections) and the ``model_weights`` group (layer_names,
    weight_names, dataset shapes) with the expected layout.

    Raises:
        MissingModelAsset: the file does not exist.
        ModelAssetError: the file is not HDF5.
        ModelLayoutMismatch: any difference; the message lists them all.
    """
    path = Path(path)
    with _open_model_file(path) as handle:
        raw_config = handle.attrs.get("model_config")
        if raw_config is None:
            differences = ["no model_config attribute (a weights-only file, not a full-model file?)"]
        else:
            try:
                text = raw_config.decode("utf8") if isinstance(raw_config, bytes) else str(raw_config)
                differences = _config_differences(json.loads(text))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                differences = [f"model_config is not valid JSON: {error}"]
        model_weights = handle.get("model_weights")
        if isinstance(model_weights, h5py.Group):
            differences += _weights_differences(model_weights)
        else:
            differences.append("no model_weights group")
    if differences:
        shown = differences[:_MAX_REPORTED_DIFFERENCES]
        if len(differences) > len(shown):
            shown.append(f"... and {len(differences) - len(shown)} more")
        raise ModelLayoutMismatch(
            f"classifier model file {path} is not the expected multi-attention classifier: "
            + "; ".join(shown)
        )


def _weighted_layers(model: keras.Model) -> Iterable[keras.layers.Layer]:
    return (layer for layer in model.layers if layer.weights)


def _verify_loaded_weights(model: keras.Model, path: Path) -> None:
    """Every variable of the model equals its dataset in the file (Keras 2 weight order)."""
    with h5py.File(path, "r") as handle:
        model_weights = handle["model_weights"]
        for layer in _weighted_layers(model):
            group = model_weights[layer.name]
            names = _string_list_attr(group, "weight_names") or []
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


def load_classifier(path: Path) -> keras.Model:
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


def _validated_windows(windows: Any) -> np.ndarray:
    """(B, 10, 128) float32 of (x - 128) / 128 from uint8 or float32 quantised values."""
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
    return (quantised - np.float32(QUANTISED_CENTRE)) / np.float32(QUANTISED_CENTRE)


def _bucket_for(batch: int) -> int:
    return next(bucket for bucket in BATCH_BUCKETS if bucket >= batch)


class AttentionClassifier:
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
    def from_file(cls, path: Path) -> AttentionClassifier:
        """Load ``classifier_model.h5`` (see ``load_classifier``) and wrap it."""
        return cls(load_classifier(path))

    @property
    def model(self) -> keras.Model:
        """The underlying Keras 3 model."""
        return self._model

    def _call_model(self, windows: tf.Tensor) -> tf.Tensor:
        return self._model(windows, training=False)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Scores (B, 527) float32 for windows (B, 10, 128).

        ``windows`` are quantised embeddings: uint8, or float32 holding the same
        0..255 values (the KServe v2 FP32 form); both become (x - 128) / 128.
        B == 0 gives an empty (0, 527) array.

        Raises:
            InvalidInput: wrong type, shape or dtype, or float values outside 0..255.
        """
        scaled = _validated_windows(windows)
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
