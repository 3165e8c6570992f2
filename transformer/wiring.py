"""The composition root: the transformer's settings become its collaborators, here only.

The served model (``transformer.model``), the offline classifier (``audioguard.offline``)
and the local monitor (``audioguard.monitor``) build what they run with these functions, so
the three run the same analysis, privacy policy, lifecycle and detection. Below this module
no code reads ``TransformerSettings``: each piece gets a small frozen config
(``AnalysisConfig``, ``PrivacyPolicy``, ``LifecycleSettings``, ``SifisConfig``) or plain
arguments. An import contract (``pyproject.toml``) holds the rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.assets import TRANSFORMER_ASSETS, asset_report, log_asset_report
from contract.errors import AudioGuardError, InvalidConfiguration
from transformer.admission import Admission, memory_budget_mb
from transformer.analysis.analyzer import AnalysisConfig, Analyzer, EmbedAudio, RecordAnalysis, ScoreWindows
from transformer.analysis.anomaly_groups import AnomalyGroup, load_anomaly_groups
from transformer.analysis.events import LifecycleSettings
from transformer.analysis.labels import Labels, load_labels
from transformer.analysis.types import PredictorScores
from transformer.audio.pipeline import EmbeddingPipeline
from transformer.audio.worker import EmbeddingWorker
from transformer.dht.clients import make_dht_client, websocket_url
from transformer.dht.delivery import DeliveryService
from transformer.dht.listener import ProcessCallback, RequestListener
from transformer.dht.outbox import Outbox
from transformer.dht.sender import OutboxSender
from transformer.monitor.loop import EmbedExamples, Monitor, RecordEvents
from transformer.monitor.loop import ScoreWindows as ScoreLiveWindows
from transformer.monitor.service import MonitorService, logged_events
from transformer.monitor.sources import SourceSpec, load_sources
from transformer.predictor_client import PredictorClient, SendRequest
from transformer.privacy import PrivacyPolicy, PrivacyRequest
from transformer.protocol.sifis_schema import SifisConfig
from transformer.settings import TransformerSettings

# --- small frozen configs ----------------------------------------------------------------


def lifecycle(settings: TransformerSettings) -> LifecycleSettings:
    return LifecycleSettings(
        settings.event_min_hits, settings.event_within_hops, settings.event_max_not_heard_seconds
    )


def analysis_config(settings: TransformerSettings) -> AnalysisConfig:
    return AnalysisConfig(
        analyzer_id=settings.analyzer_id,
        top_k=settings.top_k,
        label_hop=settings.window_hop,
        detection_hop=settings.monitor_hop,
        gate_dbfs=settings.loudness_gate_dbfs,
        lifecycle=lifecycle(settings),
        max_upload_mb=settings.max_upload_mb,
    )


def privacy_policy(settings: TransformerSettings) -> PrivacyPolicy:
    return PrivacyPolicy(
        settings.privacy_minimum, settings.privacy_enforcement, settings.scramble_segment_seconds
    )


def sifis_config(settings: TransformerSettings) -> SifisConfig:
    return SifisConfig(settings.top_k, settings.sifis_unknown_method, settings.max_upload_mb)


# --- the audio stage ---------------------------------------------------------------------


def embedding_pipeline(settings: TransformerSettings) -> EmbeddingPipeline:
    """VGGish + PCA from ``model_dir`` on the configured runtime (ModelAssetError names a bad file)."""
    return EmbeddingPipeline.from_model_dir(
        settings.model_dir,
        fc2_relu=settings.vggish_fc2_relu,
        batch_size=settings.vggish_batch_size,
        max_audio_seconds=settings.max_audio_seconds,
        decode_budget_hz=settings.decode_budget_hz,
        runtime=settings.vggish_runtime,
        precision=settings.vggish_precision,
        threads=settings.vggish_threads,
        cache_dir=settings.vggish_cache_dir,
    )


def embedding_worker(
    settings: TransformerSettings, pipeline: EmbeddingPipeline, name: str
) -> EmbeddingWorker:
    """The one embedder of files and live sources: worker threads, VGGish batched across them."""
    return EmbeddingWorker(
        pipeline,
        name=name,
        threads=settings.inference_threads,
        batching=settings.vggish_request_batching,
        batch_size=settings.vggish_batch_size,
        batch_wait_ms=settings.vggish_batch_wait_ms,
    )


def analyzer(
    settings: TransformerSettings,
    *,
    embed: EmbedAudio,
    score: ScoreWindows,
    groups: Sequence[AnomalyGroup],
    labels: Labels,
    record: RecordAnalysis | None = None,
    embedding_official: bool = False,
) -> Analyzer:
    return Analyzer(
        analysis_config(settings),
        privacy_policy(settings),
        embed=embed,
        score=score,
        groups=groups,
        labels=labels,
        record=record,
        embedding_official=embedding_official,
    )


# --- delivery ----------------------------------------------------------------------------


def delivery_service(settings: TransformerSettings) -> DeliveryService:
    """Outbox at ``outbox_path``, DHT client per ``dht_transport``, topics and post mode, and its
    sender.

    Raises:
        InvalidConfiguration: ``dht_url`` is unset or invalid, or the outbox cannot be opened.
    """
    if not settings.dht_url:
        raise InvalidConfiguration("DHT delivery needs dht_url (e.g. http://localhost:3000)")
    try:
        client = make_dht_client(settings.dht_url, settings.dht_transport, settings.dht_timeout_seconds)
    except ValueError as error:
        raise InvalidConfiguration(str(error)) from None
    outbox = Outbox(settings.outbox_path, settings.outbox_max_items)
    return DeliveryService(
        outbox,
        post_mode=settings.dht_post,
        results_topic=(settings.dht_results_topic, settings.dht_results_uuid),
        anomaly_topic=settings.dht_anomaly_topic,
        sender=OutboxSender(outbox, client),
    )


def request_listener(settings: TransformerSettings, process: ProcessCallback) -> RequestListener:
    """The listener for ``dht_url``, ``listener_topic`` and ``listener_audio_dir`` (files limited
    to ``max_upload_mb``).

    Raises:
        InvalidConfiguration: ``dht_url`` unset or invalid, or the audio folder missing.
    """
    if not settings.dht_url:
        raise InvalidConfiguration("the DHT request listener needs dht_url")
    folder = settings.listener_audio_dir
    if folder is None or not folder.is_dir():
        raise InvalidConfiguration(
            f"the DHT request listener needs listener_audio_dir to be an existing folder, got {folder}"
        )
    try:
        url = websocket_url(settings.dht_url)
    except ValueError as error:
        raise InvalidConfiguration(str(error)) from None
    return RequestListener(
        url, folder, process, topic_name=settings.listener_topic, max_file_bytes=settings.max_upload_bytes
    )


def admission(settings: TransformerSettings) -> Admission:
    return Admission(
        max_analyses=settings.max_inflight_analyses,
        max_memory_mb=settings.max_inflight_mb or memory_budget_mb(settings.memory_limit_mb),
        retry_after_seconds=settings.retry_after_seconds,
    )


def service_parameters(settings: TransformerSettings) -> dict[str, object]:
    """What the model's metadata tells callers of its limits and privacy policy."""
    return {
        "privacy_minimum": settings.privacy_minimum,
        "privacy_enforcement": settings.privacy_enforcement,
        "max_upload_mb": settings.max_upload_mb,
        "decode_budget_hz": settings.decode_budget_hz,
        "max_audio_seconds": settings.max_audio_seconds,
        "top_k": settings.top_k,
    }


def start_summary(settings: TransformerSettings) -> str:
    """The start line's settings: ``VGGish on onnxruntime fp32, privacy minimum none``."""
    return (
        f"VGGish on {settings.vggish_runtime} {settings.vggish_precision}, "
        f"privacy minimum {settings.privacy_minimum}"
    )


# --- listening ---------------------------------------------------------------------------


def source_privacy(sources: Sequence[SourceSpec], policy: PrivacyPolicy) -> dict[str, PrivacyRequest]:
    """Each source's anonymisation with the operator's minimum applied, as to a request: a source
    naming no method gets the minimum; one naming a weaker method is upgraded, or refused
    (InvalidConfiguration, before anything starts) when the enforcement is "reject"."""
    chosen = {}
    for source in sources:
        try:
            chosen[source.name] = policy.enforce(policy.parse(source.privacy, source.privacy_params))
        except AudioGuardError as error:
            raise InvalidConfiguration(f"source {source.name}: {error.message}") from None
    return chosen


@dataclass(frozen=True)
class Listening:
    """The monitor's sources, read and checked before any model loads."""

    sources: tuple[SourceSpec, ...]
    privacy: dict[str, PrivacyRequest]


def listening(settings: TransformerSettings, sources_file: Path | None = None) -> Listening:
    """The sources of ``sources_file`` (default: the settings') with their privacy (InvalidConfiguration)."""
    path = sources_file or settings.sources_file
    if path is None:
        raise InvalidConfiguration("listening needs a sources file (sources_file)")
    sources = tuple(load_sources(path))
    return Listening(sources, source_privacy(sources, privacy_policy(settings)))


def monitor_service(
    settings: TransformerSettings,
    plan: Listening,
    *,
    embed: EmbedExamples,
    score: ScoreLiveWindows,
    record: RecordEvents,
    groups: Sequence[AnomalyGroup],
    labels: Labels,
    embedding_official: bool,
    queue_chunks: int | None = None,
    lifecycle_override: LifecycleSettings | None = None,
    hop: int | None = None,
    ffmpeg: str | None = None,
) -> MonitorService:
    """The monitor over ``plan``'s sources: the service's detection settings, a fresh session."""
    session = str(uuid.uuid4())
    monitor = Monitor(
        plan.sources,
        embed=embed,
        score=score,
        record=record,
        groups=groups,
        labels=labels,
        lifecycle=lifecycle_override or lifecycle(settings),
        hop=hop or settings.monitor_hop,
        gate_dbfs=settings.loudness_gate_dbfs,
        analyzer_id=settings.analyzer_id,
        privacy=plan.privacy,
        session=session,
        embedding_official=embedding_official,
    )
    return MonitorService(
        plan.sources,
        monitor,
        queue_chunks=settings.monitor_queue_chunks if queue_chunks is None else queue_chunks,
        ffmpeg=ffmpeg or settings.ffmpeg_path,
        session=session,
    )


# --- the served transformer ----------------------------------------------------------------


@dataclass(frozen=True)
class TransformerParts:
    """Everything the served transformer runs, built and connected."""

    assets: dict[str, object]
    worker: EmbeddingWorker
    predictor: PredictorClient
    analyzer: Analyzer
    admission: Admission
    delivery: DeliveryService | None
    listener: RequestListener | None
    monitor: MonitorService | None


def transformer_parts(
    settings: TransformerSettings,
    *,
    name: str,
    send: SendRequest,
    binary: bool,
    process_dht_request: ProcessCallback,
) -> TransformerParts:
    """The served transformer's pieces: the sources checked first, then the weights loaded.

    ``send`` is KServe's call to the predictor (the model's); ``binary`` sends raw tensors
    (gRPC v2); ``process_dht_request`` analyses a DHT request (the model's).

    Raises:
        ModelAssetError: a weight file is missing or malformed.
        InvalidConfiguration: anomaly groups, sources, DHT or listener settings are invalid.
    """
    groups = load_anomaly_groups(settings.anomaly_groups_file)
    labels = load_labels()
    # the sources are read and checked before the weights load
    plan = listening(settings) if settings.sources_file is not None else None
    assets = asset_report(settings.model_dir, TRANSFORMER_ASSETS)
    log_asset_report(assets, "transformer")
    official = bool(assets.get("official", False))
    worker = embedding_worker(settings, embedding_pipeline(settings), name)
    predictor = PredictorClient(send, model_name=name, binary=binary)
    delivery = delivery_service(settings) if settings.dht_url else None

    async def score_live(windows: np.ndarray) -> PredictorScores:
        """The live sources' windows through the same predictor call as a file's."""
        return await predictor.score(windows, None, None)

    monitor = None
    if plan is not None:
        monitor = monitor_service(
            settings,
            plan,
            embed=worker.embed_examples,
            score=score_live,
            record=logged_events(None if delivery is None else delivery.record_events),
            groups=groups,
            labels=labels,
            embedding_official=official,
        )
    return TransformerParts(
        assets=assets,
        worker=worker,
        predictor=predictor,
        analyzer=analyzer(
            settings,
            embed=worker.embed,
            score=predictor.score,
            groups=groups,
            labels=labels,
            record=None if delivery is None else delivery.record_analysis,
            embedding_official=official,
        ),
        admission=admission(settings),
        delivery=delivery,
        listener=request_listener(settings, process_dht_request) if settings.listener_enabled else None,
        monitor=monitor,
    )
