"""The classifier served on ONNX Runtime, converted by code from the official ``classifier_model.h5``.

The converted model is cached beside the weights as ``classifier_model.onnx``,
tagged with the sha512 of the h5 file and the conversion recipe; a cache made
from other weights or another recipe (or damaged) is converted again, never
used. A start with a valid cache reads neither HDF5 nor the ``onnx`` package.
A read-only model folder (a Kubernetes volume) means converting at every start
(well under a second), and a log line says so. No TensorFlow anywhere: the
Keras reference the conversion is tested against is ``predictor.keras_reference``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime as ort

from contract.assets import HOW_TO_GET_WEIGHTS, sha512_of
from contract.constants import NUM_CLASSES
from contract.errors import MissingModelAsset, ModelAssetError
from contract.onnx_runtime import (
    CACHE_KEY_FIELD,
    cache_key,
    cached_session,
    release_freed_memory,
    session_from_bytes,
    session_options,
    write_cache,
)
from predictor.windows import validated_windows

logger = logging.getLogger(__name__)

ONNX_CACHE_NAME: Final = "classifier_model.onnx"
#: Bump when the graph (``predictor.classifier_onnx``) changes: old caches are then converted again.
RECIPE_VERSION: Final = "classifier-onnx-2"
#: Most windows one ONNX Runtime call takes: bounds the activations (~2.6 MB a tensor), not the
#: request. Measured: 1024-window requests left the process at 249 MiB in chunks of 64, 335-446 MiB
#: in chunks of 256 (freed activations stay with the allocator), and 64 is no slower.
MAX_CALL_WINDOWS: Final = 64
_WHAT: Final = "ONNX classifier"


def classifier_cache_key(h5_sha512: str) -> str:
    """What a converted classifier was made from: the h5 file's sha512 and the recipe."""
    return cache_key([RECIPE_VERSION, h5_sha512])


def _converted_bytes(h5_path: Path, key: str) -> bytes:
    """Check the h5 file, read its weights and write the tagged ONNX model (typed asset errors)."""
    from predictor.classifier_onnx import build_classifier_onnx
    from predictor.h5_weights import read_classifier_weights

    model = build_classifier_onnx(read_classifier_weights(h5_path))
    model.metadata_props.add(key=CACHE_KEY_FIELD, value=key)
    return model.SerializeToString()


def load_classifier_session(
    h5_path: Path, *, threads: int = 0, cache_dir: Path | None = None
) -> ort.InferenceSession:
    """An ONNX Runtime session of the classifier in ``h5_path``, from the cache when it is valid.

    ``cache_dir`` defaults to the h5 file's folder.

    Raises:
        MissingModelAsset: the file does not exist.
        ModelAssetError: not HDF5, another layout (every difference named), or unloadable.
    """
    h5_path = Path(h5_path)
    if not h5_path.is_file():
        raise MissingModelAsset(f"classifier model file {h5_path} not found: {HOW_TO_GET_WEIGHTS}")
    options = session_options(threads)
    key = classifier_cache_key(sha512_of(h5_path))
    cache = Path(cache_dir or h5_path.parent) / ONNX_CACHE_NAME
    session = cached_session(cache, key, options, what=_WHAT, log=logger)
    if session is not None:
        logger.info("classifier loaded from %s", cache)
        return session
    started = time.perf_counter()
    model_bytes = _converted_bytes(h5_path, key)
    logger.info("classifier converted to ONNX in %.2f s", time.perf_counter() - started)
    write_cache(cache, model_bytes, what=_WHAT, again="converted", log=logger)
    try:
        session = session_from_bytes(model_bytes, options)
    except ort.capi.onnxruntime_pybind11_state.Fail as error:  # type: ignore[attr-defined]
        raise ModelAssetError(f"ONNX Runtime could not load the classifier: {error}") from error
    del model_bytes
    release_freed_memory()
    return session


class AttentionClassifier:
    """Windows of quantised embeddings -> 527 scores, on ONNX Runtime; thread-safe.

    Concurrent calls share one session (ONNX Runtime's ``run`` is thread-safe).
    """

    runtime = "onnxruntime"

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name

    @classmethod
    def from_file(cls, path: Path, *, threads: int = 0, cache_dir: Path | None = None) -> AttentionClassifier:
        """The classifier of ``classifier_model.h5`` (see ``load_classifier_session``)."""
        return cls(load_classifier_session(path, threads=threads, cache_dir=cache_dir))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Scores (B, 527) float32 for windows (B, 10, 128).

        ``windows`` are quantised embeddings: uint8, or float32 holding the same
        0..255 values (the KServe v2 FP32 form); both become (x - 128) / 128.
        B == 0 gives an empty (0, 527) array.

        Raises:
            InvalidInput: wrong type, shape or dtype, or float values outside 0..255.
        """
        scaled = validated_windows(windows)
        if scaled.shape[0] == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        parts = [
            self._session.run(None, {self._input: scaled[start : start + MAX_CALL_WINDOWS]})[0]
            for start in range(0, scaled.shape[0], MAX_CALL_WINDOWS)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)
