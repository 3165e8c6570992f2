"""The KServe model: v2 tensors in and out, validation, batching, metadata.

Input ``embeddings`` [N, 10, 128] UINT8 (quantised VGGish embeddings; FP32
holding the same 0..255 values is accepted too); output ``scores`` [N, 527]
FP32 sigmoid scores, one row per window. The numbers come from
``predictor.classifier`` (ONNX Runtime); concurrent requests share classifier calls through
``contract.batching``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from kserve import Model, model_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from contract.assets import CLASSIFIER_H5, PREDICTOR_ASSETS, asset_report, log_asset_report, require_assets
from contract.batch_metrics import BatchMetrics
from contract.batching import AdaptiveBatcher, BatchStats
from contract.constants import (
    EMBEDDING_SIZE,
    EMBEDDINGS_PER_WINDOW,
    EMBEDDINGS_TENSOR,
    NUM_CLASSES,
    SCORES_TENSOR,
)
from contract.errors import AudioGuardError, InvalidInput, ServiceNotReady
from contract.http import to_kserve_error
from contract.kserve_compat import install_service_patches
from contract.weights_status import WEIGHTS_OFFICIAL
from predictor.routes import install_model_routes, register_served_model
from predictor.settings import PredictorSettings

logger = logging.getLogger(__name__)

#: what a worker process that cannot load the weights sends its parent (``python -m predictor``)
WORKER_LOAD_FAILED: Final = signal.SIGUSR1

INPUT_NAME: Final = EMBEDDINGS_TENSOR
OUTPUT_NAME: Final = SCORES_TENSOR
#: v2 datatypes accepted for the input, the first one is the published one.
INPUT_DATATYPES: Final = ("UINT8", "FP32")
WINDOW_SHAPE: Final = (EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE)
INPUT_SHAPE_TEXT: Final = f"[N, {EMBEDDINGS_PER_WINDOW}, {EMBEDDING_SIZE}]"

BATCH_METRICS: Final = BatchMetrics(
    "audioguard_predictor",
    rows="windows",
    rows_help="Windows per classifier call (adaptive batching)",
    calls_help="Duration of one classifier call",
    row_buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)


def windows_from_request(request: InferRequest, *, max_windows: int) -> np.ndarray:
    """The request's ``embeddings`` tensor as (N, 10, 128) uint8 or float32 in 0..255.

    Checks everything per request, before it joins a batch, so that a bad
    request can never fail the requests it would have been batched with.

    Raises:
        InvalidInput: wrong tensor name/count, datatype, shape, values, or N above ``max_windows``.
    """
    names = [tensor.name for tensor in request.inputs]
    if names != [INPUT_NAME]:
        raise InvalidInput(
            f"expected exactly one input tensor named {INPUT_NAME!r} {INPUT_SHAPE_TEXT} UINT8, got {names}"
        )
    tensor = request.inputs[0]
    if tensor.datatype not in INPUT_DATATYPES:
        raise InvalidInput(
            f"input {INPUT_NAME!r} must have datatype UINT8 (or FP32 holding 0..255 values), "
            f"got {tensor.datatype}"
        )
    shape = list(tensor.shape)
    if len(shape) != 3 or shape[1:] != [EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE] or shape[0] < 1:
        raise InvalidInput(
            f"input {INPUT_NAME!r} must have shape {INPUT_SHAPE_TEXT} with N >= 1, got {shape}"
        )
    if shape[0] > max_windows:
        raise InvalidInput(
            f"input {INPUT_NAME!r} has {shape[0]} windows; at most {max_windows} are allowed per request"
        )
    try:
        windows = tensor.as_numpy()
    except (ValueError, TypeError, OverflowError) as error:
        # numpy's messages name sizes and types, never the values.
        raise InvalidInput(
            f"input {INPUT_NAME!r}: data does not fit shape {shape} as {tensor.datatype} ({error})"
        ) from None
    if windows.shape != tuple(shape):
        raise InvalidInput(f"input {INPUT_NAME!r}: data has shape {list(windows.shape)}, declared {shape}")
    if windows.dtype == np.float32 and not (np.all(windows >= 0.0) and np.all(windows <= 255.0)):
        # NaN fails both comparisons, so it is rejected too.
        raise InvalidInput(
            f"input {INPUT_NAME!r}: FP32 values must be quantised embedding values in 0..255 (finite)"
        )
    return windows


class ClassifierModel(Model):
    """KServe v2 model serving the multi-attention classifier with adaptive batching.

    ``load()`` reads ``classifier_model.h5`` from ``settings.model_dir`` and
    only then marks the model ready. Pickling (KServe hands the model to its
    worker processes that way) keeps name and settings; the copy loads the
    weights again in a background thread and is ready once they are in.
    """

    ready: bool

    def __init__(self, name: str, settings: PredictorSettings) -> None:
        super().__init__(name)
        self.settings = settings
        self.assets: dict[str, object] = {}
        self._batcher: AdaptiveBatcher | None = None
        register_served_model(self, self.metadata_parameters, self.settings.max_request_windows)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_batcher"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A KServe REST worker process unpickles its model before it answers the
        # parent's 5 s liveness ping; loading the weights (converting them when no
        # cache is there) may take longer, so the copy loads in a thread and is not ready until then.
        was_loaded = bool(state.get("ready", False))
        self.__dict__.update(state, ready=False)
        register_served_model(self, self.metadata_parameters, self.settings.max_request_windows)
        if was_loaded:
            threading.Thread(target=self._load_logging_errors, name=f"{self.name}-load", daemon=True).start()

    def _load_logging_errors(self) -> None:
        """A worker copy's load: on failure the whole server stops, non-zero (see ``__main__``),
        rather than a worker that stays unready forever while its parent looks alive."""
        try:
            self.load()
        except Exception:
            logger.exception("model %r failed to load its weights in worker %d", self.name, os.getpid())
            os.kill(os.getppid(), WORKER_LOAD_FAILED)
            os._exit(3)

    def load(self) -> bool:
        """Check and load the weights (their cached ONNX conversion when valid), then mark ready.

        Idempotent.

        Raises:
            MissingModelAsset: ``classifier_model.h5`` is not in ``settings.model_dir``.
            ModelAssetError: the file cannot be read or has another layout.
        """
        if self.ready:
            return True
        model_dir = self.settings.model_dir
        paths = require_assets(model_dir, PREDICTOR_ASSETS)
        self.assets = asset_report(model_dir, PREDICTOR_ASSETS)
        log_asset_report(self.assets, "predictor")
        # Imported here: the runtime is only needed once weights are loaded (see __setstate__).
        from predictor.classifier import AttentionClassifier

        classifier = AttentionClassifier.from_file(paths[CLASSIFIER_H5], threads=self.settings.threads)
        self._batcher = AdaptiveBatcher(
            classifier.predict,
            max_batch_size=self.settings.max_batch_size,
            max_wait_ms=self.settings.max_batch_wait_ms,
            observer=self._observe_batch,
            name=f"{self.name}-classifier",
        )
        self.ready = True
        logger.info(
            "model %r ready: max_batch_size=%d max_batch_wait_ms=%g max_request_windows=%d",
            self.name,
            self.settings.max_batch_size,
            self.settings.max_batch_wait_ms,
            self.settings.max_request_windows,
        )
        return True

    def _observe_batch(self, windows: int, chunks: int, seconds: float) -> None:
        BATCH_METRICS.observe(self.name, windows, chunks, seconds)

    def batch_stats(self) -> BatchStats:
        """Batching counters of this process (zeros before load)."""
        return self._batcher.stats() if self._batcher else BatchStats()

    def metadata_parameters(self) -> dict[str, object]:
        """Extra ``parameters`` of the REST model metadata: weights and batching settings."""
        return model_parameters(self.settings, self.assets)

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": INPUT_NAME, "datatype": INPUT_DATATYPES[0], "shape": [-1, *WINDOW_SHAPE]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, NUM_CLASSES]}]

    async def predict(
        self,
        payload: InferRequest | dict[str, Any],
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """Scores for the request's windows; 400 for bad input, 503 before load."""
        try:
            if not isinstance(payload, InferRequest):
                raise InvalidInput(
                    f"this model speaks the v2 inference protocol: POST /v2/models/{self.name}/infer"
                )
            if self._batcher is None:
                raise ServiceNotReady(f"model {self.name!r} has not loaded its weights yet")
            windows = windows_from_request(payload, max_windows=self.settings.max_request_windows)
            scores = await self._batcher.submit(windows)
        except AudioGuardError as error:
            raise to_kserve_error(error) from None
        output = InferOutput(name=OUTPUT_NAME, shape=list(scores.shape), datatype="FP32")
        # Raw bytes suit both paths: KServe's to_grpc fails on numpy ``data``
        # (array truth value), and to_rest re-encodes raw data as JSON or binary as asked.
        output.set_data_from_numpy(scores.astype(np.float32, copy=False), binary_data=True)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
            # every answer says whether its scores come from the official classifier file
            parameters={WEIGHTS_OFFICIAL: bool(self.assets.get("official", False))},
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def model_parameters(settings: PredictorSettings, assets: Mapping[str, object]) -> dict[str, object]:
    """The metadata ``parameters`` object: are the weights official, how batching is set."""
    return {
        WEIGHTS_OFFICIAL: bool(assets.get("official", False)),
        "assets": dict(assets),
        "accepted_input_datatypes": list(INPUT_DATATYPES),
        "max_request_windows": settings.max_request_windows,
        "max_batch_size": settings.max_batch_size,
        "max_batch_wait_ms": settings.max_batch_wait_ms,
        "ray_replicas": settings.ray_replicas,
    }


# On import, not in ``__main__``: with ``--workers > 1`` KServe spawns worker
# processes that never re-run ``python -m predictor``'s main module but do
# import this one when they unpickle the model, before building their app.
install_service_patches(model_server.app)
install_model_routes(model_server.app)
