"""PCA + uint8 quantisation with hand-computed values (docs/reference/model.md §3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.errors import MissingModelAsset, ModelLayoutMismatch
from transformer.audio.pca import PCAQuantizer


def _identity_quantizer() -> PCAQuantizer:
    return PCAQuantizer(np.eye(128), np.zeros(128))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-2.0, 0),  # (−2 + 2) · 63.75 = 0
        (-3.5, 0),  # clipped to −2
        (2.0, 255),  # 4 · 63.75 = 255
        (7.0, 255),  # clipped to 2
        (0.0, 127),  # 127.5 truncates to 127
        (1.99999, 254),  # 254.99936… truncates, does not round to 255
        (-1.99, 0),  # 0.6375 truncates to 0
        (-1.98, 1),  # 1.275
        (0.02, 128),  # 128.775 truncates to 128
        (1.0, 191),  # 191.25
    ],
)
def test_quantisation_of_single_values(value: float, expected: int) -> None:
    embedding = np.zeros((1, 128))
    embedding[0, 17] = value
    quantised = _identity_quantizer()(embedding)
    assert quantised.dtype == np.uint8
    assert quantised.shape == (1, 128)
    assert quantised[0, 17] == expected
    assert np.all(np.delete(quantised[0], 17) == 127)


def test_projection_uses_rows_as_components_and_subtracts_means() -> None:
    # Component 0 = (e0 + e1)/√2, component 1 = (e0 − e1)/√2, the rest identity.
    eigen = np.eye(128)
    s = 1 / np.sqrt(2)
    eigen[:2, :2] = [[s, s], [s, -s]]
    means = np.full(128, 0.5)
    embeddings = np.full((2, 128), 0.5)
    embeddings[0, :2] = [0.5 + s, 0.5 + s]  # centred (s, s): projections (1, 0)
    embeddings[1, :2] = [0.5, 0.5 + 2 * s]  # centred (0, 2s): projections (1, −1)
    quantised = PCAQuantizer(eigen, means)(embeddings)
    # 1 -> 3 · 63.75 = 191.25 -> 191; 0 -> 127; −1 -> 63.75 -> 63.
    np.testing.assert_array_equal(quantised[:, :2], [[191, 127], [191, 63]])
    assert np.all(quantised[:, 2:] == 127)


def test_matches_direct_formula_on_random_data() -> None:
    rng = np.random.default_rng(0)
    eigen, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    means = rng.standard_normal(128)
    embeddings = rng.standard_normal((5, 128)).astype(np.float32) * 2
    expected = np.zeros((5, 128), dtype=np.uint8)
    for n in range(5):
        for i in range(128):
            x = sum(eigen[i, k] * (float(embeddings[n, k]) - means[k]) for k in range(128))
            x = min(2.0, max(-2.0, x))
            expected[n, i] = int((x + 2.0) * 63.75)
    np.testing.assert_array_equal(PCAQuantizer(eigen, means)(embeddings), expected)


def test_empty_batch() -> None:
    quantised = _identity_quantizer()(np.zeros((0, 128), dtype=np.float32))
    assert quantised.shape == (0, 128) and quantised.dtype == np.uint8


def test_from_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    eigen = rng.standard_normal((128, 128))
    means = rng.standard_normal(128)
    path = tmp_path / "vggish_pca_params.npz"
    np.savez(path, pca_eigen_vectors=eigen, pca_means=means)
    quantizer = PCAQuantizer.from_npz(path)
    np.testing.assert_array_equal(quantizer.eigen_vectors, eigen)
    np.testing.assert_array_equal(quantizer.means, means)


def test_from_npz_missing_array_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pca.npz"
    np.savez(path, pca_eigen_vectors=np.eye(128))
    with pytest.raises(ModelLayoutMismatch, match="pca_means"):
        PCAQuantizer.from_npz(path)


def test_from_npz_wrong_shape_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pca.npz"
    np.savez(path, pca_eigen_vectors=np.eye(64), pca_means=np.zeros(128))
    with pytest.raises(ModelLayoutMismatch, match=r"pca_eigen_vectors has shape \(64, 64\)"):
        PCAQuantizer.from_npz(path)


def test_from_npz_absent_file(tmp_path: Path) -> None:
    with pytest.raises(MissingModelAsset, match=r"vggish_pca_params\.npz.*audioguard weights"):
        PCAQuantizer.from_npz(tmp_path / "vggish_pca_params.npz")


def test_from_npz_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "vggish_pca_params.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelLayoutMismatch, match="not a readable"):
        PCAQuantizer.from_npz(path)


def test_rejects_wrong_embedding_width() -> None:
    with pytest.raises(ValueError, match="128"):
        _identity_quantizer()(np.zeros((2, 127)))
