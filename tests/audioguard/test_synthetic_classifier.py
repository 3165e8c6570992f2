"""The synthetic classifier_model.h5 has the structure Keras 2.2.4's save_model wrote."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group

from audioguard.synthetic.classifier import write_synthetic_classifier_h5

# Keras 2's model.layers order for Kong's graph: decreasing depth, ties in
# traversal order from the output.
KERAS2_LAYER_ORDER = [
    "input_1",
    "dense_1",
    "batch_normalization_1",
    "activation_1",
    "dropout_1",
    "dense_2",
    "batch_normalization_2",
    "activation_2",
    "dropout_2",
    "dense_3",
    "batch_normalization_3",
    "activation_3",
    "dropout_3",
    "dense_4",
    "dense_5",
    "dense_6",
    "dense_7",
    "lambda_1",
    "lambda_2",
    "concatenate_1",
    "dense_8",
    "activation_4",
]
DENSE_SHAPES = {
    "dense_1": (128, 1024),
    "dense_2": (1024, 1024),
    "dense_3": (1024, 1024),
    "dense_4": (1024, 527),
    "dense_5": (1024, 527),
    "dense_6": (1024, 527),
    "dense_7": (1024, 527),
    "dense_8": (1054, 527),
}
BATCH_NORM_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


@pytest.fixture(scope="module")
def h5_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic-classifier") / "classifier_model.h5"
    write_synthetic_classifier_h5(path, seed=3)
    return path


def _expected_weight_names(layer: str) -> list[str]:
    if layer in DENSE_SHAPES:
        return [f"{layer}/kernel:0", f"{layer}/bias:0"]
    if layer.startswith("batch_normalization_"):
        return [f"{layer}/{weight}:0" for weight in BATCH_NORM_WEIGHTS]
    return []


def test_root_attributes(h5_path: Path) -> None:
    with h5py.File(h5_path, "r") as handle:
        assert set(handle.attrs) == {"keras_version", "backend", "model_config", "training_config"}
        assert set(handle) == {"model_weights"}
        assert handle.attrs["keras_version"] == "2.2.4"
        assert handle.attrs["backend"] == "tensorflow"
        # Keras 2 assigned Python bytes: h5py stores them as variable-length ASCII strings.
        for name in handle.attrs:
            string_info = h5py.check_string_dtype(handle.attrs.get_id(name).dtype)
            assert string_info is not None and string_info.encoding == "ascii" and string_info.length is None
        training = json.loads(handle.attrs["training_config"])
        assert training["loss"] == "binary_crossentropy"
        assert training["optimizer_config"]["class_name"] == "Adam"
    assert not h5_path.with_name(h5_path.name + ".partial").exists()


def test_model_config_is_a_keras2_functional_model(h5_path: Path) -> None:
    with h5py.File(h5_path, "r") as handle:
        model_config = json.loads(handle.attrs["model_config"])
    assert model_config["class_name"] == "Model"
    config = model_config["config"]
    assert config["input_layers"] == [["input_1", 0, 0]]
    assert config["output_layers"] == [["activation_4", 0, 0]]
    layers = {entry["name"]: entry for entry in config["layers"]}
    assert [entry["name"] for entry in config["layers"]] == KERAS2_LAYER_ORDER
    for entry in config["layers"]:
        assert list(entry) == ["name", "class_name", "config", "inbound_nodes"]
    assert layers["input_1"]["config"]["batch_input_shape"] == [None, 10, 128]
    assert layers["dense_1"]["config"]["units"] == 1024
    assert layers["dense_5"]["config"]["activation"] == "softmax"
    assert layers["dense_6"]["config"]["activation"] == "sigmoid"
    assert layers["batch_normalization_3"]["config"]["epsilon"] == pytest.approx(1e-3)
    assert layers["dropout_2"]["config"]["rate"] == 0.5
    assert layers["concatenate_1"]["inbound_nodes"] == [[["lambda_1", 0, 0, {}], ["lambda_2", 0, 0, {}]]]
    assert layers["activation_4"]["config"]["activation"] == "sigmoid"
    for name, inputs in (("lambda_1", ["dense_4", "dense_5"]), ("lambda_2", ["dense_6", "dense_7"])):
        lambda_config: dict[str, Any] = layers[name]["config"]
        assert layers[name]["class_name"] == "Lambda"
        assert [tensor[0] for tensor in layers[name]["inbound_nodes"][0]] == inputs
        code, defaults, closure = lambda_config["function"]
        assert defaults is None and closure is None
        assert base64.b64decode(code)  # a base64 string, as func_dump produced
        assert lambda_config["function_type"] == "lambda"


def test_model_weights_group_layout(h5_path: Path) -> None:
    with h5py.File(h5_path, "r") as handle:
        group = handle["model_weights"]
        assert group.attrs["layer_names"].dtype.kind == "S"
        # Read with Keras' own legacy-h5 attribute reader.
        assert load_attributes_from_hdf5_group(group, "layer_names") == KERAS2_LAYER_ORDER
        assert group.attrs["backend"] == "tensorflow"
        assert group.attrs["keras_version"] == "2.2.4"
        total = non_trainable = 0
        for layer in KERAS2_LAYER_ORDER:
            names = load_attributes_from_hdf5_group(group[layer], "weight_names")
            assert names == _expected_weight_names(layer), layer
            for name in names:
                dataset = group[f"{layer}/{name}"]
                assert dataset.dtype == np.float32
                total += dataset.size
                if "moving_" in name:
                    non_trainable += dataset.size
        assert group["dense_1/dense_1/kernel:0"].shape == (128, 1024)
        for layer, shape in DENSE_SHAPES.items():
            assert group[f"{layer}/{layer}/kernel:0"].shape == shape
            assert group[f"{layer}/{layer}/bias:0"].shape == (shape[1],)
        for level in (1, 2, 3):
            layer = f"batch_normalization_{level}"
            for weight in BATCH_NORM_WEIGHTS:
                assert group[f"{layer}/{layer}/{weight}:0"].shape == (1024,)
            assert np.all(group[f"{layer}/{layer}/moving_variance:0"][()] > 0)
    assert total == 4_960_269
    assert non_trainable == 6_144


def test_same_seed_same_weights_other_seed_other_weights(h5_path: Path, tmp_path: Path) -> None:
    same, other = tmp_path / "same.h5", tmp_path / "other.h5"
    write_synthetic_classifier_h5(same, seed=3)
    write_synthetic_classifier_h5(other, seed=4)
    name = "model_weights/dense_2/dense_2/kernel:0"
    with h5py.File(h5_path, "r") as a, h5py.File(same, "r") as b, h5py.File(other, "r") as c:
        assert np.array_equal(a[name][()], b[name][()])
        assert not np.array_equal(a[name][()], c[name][()])


def test_scores_are_spread_and_depend_on_the_input(h5_path: Path) -> None:
    from predictor.classifier import AttentionClassifier

    classifier = AttentionClassifier.from_file(h5_path)
    rng = np.random.default_rng(0)
    scores = classifier.predict(rng.integers(0, 256, size=(32, 10, 128), dtype=np.uint8))
    middle = np.mean((scores > 0.05) & (scores < 0.95))
    assert middle > 0.3, f"only {middle:.0%} of scores lie in (0.05, 0.95)"
    assert scores.std() > 0.1
    # Different inputs move the scores: the mean spread across inputs per class.
    assert scores.std(axis=0).mean() > 0.02
    assert np.abs(scores[0] - scores[1]).max() > 0.1
