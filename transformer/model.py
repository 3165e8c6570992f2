"""The transformer's ``kserve.Model``: wiring between the v2 protocol and the core.

preprocess: v2 request -> audio bytes + options -> (worker thread) decode,
privacy, log-mel -> VGGish -> PCA/uint8 -> windows -> the predictor request
(``embeddings`` UINT8 [W, 10, 128]). With ``vggish_request_batching`` the
VGGish calls of concurrent requests are merged (``audioguard.batching``): each
request's log-mel examples (never its audio) join one call and it gets back
exactly its own rows. predict: KServe's call to the predictor,
with transport failures turned into 503. postprocess: scores -> top-k labels,
anomalies, the durable DHT outbox record -> v2 response.

The SIFIS route runs the same three steps through ``analyze``. No numerics
here: they live in ``transformer.pipeline``, ``windows``, ``labels``,
``anomalies`` and ``loudness``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import grpc
import httpx
from kserve import Model
from kserve.errors import InferenceError
from kserve.inference_client import InferenceGRPCClient
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.inference_client_factory import InferenceClientFactory

from audioguard.assets import TRANSFORMER_ASSETS, asset_report, log_asset_report
from audioguard.batching import AdaptiveBatcher, BatchStats
from audioguard.errors import AudioGuardError, InvalidInput, ServiceNotReady
from audioguard.http import to_kserve_error
from transformer import v2_codec
from transformer.anomalies import AnomalyGroup, detect_anomalies, load_anomaly_groups
from transformer.delivery import DeliveryService
from transformer.labels import load_labels
from transformer.listener import RequestListener
from transformer.loudness import window_dbfs
from transformer.metrics import count_anomalies, observe_vggish_call
from transformer.pipeline import AudioFeatures, EmbeddedAudio, EmbeddingPipeline
from transformer.privacy import PRIVACY_METHODS, PrivacyRequest, enforce_minimum, parse_privacy_request
from transformer.settings import TransformerSettings
from transformer.sifis import result_value, sifis_privacy_method, upload_too_large
from transformer.v2_codec import AnalysisOptions, AnalysisResult, WindowPrediction
from transformer.windows import Windows, select_windows

logger = logging.getLogger(__name__)

#: gRPC reconnect backoff towards the predictor: short, so that a restarted
#: predictor is used again within about a second (the default grows to 120 s).
PREDICTOR_CHANNEL_ARGS: Final = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
_UNAVAILABLE_CODES: Final = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def is_predictor_outage(error: BaseException) -> bool:
    """True for a gRPC failure that means "predictor unreachable" (answered 503), not a fault."""
    return isinstance(error, grpc.RpcError) and error.code() in _UNAVAILABLE_CODES


@dataclass(frozen=True)
class PreparedAnalysis:
    """The state between preprocess and postprocess of one request (no audio).

    Attributes:
        options: the validated request options.
        embedded: the recording's embeddings, loudness and applied privacy.
        windows: the classifier windows cut from the embeddings.
        privacy_requested: canonical method the caller asked for.
        analysis_id: SIFIS analysis id (analyzer id + UTC time + sha256 of the audio).
        predictor_request: the v2 request sent to the predictor.
    """

    options: AnalysisOptions
    embedded: EmbeddedAudio
    windows: Windows
    privacy_requested: str
    analysis_id: str
    predictor_request: InferRequest


@dataclass(frozen=True)
class _PendingV2:
    """A v2 request between preprocess and postprocess: the caller's request and its state."""

    request: InferRequest
    prepared: PreparedAnalysis


# preprocess and postprocess run in the same task (kserve.Model.__call__), so a
# context variable carries the pending request across predict.
_PENDING: contextvars.ContextVar[_PendingV2] = contextvars.ContextVar("audioguard_pending_v2")


class AudioTransformer(Model):
    """The transformer model: audio in, labels and anomalies out; only embeddings leave it."""

    ready: bool

    def __init__(self, name: str, settings: TransformerSettings) -> None:
        super().__init__(name)
        self.settings = settings
        self.labels = load_labels()
        self.pipeline: EmbeddingPipeline | None = None
        self.anomaly_groups: tuple[AnomalyGroup, ...] = ()
        self.delivery: DeliveryService | None = None
        self.listener: RequestListener | None = None
        self.assets: dict[str, object] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._vggish_batcher: AdaptiveBatcher | None = None

    # --- lifecycle ------------------------------------------------------------------

    def load(self) -> bool:
        """Validate the anomaly groups, load VGGish + PCA, open the outbox; then ready.

        Raises:
            ModelAssetError: a weight file is missing or malformed.
            InvalidConfiguration: anomaly groups, DHT or listener settings are invalid.
        """
        if self.ready:
            return True
        self.anomaly_groups = load_anomaly_groups(self.settings.anomaly_groups_file)
        self.assets = asset_report(self.settings.model_dir, TRANSFORMER_ASSETS)
        log_asset_report(self.assets, "transformer")
        self.pipeline = EmbeddingPipeline.from_settings(self.settings)
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.inference_threads, thread_name_prefix="audioguard-embed"
        )
        if self.settings.vggish_request_batching:
            self._vggish_batcher = AdaptiveBatcher(
                self.pipeline.embedder.embed,
                max_batch_size=self.settings.vggish_batch_size,
                max_wait_ms=self.settings.vggish_batch_wait_ms,
                observer=self._observe_vggish_call,
                name=f"{self.name}-vggish",
            )
        if self.settings.dht_url:
            self.delivery = DeliveryService.from_settings(self.settings)
        if self.settings.listener_enabled:
            self.listener = RequestListener.from_settings(self.settings, self.process_dht_request)
        self.ready = True
        return True

    async def start_background(self) -> None:
        """Start the DHT outbox sender and request listener (on the server's event loop)."""
        if self.delivery is not None:
            await self.delivery.start()
        if self.listener is not None:
            await self.listener.start()

    async def stop_background(self) -> None:
        """Stop them; undelivered messages stay in the outbox for the next start."""
        if self.listener is not None:
            await self.listener.stop()
        if self.delivery is not None:
            await self.delivery.stop()

    def _observe_vggish_call(self, examples: int, requests: int, seconds: float) -> None:
        observe_vggish_call(self.name, examples, requests, seconds)

    def vggish_batch_stats(self) -> BatchStats | None:
        """Counters of the VGGish batcher (``windows`` = examples); None when batching is off."""
        return None if self._vggish_batcher is None else self._vggish_batcher.stats()

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        super().stop()

    def connect_predictor(self) -> None:
        """Create the predictor gRPC client with a short reconnect backoff.

        Call on the server's event loop before the first request: KServe's
        client factory keeps the first client it makes, and its readiness
        check shares it.
        """
        config = self.predictor_config
        if config is None or not config.predictor_host or config.protocol != "grpc-v2":
            return
        self._grpc_client_stub = InferenceClientFactory().get_grpc_client(
            url=config.predictor_host,
            use_ssl=config.use_ssl,
            timeout=config.timeout,
            retries=config.retries,
            channel_args=list(PREDICTOR_CHANNEL_ARGS),
        )

    @property
    def _grpc_client(self) -> InferenceGRPCClient:
        if self._grpc_client_stub is None:
            self.connect_predictor()
        return self._grpc_client_stub

    # --- v2 metadata ----------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        return v2_codec.input_metadata()

    def get_output_types(self) -> list[dict[str, Any]]:
        return v2_codec.output_metadata()

    def metadata_parameters(self) -> dict[str, object]:
        """Extra ``parameters`` of the REST model metadata: weights, limits, privacy options."""
        config = self.predictor_config
        return {
            "weights_official": bool(self.assets.get("official", False)),
            "assets": dict(self.assets),
            "json_audio_encoding": {v2_codec.CONTENT_ENCODING: v2_codec.BASE64},
            "privacy_methods": list(PRIVACY_METHODS),
            "privacy_minimum": self.settings.privacy_minimum,
            "privacy_enforcement": self.settings.privacy_enforcement,
            "max_upload_mb": self.settings.max_upload_mb,
            "decode_budget_hz": self.settings.decode_budget_hz,
            "max_audio_seconds": self.settings.max_audio_seconds,
            "top_k": self.settings.top_k,
            "predictor_protocol": None if config is None else config.protocol,
        }

    # --- the three KServe handlers --------------------------------------------------

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> InferRequest:
        """v2 request -> predictor request; the prepared state waits in a context variable."""
        try:
            if not isinstance(payload, InferRequest):
                raise InvalidInput(
                    f"this model speaks the v2 inference protocol: POST /v2/models/{self.name}/infer"
                )
            call = v2_codec.parse_audio_request(payload)
            prepared = await self.prepare(call.audio, call.options, request_id=payload.id)
        except AudioGuardError as error:
            raise to_kserve_error(error) from None
        _PENDING.set(_PendingV2(payload, prepared))
        return prepared.predictor_request

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """KServe's call to the predictor; an unreachable predictor is a 503."""
        try:
            return await self.call_predictor(payload, headers)
        except AudioGuardError as error:
            raise to_kserve_error(error) from None

    async def postprocess(
        self,
        result: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """Predictor scores -> labels, anomalies, outbox -> the v2 response."""
        pending = _PENDING.get()
        try:
            analysis = await self.finish(pending.prepared, result)
        except AudioGuardError as error:
            raise to_kserve_error(error) from None
        return v2_codec.encode_result(analysis, pending.request)

    # --- the steps, shared with the SIFIS route --------------------------------------

    async def analyze(
        self, audio: bytes, options: AnalysisOptions, headers: dict[str, str] | None = None
    ) -> AnalysisResult:
        """The whole analysis of one recording (the SIFIS route's entry point)."""
        prepared = await self.prepare(audio, options, request_id=None)
        response = await self.call_predictor(prepared.predictor_request, headers)
        return await self.finish(prepared, response)

    async def process_dht_request(self, audio: bytes, request: dict[str, Any]) -> None:
        """The listener's callback: analyse a file named in a DHT request (result goes to the outbox)."""

        def text(name: str) -> str | None:
            value = request.get(name)
            return None if value is None else str(value)

        method = text("method") or "none"
        options = AnalysisOptions(
            privacy_method=sifis_privacy_method(method, self.settings.sifis_unknown_method),
            top_k=self.settings.top_k,
            all_windows=True,
            requestor_id=text("requestor_id"),
            requestor_type=text("requestor_type"),
            request_id=text("request_id"),
            audio_file=text("audio_file"),
            sifis_method=method,
        )
        await self.analyze(audio, options)

    async def prepare(
        self, audio: bytes, options: AnalysisOptions, *, request_id: str | None
    ) -> PreparedAnalysis:
        """Audio bytes -> embeddings -> windows -> the predictor request (typed 4xx errors)."""
        if self.pipeline is None or self._executor is None:
            raise ServiceNotReady(f"model {self.name!r} has not loaded its weights yet")
        if len(audio) > self.settings.max_upload_bytes:
            raise upload_too_large(self.settings.max_upload_mb)
        requested, privacy = self.privacy_for(options)
        embedded, digest = await self._embed(audio, privacy)
        windows = select_windows(
            embedded.embeddings,
            start_time=options.start_time,
            all_windows=options.all_windows,
            hop=self.settings.window_hop,
        )
        return PreparedAnalysis(
            options=options,
            embedded=embedded,
            windows=windows,
            # A request that named no method asked for the default, i.e. the minimum.
            privacy_requested=requested.method if requested.named else privacy.method,
            analysis_id=f"{self.settings.analyzer_id}{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}{digest}",
            predictor_request=v2_codec.embeddings_request(
                windows.embeddings,
                model_name=self.name,
                request_id=request_id,
                binary=self._forward_binary(),
            ),
        )

    def privacy_for(self, options: AnalysisOptions) -> tuple[PrivacyRequest, PrivacyRequest]:
        """(requested, applied): the caller's request and what the operator minimum makes of it."""
        defaults = {"scramble": {"segment_seconds": self.settings.scramble_segment_seconds}}
        requested = parse_privacy_request(options.privacy_method, options.privacy_params, defaults=defaults)
        applied = enforce_minimum(
            requested,
            self.settings.privacy_minimum,
            self.settings.privacy_enforcement,
            defaults=defaults,
        )
        return requested, applied

    async def _embed(self, audio: bytes, privacy: PrivacyRequest) -> tuple[EmbeddedAudio, str]:
        """The audio stage and the audio's sha256 (for the analysis id).

        The front end runs in the worker pool. Batched, only its log-mel
        examples go on to the shared VGGish call; a request whose front end
        fails (undecodable audio, ...) never joins one, so it cannot fail the
        others. Unbatched, VGGish runs in the same worker-pool job, alone.
        """
        assert self.pipeline is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        if self._vggish_batcher is None:
            return await loop.run_in_executor(self._executor, self._embed_alone, audio, privacy)
        features, digest = await loop.run_in_executor(self._executor, self._front_end, audio, privacy)
        # load_waveform refuses audio shorter than one example, so N >= 1 here.
        raw_embeddings = await self._vggish_batcher.submit(features.examples)
        return self.pipeline.quantized(features, raw_embeddings), digest

    def _front_end(self, audio: bytes, privacy: PrivacyRequest) -> tuple[AudioFeatures, str]:
        """Worker thread: decode, privacy, log-mel, loudness; and the audio's sha256."""
        assert self.pipeline is not None
        return self.pipeline.features(audio, privacy), hashlib.sha256(audio).hexdigest()

    def _embed_alone(self, audio: bytes, privacy: PrivacyRequest) -> tuple[EmbeddedAudio, str]:
        """Worker thread, batching off: the front end and this request's own VGGish call."""
        assert self.pipeline is not None
        features, digest = self._front_end(audio, privacy)
        started = time.perf_counter()
        raw_embeddings = self.pipeline.embedder.embed(features.examples)
        self._observe_vggish_call(features.examples.shape[0], 1, time.perf_counter() - started)
        return self.pipeline.quantized(features, raw_embeddings), digest

    def _forward_binary(self) -> bool:
        # REST v2 forwarding of binary tensors is broken in KServe 0.21 (two
        # Content-Type headers): JSON there, raw bytes over gRPC.
        config = self.predictor_config
        return config is not None and config.protocol == "grpc-v2"

    async def call_predictor(self, request: InferRequest, headers: dict[str, str] | None) -> InferResponse:
        """Send the embeddings to the predictor; transport failures -> ServiceNotReady (503)."""
        try:
            response = await Model.predict(self, request, headers)
        except grpc.RpcError as error:
            if is_predictor_outage(error):
                raise ServiceNotReady(f"the predictor is unavailable ({error.code().name})") from None
            raise InferenceError(f"the predictor failed: {error.code().name}: {error.details()}") from None
        except httpx.TransportError as error:
            raise ServiceNotReady(f"the predictor is unavailable ({type(error).__name__})") from None
        except httpx.HTTPStatusError as error:
            if error.response.status_code == 503:
                raise ServiceNotReady("the predictor is not ready") from None
            raise InferenceError(f"the predictor failed with HTTP {error.response.status_code}") from None
        if not isinstance(response, InferResponse):
            raise InferenceError(f"unexpected predictor response type {type(response).__name__}")
        return response

    async def finish(self, prepared: PreparedAnalysis, response: InferResponse) -> AnalysisResult:
        """Scores -> top-k, anomalies, outbox record; returns the result."""
        windows = prepared.windows
        try:
            scores = v2_codec.scores_from_response(response, len(windows))
        except ValueError as error:
            raise InferenceError(f"the predictor answered unexpectedly: {error}") from None
        options = prepared.options
        top_k = options.top_k or self.settings.top_k
        anomalies = detect_anomalies(
            scores,
            windows.start_seconds,
            windows.end_seconds,
            self.anomaly_groups,
            window_dbfs=window_dbfs(
                prepared.embedded.example_dbfs, windows.start_seconds, windows.end_seconds
            ),
            gate_dbfs=self.settings.loudness_gate_dbfs,
        )
        result = AnalysisResult(
            windows=[
                WindowPrediction(
                    float(start), float(end), self.labels.top_k(row, top_k, only=options.label_filter)
                )
                for start, end, row in zip(windows.start_seconds, windows.end_seconds, scores, strict=True)
            ],
            anomalies=[anomaly.to_dict() for anomaly in anomalies],
            privacy_requested=prepared.privacy_requested,
            privacy_applied=prepared.embedded.privacy.method,
            analyzer_id=self.settings.analyzer_id,
            analysis_id=prepared.analysis_id,
            duration_seconds=prepared.embedded.duration_seconds,
            options=options,
        )
        count_anomalies(anomalies)
        if self.delivery is not None:
            # durable before the caller hears about it: an anomaly is never lost
            await asyncio.to_thread(self.delivery.record, result_value(result), anomalies)
        return result
