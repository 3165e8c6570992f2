"""VGGish PCA + 8-bit quantisation (``vggish_pca_params.npz``, docs/reference/model.md §3)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from contract.constants import EMBEDDING_SIZE
from contract.errors import MissingModelAsset, ModelLayoutMismatch
from transformer.audio.constants import (
    PCA_EIGEN_VECTORS_NAME,
    PCA_MEANS_NAME,
    QUANTIZE_MAX_VAL,
    QUANTIZE_MIN_VAL,
)

#: (max - min) / 255 steps: 4 / 255 -> 63.75 levels per unit.
_LEVELS_PER_UNIT = 255.0 / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL)

_EXPECTED_SHAPES = {
    PCA_EIGEN_VECTORS_NAME: (EMBEDDING_SIZE, EMBEDDING_SIZE),
    PCA_MEANS_NAME: (EMBEDDING_SIZE,),
}


class PCAQuantizer:
    """Projects raw (N, 128) VGGish embeddings with the official PCA and quantises to uint8."""

    def __init__(self, eigen_vectors: np.ndarray, means: np.ndarray) -> None:
        """``eigen_vectors`` (128, 128) rows are components; ``means`` (128,). Stored as float64."""
        arrays = {PCA_EIGEN_VECTORS_NAME: eigen_vectors, PCA_MEANS_NAME: means}
        problems = [
            f"{name} has shape {arrays[name].shape}, expected {shape}"
            for name, shape in _EXPECTED_SHAPES.items()
            if arrays[name].shape != shape
        ]
        if problems:
            raise ModelLayoutMismatch("PCA parameters do not match VGGish: " + "; ".join(problems))
        self.eigen_vectors = np.asarray(eigen_vectors, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)

    @classmethod
    def from_npz(cls, path: Path) -> PCAQuantizer:
        """Load ``vggish_pca_params.npz`` (arrays ``pca_eigen_vectors``, ``pca_means``)."""
        path = Path(path)
        if not path.is_file():
            raise MissingModelAsset(
                f"VGGish PCA parameters {path.name} not found in {path.parent}; run "
                "`audioguard weights download` (official) or `audioguard weights synthetic` "
                "(test weights)"
            )
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [name for name in _EXPECTED_SHAPES if name not in archive.files]
                if missing:
                    raise ModelLayoutMismatch(
                        f"{path.name} lacks array(s) {', '.join(missing)} "
                        f"(it holds {', '.join(sorted(archive.files)) or 'nothing'})"
                    )
                eigen_vectors = archive[PCA_EIGEN_VECTORS_NAME]
                means = archive[PCA_MEANS_NAME]
        except (zipfile.BadZipFile, ValueError, OSError) as error:
            raise ModelLayoutMismatch(f"{path.name} is not a readable .npz archive: {error}") from error
        return cls(eigen_vectors, means)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, 128) float raw fc2 embeddings -> (N, 128) uint8 quantised PCA embeddings.

        ``pca = E @ (emb.T - mu)``, transposed back, clipped to [-2, 2], scaled by
        ``(x + 2) * 63.75`` and truncated (not rounded) to uint8.
        """
        raw = np.asarray(embeddings, dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"expected (N, {EMBEDDING_SIZE}) embeddings, got shape {raw.shape}")
        projected = (self.eigen_vectors @ (raw.T - self.means[:, None])).T
        clipped = np.clip(projected, QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL)
        return ((clipped - QUANTIZE_MIN_VAL) * _LEVELS_PER_UNIT).astype(np.uint8)
