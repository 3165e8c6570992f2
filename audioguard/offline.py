"""Classify audio files in one process, without servers: the library API.

The same chain the two services run (transformer pipeline, windows, the
predictor's classifier, labels, anomaly groups), composed in-process. Used by
``audioguard classify``, the benchmarks and the privacy report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.assets import ALL_ASSETS, CLASSIFIER_H5, asset_report, require_assets
from predictor.classifier import AttentionClassifier
from transformer.analysis.labels import Labels, load_labels
from transformer.analysis.windows import Windows, select_windows
from transformer.audio.pipeline import EmbeddedAudio, EmbeddingPipeline
from transformer.privacy import PrivacyRequest, parse_privacy_request


@dataclass(frozen=True)
class WindowResult:
    """Scores of one 10-embedding window (9.6 s at most) of a recording."""

    start_seconds: float
    end_seconds: float
    scores: np.ndarray  # (527,) float32
    top: list[dict[str, object]]


@dataclass(frozen=True)
class ClipResult:
    """Everything the offline classifier found in one recording."""

    duration_seconds: float
    privacy_method: str
    windows: list[WindowResult] = field(default_factory=list)

    @property
    def top(self) -> list[dict[str, object]]:
        """Top labels of the first window (MAX's answer for the clip)."""
        return self.windows[0].top


class OfflineClassifier:
    """VGGish + PCA + attention classifier loaded from one model directory."""

    def __init__(self, pipeline: EmbeddingPipeline, classifier: AttentionClassifier, model_dir: Path) -> None:
        self.pipeline = pipeline
        self.classifier = classifier
        self.model_dir = Path(model_dir)
        self.labels: Labels = load_labels()

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, *, fc2_relu: bool = True, max_audio_seconds: float = 600.0
    ) -> OfflineClassifier:
        """Load all three official-format files (MissingModelAsset names any absent one)."""
        paths = require_assets(model_dir, ALL_ASSETS)
        pipeline = EmbeddingPipeline.from_model_dir(
            model_dir, fc2_relu=fc2_relu, max_audio_seconds=max_audio_seconds
        )
        return cls(pipeline, AttentionClassifier.from_file(paths[CLASSIFIER_H5]), model_dir)

    def asset_report(self) -> dict[str, object]:
        """Which files are loaded and whether they are the official ones."""
        return asset_report(self.model_dir)

    def score_windows(self, windows: Windows) -> np.ndarray:
        """(W, 10, 128) uint8 windows -> (W, 527) float32 scores."""
        return self.classifier.predict(windows.embeddings)

    def classify_embedded(
        self,
        embedded: EmbeddedAudio,
        *,
        start_time: float = 0.0,
        all_windows: bool = False,
        hop: int = 10,
        top_k: int = 5,
        only: Sequence[str] | None = None,
    ) -> ClipResult:
        windows = select_windows(
            embedded.embeddings, start_time=start_time, all_windows=all_windows, hop=hop
        )
        scores = self.score_windows(windows)
        return ClipResult(
            duration_seconds=embedded.duration_seconds,
            privacy_method=embedded.privacy.method,
            windows=[
                WindowResult(
                    start_seconds=float(start),
                    end_seconds=float(end),
                    scores=row,
                    top=self.labels.top_k(row, top_k, only=only),
                )
                for start, end, row in zip(windows.start_seconds, windows.end_seconds, scores, strict=True)
            ],
        )

    def classify(
        self,
        audio: bytes,
        *,
        privacy: PrivacyRequest | None = None,
        start_time: float = 0.0,
        all_windows: bool = False,
        hop: int = 10,
        top_k: int = 5,
        only: Sequence[str] | None = None,
    ) -> ClipResult:
        """Encoded audio file bytes -> per-window scores and top-k labels."""
        request = privacy if privacy is not None else parse_privacy_request("none", {})
        embedded = self.pipeline.embed(audio, request)
        return self.classify_embedded(
            embedded, start_time=start_time, all_windows=all_windows, hop=hop, top_k=top_k, only=only
        )
