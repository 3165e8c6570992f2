"""Classify audio files in one process, without servers: the library API.

The analysis the transformer runs (``transformer.analysis.analyzer``: privacy,
windows, top-k labels, the anomaly scan of the whole recording with the same
groups, thresholds and loudness gate), with the predictor's classifier called
in-process instead of over v2. The result is the service's own
``AnalysisResult``; its JSON is the service's (``transformer.analysis.document``).
Used by ``audioguard classify``, the benchmarks and the privacy report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from contract.assets import (
    ALL_ASSETS,
    CLASSIFIER_H5,
    PREDICTOR_ASSETS,
    TRANSFORMER_ASSETS,
    asset_report,
    require_assets,
)
from contract.weights_status import WeightsStatus
from predictor.classifier import AttentionClassifier
from transformer import wiring
from transformer.analysis.analyzer import Analyzer, EmbedAudio
from transformer.analysis.anomaly_groups import AnomalyGroup, load_anomaly_groups
from transformer.analysis.labels import Labels, load_labels
from transformer.analysis.types import AnalysisOptions, AnalysisResult, PredictorScores
from transformer.analysis.windows import Windows
from transformer.audio.pipeline import EmbeddedAudio, EmbeddingPipeline
from transformer.privacy import PrivacyRequest
from transformer.settings import TransformerSettings


class OfflineClassifier:
    """VGGish + PCA + attention classifier from one model directory, analysed as the service does."""

    def __init__(
        self,
        pipeline: EmbeddingPipeline,
        classifier: AttentionClassifier,
        settings: TransformerSettings,
        weights: WeightsStatus,
    ) -> None:
        self.pipeline = pipeline
        self.classifier = classifier
        self.settings = settings
        self.weights = weights
        self.labels: Labels = load_labels()
        self.groups: tuple[AnomalyGroup, ...] = tuple(load_anomaly_groups(settings.anomaly_groups_file))

    @property
    def model_dir(self) -> Path:
        return self.settings.model_dir

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, *, max_audio_seconds: float = 600.0, **settings: Any
    ) -> OfflineClassifier:
        """Load all three official-format files (MissingModelAsset names any absent one).

        ``settings`` are further ``TransformerSettings`` fields (anomaly groups file,
        loudness gate, VGGish runtime ...); ``AUDIOGUARD_*`` variables apply as in the service.
        """
        config = TransformerSettings(model_dir=model_dir, max_audio_seconds=max_audio_seconds, **settings)
        paths = require_assets(config.model_dir, ALL_ASSETS)
        weights = WeightsStatus(
            embedding_official=bool(asset_report(config.model_dir, TRANSFORMER_ASSETS)["official"]),
            classifier_official=bool(asset_report(config.model_dir, PREDICTOR_ASSETS)["official"]),
        )
        pipeline = wiring.embedding_pipeline(config)
        return cls(pipeline, AttentionClassifier.from_file(paths[CLASSIFIER_H5]), config, weights)

    def score_windows(self, windows: Windows) -> np.ndarray:
        """(W, 10, 128) uint8 windows -> (W, 527) float32 scores."""
        return self.classifier.predict(windows.embeddings)

    def classify(
        self,
        audio: bytes,
        *,
        privacy: str | PrivacyRequest | None = None,
        privacy_params: Mapping[str, object] | None = None,
        start_time: float = 0.0,
        all_windows: bool = False,
        hop: int | None = None,
        top_k: int = 5,
        only: Sequence[str] | None = None,
    ) -> AnalysisResult:
        """Encoded audio file bytes -> the service's analysis: labels per window and anomalies.

        Args:
            privacy: a method name (parameters in ``privacy_params``; None = the configured
                minimum, as a request naming none gets) or a parsed request, applied as given
                (its test seed kept).
            hop: window hop in embeddings for the labels of ``all_windows`` (None = ``window_hop``
                of the settings, 10 by default); anomalies are scanned every ``monitor_hop``
                examples, as a live source is.
        """
        embed: EmbedAudio = self._embed
        if isinstance(privacy, PrivacyRequest):
            method: str | None = privacy.method
            params: Mapping[str, object] = dict(privacy.params)
            given = privacy

            async def as_given(audio: bytes, _applied: PrivacyRequest) -> EmbeddedAudio:
                return self.pipeline.embed(audio, given)

            embed = as_given

        else:
            method, params = privacy, privacy_params or {}
        options = AnalysisOptions(
            privacy_method=method,
            privacy_params=params,
            start_time=start_time,
            top_k=top_k,
            all_windows=all_windows,
            label_filter=only,
            origin="offline",
        )
        return _run(self._analyzer(hop, embed).analyze(audio, options))

    def classify_embedded(
        self, embedded: EmbeddedAudio, *, all_windows: bool = False, hop: int | None = None, top_k: int = 5
    ) -> AnalysisResult:
        """The analysis of audio already embedded (``pipeline.embed``), e.g. under several privacy methods."""

        async def given(_audio: bytes, _privacy: PrivacyRequest) -> EmbeddedAudio:
            return embedded

        options = AnalysisOptions(
            privacy_method=embedded.privacy.method, all_windows=all_windows, top_k=top_k, origin="offline"
        )
        return _run(self._analyzer(hop, given).analyze(b"", options))

    def _analyzer(self, hop: int | None, embed: EmbedAudio) -> Analyzer:
        settings = self.settings if hop is None else self.settings.model_copy(update={"window_hop": hop})
        return wiring.analyzer(
            settings,
            embed=embed,
            score=self._score,
            groups=self.groups,
            labels=self.labels,
            embedding_official=self.weights.embedding_official,
        )

    async def _embed(self, audio: bytes, privacy: PrivacyRequest) -> EmbeddedAudio:
        return self.pipeline.embed(audio, privacy)

    async def _score(self, windows: np.ndarray, _request_id: object, _headers: object) -> PredictorScores:
        return PredictorScores(self.classifier.predict(windows), self.weights.classifier_official)


def _run(analysis: Coroutine[Any, Any, AnalysisResult]) -> AnalysisResult:
    """Run the analysis to its end, also from code that already runs an event loop (a notebook,
    an async test): then in a thread of its own, with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(analysis)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, analysis).result()
