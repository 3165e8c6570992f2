"""The served transformer's pieces, built and connected (``transformer.model`` calls this)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.assets import TRANSFORMER_ASSETS, asset_report, log_asset_report
from transformer.admission import Admission
from transformer.analysis.analyzer import Analyzer
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.events import EventChange
from transformer.analysis.labels import load_labels
from transformer.analysis.record_context import RecordContext
from transformer.analysis.types import PredictorScores
from transformer.audio.worker import EmbeddingWorker
from transformer.dht.delivery import DeliveryService
from transformer.dht.listener import ModeCallback, ProcessCallback, RequestListener
from transformer.monitor.loop import RecordEvents
from transformer.monitor.service import MonitorService, logged_events
from transformer.predictor_client import PredictorClient, SendRequest
from transformer.settings import TransformerSettings
from transformer.ui.store import UiStore
from transformer.wiring.listening import listening, monitor_service
from transformer.wiring.mqtt import mqtt_sources, watch_sources
from transformer.wiring.services import (
    admission,
    analyzer,
    delivery_service,
    embedding_pipeline,
    embedding_worker,
    request_listener,
)


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
    ui_store: UiStore | None = None  # the page's timeline and window scores (live sources only)


def dht_mode_requests(monitor: MonitorService | None) -> ModeCallback | None:
    """What the DHT listener does with a mode request: the monitor's modes (none without sources)."""
    if monitor is None:
        return None

    async def apply(request: dict[str, Any]) -> object:
        return await monitor.set_mode(request, "dht")

    return apply


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
    sinks = settings.dht_url or settings.mqtt_url
    sources = [] if plan is None else mqtt_sources(plan.sources, groups)
    delivery = delivery_service(settings, sources) if sinks else None

    async def score_live(windows: np.ndarray) -> PredictorScores:
        """The live sources' windows through the same predictor call as a file's."""
        return await predictor.score(windows, None, None)

    monitor = ui_store = None
    if plan is not None:
        if settings.ui_enabled:
            ui_store = UiStore(settings.ui_store_path, settings.ui_retention_hours)
        monitor = monitor_service(
            settings,
            plan,
            embed=worker.embed_examples,
            score=score_live,
            record=logged_events(tee_events(None if delivery is None else delivery.record_events, ui_store)),
            observe=None if ui_store is None else ui_store.add_windows,
            record_modes=None if delivery is None else delivery.record_mode_changes,
            groups=groups,
            labels=labels,
            embedding_official=official,
        )
        if delivery is not None:
            watch_sources(delivery, monitor)
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
        listener=request_listener(settings, process_dht_request, dht_mode_requests(monitor))
        if settings.listener_enabled
        else None,
        monitor=monitor,
        ui_store=ui_store,
    )


def tee_events(record: RecordEvents | None, store: UiStore | None) -> RecordEvents | None:
    """``record`` (the outbox), then the page's copy of the records (kept after delivery)."""
    if store is None:
        return record

    def both(changes: Sequence[EventChange], context: RecordContext) -> None:
        if record is not None:
            record(changes, context)
        store.add_events(changes, context)

    return both
