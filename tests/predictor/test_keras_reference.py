"""The Keras reference (TensorFlow; tests and benchmarks only) against the Keras 2 file format and numpy.

Every expected score here comes from an independent numpy transcription of
Kong's network, reading the weights straight from the HDF5 datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from contract.errors import ModelLayoutMismatch
from predictor.h5_check import inspect_h5_model_config
from predictor.keras_reference import KerasAttentionClassifier, load_keras_classifier
from predictor.network import AttentionPooling, build_classifier
from tests.support.classifier_numpy import assert_matches_numpy

NUM_CLASSES = 527


@pytest.fixture(scope="module")
def classifier_path(synthetic_classifier_dir: Path) -> Path:
    return synthetic_classifier_dir / "classifier_model.h5"


@pytest.fixture(scope="module")
def classifier(classifier_path: Path) -> KerasAttentionClassifier:
    return KerasAttentionClassifier.from_file(classifier_path)


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


def test_model_matches_numpy_forward_pass(
    classifier_path: Path, classifier: KerasAttentionClassifier
) -> None:
    assert_matches_numpy(classifier_path, classifier.predict)


def test_loaded_weights_equal_the_file_datasets(classifier_path: Path) -> None:
    model = load_keras_classifier(classifier_path)
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
    by_name = load_keras_classifier(classifier_path)
    for mine, reference in zip(topological.weights, by_name.weights, strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(reference))


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
