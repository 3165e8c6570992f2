"""A real monitor over one live source ("hall") whose loudness gate (0 dBFS) keeps every window
from VGGish and the predictor: what the class-agnostic detectors (loudness, speech times) raise,
without a model. The embedder and scorer given fail the test if they are ever called."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile as sf

from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.detectors import DETECTOR_GROUPS
from transformer.analysis.labels import load_labels
from transformer.analysis.modes import ModeBoard, ModesSpec
from transformer.analysis.types import PredictorScores
from transformer.dht.delivery import DeliveryService
from transformer.monitor.chunks import Chunk
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec

EPOCH = 1_780_000_000.0  # the wall clock the chunks arrive at (the baseline's hour of day)


async def never_embedded(features: np.ndarray) -> np.ndarray:
    raise AssertionError("the gate holds every window back: nothing reaches VGGish")


async def never_scored(windows: np.ndarray) -> PredictorScores:
    raise AssertionError("the gate holds every window back: nothing reaches the predictor")


def chunks(audio: np.ndarray, source: str = "hall") -> list[Chunk]:
    """0.1-s chunks as a capture hands them over, stamped with their arrival."""
    return [
        Chunk(source, part, i * 0.1, 1, received_at=EPOCH + (i + 1) * 0.1)
        for i, part in enumerate(np.split(audio, audio.size // 1600))
    ]


def gated_monitor(
    delivery: DeliveryService, *, modes: ModesSpec | None = None, sudden_loud: bool = True, **options: Any
) -> Monitor:
    """The monitor over "hall", its records into ``delivery``; ``modes``: a mode board over every
    group (changes recorded too); ``options``: more of ``Monitor``'s (baselines, voices)."""
    groups = load_anomaly_groups()
    board = None
    if modes is not None:
        board = ModeBoard(modes, {"hall": None}, [group.name for group in groups] + list(DETECTOR_GROUPS))
    return Monitor(
        [SourceSpec(name="hall", url="pulse:hall", loudness_gate_dbfs=0.0, sudden_loud=sudden_loud)],
        embed=never_embedded,
        score=never_scored,
        record=delivery.record_events,
        groups=groups,
        labels=load_labels(),
        session="run-1",
        modes=board,
        record_modes=delivery.record_mode_changes,
        **options,
    )


def stereo_wav(audio: np.ndarray) -> bytes:
    """``audio`` as the stereo PCM16 WAV leak fingerprints are made of (both channels alike)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([audio, audio], axis=1), 16_000, subtype="PCM_16", format="WAV")
    return buffer.getvalue()
