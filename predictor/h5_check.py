"""Is this HDF5 file Kong's multi-attention classifier as Keras 2.2.4 saved it?

Compares the file's ``model_config`` (layer classes, names, units, activations,
connections) and its ``model_weights`` group (layer_names, weight_names,
dataset shapes) with ``predictor.keras2_layout``, and names every difference.
Reads the file with h5py only (no TensorFlow).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import h5py

from contract.assets import HOW_TO_GET_WEIGHTS
from contract.errors import MissingModelAsset, ModelAssetError, ModelLayoutMismatch
from predictor.keras2_layout import EXPECTED_LAYERS, MODEL_INPUT, MODEL_OUTPUT


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


def string_list_attr(group: h5py.Group, name: str) -> list[str] | None:
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
    layer_names = string_list_attr(model_weights, "layer_names")
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
        weight_names = string_list_attr(group, "weight_names")
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
