"""The analysis use case without TensorFlow or KServe: embed and score are injected.

The embedder stand-in returns known embeddings (row i holds the value i) so the
windows the scorer receives can be checked row by row; scores are built by hand
so the expected anomalies follow from the shipped group file read directly,
not from the detection code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pytest

from contract.constants import NUM_CLASSES
from contract.errors import AudioTooLarge, PrivacyPolicyViolation
from tests.support.serverutil import PROJECT_ROOT
from transformer.analysis.analyzer import Analyzer
from transformer.analysis.anomalies import Anomaly
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.labels import load_labels
from transformer.analysis.types import AnalysisOptions, AnalysisResult, PredictorScores
from transformer.audio.embedded import EmbeddedAudio
from transformer.privacy import PrivacyRequest
from transformer.settings import TransformerSettings

EXAMPLES = 20  # two full 10-example windows with all_windows (hop 10): 0-9.6 s and 9.6-19.2 s
AUDIO = b"encoded audio bytes"


def shipped_group(name: str) -> dict[str, Any]:
    document = json.loads(resources.files("transformer").joinpath("data", "anomaly_groups.json").read_text())
    return next(group for group in document["groups"] if group["name"] == name)


class Rig:
    """Records what the analysis hands to its injected collaborators."""

    def __init__(self, scores: np.ndarray, example_dbfs: np.ndarray | None = None) -> None:
        """``scores[i]``: the scores of the window that starts at the i-th 10-example boundary."""
        self.scores = scores
        self.example_dbfs = np.full(EXAMPLES, -20.0) if example_dbfs is None else example_dbfs
        self.embedded_with: list[PrivacyRequest] = []
        self.scored: list[tuple[np.ndarray, str | None, Mapping[str, str] | None]] = []
        self.recorded: list[tuple[AnalysisResult, list[Anomaly]]] = []
        self.classifier_official: bool | None = True
        self.embedding_official = True

    async def embed(self, audio: bytes, privacy: PrivacyRequest) -> EmbeddedAudio:
        assert audio == AUDIO
        self.embedded_with.append(privacy)
        rows = np.repeat(np.arange(EXAMPLES, dtype=np.uint8)[:, None], 128, axis=1)
        return EmbeddedAudio(rows, self.example_dbfs, EXAMPLES * 0.96, privacy)

    async def score(
        self, windows: np.ndarray, request_id: str | None, headers: Mapping[str, str] | None
    ) -> PredictorScores:
        self.scored.append((windows, request_id, headers))
        # a window's first row holds its first example's index (see ``embed``)
        values = np.stack([self.scores[int(window[0, 0]) // 10] for window in windows])
        return PredictorScores(values, self.classifier_official)

    def record(self, result: AnalysisResult, anomalies: Sequence[Anomaly]) -> None:
        self.recorded.append((result, list(anomalies)))

    def analyzer(self, **settings: Any) -> Analyzer:
        return Analyzer(
            TransformerSettings(analyzer_id="home-1", **settings),
            embed=self.embed,
            score=self.score,
            groups=load_anomaly_groups(),
            labels=load_labels(),
            record=self.record,
            embedding_official=self.embedding_official,
        )


def quiet_scores() -> np.ndarray:
    return np.full((2, NUM_CLASSES), 0.01, dtype=np.float32)


def test_the_analysis_imports_neither_tensorflow_nor_kserve() -> None:
    probe = (
        "import sys, transformer.analysis.analyzer; "
        "loaded = [m for m in ('tensorflow', 'keras', 'kserve', 'fastapi', 'grpc') if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


async def test_windows_scores_top_k_and_an_anomaly_in_the_second_window_only() -> None:
    glass = shipped_group("glass_break")
    scores = quiet_scores()
    member = glass["members"][0]
    scores[1, member] = glass["threshold"] + 0.05
    rig = Rig(scores)

    result = await rig.analyzer().analyze(
        AUDIO, AnalysisOptions(all_windows=True, top_k=3, request_id="q1"), request_id="r-7"
    )

    ((windows, request_id, _),) = rig.scored
    assert request_id == "r-7"
    assert windows.dtype == np.uint8 and windows.shape == (2, 10, 128)
    assert [int(w[0, 0]) for w in windows] == [0, 10] and [int(w[-1, 0]) for w in windows] == [9, 19]
    bounds = [bound for w in result.windows for bound in (w.start_seconds, w.end_seconds)]
    assert bounds == pytest.approx([0.0, 9.6, 9.6, 19.2])
    assert all(len(w.top) == 3 for w in result.windows)
    assert result.windows[1].top[0]["label"] == load_labels()[member].display_name
    assert [(a["group"], a["window_index"]) for a in result.anomalies] == [("glass_break", 1)]
    assert result.anomalies[0]["score"] == pytest.approx(glass["threshold"] + 0.05)
    assert result.analysis_id.startswith("home-1") and result.analyzer_id == "home-1"
    ((recorded, anomalies),) = rig.recorded
    assert recorded is result and [a.group for a in anomalies] == ["glass_break"]


async def test_the_loudness_gate_skips_quiet_windows() -> None:
    glass = shipped_group("glass_break")
    scores = quiet_scores()
    scores[:, glass["members"][0]] = 0.95
    levels = np.concatenate([np.full(10, -70.0), np.full(10, -20.0)])
    rig = Rig(scores, example_dbfs=levels)

    result = await rig.analyzer(loudness_gate_dbfs=-50.0).analyze(AUDIO, AnalysisOptions(all_windows=True))

    assert [a["window_index"] for a in result.anomalies] == [1]


async def test_privacy_requested_is_the_minimum_when_the_caller_named_no_method() -> None:
    rig = Rig(quiet_scores())
    analyzer = rig.analyzer(privacy_minimum="scramble", scramble_segment_seconds=2.0)

    unnamed = await analyzer.analyze(AUDIO, AnalysisOptions())
    named = await analyzer.analyze(AUDIO, AnalysisOptions(privacy_method="dp_noise"))

    assert (unnamed.privacy_requested, unnamed.privacy_applied) == ("scramble", "scramble")
    assert (named.privacy_requested, named.privacy_applied) == ("dp_noise", "scramble")
    assert [p.method for p in rig.embedded_with] == ["scramble", "scramble"]
    assert rig.embedded_with[0].params["segment_seconds"] == 2.0


async def test_a_weaker_method_is_refused_before_any_audio_work_in_reject_mode() -> None:
    rig = Rig(quiet_scores())
    analyzer = rig.analyzer(privacy_minimum="speech_mask", privacy_enforcement="reject")

    with pytest.raises(PrivacyPolicyViolation):
        await analyzer.analyze(AUDIO, AnalysisOptions(privacy_method="none"))
    assert rig.embedded_with == [] and rig.scored == [] and rig.recorded == []


async def test_an_upload_over_the_limit_is_413_before_any_audio_work() -> None:
    rig = Rig(quiet_scores())
    analyzer = rig.analyzer(max_upload_mb=0.000001)

    with pytest.raises(AudioTooLarge, match="max_upload_mb"):
        await analyzer.analyze(AUDIO, AnalysisOptions())
    assert rig.embedded_with == []


async def test_the_whole_recording_is_scanned_when_the_labels_cover_maxs_first_window() -> None:
    glass = shipped_group("glass_break")
    scores = quiet_scores()
    scores[1, glass["members"][0]] = 0.95  # only in the second window (9.6-19.2 s)
    rig = Rig(scores)

    result = await rig.analyzer().analyze(AUDIO, AnalysisOptions(top_k=2))

    assert len(result.windows) == 1 and result.windows[0].start_seconds == 0.0  # MAX's one window
    found = [(a["group"], a["start_seconds"]) for a in result.anomalies]
    assert found == [("glass_break", pytest.approx(9.6))]
    assert result.scanned_seconds == pytest.approx((0.0, 19.2))
    ((windows, _, _),) = rig.scored  # one predictor call: the label window, then the scan
    assert [int(w[0, 0]) for w in windows] == [0, 0, 10]


async def test_a_late_start_time_still_scans_from_the_beginning() -> None:
    glass = shipped_group("glass_break")
    scores = quiet_scores()
    scores[0, glass["members"][0]] = 0.95  # only in the first window
    rig = Rig(scores)

    result = await rig.analyzer().analyze(AUDIO, AnalysisOptions(start_time=10.0, all_windows=True))

    assert [w.start_seconds for w in result.windows] == [pytest.approx(9.6)]
    assert [a["window_index"] for a in result.anomalies] == [0]


async def test_prepare_then_finish_is_the_same_analysis_as_analyze() -> None:
    scores = quiet_scores()
    scores[0, shipped_group("siren")["members"][0]] = 0.9
    rig = Rig(scores)
    analyzer = rig.analyzer()

    prepared = await analyzer.prepare(AUDIO, AnalysisOptions(all_windows=True))
    assert prepared.shared  # every window is both shown and scanned: scored once
    split = await analyzer.finish(prepared, PredictorScores(scores, True))
    whole = await analyzer.analyze(AUDIO, AnalysisOptions(all_windows=True))

    assert split.anomalies == whole.anomalies == [split.anomalies[0]]
    assert split.anomalies[0]["group"] == "siren"
    assert [w.top for w in split.windows] == [w.top for w in whole.windows]
    assert len(rig.recorded) == 2


@pytest.mark.parametrize(
    ("embedding", "classifier", "official"),
    [(True, True, True), (False, True, False), (True, False, False), (True, None, False)],
)
async def test_every_result_says_whether_both_halves_of_the_model_are_official(
    embedding: bool, classifier: bool | None, official: bool
) -> None:
    rig = Rig(quiet_scores())
    rig.embedding_official, rig.classifier_official = embedding, classifier

    result = await rig.analyzer().analyze(AUDIO, AnalysisOptions())

    assert result.weights.official is official
    fields = result.weights.fields()
    assert fields["weights_official"] is official
    # the warning is there exactly when the answer must not be trusted
    assert ("weights_warning" in fields) is (not official)
    if not official:
        assert "not come from the official model weights" in fields["weights_warning"]


async def test_numbers_are_written_as_float32_scores_and_millisecond_times() -> None:
    glass = shipped_group("glass_break")
    scores = quiet_scores()
    scores[1, glass["members"][0]] = np.float32(0.92)  # 0.9200000166893005 as a float64
    rig = Rig(scores)

    result = await rig.analyzer(window_hop=3).analyze(AUDIO, AnalysisOptions(all_windows=True, top_k=1))

    # a hop of 3 examples puts window bounds at 2.88 s (2.8800000000000003 in float64 arithmetic)
    assert [w.start_seconds for w in result.windows] == [0.0, 2.88, 5.76, 8.64, 10.0 * 0.96]
    assert result.anomalies[-1]["score"] == 0.92 and result.windows[-1].top[0]["probability"] == 0.92
    assert result.anomalies[-1]["triggered_by"][0]["score"] == 0.92
