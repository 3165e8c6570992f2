"""Synthetic official-format VGGish files, written once per test session.

Both tests/transformer/test_vggish.py and tests/audioguard/test_synthetic_vggish.py
need the 289 MB checkpoint; a module-level cache makes the second caller reuse the
first caller's files (a session fixture defined in two modules would run twice).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from audioguard.synthetic.vggish import write_synthetic_pca_params, write_synthetic_vggish_checkpoint
from transformer.audio.vggish import VGGishEmbedder

#: docs/reference/model.md §2, written out by hand.
OFFICIAL_SHAPES = {
    "vggish/conv1/weights": (3, 3, 1, 64),
    "vggish/conv1/biases": (64,),
    "vggish/conv2/weights": (3, 3, 64, 128),
    "vggish/conv2/biases": (128,),
    "vggish/conv3/conv3_1/weights": (3, 3, 128, 256),
    "vggish/conv3/conv3_1/biases": (256,),
    "vggish/conv3/conv3_2/weights": (3, 3, 256, 256),
    "vggish/conv3/conv3_2/biases": (256,),
    "vggish/conv4/conv4_1/weights": (3, 3, 256, 512),
    "vggish/conv4/conv4_1/biases": (512,),
    "vggish/conv4/conv4_2/weights": (3, 3, 512, 512),
    "vggish/conv4/conv4_2/biases": (512,),
    "vggish/fc1/fc1_1/weights": (12288, 4096),
    "vggish/fc1/fc1_1/biases": (4096,),
    "vggish/fc1/fc1_2/weights": (4096, 4096),
    "vggish/fc1/fc1_2/biases": (4096,),
    "vggish/fc2/weights": (4096, 128),
    "vggish/fc2/biases": (128,),
}


@dataclass(frozen=True)
class SyntheticVGGishFiles:
    checkpoint: Path
    pca_params: Path
    checkpoint_write_seconds: float


_cache: dict[str, object] = {}


def synthetic_vggish_files(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVGGishFiles:
    """``vggish_model.ckpt`` + ``vggish_pca_params.npz`` (seed 0) in a session tmp dir."""
    if "files" not in _cache:
        directory = tmp_path_factory.mktemp("synthetic_vggish")
        checkpoint = directory / "vggish_model.ckpt"
        started = time.perf_counter()
        write_synthetic_vggish_checkpoint(checkpoint, seed=0)
        elapsed = time.perf_counter() - started
        pca_params = directory / "vggish_pca_params.npz"
        write_synthetic_pca_params(pca_params, seed=0)
        _cache["files"] = SyntheticVGGishFiles(checkpoint, pca_params, elapsed)
    files = _cache["files"]
    assert isinstance(files, SyntheticVGGishFiles)
    return files


def synthetic_vggish_embedder(tmp_path_factory: pytest.TempPathFactory) -> VGGishEmbedder:
    """A ``VGGishEmbedder`` loaded from the synthetic files (fc2 ReLU on, batch 64)."""
    if "embedder" not in _cache:
        files = synthetic_vggish_files(tmp_path_factory)
        _cache["embedder"] = VGGishEmbedder.from_files(files.checkpoint, files.pca_params)
    embedder = _cache["embedder"]
    assert isinstance(embedder, VGGishEmbedder)
    return embedder
