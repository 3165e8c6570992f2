"""VGGish: architecture, the V1 checkpoint loader and the embedder (docs/reference/model.md §2-3)."""

from __future__ import annotations

import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from contract.errors import MissingModelAsset, ModelAssetError, ModelLayoutMismatch
from tests.support.synthetic_vggish_files import (
    OFFICIAL_SHAPES,
    SyntheticVGGishFiles,
    synthetic_vggish_embedder,
    synthetic_vggish_files,
)
from transformer.audio.features import waveform_to_examples
from transformer.audio.vggish import VGGishEmbedder, build_vggish, load_vggish_checkpoint
from transformer.audio.vggish_layout import checkpoint_variable_shapes


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_vggish()


@pytest.fixture(scope="session")
def vggish_files(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVGGishFiles:
    return synthetic_vggish_files(tmp_path_factory)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> VGGishEmbedder:
    return synthetic_vggish_embedder(tmp_path_factory)


def _signal(kind: str, seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * 16_000)) / 16_000
    if kind == "chirp":
        return 0.3 * np.sin(2 * np.pi * (150 * t + 1200 * t**2))
    if kind == "noise":
        return 0.2 * rng.standard_normal(t.size)
    if kind == "clicks":
        clicks = np.zeros(t.size)
        clicks[::4000] = 0.9
        return clicks + 0.001 * rng.standard_normal(t.size)
    raise ValueError(kind)


def _write_v1_checkpoint(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A small V1 checkpoint through TensorFlow's V1 ``Save`` op."""
    names = sorted(tensors)
    tf.raw_ops.Save(filename=str(path), tensor_names=names, data=[tensors[n] for n in names])


# --- architecture ---------------------------------------------------------------------


def test_parameter_count_and_shapes(model: keras.Model) -> None:
    assert model.count_params() == 72_141_184
    assert model.input_shape == (None, 96, 64, 1)
    assert model.output_shape == (None, 128)
    assert model.get_layer("pool4").output.shape == (None, 6, 4, 512)
    assert model.get_layer("flatten").output.shape == (None, 12_288)
    assert model.get_layer("fc2").activation is keras.activations.relu


def test_checkpoint_layout_is_the_official_one(model: keras.Model) -> None:
    assert checkpoint_variable_shapes() == OFFICIAL_SHAPES
    assert sum(int(np.prod(s)) for s in OFFICIAL_SHAPES.values()) == model.count_params()


def test_fc2_without_relu_is_linear() -> None:
    assert build_vggish(fc2_relu=False).get_layer("fc2").activation is keras.activations.linear


# --- loader errors (small files) ---------------------------------------------------------


def test_absent_checkpoint_names_file_and_fix(model: keras.Model, tmp_path: Path) -> None:
    with pytest.raises(MissingModelAsset) as raised:
        load_vggish_checkpoint(model, tmp_path / "vggish_model.ckpt")
    message = str(raised.value)
    assert "vggish_model.ckpt" in message
    assert "audioguard weights download" in message and "audioguard weights synthetic" in message


def test_unreadable_checkpoint(model: keras.Model, tmp_path: Path) -> None:
    path = tmp_path / "vggish_model.ckpt"
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(ModelAssetError, match="not a readable TF checkpoint"):
        load_vggish_checkpoint(model, path)


def test_missing_variables_are_named_and_nothing_is_assigned(model: keras.Model, tmp_path: Path) -> None:
    conv1 = np.full((3, 3, 1, 64), 0.5, dtype=np.float32)
    path = tmp_path / "partial.ckpt"
    _write_v1_checkpoint(
        path,
        {"vggish/conv1/weights": conv1, "vggish/conv1/biases": np.zeros(64, np.float32)},
    )
    before = model.get_layer("conv1").kernel.numpy().copy()
    with pytest.raises(ModelLayoutMismatch) as raised:
        load_vggish_checkpoint(model, path)
    message = str(raised.value)
    for name in OFFICIAL_SHAPES:
        if not name.startswith("vggish/conv1/"):
            assert f"missing variable {name}" in message
    assert "vggish/conv1/weights" not in message
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), before)


def test_wrong_shape_is_named(model: keras.Model, tmp_path: Path) -> None:
    path = tmp_path / "wrong.ckpt"
    _write_v1_checkpoint(
        path,
        {
            "vggish/conv1/weights": np.zeros((3, 3, 1, 32), np.float32),
            "vggish/conv1/biases": np.zeros(64, np.float32),
        },
    )
    with pytest.raises(
        ModelLayoutMismatch, match=r"vggish/conv1/weights has shape \[3, 3, 1, 32\], expected \[3, 3, 1, 64\]"
    ):
        load_vggish_checkpoint(model, path)


def test_from_files_reports_missing_pca_before_reading_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "vggish_model.ckpt"
    checkpoint.write_bytes(b"\0" * 4096)  # would fail as unreadable if it were read first
    with pytest.raises(MissingModelAsset, match=r"vggish_pca_params\.npz"):
        VGGishEmbedder.from_files(checkpoint, tmp_path / "vggish_pca_params.npz")


# --- loader and forward pass on the full-size synthetic checkpoint -----------------------


def _numpy_vggish(example: np.ndarray, tensors: dict[str, np.ndarray], fc2_relu: bool) -> np.ndarray:
    """Independent float64 forward pass: explicit 3x3 SAME correlation, 2x2 pools, NHWC flatten."""

    def conv(x: np.ndarray, scope: str) -> np.ndarray:
        kernel = tensors[f"{scope}/weights"].astype(np.float64)
        height, width, _ = x.shape
        padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        out = sum(
            padded[dy : dy + height, dx : dx + width, :] @ kernel[dy, dx]
            for dy in range(3)
            for dx in range(3)
        )
        return np.maximum(out + tensors[f"{scope}/biases"], 0.0)

    def pool(x: np.ndarray) -> np.ndarray:
        height, width, channels = x.shape
        return x.reshape(height // 2, 2, width // 2, 2, channels).max(axis=(1, 3))

    x = example[:, :, None].astype(np.float64)
    x = pool(conv(x, "vggish/conv1"))
    x = pool(conv(x, "vggish/conv2"))
    x = pool(conv(conv(x, "vggish/conv3/conv3_1"), "vggish/conv3/conv3_2"))
    x = pool(conv(conv(x, "vggish/conv4/conv4_1"), "vggish/conv4/conv4_2"))
    x = x.reshape(-1)
    for scope in ("vggish/fc1/fc1_1", "vggish/fc1/fc1_2"):
        x = np.maximum(x @ tensors[f"{scope}/weights"] + tensors[f"{scope}/biases"], 0.0)
    x = x @ tensors["vggish/fc2/weights"] + tensors["vggish/fc2/biases"]
    return np.maximum(x, 0.0) if fc2_relu else x


@pytest.mark.slow
def test_loaded_kernels_equal_file_tensors(
    vggish_files: SyntheticVGGishFiles, embedder: VGGishEmbedder
) -> None:
    reader = tf.train.load_checkpoint(str(vggish_files.checkpoint))
    for layer, scope in [
        ("conv1", "vggish/conv1"),
        ("conv3_2", "vggish/conv3/conv3_2"),
        ("conv4_2", "vggish/conv4/conv4_2"),
        ("fc1_1", "vggish/fc1/fc1_1"),
        ("fc2", "vggish/fc2"),
    ]:
        keras_layer = embedder.model.get_layer(layer)
        np.testing.assert_array_equal(keras_layer.kernel.numpy(), reader.get_tensor(f"{scope}/weights"))
        np.testing.assert_array_equal(keras_layer.bias.numpy(), reader.get_tensor(f"{scope}/biases"))


@pytest.mark.slow
def test_forward_pass_matches_numpy_transcription(
    vggish_files: SyntheticVGGishFiles, embedder: VGGishEmbedder
) -> None:
    reader = tf.train.load_checkpoint(str(vggish_files.checkpoint))
    tensors = {name: reader.get_tensor(name) for name in OFFICIAL_SHAPES}
    examples = np.concatenate(
        [waveform_to_examples(_signal("chirp"))[:1], waveform_to_examples(_signal("noise"))[:1]]
    )
    actual = embedder.embed(examples)
    assert actual.dtype == np.float32 and actual.shape == (2, 128)
    for example, row in zip(examples, actual, strict=True):
        expected = _numpy_vggish(example, tensors, fc2_relu=True)
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_fc2_relu_switch(vggish_files: SyntheticVGGishFiles, embedder: VGGishEmbedder) -> None:
    linear = build_vggish(fc2_relu=False)
    load_vggish_checkpoint(linear, vggish_files.checkpoint)
    examples = np.concatenate([waveform_to_examples(_signal(kind)) for kind in ("chirp", "clicks")])
    with_relu = embedder.embed(examples)
    without = linear(examples[..., None].astype(np.float32), training=False).numpy()
    assert without.min() < 0.0  # pre-activations do go negative with these weights
    assert with_relu.min() >= 0.0
    np.testing.assert_allclose(with_relu, np.maximum(without, 0.0), rtol=1e-5, atol=1e-5)


# --- the embedder ----------------------------------------------------------------------------


@pytest.mark.slow
def test_embed_quantized_end_to_end(embedder: VGGishEmbedder) -> None:
    chirp = embedder.embed_quantized(waveform_to_examples(_signal("chirp")))
    noise = embedder.embed_quantized(waveform_to_examples(_signal("noise")))
    assert chirp.shape == (3, 128) and chirp.dtype == np.uint8
    for quantised in (chirp, noise):
        assert np.unique(quantised).size > 50  # spread, not collapsed to a few levels
        assert np.mean((quantised == 0) | (quantised == 255)) < 0.1  # mostly unclipped
    difference = np.abs(chirp.astype(int) - noise.astype(int)).mean()
    assert difference > 5.0


@pytest.mark.slow
def test_quantised_equals_pca_of_raw(embedder: VGGishEmbedder) -> None:
    examples = waveform_to_examples(_signal("clicks"))
    raw = embedder.embed(examples).astype(np.float64)
    eigen, means = embedder.quantizer.eigen_vectors, embedder.quantizer.means
    expected = ((np.clip(eigen @ (raw.T - means[:, None]), -2, 2).T + 2) * 63.75).astype(np.uint8)
    np.testing.assert_array_equal(embedder.embed_quantized(examples), expected)


@pytest.mark.slow
def test_batch_size_invariance_and_no_retracing(embedder: VGGishEmbedder) -> None:
    examples = np.concatenate(
        [waveform_to_examples(_signal(kind, seconds=8.0)) for kind in ("chirp", "noise", "clicks")]
    )
    assert examples.shape[0] == 24
    one_at_a_time = VGGishEmbedder(embedder.model, embedder.quantizer, batch_size=1)
    by_five = VGGishEmbedder(embedder.model, embedder.quantizer, batch_size=5)  # ragged last batch
    reference = embedder.embed(examples)
    np.testing.assert_allclose(one_at_a_time.embed(examples), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_five.embed(examples), reference, rtol=1e-5, atol=1e-5)
    for count in (1, 3, 24):
        embedder.embed(examples[:count])
    assert embedder.tracing_count() == 1
    assert by_five.tracing_count() == 1


@pytest.mark.slow
def test_empty_input(embedder: VGGishEmbedder) -> None:
    raw = embedder.embed(np.zeros((0, 96, 64)))
    quantised = embedder.embed_quantized(np.zeros((0, 96, 64)))
    assert raw.shape == (0, 128) and raw.dtype == np.float32
    assert quantised.shape == (0, 128) and quantised.dtype == np.uint8


@pytest.mark.slow
def test_rejects_wrong_example_shape(embedder: VGGishEmbedder) -> None:
    with pytest.raises(ValueError, match=r"\(N, 96, 64\)"):
        embedder.embed(np.zeros((2, 96, 63)))


@pytest.mark.slow
def test_concurrent_calls_from_threads(embedder: VGGishEmbedder) -> None:
    inputs = [waveform_to_examples(_signal(kind)) for kind in ("chirp", "noise", "clicks")]
    expected = [embedder.embed_quantized(x) for x in inputs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = embedder.embed_quantized(inputs[index % 3])
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(results) == list(range(6))
    for index, quantised in results.items():
        difference = np.abs(quantised.astype(int) - expected[index % 3].astype(int))
        assert difference.max() <= 1  # float32 summation order may flip a truncation boundary
