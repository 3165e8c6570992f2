"""Which VGGish runtime embeds: ONNX Runtime (the default, no TensorFlow) or the TensorFlow reference.

Both take (N, 96, 64) log-mel examples and give (N, 128) float32 fc2 outputs,
then the same PCA/uint8 step; ``load_embedder`` imports only the runtime asked for,
so a serving process on ONNX Runtime never loads TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from contract.native_logs import native_stderr_to_debug
from transformer.audio.constants import RUNTIMES, Precision, Runtime
from transformer.audio.pca import PCAQuantizer


class Embedder(Protocol):
    """A loaded VGGish with its PCA: what the pipeline and the batcher call."""

    runtime: str
    precision: str
    quantizer: PCAQuantizer
    batch_size: int

    def embed(self, examples: np.ndarray) -> np.ndarray:
        """(N, 96, 64) log-mel examples -> (N, 128) float32 raw fc2 output."""
        ...

    def embed_quantized(self, examples: np.ndarray) -> np.ndarray:
        """(N, 96, 64) log-mel examples -> (N, 128) uint8 PCA-quantised embeddings."""
        ...


def load_embedder(
    checkpoint_path: Path,
    pca_params_path: Path,
    *,
    runtime: Runtime = "onnxruntime",
    precision: Precision = "fp32",
    fc2_relu: bool = True,
    batch_size: int = 64,
    threads: int = 0,
    cache_dir: Path | None = None,
) -> Embedder:
    """Load VGGish + PCA on ``runtime`` (typed asset errors; ValueError for a bad combination)."""
    if runtime == "tensorflow":
        if precision != "fp32":
            raise ValueError("the TensorFlow runtime runs fp32 only; int8 needs --vggish_runtime onnxruntime")
        # TensorFlow's native banners (printed while it loads and builds its graph) go to DEBUG
        with native_stderr_to_debug("tensorflow"):
            try:
                from transformer.audio.vggish import VGGishEmbedder
            except ImportError as error:
                raise ValueError(
                    "TensorFlow is not installed in this image (it serves VGGish on ONNX Runtime); "
                    f"use --vggish_runtime onnxruntime ({error.name} missing)"
                ) from error
            return VGGishEmbedder.from_files(
                checkpoint_path, pca_params_path, fc2_relu=fc2_relu, batch_size=batch_size
            )
    if runtime != "onnxruntime":
        raise ValueError(f"unknown VGGish runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    from transformer.audio.vggish_ort import OnnxVGGishEmbedder

    return OnnxVGGishEmbedder.from_files(
        checkpoint_path,
        pca_params_path,
        fc2_relu=fc2_relu,
        batch_size=batch_size,
        precision=precision,
        threads=threads,
        cache_dir=cache_dir,
    )
