"""The request side's collaborators from the settings: embedder, analysis, delivery, listener, admission."""

from __future__ import annotations

from collections.abc import Sequence

from contract.errors import InvalidConfiguration
from transformer.admission import Admission, memory_budget_mb
from transformer.analysis.analyzer import Analyzer, EmbedAudio, RecordAnalysis, ScoreWindows
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.labels import Labels
from transformer.audio.pipeline import EmbeddingPipeline
from transformer.audio.worker import EmbeddingWorker
from transformer.dht.clients import make_dht_client, websocket_url
from transformer.dht.delivery import DeliveryService
from transformer.dht.listener import ModeCallback, ProcessCallback, RequestListener
from transformer.dht.outbox import Outbox
from transformer.dht.sender import OutboxSender
from transformer.mqtt.discovery import SourceEntities
from transformer.settings import TransformerSettings
from transformer.wiring.configs import analysis_config, privacy_policy
from transformer.wiring.mqtt import mqtt_config, mqtt_sender


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


def delivery_service(
    settings: TransformerSettings, mqtt_sources: Sequence[SourceEntities] = ()
) -> DeliveryService:
    """The outbox at ``outbox_path`` and a sender per configured sink, each on its own table: the
    DHT (``dht_url``: client per ``dht_transport``, topics and post mode) and MQTT (``mqtt_url``,
    with ``mqtt_sources`` as Home Assistant devices).

    Raises:
        InvalidConfiguration: neither ``dht_url`` nor ``mqtt_url`` is set, one is invalid, or the
            outbox cannot be opened.
    """
    if not settings.dht_url and not settings.mqtt_url:
        raise InvalidConfiguration(
            "delivery needs dht_url (e.g. http://localhost:3000) or mqtt_url (e.g. mqtt://localhost:1883)"
        )
    client = None
    if settings.dht_url:
        try:
            client = make_dht_client(settings.dht_url, settings.dht_transport, settings.dht_timeout_seconds)
        except ValueError as error:
            raise InvalidConfiguration(str(error)) from None
    mqtt = mqtt_config(settings) if settings.mqtt_url else None  # checked before the file opens
    outbox = Outbox(settings.outbox_path, settings.outbox_max_items, dht=client is not None)
    return DeliveryService(
        outbox,
        post_mode=settings.dht_post,
        results_topic=(settings.dht_results_topic, settings.dht_results_uuid),
        anomaly_topic=settings.dht_anomaly_topic,
        sender=None if client is None else OutboxSender(outbox, client),
        mode_topic=settings.dht_mode_topic,
        others=[] if mqtt is None else [mqtt_sender(settings, mqtt, outbox, mqtt_sources)],
    )


def request_listener(
    settings: TransformerSettings, process: ProcessCallback, modes: ModeCallback | None = None
) -> RequestListener:
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
        url,
        folder,
        process,
        topic_name=settings.listener_topic,
        max_file_bytes=settings.max_upload_bytes,
        modes=modes,
    )


def admission(settings: TransformerSettings) -> Admission:
    return Admission(
        max_analyses=settings.max_inflight_analyses,
        max_memory_mb=settings.max_inflight_mb or memory_budget_mb(settings.memory_limit_mb),
        retry_after_seconds=settings.retry_after_seconds,
    )
