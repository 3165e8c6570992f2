"""Every window of a recording is scanned for anomalies on every path, not only the labelled one.

A 19.4-s recording is two different 9.7-s sounds. The in-process chain (real
synthetic weights) gives each window's scores; a group is built whose member
scores below its threshold in the first window and above it in the second, so
it can only fire late. A v2 request that asks for MAX's first window only (no
``all_windows``) must still report it, over REST and gRPC, and say which span
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


@pytest.fixture(scope="module")
def late_event(synthetic_model_dir: Path) -> LateEvent:
    reference = OfflineClassifier.from_model_dir(synthetic_model_dir)
    halves = [sf.read(io.BytesIO(clip(seed, SECONDS / 2)))[0] for seed in (701, 702)]
    recording = wav_bytes(np.concatenate(halves))
    first, second = reference.classify(recording, all_windows=True).windows
    assert (first.start_seconds, second.start_seconds) == pytest.approx((0.0, 9.6))
    gap = second.scores.astype(np.float64) - first.scores.astype(np.float64)
    member = int(np.argmax(gap))
    threshold = float((first.scores[member] + second.scores[member]) / 2)
    assert gap[member] / 2 > MIN_MARGIN, "the two halves do not separate any class"
    return LateEvent(recording, member, threshold)


@pytest.fixture(scope="module")
def transformer(
    late_event: LateEvent, synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    groups = tmp_path_factory.mktemp("groups") / "late.json"
    group = {
        "name": "late_event",
        "label": "Late",
        "members": [late_event.member],
        "threshold": late_event.threshold,
    }
    groups.write_text(json.dumps({"replace_defaults": True, "groups": [group]}), encoding="utf-8")
    with service_pair(synthetic_model_dir, {"AUDIOGUARD_ANOMALY_GROUPS_FILE": str(groups)}) as server:
        yield server


@pytest.mark.parametrize("client", [triton_binary, kserve_grpc], ids=["rest", "grpc"])
def test_a_late_event_is_reported_when_only_the_first_window_is_labelled(
    transformer: RunningServer, late_event: LateEvent, client: Any
) -> None:
    result = client(transformer, late_event.recording, {"top_k": 3})

    assert [w["start_seconds"] for w in result["windows"]] == [0.0]  # MAX's one window
    assert [(a["group"], a["window_index"]) for a in result["anomalies"]] == [("late_event", 1)]
    anomaly = result["anomalies"][0]
    assert (anomaly["start_seconds"], anomaly["end_seconds"]) == pytest.approx((9.6, 19.2))
    assert anomaly["score"] >= late_event.threshold
    parameters = result["parameters"]
    assert (parameters["anomaly_scan_start_seconds"], parameters["anomaly_scan_end_seconds"]) == (
        "0.000",
        "19.200",
    )
    assert int(parameters["anomaly_count"]) == 1
