"""The analysis use case without TensorFlow or KServe: embed and score are injected.

The embedder stand-in returns known embeddings (row i holds the value i) so the
windows the scorer receives can be checked row by row; scores are built by hand
(per window, by the example it starts at) so the expected events follow from the
shipped group file read directly and from the lifecycle's rule (2 hits in 3 hops),
not from the detection code. A recording is scanned every example (hop 1), as a
live source is.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from contract.errors import AudioTooLarge, PrivacyPolicyViolation
from tests.support.analysis_rig import AUDIO, EXAMPLES, Rig, hot, quiet_scores
from tests.support.serverutil import PROJECT_ROOT
from transformer.analysis.labels import load_labels
from transformer.analysis.types import AnalysisOptions, PredictorScores
from transformer.privacy import PrivacyPolicy


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


async def test_overlapping_windows_of_one_sound_are_one_event_with_its_labels_and_record() -> None:
    scores = quiet_scores()
    member = hot(scores, "glass_break", [8, 9, 10], 0.9)
    rig = Rig(scores)

    result = await rig.analyzer().analyze(
        AUDIO, AnalysisOptions(all_windows=True, top_k=3, request_id="q1"), request_id="r-7"
    )

    # one call: the 11 windows scanned (one every example); the 2 label windows are among them
    ((windows, request_id, _),) = rig.scored
    assert request_id == "r-7"
    assert windows.dtype == np.uint8 and windows.shape == (11, 10, 128)
    assert [int(w[0, 0]) for w in windows] == list(range(11))
    bounds = [bound for w in result.windows for bound in (w.start_seconds, w.end_seconds)]
    assert bounds == pytest.approx([0.0, 9.6, 9.6, 19.2])
    assert all(len(w.top) == 3 for w in result.windows)
    assert result.windows[1].top[0]["label"] == load_labels()[member].display_name
    # three overlapping windows that fire are one event: from the first window's start (no
    # loudness profile: the windows themselves) to the last one's end
    (event,) = result.anomalies
    assert event["group"] == "glass_break" and event["peak_score"] == pytest.approx(0.9)
    assert (event["start_seconds"], event["end_seconds"]) == pytest.approx((8 * 0.96, 20 * 0.96))
    assert (event["window_start_seconds"], event["window_end_seconds"]) == pytest.approx((7.68, 19.2))
    assert [c.change for c in result.changes] == ["start", "end"]
    assert result.changes[1].reason == "source finished"
    assert result.analysis_id.startswith("home-1") and result.analyzer_id == "home-1"
    assert rig.recorded == [result]
    assert result.sifis_value["anomalies"] == result.anomalies


async def test_a_single_window_hit_in_a_long_recording_is_no_event() -> None:
    scores = quiet_scores()
    hot(scores, "glass_break", [4])  # 1 hit in 3 hops: below the lifecycle's 2
    result = await Rig(scores).analyzer().analyze(AUDIO, AnalysisOptions())
    assert result.anomalies == [] and result.changes == ()


async def test_a_recording_of_one_window_needs_one_hit() -> None:
    """10 examples give one window: the lifecycle cannot ask it for 2 hits."""
    scores = quiet_scores(10)
    hot(scores, "siren", [0])
    result = await Rig(scores, examples=10).analyzer().analyze(AUDIO, AnalysisOptions())
    assert [(e["group"], e["start_seconds"], e["end_seconds"]) for e in result.anomalies] == [
        ("siren", 0.0, pytest.approx(9.6))
    ]


async def test_the_event_is_placed_where_the_recording_was_loud() -> None:
    scores = quiet_scores()
    hot(scores, "glass_break", range(3, 11))  # the windows that hold example 12
    profile = np.full((EXAMPLES, 8), -50.0)
    profile[12, 3:7] = -10.0  # 0.48 s of sound from 12 x 0.96 + 3 x 0.12 = 11.88 s
    result = await Rig(scores, profile=profile).analyzer().analyze(AUDIO, AnalysisOptions())
    (event,) = result.anomalies
    assert event["start_seconds"] == pytest.approx(11.88)
    assert event["end_seconds"] == pytest.approx(12.36)
    # the windows that fired keep their own span
    assert (event["window_start_seconds"], event["window_end_seconds"]) == pytest.approx((2.88, 19.2))


async def test_the_loudness_gate_skips_quiet_windows() -> None:
    scores = quiet_scores()
    hot(scores, "glass_break", range(11))
    levels = np.concatenate([np.full(10, -70.0), np.full(10, -20.0)])
    rig = Rig(scores, example_dbfs=levels)

    result = await rig.analyzer(gate_dbfs=-50.0).analyze(AUDIO, AnalysisOptions(all_windows=True))

    # the window of examples 0-9 is quiet throughout; from example 1 on each holds a loud one
    assert [e["window_start_seconds"] for e in result.anomalies] == [pytest.approx(0.96)]


async def test_privacy_requested_is_the_minimum_when_the_caller_named_no_method() -> None:
    rig = Rig(quiet_scores())
    analyzer = rig.analyzer(PrivacyPolicy("scramble", "upgrade", 2.0))

    unnamed = await analyzer.analyze(AUDIO, AnalysisOptions())
    named = await analyzer.analyze(AUDIO, AnalysisOptions(privacy_method="dp_noise"))

    assert (unnamed.privacy_requested, unnamed.privacy_applied) == ("scramble", "scramble")
    assert (named.privacy_requested, named.privacy_applied) == ("dp_noise", "scramble")
    assert [p.method for p in rig.embedded_with] == ["scramble", "scramble"]
    assert rig.embedded_with[0].params["segment_seconds"] == 2.0
    assert unnamed.privacy_params["segment_seconds"] == 2.0


async def test_a_weaker_method_is_refused_before_any_audio_work_in_reject_mode() -> None:
    rig = Rig(quiet_scores())
    analyzer = rig.analyzer(PrivacyPolicy("speech_mask", "reject"))

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
    scores = quiet_scores()
    hot(scores, "glass_break", [9, 10])  # only windows that reach past 9.6 s
    rig = Rig(scores)

    result = await rig.analyzer().analyze(AUDIO, AnalysisOptions(top_k=2))

    assert len(result.windows) == 1 and result.windows[0].start_seconds == 0.0  # MAX's one window
    found = [(e["group"], e["window_start_seconds"]) for e in result.anomalies]
    assert found == [("glass_break", pytest.approx(9 * 0.96))]
    assert result.scanned_seconds == pytest.approx((0.0, 19.2))
    ((windows, _, _),) = rig.scored  # one predictor call: the scan, MAX's window among it
    assert [int(w[0, 0]) for w in windows] == list(range(11))


async def test_a_late_start_time_still_scans_from_the_beginning() -> None:
    scores = quiet_scores()
    hot(scores, "glass_break", [0, 1])  # only the first windows
    rig = Rig(scores)

    result = await rig.analyzer().analyze(AUDIO, AnalysisOptions(start_time=10.0, all_windows=True))

    assert [w.start_seconds for w in result.windows] == [pytest.approx(9.6)]
    assert [e["window_start_seconds"] for e in result.anomalies] == [0.0]


async def test_prepare_then_finish_is_the_same_analysis_as_analyze() -> None:
    scores = quiet_scores()
    hot(scores, "siren", [0, 1, 2], 0.9)
    rig = Rig(scores)
    analyzer = rig.analyzer(label_hop=1)

    prepared = await analyzer.prepare(AUDIO, AnalysisOptions(all_windows=True))
    assert prepared.predictor_window_count == 11  # every window is both shown and scanned: scored once
    split = await analyzer.finish(prepared, PredictorScores(scores[:11], True))
    whole = await analyzer.analyze(AUDIO, AnalysisOptions(all_windows=True))

    # the event ids name the analysis (each call is its own), the rest is the same
    def without_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "event_id"} for e in events]

    assert without_ids(split.anomalies) == without_ids(whole.anomalies)
    assert [e["group"] for e in split.anomalies] == ["siren"]
    assert [w.top for w in split.windows] == [w.top for w in whole.windows]
    assert len(rig.recorded) == 2


async def test_label_windows_the_scan_does_not_hold_are_scored_after_it() -> None:
    scores = quiet_scores()
    for start in range(EXAMPLES):
        scores[start, start] = 0.9  # each window's top label names where it starts
    rig = Rig(scores)
    result = await rig.analyzer(label_hop=4, detection_hop=3).analyze(
        AUDIO, AnalysisOptions(all_windows=True)
    )
    ((windows, _, _),) = rig.scored
    # scanned at 0, 3, 6, 9 (as a live source: no window aligned to the end); the labels at 0, 4,
    # 8 and the tail at 10: three more rows
    assert [int(w[0, 0]) for w in windows] == [0, 3, 6, 9, 4, 8, 10]
    assert [w.top[0]["label"] for w in result.windows] == [
        load_labels()[i].display_name for i in (0, 4, 8, 10)
    ]


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
    scores = quiet_scores()
    hot(scores, "glass_break", [9, 10], np.float32(0.92))  # 0.9200000166893005 as a float64
    rig = Rig(scores)

    result = await rig.analyzer(label_hop=3).analyze(AUDIO, AnalysisOptions(all_windows=True, top_k=1))

    # a hop of 3 examples puts window bounds at 2.88 s (2.8800000000000003 in float64 arithmetic)
    assert [w.start_seconds for w in result.windows] == [0.0, 2.88, 5.76, 8.64, 10.0 * 0.96]
    (event,) = result.anomalies
    assert event["peak_score"] == 0.92 and result.windows[-1].top[0]["probability"] == 0.92
    assert event["triggered_by"][0]["score"] == 0.92
    assert event["window_start_seconds"] == 8.64
