"""The analysis of one recording: options -> embeddings -> windows -> scores -> labels and anomalies.

No transport here (no KServe, no HTTP): the v2 model, the SIFIS route and the
DHT listener all run this, and its tests run it without TensorFlow. What it
needs from outside is injected:

- ``embed(audio, privacy)``: the audio stage (``transformer.audio.worker``);
- ``score(windows, request_id, headers)``: the predictor (``transformer.predictor_client``),
  scores plus its verdict on the classifier's weights;
- ``record(result, anomalies)``: the durable outbox (``transformer.dht.delivery``),
  called in a worker thread before the result is returned, so an anomaly the
  caller hears about is already on disk.

The v2 path splits the work where KServe calls the predictor itself:
``prepare`` up to the windows, then ``finish`` with the scores.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from contract.errors import AudioTooLarge
from contract.rounding import seconds_value
from contract.weights_status import WeightsStatus
from transformer.analysis.anomalies import Anomaly, detect_anomalies
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.labels import Labels
from transformer.analysis.types import AnalysisOptions, AnalysisResult, PredictorScores, WindowPrediction
from transformer.analysis.windows import Windows, select_windows
from transformer.audio.embedded import EmbeddedAudio
from transformer.audio.loudness import window_dbfs
from transformer.metrics import count_anomalies
from transformer.privacy import PrivacyRequest, enforce_minimum, parse_privacy_request
from transformer.settings import TransformerSettings

EmbedAudio = Callable[[bytes, PrivacyRequest], Awaitable[EmbeddedAudio]]
ScoreWindows = Callable[[np.ndarray, str | None, Mapping[str, str] | None], Awaitable[PredictorScores]]
RecordAnalysis = Callable[[AnalysisResult, Sequence[Anomaly]], None]


def new_analysis_id(analyzer_id: str) -> str:
    """The SIFIS analysis id: analyzer id + UTC time + 64 random hex digits.

    The old service ended it with the sha256 of the audio: a fingerprint that tells
    whoever holds a known recording whether it was made in this home. The random
    part keeps the id's shape and uniqueness and reveals nothing about the audio.
    """
    return f"{analyzer_id}{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}{secrets.token_hex(32)}"


def upload_too_large(max_upload_mb: float) -> AudioTooLarge:
    """The 413 of every path (v2 REST, v2 gRPC, SIFIS, listener), naming the configured limit."""
    return AudioTooLarge(
        f"the audio upload exceeds the {max_upload_mb:g} MiB limit (max_upload_mb / AUDIOGUARD_MAX_UPLOAD_MB)"
    )


@dataclass(frozen=True)
class PreparedAnalysis:
    """One recording up to its classifier windows (no audio kept).

    Attributes:
        options: the validated request options.
        embedded: the recording's embeddings, loudness and applied privacy.
        windows: the windows whose labels are returned: MAX's one window at
            ``start_time``, or every window from there with ``all_windows``.
        scan: the windows scanned for anomalies: always the whole recording,
            so an alarm late in a long recording is never missed.
        privacy_requested: canonical method the caller asked for (the applied
            one when it named none: it asked for the service default).
        analysis_id: SIFIS analysis id (``new_analysis_id``).
    """

    options: AnalysisOptions
    embedded: EmbeddedAudio
    windows: Windows
    scan: Windows
    privacy_requested: str
    analysis_id: str

    @property
    def shared(self) -> bool:
        """The label windows are the scanned ones (scored once)."""
        return len(self.windows) == len(self.scan) and bool(
            np.array_equal(self.windows.start_seconds, self.scan.start_seconds)
        )

    @property
    def predictor_windows(self) -> np.ndarray:
        """(W, 10, 128) uint8: what the predictor scores, label windows first, then the scan."""
        if self.shared:
            return self.windows.embeddings
        return np.concatenate([self.windows.embeddings, self.scan.embeddings])

    @property
    def predictor_window_count(self) -> int:
        """Rows of ``predictor_windows`` (without building it)."""
        return len(self.windows) if self.shared else len(self.windows) + len(self.scan)

    def split_scores(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label-window scores, scan scores) of the predictor's answer for ``predictor_windows``."""
        if self.shared:
            return scores, scores
        return scores[: len(self.windows)], scores[len(self.windows) :]


class Analyzer:
    """The analysis use case, configured once per service."""

    def __init__(
        self,
        settings: TransformerSettings,
        *,
        embed: EmbedAudio,
        score: ScoreWindows,
        groups: Sequence[AnomalyGroup],
        labels: Labels,
        record: RecordAnalysis | None = None,
        embedding_official: bool = False,
    ) -> None:
        """``embedding_official``: the VGGish and PCA files are the official ones (sha512);
        the classifier's verdict comes with each predictor answer."""
        self.settings = settings
        self.embedding_official = embedding_official
        self._embed = embed
        self._score = score
        self.groups = tuple(groups)
        self.labels = labels
        self._record = record

    def privacy_for(self, options: AnalysisOptions) -> tuple[PrivacyRequest, PrivacyRequest]:
        """(requested, applied): the caller's request and what the operator minimum makes of it.

        Raises:
            InvalidParameter: unknown method or parameter (400).
            PrivacyPolicyViolation: a weaker method named with enforcement "reject" (403).
        """
        defaults = {"scramble": {"segment_seconds": self.settings.scramble_segment_seconds}}
        requested = parse_privacy_request(options.privacy_method, options.privacy_params, defaults=defaults)
        applied = enforce_minimum(
            requested,
            self.settings.privacy_minimum,
            self.settings.privacy_enforcement,
            defaults=defaults,
        )
        return requested, applied

    async def prepare(self, audio: bytes, options: AnalysisOptions) -> PreparedAnalysis:
        """Audio bytes -> anonymised embeddings -> classifier windows (typed 4xx errors)."""
        if len(audio) > self.settings.max_upload_bytes:
            raise upload_too_large(self.settings.max_upload_mb)
        requested, applied = self.privacy_for(options)
        embedded = await self._embed(audio, applied)
        hop = self.settings.window_hop
        windows = select_windows(
            embedded.embeddings, start_time=options.start_time, all_windows=options.all_windows, hop=hop
        )
        return PreparedAnalysis(
            options=options,
            embedded=embedded,
            windows=windows,
            scan=select_windows(embedded.embeddings, all_windows=True, hop=hop),
            privacy_requested=requested.method if requested.named else applied.method,
            analysis_id=new_analysis_id(self.settings.analyzer_id),
        )

    async def finish(self, prepared: PreparedAnalysis, predictor_scores: PredictorScores) -> AnalysisResult:
        """Scores of ``prepared.predictor_windows`` -> top-k, anomalies, the durable record."""
        windows, scan = prepared.windows, prepared.scan
        scores, scan_scores = prepared.split_scores(predictor_scores.values)
        options = prepared.options
        top_k = options.top_k or self.settings.top_k
        anomalies = detect_anomalies(
            scan_scores,
            scan.start_seconds,
            scan.end_seconds,
            self.groups,
            window_dbfs=window_dbfs(prepared.embedded.example_dbfs, scan.start_seconds, scan.end_seconds),
            gate_dbfs=self.settings.loudness_gate_dbfs,
            labels=self.labels,
        )
        result = AnalysisResult(
            windows=[
                WindowPrediction(
                    seconds_value(start),
                    seconds_value(end),
                    self.labels.top_k(row, top_k, only=options.label_filter),
                    scores=row,
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
            scanned_seconds=(seconds_value(scan.start_seconds[0]), seconds_value(scan.end_seconds.max())),
            weights=WeightsStatus(self.embedding_official, predictor_scores.weights_official),
        )
        count_anomalies(anomalies)
        if self._record is not None:
            # durable before the caller hears about it: an anomaly is never lost
            await asyncio.to_thread(self._record, result, anomalies)
        return result

    async def analyze(
        self,
        audio: bytes,
        options: AnalysisOptions,
        *,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AnalysisResult:
        """The whole analysis of one recording (SIFIS route, DHT listener)."""
        prepared = await self.prepare(audio, options)
        scores = await self._score(prepared.predictor_windows, request_id, headers)
        return await self.finish(prepared, scores)
