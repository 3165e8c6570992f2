"""ONNX Runtime sessions as both services run them, and the model caches kept beside the weights.

The transformer's VGGish and the predictor's classifier are ONNX graphs built by code from the
official files; a graph worth keeping (the int8 VGGish, the classifier) is cached beside the weights
and tagged with a key naming everything it was made from (the sha512 of the source file, the
recipe). A cache whose key differs, or that ONNX Runtime cannot read, is rebuilt, never used; a
read-only model folder (a Kubernetes volume) only costs a log line and a rebuild at every start.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import onnxruntime as ort

#: The metadata entry of a cached model that holds its source key.
CACHE_KEY_FIELD: Final = "audioguard_source_key"
_PROVIDERS: Final = ["CPUExecutionProvider"]


def session_options(threads: int, *, memory_arena: bool = False) -> ort.SessionOptions:
    """One intra-op pool of ``threads`` (0 = ONNX Runtime's choice: one per core)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads sleep instead of spinning: on a 2-core host the spin
    # steals the cores the decoding and log-mel threads (or the other service) need between calls.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena by default: a VGGish batch of 64 examples needs ~170 MB of activations, which an
    # arena would keep for good; without it they go back after each call (~8 % slower at batch 64).
    options.enable_cpu_mem_arena = memory_arena
    return options


def session_from_bytes(model_bytes: bytes, options: ort.SessionOptions) -> ort.InferenceSession:
    """A CPU session from a serialised model, without the Python wrapper's copy of the bytes.

    ``onnxruntime.InferenceSession`` keeps the bytes it was given for good (to rebuild the session
    when a GPU provider falls back to the CPU), which for VGGish is a second 275 MB copy of the
    weights beside the session's own. The CPU provider never falls back, so the copy is dropped.
    """
    session = ort.InferenceSession(model_bytes, options, providers=_PROVIDERS)
    if getattr(session, "_model_bytes", None) is not None:
        session._model_bytes = None
    return session


def release_freed_memory() -> None:
    """Give a build's freed heap back to the system (glibc keeps it otherwise); elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def cache_key(parts: Iterable[str]) -> str:
    """One hex key for what a cached model was made from (sha512 sums, recipe versions...)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cached_session(
    path: Path, key: str, options: ort.SessionOptions, *, what: str, log: logging.Logger
) -> ort.InferenceSession | None:
    """The session of the model cached at ``path`` if its key is ``key``; else None (and why, logged)."""
    if not path.is_file():
        return None
    try:
        session = ort.InferenceSession(str(path), options, providers=_PROVIDERS)
    except Exception as error:  # onnxruntime raises its own untyped errors for a damaged file
        log.warning("ignoring the %s cache %s (%s); rebuilding it", what, path, type(error).__name__)
        return None
    if session.get_modelmeta().custom_metadata_map.get(CACHE_KEY_FIELD) != key:
        log.info("the %s cache %s was made from other weights or another recipe; rebuilding", what, path)
        return None
    return session


def write_cache(path: Path, model_bytes: bytes, *, what: str, again: str, log: logging.Logger) -> bool:
    """Write a model cache atomically (temporary file + rename); False, logged, if the folder refuses.

    ``again`` says what the next start does instead ("calibrated", "converted").
    """
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.stem}-"
        options = {"dir": path.parent, "prefix": prefix, "suffix": path.suffix, "delete": False}
        with tempfile.NamedTemporaryFile(**options) as handle:  # type: ignore[call-overload]
            temporary = Path(handle.name)
            handle.write(model_bytes)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        log.info(
            "%s not cached (%s: %s); it is %s again at the next start",
            what,
            path.parent,
            error.strerror or error,
            again,
        )
        return False
    return True
