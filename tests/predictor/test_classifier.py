"""The served classifier (ONNX Runtime) against the Keras 2 file format and a numpy forward pass.

Every expected score here comes from an independent numpy transcription of
Kong's network, reading the weights straight from the HDF5 datasets; the
comparison with the Keras reference is in test_classifier_onnx.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from contract.errors import InvalidInput, MissingModelAsset, ModelAssetError, ModelLayoutMismatch
from predictor.classifier import AttentionClassifier
from predictor.h5_check import (
    _config_differences,
    _weights_differences,
    inspect_h5_model_config,
    string_list_attr,
)
from predictor.keras2_layout import EXPECTED_LAYERS
from tests.support.classifier_numpy import assert_matches_numpy, random_windows

NUM_CLASSES = 527


@pytest.fixture(scope="module")
def classifier_path(synthetic_classifier_dir: Path) -> Path:
    return synthetic_classifier_dir / "classifier_model.h5"


@pytest.fixture(scope="module")
def classifier(classifier_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AttentionClassifier:
    return AttentionClassifier.from_file(classifier_path, cache_dir=tmp_path_factory.mktemp("onnx"))


# --- Loading -------------------------------------------------------------------------


def test_model_matches_numpy_forward_pass(classifier_path: Path, classifier: AttentionClassifier) -> None:
    assert_matches_numpy(classifier_path, classifier.predict)


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
        AttentionClassifier.from_file(missing)
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
        AttentionClassifier.from_file(path)
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
        AttentionClassifier.from_file(path)
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
    windows = random_windows(3, seed=5)
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
    # 300 rows: four runtime calls of 64 rows and one of 44.
    windows = random_windows(300, seed=21)
    batched = classifier.predict(windows)
    row_by_row = np.concatenate([classifier.predict(windows[i : i + 1]) for i in range(300)])
    assert batched.shape == (300, NUM_CLASSES)
    np.testing.assert_allclose(batched, row_by_row, rtol=0, atol=2e-6)


def test_concurrent_calls_give_the_sequential_scores(classifier: AttentionClassifier) -> None:
    batches = [random_windows(size, seed=size) for size in (1, 3, 16, 40, 64, 7, 2, 100)]
    sequential = [classifier.predict(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(classifier.predict, batches))
    for expected, found in zip(sequential, concurrent, strict=True):
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-6)
