"""The real ``Analyzer`` over injected embeddings and scores: recordings whose events are known.

The embedder stand-in returns known embeddings (row i holds the value i) so the windows the
scorer receives can be checked row by row; the scores are set per window (by the example it
starts at) by the test, from the shipped group file read directly. What comes out is what
production makes of it: the results, events and records the services post.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np

from contract.constants import NUM_CLASSES
from transformer.analysis.analyzer import AnalysisConfig, Analyzer
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.labels import load_labels
from transformer.analysis.types import AnalysisOptions, AnalysisResult, PredictorScores
from transformer.audio.embedded import EmbeddedAudio
from transformer.privacy import PrivacyPolicy, PrivacyRequest

EXAMPLES = 20  # label windows (hop 10): 0-9.6 s and 9.6-19.2 s; scanned windows start at 0..10
AUDIO = b"encoded audio bytes"


def shipped_group(name: str) -> dict[str, Any]:
    document = json.loads(resources.files("transformer").joinpath("data", "anomaly_groups.json").read_text())
    return next(group for group in document["groups"] if group["name"] == name)


class Rig:
    """Records what the analysis hands to its injected collaborators."""

    def __init__(
        self,
        scores: np.ndarray,
        example_dbfs: np.ndarray | None = None,
        profile: np.ndarray | None = None,
        examples: int = EXAMPLES,
    ) -> None:
        """``scores[i]``: the scores of the window that starts at example i."""
        self.scores = scores
        self.examples = examples
        self.example_dbfs = np.full(examples, -20.0) if example_dbfs is None else example_dbfs
        self.profile = profile
        self.embedded_with: list[PrivacyRequest] = []
        self.scored: list[tuple[np.ndarray, str | None, Mapping[str, str] | None]] = []
        self.recorded: list[AnalysisResult] = []
        self.classifier_official: bool | None = True
        self.embedding_official = True

    async def embed(self, audio: bytes, privacy: PrivacyRequest) -> EmbeddedAudio:
        assert audio == AUDIO
        self.embedded_with.append(privacy)
        rows = np.repeat(np.arange(self.examples, dtype=np.uint8)[:, None], 128, axis=1)
        return EmbeddedAudio(rows, self.example_dbfs, self.examples * 0.96, privacy, self.profile)

    async def score(
        self, windows: np.ndarray, request_id: str | None, headers: Mapping[str, str] | None
    ) -> PredictorScores:
        self.scored.append((windows, request_id, headers))
        # a window's first row holds its first example's index (see ``embed``)
        values = np.stack([self.scores[int(window[0, 0])] for window in windows])
        return PredictorScores(values, self.classifier_official)

    def record(self, result: AnalysisResult) -> None:
        self.recorded.append(result)

    def analyzer(self, policy: PrivacyPolicy | None = None, **config: Any) -> Analyzer:
        return Analyzer(
            AnalysisConfig(analyzer_id="home-1", **config),
            policy or PrivacyPolicy(),
            embed=self.embed,
            score=self.score,
            groups=load_anomaly_groups(),
            labels=load_labels(),
            record=self.record,
            embedding_official=self.embedding_official,
        )


def quiet_scores(examples: int = EXAMPLES) -> np.ndarray:
    return np.full((examples, NUM_CLASSES), 0.01, dtype=np.float32)


def hot(scores: np.ndarray, group: str, starts: range | list[int], score: float = 0.95) -> int:
    """Make ``group``'s first member reach ``score`` in the windows starting at ``starts``."""
    member = int(shipped_group(group)["members"][0])
    scores[list(starts), member] = score
    return member


def analysed(
    hot_windows: Mapping[str, list[int]], options: AnalysisOptions | None = None, **config: Any
) -> AnalysisResult:
    """A 20-example recording analysed by the real analysis, ``group: [window starts]`` firing."""
    import asyncio

    scores = quiet_scores()
    for group, starts in hot_windows.items():
        hot(scores, group, starts)
    rig = Rig(scores)
    rig.embedding_official = False
    return asyncio.run(rig.analyzer(**config).analyze(AUDIO, options or AnalysisOptions()))
