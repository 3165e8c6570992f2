"""The transformer's ``kserve.Model``: a thin adapter from KServe to the analysis.

``load`` has the composition root (``transformer.wiring``) build the pieces
(pipeline, embedding worker, predictor client, outbox delivery, DHT listener,
monitor) and the ``Analyzer`` over them. KServe's three
handlers map onto it: preprocess = v2 request -> ``Analyzer.prepare`` -> the
predictor request; predict = KServe's call to the predictor (typed failures);
postprocess = scores -> ``Analyzer.finish`` -> the v2 response. The SIFIS
route and the listener call ``analyze``. No numerics and no protocol parsing
here: see ``transformer.analysis.analyzer`` and ``transformer.protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from kserve import Model
from kserve.inference_client import InferenceGRPCClient
from kserve.model import InferenceVerb, InferReturnType
from kserve.protocol.infer_type import InferRequest, InferResponse

from contract import kserve_compat
from contract.batching import BatchStats
from contract.errors import AudioGuardError, InvalidInput, ServiceNotReady
from contract.http import to_kserve_error
from contract.v2_rest import off_the_loop_if_large
from transformer import wiring
from transformer.admission import Admission, Ticket
from transformer.analysis.analyzer import Analyzer, PreparedAnalysis
from transformer.analysis.types import AnalysisOptions, AnalysisResult
from transformer.audio.worker import EmbeddingWorker
from transformer.dht.delivery import DeliveryService
from transformer.dht.listener import RequestListener
from transformer.monitor.service import MonitorService
from transformer.predictor_client import PREDICTOR_CHANNEL_ARGS, PredictorClient
from transformer.predictor_link import PredictorLink, grpc_probe, rest_probe, stop_watching
from transformer.privacy import PRIVACY_METHODS
from transformer.protocol import v2_request, v2_response
from transformer.protocol.sifis_schema import SifisConfig, options_from_dht_request
from transformer.protocol.v2_request import request_bytes
from transformer.settings import TransformerSettings
from transformer.ui.store import UiStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PendingV2:
    """A v2 request between preprocess and postprocess: the caller's request and its state."""

    request: InferRequest
    prepared: PreparedAnalysis


# preprocess and postprocess run in the same task (kserve.Model.__call__), so a
# context variable carries the pending request across predict.
_PENDING: contextvars.ContextVar[_PendingV2] = contextvars.ContextVar("audioguard_pending_v2")
# the admission ticket of the request this task serves (a route admits before reading the body)
_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("audioguard_admission", default=None)


class AudioTransformer(Model):
    """The transformer model: audio in, labels and anomalies out; only embeddings leave it."""

    ready: bool

    def __init__(self, name: str, settings: TransformerSettings) -> None:
        super().__init__(name)
        self.settings = settings
        self.analyzer: Analyzer | None = None
        self.worker: EmbeddingWorker | None = None
        self.predictor: PredictorClient | None = None
        self.delivery: DeliveryService | None = None
        self.listener: RequestListener | None = None
        self.monitor: MonitorService | None = None
        self.admission: Admission | None = None
        self.ui_store: UiStore | None = None  # the page's timeline and window scores
        #: whether the predictor serves this model (``connect_predictor``; None without a predictor)
        self.link: PredictorLink | None = None
        self._link_task: asyncio.Task[None] | None = None
        self._probe_http: httpx.AsyncClient | None = None
        self.assets: dict[str, object] = {}
        self.sifis: SifisConfig = wiring.sifis_config(settings)
        self.limits: dict[str, object] = wiring.service_parameters(settings)
        self.summary = wiring.start_summary(settings)

    # --- lifecycle ------------------------------------------------------------------

    def load(self) -> bool:
        """Validate the anomaly groups, load VGGish + PCA, open the outbox; then ready.

        Raises:
            ModelAssetError: a weight file is missing or malformed.
            InvalidConfiguration: anomaly groups, DHT or listener settings are invalid.
        """
        if self.ready:
            return True
        config = self.predictor_config
        # REST v2 forwarding of binary tensors is broken in KServe 0.21: JSON there, raw bytes over gRPC.
        binary = config is not None and config.protocol == "grpc-v2"
        parts = wiring.transformer_parts(
            self.settings,
            name=self.name,
            send=self._send_to_predictor,
            binary=binary,
            process_dht_request=self.process_dht_request,
        )
        self.assets, self.worker, self.predictor = parts.assets, parts.worker, parts.predictor
        self.delivery, self.analyzer, self.listener = parts.delivery, parts.analyzer, parts.listener
        self.monitor, self.admission = parts.monitor, parts.admission
        self.ui_store = parts.ui_store
        logger.info(
            "admission: %d analyses, %.0f MiB of decoding memory in flight",
            self.admission.max_analyses,
            self.admission.max_memory_bytes / 1024 / 1024,
        )
        self.ready = True
        return True

    async def start_background(self) -> None:
        """Start watching the predictor, the DHT outbox sender and request listener (on the
        server's event loop)."""
        if self.link is not None:
            self._link_task = asyncio.create_task(self.link.run(), name="audioguard-predictor-link")
        if self.delivery is not None:
            await self.delivery.start()
        if self.listener is not None:
            await self.listener.start()
        if self.monitor is not None:
            await self.monitor.start()

    async def stop_background(self) -> None:
        """Stop them (the live sources first: their open events end through the outbox);
        undelivered messages stay in the outbox for the next start."""
        if self.monitor is not None:
            await self.monitor.stop()
        if self.listener is not None:
            await self.listener.stop()
        if self.delivery is not None:
            await self.delivery.stop()
        await stop_watching(self._link_task)
        self._link_task = None
        if self._probe_http is not None:
            await self._probe_http.aclose()
            self._probe_http = None

    def vggish_batch_stats(self) -> BatchStats | None:
        """Counters of the VGGish batcher (``windows`` = examples); None when batching is off."""
        return None if self.worker is None else self.worker.batch_stats()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.close()
        super().stop()

    # --- the predictor connection (KServe's client, short reconnect backoff) ----------

    def connect_predictor(self) -> None:
        """Create the predictor gRPC client with a short reconnect backoff.

        Call on the server's event loop before the first request: KServe's
        client factory keeps the first client it makes, and its readiness
        check shares it (``contract.kserve_compat.predictor_grpc_client``). Then the link
        that checks the predictor serves this model (``transformer.predictor_link``).
        """
        kserve_compat.connect_predictor_grpc(self, PREDICTOR_CHANNEL_ARGS)
        config = self.predictor_config
        if config is None or not config.predictor_host:
            return
        if config.protocol == "grpc-v2":
            probe = grpc_probe(lambda: self._grpc_client, self.name)
        else:
            self._probe_http = httpx.AsyncClient()
            probe = rest_probe(self._probe_http, config.predictor_base_url, self.name)
        self.link = PredictorLink(
            probe,
            address=config.predictor_host,
            model_name=self.name,
            health_check=config.predictor_health_check,
        )
        if self.predictor is not None:
            self.predictor.link = self.link

    def not_ready_reason(self) -> str | None:
        """Why this transformer is not ready (its weights, its predictor); None when it is."""
        if not self.ready:
            return f"model {self.name!r} has not loaded its weights yet"
        return None if self.link is None else self.link.not_ready_reason()

    async def check_ready(self) -> bool:
        """Readiness, the predictor re-asked when the last answer is a few seconds old."""
        if self.link is not None and self.ready:
            await self.link.refresh()
        return self.not_ready_reason() is None

    @property
    def _grpc_client(self) -> InferenceGRPCClient:
        # overrides KServe's private property, which builds a client without our channel options
        return kserve_compat.predictor_grpc_client_of(self, PREDICTOR_CHANNEL_ARGS)

    async def _send_to_predictor(self, request: InferRequest, headers: dict[str, str] | None) -> Any:
        return await Model.predict(self, request, headers)

    # --- v2 metadata ----------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        return v2_response.input_metadata()

    def get_output_types(self) -> list[dict[str, Any]]:
        return v2_response.output_metadata()

    def metadata_parameters(self) -> dict[str, object]:
        """Extra ``parameters`` of the REST model metadata: weights, limits, privacy options."""
        config = self.predictor_config
        return {
            "weights_official": bool(self.assets.get("official", False)),
            "assets": dict(self.assets),
            "json_audio_encoding": {v2_request.CONTENT_ENCODING: v2_request.BASE64},
            "privacy_methods": list(PRIVACY_METHODS),
            **self.limits,
            "predictor_protocol": None if config is None else config.protocol,
        }

    # --- admission (transformer.admission) ---------------------------------------------

    @contextlib.contextmanager
    def admitted(self, body_bytes: int) -> Iterator[None]:
        """Hold an admission ticket for the enclosed work, once per request (nested: reused).

        Raises:
            Overloaded: a budget is full (503 + Retry-After).
            ServiceNotReady: not loaded yet.
        """
        if _TICKET.get() is not None:
            yield
            return
        if self.admission is None:
            raise ServiceNotReady(f"model {self.name!r} has not loaded its weights yet")
        ticket = self.admission.admit(body_bytes)
        token = _TICKET.set(ticket)
        try:
            yield
        finally:
            _TICKET.reset(token)
            ticket.release()

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> InferReturnType:
        """KServe's handler chain inside an admission ticket (gRPC requests are admitted here;
        REST ones were admitted by their route before the body was read)."""
        try:
            with self.admitted(request_bytes(body)):
                return await super().__call__(body, headers, verb)
        except AudioGuardError as error:  # the handlers convert theirs: only admission's land here
            raise to_kserve_error(error) from None

    # --- the three KServe handlers --------------------------------------------------

    def _loaded(self) -> tuple[Analyzer, PredictorClient]:
        if self.analyzer is None or self.predictor is None:
            raise ServiceNotReady(f"model {self.name!r} has not loaded its weights yet")
        return self.analyzer, self.predictor

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> InferRequest:
        """v2 request -> predictor request; the prepared state waits in a context variable."""
        try:
            if not isinstance(payload, InferRequest):
                raise InvalidInput(
                    f"this model speaks the v2 inference protocol: POST /v2/models/{self.name}/infer"
                )
            analyzer, predictor = self._loaded()
            parse = v2_request.parse_audio_request
            call = await off_the_loop_if_large(request_bytes(payload), parse, payload)
            prepared = await analyzer.prepare(call.audio, call.options)
        except AudioGuardError as error:
            raise to_kserve_error(error) from None
        _PENDING.set(_PendingV2(payload, prepared))
        return predictor.request(prepared.predictor_windows, payload.id)

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """KServe's call to the predictor; an unreachable predictor is a 503."""
        try:
            return await self._loaded()[1].call(payload, headers)
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
            analyzer, predictor = self._loaded()
            scores = predictor.scores(result, pending.prepared.predictor_window_count)
            analysis = await analyzer.finish(pending.prepared, scores)
        except AudioGuardError as error:
            raise to_kserve_error(error) from None
        return v2_response.encode_result(analysis, pending.request)

    # --- the SIFIS route and the DHT listener -----------------------------------------

    async def analyze(
        self, audio: bytes, options: AnalysisOptions, headers: Mapping[str, str] | None = None
    ) -> AnalysisResult:
        """The whole analysis of one recording (the SIFIS route's entry point)."""
        analyzer, _ = self._loaded()
        return await analyzer.analyze(audio, options, headers=headers)

    async def process_dht_request(self, audio: bytes, request: dict[str, Any]) -> None:
        """The listener's callback: analyse a file named in a DHT request (result goes to the outbox)."""
        await self.analyze(audio, options_from_dht_request(self.sifis, request))
