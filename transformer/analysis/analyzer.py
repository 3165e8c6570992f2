"""The analysis of one recording: options -> embeddings -> windows -> scores -> labels and anomalies.

No transport here (no KServe, no HTTP): the v2 model, the SIFIS route and the
DHT listener all run this, and its tests run it without TensorFlow. What it
needs from outside is injected:

- ``embed(audio, privacy)``: the audio stage (``transformer.audio.worker``);
- ``score(windows, request_id, headers)``: the predictor (``transformer.predictor_client``),
  scores plus its verdict on the classifier's weights;
- ``record(result)``: the durable outbox (``transformer.dht.delivery``),
  called in a worker thread before the result is returned, so an anomaly the
  caller hears about is already on disk.

A recording is a finite source: its windows (every ``detection_hop`` examples, as a live
source's) go through the one detection step (``anomalies.Detector``) and an event tracker
(``events``) in order, and the tracker is closed at the recording's end, so a file and a
stream of the same audio give the same events (``records`` turns them into DHT records).

The v2 path splits the work where KServe calls the predictor itself:
``prepare`` up to the windows, then ``finish`` with the scores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from contract.errors import upload_too_large
from contract.rounding import seconds_value
from contract.weights_status import WeightsStatus
from transformer.analysis.anomalies import Detector, WindowSpan
from transformer.analysis.anomaly_groups import AnomalyGroup
from transformer.analysis.detectors.sudden_loud import SuddenLoud, SuddenLoudSettings
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings
from transformer.analysis.labels import Labels
from transformer.analysis.records import result_value, summaries
from transformer.analysis.types import AnalysisOptions, AnalysisResult, PredictorScores, WindowPrediction
from transformer.analysis.windows import Windows, select_windows
from transformer.audio.embedded import EmbeddedAudio
from transformer.audio.loudness import window_dbfs
from transformer.metrics import count_events
from transformer.privacy import PrivacyPolicy, PrivacyRequest

EmbedAudio = Callable[[bytes, PrivacyRequest], Awaitable[EmbeddedAudio]]
ScoreWindows = Callable[[np.ndarray, str | None, Mapping[str, str] | None], Awaitable[PredictorScores]]
RecordAnalysis = Callable[[AnalysisResult], None]


@dataclass(frozen=True)
class AnalysisConfig:
    """What the analysis needs of the service's settings (made by ``transformer.wiring``).

    Attributes:
        analyzer_id: SIFIS analyzer id (in every analysis id and record).
        top_k: labels per window unless the request asks otherwise.
        label_hop: hop in examples between the label windows of ``all_windows``.
        detection_hop: hop in examples between the windows scanned for anomalies (a live
            source's hop: a recording and a stream give the same events).
        gate_dbfs: loudness gate (None: none).
        lifecycle: when hits become an event, and when it ends.
        max_upload_mb: the largest upload accepted.
        sudden_loud: the sudden-loud detector's settings (None: off); a recording has no
            history, so it rises over its own short-term background only.
    """

    analyzer_id: str = "audioguard"
    top_k: int = 5
    label_hop: int = EMBEDDINGS_PER_WINDOW
    detection_hop: int = 1
    gate_dbfs: float | None = None
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    max_upload_mb: float = 100.0
    sudden_loud: SuddenLoudSettings | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def new_analysis_id(analyzer_id: str) -> str:
    """The SIFIS analysis id: analyzer id + UTC time + 64 random hex digits.

    The old service ended it with the sha256 of the audio: a fingerprint that tells
    whoever holds a known recording whether it was made in this home. The random
    part keeps the id's shape and uniqueness and reveals nothing about the audio.
    """
    return f"{analyzer_id}{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}{secrets.token_hex(32)}"


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

    @functools.cached_property
    def label_rows(self) -> np.ndarray:
        """(L,) int: the row of ``predictor_windows`` that scores each label window. A label window
        that is also scanned (the same examples: MAX's window at an example boundary, every
        window of ``all_windows`` at hop 1) is scored once, as the scan's."""
        rows = np.empty(len(self.windows), dtype=np.int64)
        scanned = {
            (round(float(start), 6), round(float(end), 6)): row
            for row, (start, end) in enumerate(
                zip(self.scan.start_seconds, self.scan.end_seconds, strict=True)
            )
        }
        extra = len(self.scan)
        for index, (start, end) in enumerate(
            zip(self.windows.start_seconds, self.windows.end_seconds, strict=True)
        ):
            row = scanned.get((round(float(start), 6), round(float(end), 6)))
            if row is None:  # a window's bounds fix its rows (``select_windows``): no match, no row
                row, extra = extra, extra + 1
            rows[index] = row
        return rows

    @property
    def predictor_windows(self) -> np.ndarray:
        """(W, 10, 128) uint8: what the predictor scores, the scan first, then the label windows
        that are not scanned."""
        extra = self.label_rows >= len(self.scan)
        if not extra.any():
            return self.scan.embeddings
        return np.concatenate([self.scan.embeddings, self.windows.embeddings[extra]])

    @property
    def predictor_window_count(self) -> int:
        """Rows of ``predictor_windows`` (without building it)."""
        return len(self.scan) + int((self.label_rows >= len(self.scan)).sum())

    def split_scores(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label-window scores, scan scores) of the predictor's answer for ``predictor_windows``."""
        return scores[self.label_rows], scores[: len(self.scan)]


class Analyzer:
    """The analysis use case, configured once per service."""

    def __init__(
        self,
        config: AnalysisConfig,
        policy: PrivacyPolicy,
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
        self.config = config
        self.policy = policy
        self.embedding_official = embedding_official
        self._embed = embed
        self._score = score
        self.groups = tuple(groups)
        self.labels = labels
        self.detector = Detector(self.groups, labels, config.gate_dbfs)
        self._record = record

    def privacy_for(self, options: AnalysisOptions) -> tuple[PrivacyRequest, PrivacyRequest]:
        """(requested, applied): the caller's request and what the operator minimum makes of it.

        Raises:
            InvalidParameter: unknown method or parameter (400).
            PrivacyPolicyViolation: a weaker method named with enforcement "reject" (403).
        """
        return self.policy.apply(options.privacy_method, options.privacy_params)

    async def prepare(self, audio: bytes, options: AnalysisOptions) -> PreparedAnalysis:
        """Audio bytes -> anonymised embeddings -> classifier windows (typed 4xx errors)."""
        if len(audio) > self.config.max_upload_bytes:
            raise upload_too_large(self.config.max_upload_mb)
        requested, applied = self.privacy_for(options)
        embedded = await self._embed(audio, applied)
        windows = select_windows(
            embedded.embeddings,
            start_time=options.start_time,
            all_windows=options.all_windows,
            hop=self.config.label_hop,
        )
        return PreparedAnalysis(
            options=options,
            embedded=embedded,
            windows=windows,
            # every detection_hop examples and no extra window aligned to the end: a live source's
            scan=select_windows(
                embedded.embeddings, all_windows=True, hop=self.config.detection_hop, end_aligned=False
            ),
            privacy_requested=requested.method if requested.named else applied.method,
            analysis_id=new_analysis_id(self.config.analyzer_id),
        )

    def events(self, prepared: PreparedAnalysis, scan_scores: np.ndarray) -> list[EventChange]:
        """The recording as a finite source: each scanned window through the detection step and
        the event tracker, in order; the tracker closed at its end ("source finished", as a live
        source that ends)."""
        scan, embedded = prepared.scan, prepared.embedded
        scores = self.detector.check(scan_scores)
        levels = window_dbfs(embedded.example_dbfs, scan.start_seconds, scan.end_seconds)
        profile = embedded.example_profile_dbfs
        tracker = EventTracker(
            prepared.options.audio_file or "upload", self.config.lifecycle, prepared.analysis_id
        )
        loud = None if self.config.sudden_loud is None else SuddenLoud(self.config.sudden_loud)
        changes: list[EventChange] = []
        for index, (start, end) in enumerate(zip(scan.start_seconds, scan.end_seconds, strict=True)):
            first, last = round(start / EXAMPLE_SECONDS), round(end / EXAMPLE_SECONDS)
            span = WindowSpan(
                float(start),
                float(end),
                float(levels[index]),
                None if profile is None else profile[first:last],
            )
            fired = self.detector.window(scores[index], span, index)
            if loud is not None:
                fired += loud.window(span, index=index)
            changes += tracker.update(float(end), fired)
        return changes + tracker.close("source finished", source_ended=True)

    async def finish(self, prepared: PreparedAnalysis, predictor_scores: PredictorScores) -> AnalysisResult:
        """Scores of ``prepared.predictor_windows`` -> top-k, anomalies, the durable record."""
        windows, scan = prepared.windows, prepared.scan
        scores, scan_scores = prepared.split_scores(predictor_scores.values)
        options = prepared.options
        top_k = options.top_k or self.config.top_k
        changes = self.events(prepared, scan_scores)
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
            anomalies=summaries(changes),
            privacy_requested=prepared.privacy_requested,
            privacy_applied=prepared.embedded.privacy.method,
            analyzer_id=self.config.analyzer_id,
            analysis_id=prepared.analysis_id,
            duration_seconds=prepared.embedded.duration_seconds,
            options=options,
            scanned_seconds=(seconds_value(scan.start_seconds[0]), seconds_value(scan.end_seconds.max())),
            weights=WeightsStatus(self.embedding_official, predictor_scores.weights_official),
            changes=tuple(changes),
            privacy_params=dict(prepared.embedded.privacy.params),
        )
        result = dataclasses.replace(result, sifis_value=result_value(result))
        count_events(changes, "file")
        if self._record is not None:
            # durable before the caller hears about it: an anomaly is never lost
            await asyncio.to_thread(self._record, result)
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
