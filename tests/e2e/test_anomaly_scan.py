"""Every window of a recording is scanned for anomalies on every path, not only the labelled one.

A 19.4-s recording is two different 9.7-s sounds. The in-process chain (real
synthetic weights) gives the scores of each window scanned (one every 0.96 s);
a group is built whose member scores below its threshold in the first three
windows and above it in the last two, so it can only fire late. A v2 request
that asks for MAX's first window only (no ``all_windows``) must still report
the event the in-process analysis finds, over REST and gRPC, and say which span
it scanned.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from audioguard.offline import OfflineClassifier
from tests.support.serverutil import RunningServer
from tests.support.service_clients import (
    clip,
    kserve_grpc,
    service_pair,
    triton_binary,
    wav_bytes,
)

pytestmark = pytest.mark.slow

#: the first and the second window's scores must straddle the threshold by more than this
MIN_MARGIN = 0.005
#: 20 examples of 0.96 s (the last needs 0.975 s of audio): windows 0-9.6 s and 9.6-19.2 s
SECONDS = 19.4


@dataclass(frozen=True)
class LateEvent:
    recording: bytes
    member: int
    threshold: float
    expected: list[dict[str, Any]]  # the in-process analysis' events with this group


@pytest.fixture(scope="module")
def late_event(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LateEvent:
    reference = OfflineClassifier.from_model_dir(synthetic_model_dir)
    halves = [sf.read(io.BytesIO(clip(seed, SECONDS / 2)))[0] for seed in (701, 702)]
    recording = wav_bytes(np.concatenate(halves))
    windows = reference.classify(recording, all_windows=True, hop=1).windows
    assert [w.start_seconds for w in windows] == pytest.approx([0.96 * i for i in range(11)])
    scores = np.stack([w.scores for w in windows]).astype(np.float64)
    early, late = scores[:3].max(axis=0), scores[9:].min(axis=0)
    member = int(np.argmax(late - early))
    threshold = float((early[member] + late[member]) / 2)
    assert (late[member] - early[member]) / 2 > MIN_MARGIN, "the two halves do not separate any class"
    groups = tmp_path_factory.mktemp("late-groups") / "late.json"
    groups.write_text(json.dumps(groups_document(member, threshold)), encoding="utf-8")
    expected = OfflineClassifier.from_model_dir(synthetic_model_dir, anomaly_groups_file=groups)
    return LateEvent(recording, member, threshold, expected.classify(recording).anomalies)


def groups_document(member: int, threshold: float) -> dict[str, Any]:
    group = {"name": "late_event", "label": "Late", "members": [member], "threshold": threshold}
    return {"replace_defaults": True, "groups": [group]}


@pytest.fixture(scope="module")
def transformer(
    late_event: LateEvent, synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    groups = tmp_path_factory.mktemp("groups") / "late.json"
    groups.write_text(json.dumps(groups_document(late_event.member, late_event.threshold)), encoding="utf-8")
    with service_pair(synthetic_model_dir, {"AUDIOGUARD_ANOMALY_GROUPS_FILE": str(groups)}) as server:
        yield server


@pytest.mark.parametrize("client", [triton_binary, kserve_grpc], ids=["rest", "grpc"])
def test_a_late_event_is_reported_when_only_the_first_window_is_labelled(
    transformer: RunningServer, late_event: LateEvent, client: Any
) -> None:
    result = client(transformer, late_event.recording, {"top_k": 3})

    assert [w["start_seconds"] for w in result["windows"]] == [0.0]  # MAX's one window
    (anomaly,) = result["anomalies"]
    assert anomaly["group"] == "late_event" and anomaly["peak_score"] >= late_event.threshold
    # it fired late only: not in the first three windows (0-11.52 s), in the last two (to 19.2 s)
    assert anomaly["window_start_seconds"] >= 2.88 and anomaly["window_end_seconds"] == 19.2

    def without_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in e.items() if k not in ("event_id", "peak_score", "triggered_by")}
            for e in events
        ]

    # what the service found is what the analysis in one process finds
    assert without_ids(result["anomalies"]) == without_ids(late_event.expected)
    assert anomaly["peak_score"] == pytest.approx(late_event.expected[0]["peak_score"], abs=1e-4)
    parameters = result["parameters"]
    # JSON numbers over REST; text over gRPC, whose parameters have no floating-point type
    scanned = (0.0, 19.2) if client is triton_binary else ("0.000", "19.200")
    assert (parameters["anomaly_scan_start_seconds"], parameters["anomaly_scan_end_seconds"]) == scanned
    assert int(parameters["anomaly_count"]) == 1
