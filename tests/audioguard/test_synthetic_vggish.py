"""Synthetic VGGish files: official formats, names, shapes, scaling and usefulness."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from audioguard.synthetic.vggish import write_synthetic_pca_params
from tests.support.synthetic_vggish_files import (
    OFFICIAL_SHAPES,
    SyntheticVGGishFiles,
    synthetic_vggish_embedder,
    synthetic_vggish_files,
)
from transformer.audio.features import waveform_to_examples
from transformer.audio.pca import PCAQuantizer
from transformer.audio.vggish import VGGishEmbedder

#: LevelDB/TF table footer magic: a V1 checkpoint is one such table.
TABLE_MAGIC = 0xDB4775248B80FB57


@pytest.fixture(scope="session")
def vggish_files(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVGGishFiles:
    return synthetic_vggish_files(tmp_path_factory)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> VGGishEmbedder:
    return synthetic_vggish_embedder(tmp_path_factory)


# --- checkpoint ---------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_is_one_v1_file(vggish_files: SyntheticVGGishFiles) -> None:
    checkpoint = vggish_files.checkpoint
    others = {p.name for p in checkpoint.parent.iterdir()} - {checkpoint.name}
    assert others == {"vggish_pca_params.npz"}  # no .index / .data-* / "checkpoint" files
    size = checkpoint.stat().st_size
    assert 288_000_000 < size < 290_000_000  # 72,141,184 float32 values plus table overhead
    with checkpoint.open("rb") as handle:
        handle.seek(size - 8)
        (magic,) = struct.unpack("<Q", handle.read(8))
    assert magic == TABLE_MAGIC


@pytest.mark.slow
def test_checkpoint_write_is_fast(vggish_files: SyntheticVGGishFiles) -> None:
    # ~4 s on an idle 2-core machine; generous bound for a loaded CI runner.
    assert vggish_files.checkpoint_write_seconds < 60.0


@pytest.mark.slow
def test_checkpoint_names_shapes_and_scaling(vggish_files: SyntheticVGGishFiles) -> None:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(vggish_files.checkpoint))
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    assert shapes == OFFICIAL_SHAPES
    assert sum(int(np.prod(shape)) for shape in shapes.values()) == 72_141_184
    assert set(reader.get_variable_to_dtype_map().values()) == {tf.float32}
    for name in ("vggish/conv1/weights", "vggish/conv4/conv4_2/weights", "vggish/fc1/fc1_2/weights"):
        weights = reader.get_tensor(name)
        he_std = np.sqrt(2.0 / np.prod(weights.shape[:-1]))
        assert abs(weights.mean()) < 0.05 * he_std
        assert weights.std() == pytest.approx(he_std, rel=0.03)
    assert np.all(reader.get_tensor("vggish/conv2/biases") == 0.0)
    # fc2 is centred on the bias the synthetic PCA subtracts.
    pca_means = np.load(vggish_files.pca_params)["pca_means"]
    np.testing.assert_array_equal(reader.get_tensor("vggish/fc2/biases"), pca_means)


# --- PCA parameters ---------------------------------------------------------------------


def test_pca_params_format(tmp_path: Path) -> None:
    path = tmp_path / "vggish_pca_params.npz"
    write_synthetic_pca_params(path, seed=3)
    assert [p.name for p in tmp_path.iterdir()] == ["vggish_pca_params.npz"]
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["pca_eigen_vectors", "pca_means"]
        eigen, means = archive["pca_eigen_vectors"], archive["pca_means"]
    assert eigen.shape == (128, 128) and eigen.dtype == np.float64
    assert means.shape == (128,) and means.dtype == np.float64
    np.testing.assert_allclose(eigen @ eigen.T, np.eye(128), atol=1e-12)
    quantizer = PCAQuantizer.from_npz(path)
    np.testing.assert_array_equal(quantizer.eigen_vectors, eigen)


def test_pca_params_depend_only_on_seed(tmp_path: Path) -> None:
    paths = [tmp_path / name for name in ("a.npz", "b.npz", "c.npz")]
    for path, seed in zip(paths, (5, 5, 6), strict=True):
        write_synthetic_pca_params(path, seed=seed)
    a, b, c = (np.load(p)["pca_eigen_vectors"] for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# --- usefulness: quantised embeddings spread for ordinary sounds --------------------------


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    t = np.arange(48_000) / 16_000
    tone = 0.4 * np.sin(2 * np.pi * 660 * t)
    return {
        "tone": tone,
        "noise": 0.1 * rng.standard_normal(t.size),
        "chirp": 0.3 * np.sin(2 * np.pi * (100 * t + 2000 * t**2)),
        "tone+noise": tone + 0.02 * rng.standard_normal(t.size),
    }


@pytest.mark.slow
def test_quantised_embeddings_spread_and_differ(embedder: VGGishEmbedder) -> None:
    quantised = {
        name: embedder.embed_quantized(waveform_to_examples(signal)).astype(int)
        for name, signal in _signals().items()
    }
    for name, values in quantised.items():
        assert values.shape == (3, 128)
        assert 20 < values.std() < 90, name
        assert 90 < values.mean() < 165, name
        clipped = np.mean((values == 0) | (values == 255))
        assert clipped < 0.1, f"{name}: {clipped:.1%} clipped"
    names = list(quantised)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            difference = np.abs(quantised[first][0] - quantised[second][0]).mean()
            assert difference > 2.0, (first, second)
