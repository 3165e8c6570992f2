"""The Keras 3 multi-attention classifier against the Keras 2 file format and a numpy forward pass.

Every expected score here comes from an independent numpy transcription of
Kong's network, reading the weights straight from the HDF5 datasets.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest

from contract.errors import InvalidInput, MissingModelAsset, ModelAssetError, ModelLayoutMismatch
from predictor.classifier import AttentionClassifier, load_classifier
from predictor.h5_check import (
    _config_differences,
    _weights_differences,
    inspect_h5_model_config,
    string_list_attr,
)
from predictor.keras2_layout import EXPECTED_LAYERS
from predictor.network import AttentionPooling, build_classifier

NUM_CLASSES = 527


@pytest.fixture(scope="module")
def classifier_path(synthetic_classifier_dir: Path) -> Path:
    return synthetic_classifier_dir / "classifier_model.h5"


@pytest.fixture(scope="module")
def classifier(classifier_path: Path) -> AttentionClassifier:
    return AttentionClassifier.from_file(classifier_path)


def _random_windows(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(batch, 10, 128), dtype=np.uint8)


def _numpy_scores(path: Path, windows: np.ndarray) -> np.ndarray:
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


# --- Graph ---------------------------------------------------------------------------


def test_parameter_counts_match_kong_multi_attention() -> None:
    model = build_classifier()
    non_trainable = sum(int(np.prod(variable.shape)) for variable in model.non_trainable_weights)
    assert model.count_params() == 4_960_269
    assert non_trainable == 6_144
    assert tuple(model.input_shape) == (None, 10, 128)
    assert tuple(model.output_shape) == (None, NUM_CLASSES)


def test_layer_names_match_the_keras2_file(classifier_path: Path) -> None:
    with h5py.File(classifier_path, "r") as handle:
        file_layers = [name.decode() for name in handle["model_weights"].attrs["layer_names"]]
    assert sorted(layer.name for layer in build_classifier().layers) == sorted(file_layers)


def test_attention_pooling_hand_computed() -> None:
    # cla[t, c] and att[t, c] for one clip, T=3 frames, C=3 classes.
    cla = np.array([[[0.2, 0.9, 0.1], [0.6, 0.3, 0.5], [0.4, 0.6, 0.8]]], np.float32)
    att = np.array([[[0.0, 0.5, 2.0], [0.0, 0.25, 0.5], [0.0, 0.25, 0.5]]], np.float32)
    # Class 0: all attention 0 -> clipped to 1e-7 each -> 1/3 each over time (no 0/0).
    class_0 = (0.2 + 0.6 + 0.4) / 3
    # Class 1: (0.5, 0.25, 0.25) already sums to 1 over time.
    class_1 = 0.9 * 0.5 + 0.3 * 0.25 + 0.6 * 0.25
    # Class 2: 2.0 clips to 1 - 1e-7, then (1, 0.5, 0.5) / 2 over time.
    top = 1 - 1e-7
    total = top + 0.5 + 0.5
    class_2 = 0.1 * top / total + 0.5 * 0.5 / total + 0.8 * 0.5 / total
    expected = np.array([[class_0, class_1, class_2]])
    pooled = keras.ops.convert_to_numpy(AttentionPooling()([cla, att]))
    assert pooled.shape == (1, 3)
    np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-6)
    # Normalising over classes instead of time would give a different class 1 value.
    wrong_axis = att[0, :, 1] / att[0].sum(axis=1)
    assert abs(float((cla[0, :, 1] * wrong_axis).sum()) - class_1) > 0.1


def test_attention_pooling_serialises_without_lambda() -> None:
    layer = AttentionPooling(name="lambda_1")
    config = keras.layers.serialize(layer)
    assert "Lambda" not in json.dumps(config)
    restored = keras.layers.deserialize(config)
    assert isinstance(restored, AttentionPooling)
    assert restored.name == "lambda_1"
    rebuilt = keras.Model.from_config(build_classifier().get_config())
    assert rebuilt.count_params() == 4_960_269


# --- Loading -------------------------------------------------------------------------


def test_model_matches_numpy_forward_pass(classifier_path: Path, classifier: AttentionClassifier) -> None:
    windows = _random_windows(5, seed=11)
    expected = _numpy_scores(classifier_path, windows)
    scores = classifier.predict(windows)
    assert scores.shape == (5, NUM_CLASSES)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)


def test_loaded_weights_equal_the_file_datasets(classifier_path: Path) -> None:
    model = load_classifier(classifier_path)
    with h5py.File(classifier_path, "r") as handle:
        group = handle["model_weights"]
        pairs = {
            "dense_1/dense_1/kernel:0": model.get_layer("dense_1").kernel,
            "dense_8/dense_8/bias:0": model.get_layer("dense_8").bias,
            "batch_normalization_3/batch_normalization_3/gamma:0": model.get_layer(
                "batch_normalization_3"
            ).gamma,
            "batch_normalization_1/batch_normalization_1/moving_variance:0": model.get_layer(
                "batch_normalization_1"
            ).moving_variance,
            "dense_7/dense_7/kernel:0": model.get_layer("dense_7").kernel,
        }
        for dataset, variable in pairs.items():
            assert np.array_equal(keras.ops.convert_to_numpy(variable), group[dataset][()]), dataset


def test_keras_topological_loader_agrees_with_by_name(classifier_path: Path) -> None:
    """The rebuilt graph orders its weighted layers as the Keras 2 file does."""
    topological = build_classifier()
    topological.load_weights(str(classifier_path))
    by_name = load_classifier(classifier_path)
    for mine, reference in zip(topological.weights, by_name.weights, strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(reference))


def test_inspect_accepts_the_synthetic_file(classifier_path: Path) -> None:
    """The synthetic file is Kong's layout exactly: the check finds no difference and passes it."""
    with h5py.File(classifier_path, "r") as handle:
        assert _config_differences(json.loads(handle.attrs["model_config"])) == []
        assert _weights_differences(handle["model_weights"]) == []
        # in Keras 2's order, which the topological loader relies on
        assert string_list_attr(handle["model_weights"], "layer_names") == list(EXPECTED_LAYERS)
    inspect_h5_model_config(classifier_path)  # raises ModelLayoutMismatch on any difference


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "classifier_model.h5"
    with pytest.raises(MissingModelAsset) as raised:
        load_classifier(missing)
    message = raised.value.message
    assert "classifier_model.h5" in message
    assert "audioguard weights download" in message
    assert "audioguard weights synthetic" in message


def test_non_hdf5_file_is_a_model_asset_error(tmp_path: Path) -> None:
    path = tmp_path / "classifier_model.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ModelAssetError, match="not a readable HDF5 file"):
        inspect_h5_model_config(path)


def _layer_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in config["config"]["layers"] if entry["name"] == name)


def _set_units(config: dict[str, Any]) -> None:
    _layer_entry(config, "dense_2")["config"]["units"] = 512


def _set_activation(config: dict[str, Any]) -> None:
    _layer_entry(config, "dense_5")["config"]["activation"] = "sigmoid"


def _swap_lambda_inputs(config: dict[str, Any]) -> None:
    node = _layer_entry(config, "lambda_1")["inbound_nodes"][0]
    node.reverse()


def _drop_layer(config: dict[str, Any]) -> None:
    config["config"]["layers"] = [e for e in config["config"]["layers"] if e["name"] != "dropout_3"]


def _set_epsilon(config: dict[str, Any]) -> None:
    _layer_entry(config, "batch_normalization_2")["config"]["epsilon"] = 1e-5


@pytest.mark.parametrize(
    ("mutate", "expected_words"),
    [
        (_set_units, ["dense_2", "units=512", "1024"]),
        (_set_activation, ["dense_5", "activation='sigmoid'", "'softmax'"]),
        (_swap_lambda_inputs, ["lambda_1", "('dense_5', 'dense_4')"]),
        (_drop_layer, ["dropout_3", "missing"]),
        (_set_epsilon, ["batch_normalization_2", "epsilon"]),
    ],
    ids=["units", "activation", "connections", "missing-layer", "epsilon"],
)
def test_model_config_mismatch_is_reported(
    classifier_path: Path,
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None],
    expected_words: list[str],
) -> None:
    path = tmp_path / "classifier_model.h5"
    shutil.copyfile(classifier_path, path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        mutate(config)
        handle.attrs["model_config"] = json.dumps(config).encode("utf8")
    with pytest.raises(ModelLayoutMismatch) as raised:
        load_classifier(path)
    for word in expected_words:
        assert word in raised.value.message


def test_missing_dataset_is_reported(classifier_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "classifier_model.h5"
    shutil.copyfile(classifier_path, path)
    with h5py.File(path, "r+") as handle:
        del handle["model_weights/dense_3/dense_3/bias:0"]
    with pytest.raises(ModelLayoutMismatch, match=r"model_weights/dense_3/dense_3/bias:0 is missing"):
        inspect_h5_model_config(path)


def test_wrong_dataset_shape_is_reported(classifier_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "classifier_model.h5"
    shutil.copyfile(classifier_path, path)
    with h5py.File(path, "r+") as handle:
        del handle["model_weights/dense_8/dense_8/kernel:0"]
        handle["model_weights/dense_8/dense_8"].create_dataset(
            "kernel:0", data=np.zeros((1054, 500), np.float32)
        )
    with pytest.raises(ModelLayoutMismatch) as raised:
        load_classifier(path)
    assert "dense_8/kernel:0 has shape (1054, 500), expected (1054, 527)" in raised.value.message


def test_weights_only_file_is_reported(classifier_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "classifier_model.h5"
    shutil.copyfile(classifier_path, path)
    with h5py.File(path, "r+") as handle:
        del handle.attrs["model_config"]
    with pytest.raises(ModelLayoutMismatch, match="no model_config attribute"):
        inspect_h5_model_config(path)


# --- Inference -----------------------------------------------------------------------


def test_uint8_and_float32_inputs_give_the_same_scores(classifier: AttentionClassifier) -> None:
    windows = _random_windows(3, seed=5)
    from_uint8 = classifier.predict(windows)
    from_float = classifier.predict(windows.astype(np.float32))
    np.testing.assert_array_equal(from_uint8, from_float)


def test_empty_batch(classifier: AttentionClassifier) -> None:
    scores = classifier.predict(np.zeros((0, 10, 128), np.uint8))
    assert scores.shape == (0, NUM_CLASSES)
    assert scores.dtype == np.float32


@pytest.mark.parametrize(
    "windows",
    [
        np.zeros((10, 128), np.uint8),
        np.zeros((2, 9, 128), np.uint8),
        np.zeros((2, 10, 127), np.uint8),
        np.zeros((1, 10, 128, 1), np.uint8),
    ],
    ids=["2d", "9-rows", "127-wide", "4d"],
)
def test_wrong_shape_names_the_expected_one(classifier: AttentionClassifier, windows: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match=r"\(batch, 10, 128\)"):
        classifier.predict(windows)


@pytest.mark.parametrize(
    ("windows", "words"),
    [
        (np.zeros((1, 10, 128), np.float64), "float64"),
        (np.zeros((1, 10, 128), np.int32), "int32"),
        (np.full((1, 10, 128), 256.0, np.float32), "0..255"),
        (np.full((1, 10, 128), -0.5, np.float32), "0..255"),
        (np.full((1, 10, 128), np.nan, np.float32), "0..255"),
        ([[[0] * 128] * 10], "numpy array"),
    ],
    ids=["float64", "int32", "above-255", "negative", "nan", "list"],
)
def test_bad_values_and_dtypes_are_invalid_input(
    classifier: AttentionClassifier, windows: Any, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words) as raised:
        classifier.predict(windows)
    assert raised.value.status_code == 400


def test_batch_scores_equal_row_by_row_scores(classifier: AttentionClassifier) -> None:
    # 300 rows: one chunk of the largest bucket (256) plus 44 rows padded to 64.
    windows = _random_windows(300, seed=21)
    batched = classifier.predict(windows)
    row_by_row = np.concatenate([classifier.predict(windows[i : i + 1]) for i in range(300)])
    assert batched.shape == (300, NUM_CLASSES)
    np.testing.assert_allclose(batched, row_by_row, rtol=0, atol=2e-6)


def test_concurrent_calls_give_the_sequential_scores(classifier: AttentionClassifier) -> None:
    batches = [_random_windows(size, seed=size) for size in (1, 3, 16, 40, 64, 7, 2, 100)]
    sequential = [classifier.predict(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(classifier.predict, batches))
    for expected, found in zip(sequential, concurrent, strict=True):
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-6)


def test_another_keras_model_is_rejected_with_a_bounded_message(tmp_path: Path) -> None:
    path = tmp_path / "classifier_model.h5"
    other = keras.Sequential([keras.Input((10, 128)), keras.layers.Dense(4, name="dense_1")])
    other.save(path)
    with pytest.raises(ModelLayoutMismatch) as raised:
        inspect_h5_model_config(path)
    message = raised.value.message
    assert "layers missing from model_config" in message
    assert "more" in message.rsplit(";", 1)[-1]
    assert len(message) < 4000
