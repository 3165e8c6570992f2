"""VGGish on ONNX Runtime: the serving runtime, with no TensorFlow in the process.

fp32 (the default) is built in memory from the checkpoint at start (about 5 s)
and matches the TensorFlow reference (``tests/transformer/audio/test_vggish_ort.py``).
int8 is calibrated once (about 15 s) and cached beside the weights as
``vggish_model.int8.onnx``, tagged with the sha512 of the checkpoint and
everything else it was made from; a cache made from other weights, another
calibration set or another ONNX Runtime is rebuilt, never used. A read-only
model folder (a Kubernetes volume) means calibrating at every start, and a log
line says so.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from contract.assets import sha512_of
from contract.errors import ModelAssetError
from contract.onnx_runtime import (
    CACHE_KEY_FIELD,
    cache_key,
    cached_session,
    release_freed_memory,
    session_from_bytes,
    session_options,
    write_cache,
)
from transformer.audio.constants import Precision
from transformer.audio.pca import PCAQuantizer
from transformer.audio.vggish_layout import embed_in_batches, missing_checkpoint, read_vggish_weights
from transformer.audio.vggish_onnx import INPUT_NAME, build_vggish_onnx

logger = logging.getLogger(__name__)

INT8_CACHE_NAME = "vggish_model.int8.onnx"
#: Bump when the graph or the quantisation recipe changes: old caches are then rebuilt.
_RECIPE_VERSION = "vggish-onnx-1"
_INT8 = "int8 VGGish"


def _fp32_bytes(checkpoint_path: Path, fc2_relu: bool) -> bytes:
    """The serialised fp32 model; the weights and the model proto are freed on return."""
    model = build_vggish_onnx(read_vggish_weights(checkpoint_path), fc2_relu=fc2_relu, consume=True)
    return model.SerializeToString()


def int8_cache_key(checkpoint_sha512: str, *, fc2_relu: bool, weights: str) -> str:
    """What an int8 model was made from: weights, recipe, calibration set, quantiser version."""
    from transformer.audio.calibration import CALIBRATION_VERSION

    return cache_key(
        [
            _RECIPE_VERSION,
            checkpoint_sha512,
            f"fc2_relu={fc2_relu}",
            f"weights={weights}",
            CALIBRATION_VERSION,
            f"onnxruntime={ort.__version__}",
        ]
    )


def build_session(
    checkpoint_path: Path,
    *,
    precision: Precision = "fp32",
    fc2_relu: bool = True,
    threads: int = 0,
    cache_dir: Path | None = None,
) -> ort.InferenceSession:
    """An ONNX Runtime session of VGGish from ``vggish_model.ckpt`` (typed asset errors).

    ``cache_dir`` (int8 only; default the checkpoint's folder) holds the calibrated model
    and, when writable, the calibration's scratch files (else the system's temporary folder).

    Raises:
        InvalidConfiguration: int8 must be calibrated and no folder has the scratch space.
    """
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise missing_checkpoint(checkpoint_path)
    options = session_options(threads)
    if precision == "fp32":
        session = session_from_bytes(_fp32_bytes(checkpoint_path, fc2_relu), options)
        release_freed_memory()
        return session
    if precision != "int8":
        raise ValueError(f"unknown VGGish precision {precision!r} (fp32 or int8)")

    from transformer.audio.calibration import calibration_examples
    from transformer.audio.vggish_int8 import (
        SCRATCH_MODEL_COPIES,
        cpu_has_vnni,
        int8_weight_type,
        quantize_vggish,
        scratch_folder,
    )

    weights = int8_weight_type(cpu_has_vnni())
    key = int8_cache_key(sha512_of(checkpoint_path), fc2_relu=fc2_relu, weights=weights)
    cache = Path(cache_dir or checkpoint_path.parent) / INT8_CACHE_NAME
    session = cached_session(cache, key, options, what=_INT8, log=logger)
    if session is not None:
        logger.info("int8 VGGish loaded from %s", cache)
        return session
    # checked before the weights are read: no room is one clear message, not ENOSPC halfway
    needed = int(SCRATCH_MODEL_COPIES * checkpoint_path.stat().st_size)
    scratch = scratch_folder([cache.parent, Path(tempfile.gettempdir())], needed)
    started = time.perf_counter()
    fp32 = build_vggish_onnx(read_vggish_weights(checkpoint_path), fc2_relu=fc2_relu, consume=True)
    int8 = quantize_vggish(fp32, calibration_examples(), weights=weights, scratch=scratch)
    del fp32
    int8.metadata_props.add(key=CACHE_KEY_FIELD, value=key)
    model_bytes = int8.SerializeToString()
    logger.info("int8 VGGish calibrated in %.1f s (%s weights)", time.perf_counter() - started, weights)
    write_cache(cache, model_bytes, what=_INT8, again="calibrated", log=logger)
    session = session_from_bytes(model_bytes, options)
    del model_bytes, int8
    release_freed_memory()
    return session


class OnnxVGGishEmbedder:
    """Log-mel examples -> VGGish embeddings on ONNX Runtime (same interface as ``VGGishEmbedder``).

    ``run`` is thread-safe in ONNX Runtime, so concurrent requests share one session.
    """

    runtime = "onnxruntime"
    precision: str

    def __init__(
        self,
        session: ort.InferenceSession,
        quantizer: PCAQuantizer,
        *,
        batch_size: int = 64,
        precision: Precision = "fp32",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.session = session
        self.quantizer = quantizer
        self.batch_size = batch_size
        self.precision = precision

    @classmethod
    def from_files(
        cls,
        checkpoint_path: Path,
        pca_params_path: Path,
        *,
        fc2_relu: bool = True,
        batch_size: int = 64,
        precision: Precision = "fp32",
        threads: int = 0,
        cache_dir: Path | None = None,
    ) -> OnnxVGGishEmbedder:
        """Read the PCA file first (small, fails fast), then build the session from the checkpoint."""
        quantizer = PCAQuantizer.from_npz(Path(pca_params_path))
        try:
            session = build_session(
                checkpoint_path, precision=precision, fc2_relu=fc2_relu, threads=threads, cache_dir=cache_dir
            )
        except ort.capi.onnxruntime_pybind11_state.Fail as error:  # type: ignore[attr-defined]
            raise ModelAssetError(f"ONNX Runtime could not load VGGish: {error}") from error
        return cls(session, quantizer, batch_size=batch_size, precision=precision)

    def embed(self, examples: np.ndarray) -> np.ndarray:
        """(N, 96, 64) float log-mel examples -> (N, 128) float32 raw fc2 output (N may be 0)."""
        return embed_in_batches(
            examples, self.batch_size, lambda chunk: self.session.run(None, {INPUT_NAME: chunk})[0]
        )

    def embed_quantized(self, examples: np.ndarray) -> np.ndarray:
        """(N, 96, 64) float log-mel examples -> (N, 128) uint8 PCA-quantised embeddings."""
        return self.quantizer(self.embed(examples))
