"""How well an event's times place the sound: bursts at known times in background noise.

Each trial is a 40-s recording: background noise (pink noise with a mains hum, at -42 dBFS
RMS) and one burst (decaying, band-limited noise, 0.3-2.0 s long, 8-24 dB above the
background) at a random time between 12 and 28 s. The recording goes through both roads
of the one detection path, under each privacy method:

- **file**: the whole recording analysed as an upload (``OfflineClassifier.classify``);
- **live**: the same audio in 0.1-s chunks through the monitor (``Monitor.process``, the
  service's embedder, front end and streaming anonymisers; no capture process).

For every event the error of its ``start_seconds`` against the burst's onset (and of its
``end_seconds`` against the burst's audible end: the last 0.12 s in which the decaying burst
is at least as loud as the background) is measured; p50/p95 per road and method.

What it measures and what it does not: the models are whatever ``--model_dir`` holds. With
synthetic weights the classifier fires on almost any sound, so the loudness gate
(``--gate_dbfs``, between the background and the bursts) is what keeps the background's own
windows from firing: the windows that fire are those that hold the burst, as with a real
glass break under the official weights, and the benchmark measures how well the event is
placed inside them (``transformer.analysis.locate``), not how well the classifier
recognises glass. With the official weights run it without the gate (``--gate_dbfs none``).

    python -m bench.onset_benchmark --model_dir DIR [--trials 30] [--methods none,dp_noise,...]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audioguard.offline import OfflineClassifier
from bench.load_benchmark import cpu_flags
from transformer import wiring
from transformer.analysis.events import EventChange
from transformer.analysis.types import PredictorScores
from transformer.monitor.chunks import Chunk
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec
from transformer.privacy import PrivacyRequest

RATE = 16_000
SECONDS = 40.0
BACKGROUND_DBFS = -42.0


@dataclass(frozen=True)
class Trial:
    audio: np.ndarray  # (n,) float64 at RATE
    onset: float
    end: float  # where the burst's 0.12-s RMS last reaches the background's (it decays into it)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
    return np.fft.irfft(spectrum / np.sqrt(frequencies), n)


def at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    return signal * (10 ** (dbfs / 20) / np.sqrt(np.mean(signal**2)))


def trial(seed: int) -> Trial:
    """One recording: background everywhere, one burst at a known time."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * RATE)
    t = np.arange(n) / RATE
    background = at_dbfs(pink_noise(rng, n) + 0.2 * np.sin(2 * np.pi * 50 * t), BACKGROUND_DBFS)
    duration = float(rng.uniform(0.3, 2.0))
    onset = float(rng.uniform(12.0, 28.0))
    length = int(duration * RATE)
    decay = np.exp(-np.arange(length) / (length / float(rng.uniform(2.0, 6.0))))
    band = np.fft.irfft(np.fft.rfft(rng.standard_normal(length)) * _band(length, rng), length)
    burst = at_dbfs(band * decay, BACKGROUND_DBFS + float(rng.uniform(8.0, 24.0)))
    start = int(onset * RATE)
    audio = background.copy()
    audio[start : start + length] += burst
    frame = int(0.12 * RATE)
    frames = burst[: length // frame * frame].reshape(-1, frame)
    audible = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) >= 10 ** (BACKGROUND_DBFS / 20))
    end = onset + (int(audible[-1]) + 1) * 0.12 if audible.size else onset + duration
    return Trial(np.clip(audio, -1, 1), onset, end)


def _band(length: int, rng: np.random.Generator) -> np.ndarray:
    frequencies = np.fft.rfftfreq(length, 1 / RATE)
    low = float(rng.uniform(800, 3000))
    return ((frequencies > low) & (frequencies < low * 3)).astype(float)


def wav_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def first_event(changes: Sequence[EventChange]) -> EventChange | None:
    """The first event that ended (start and end known)."""
    return next((change for change in changes if change.change == "end"), None)


async def live_changes(
    classifier: OfflineClassifier, audio: np.ndarray, privacy: PrivacyRequest, gate: float | None
) -> list[EventChange]:
    """The recording as a live source: 0.1-s chunks through the monitor, then its end."""
    worker = wiring.embedding_worker(classifier.settings, classifier.pipeline, "onset")

    async def score(windows: np.ndarray) -> PredictorScores:
        return PredictorScores(classifier.classifier.predict(windows), False)

    monitor = Monitor(
        [SourceSpec(name="bench", url="pulse:bench")],
        embed=worker.embed_examples,
        score=score,
        record=lambda changes, context: None,
        groups=classifier.groups,
        labels=classifier.labels,
        gate_dbfs=gate,
        privacy={"bench": privacy},
    )
    step = RATE // 10
    changes: list[EventChange] = []
    for index in range(0, audio.size, step):
        changes += await monitor.process([Chunk("bench", audio[index : index + step], index / RATE, 1)])
    changes += await monitor.process([Chunk("bench", np.zeros(0), 0.0, 1, final=True, droppable=False)])
    worker.close()
    return changes


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--methods", default="none,dp_noise,scramble,speech_mask")
    parser.add_argument("--gate_dbfs", default="-36", help="loudness gate, or 'none'")
    args = parser.parse_args(argv)
    gate = None if args.gate_dbfs == "none" else float(args.gate_dbfs)
    classifier = OfflineClassifier.from_model_dir(args.model_dir, loudness_gate_dbfs=gate)
    policy = wiring.privacy_policy(classifier.settings)
    print(f"CPU: {cpu_flags()}")
    official = "official" if classifier.weights.official else "NOT official (synthetic or altered)"
    print(f"{args.trials} trials, background {BACKGROUND_DBFS} dBFS, gate {gate} dBFS, weights {official}")
    print(
        "| privacy | road | events found | onset error p50 | p95 | max | end error p50 | p95 "
        "| first window's start (the old event start) error p50 | p95 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    started = time.perf_counter()
    for method in args.methods.split(","):
        privacy = policy.enforce(policy.parse(method, {}))
        onset_errors: dict[str, list[float]] = {"file": [], "live": []}
        end_errors: dict[str, list[float]] = {"file": [], "live": []}
        window_errors: dict[str, list[float]] = {"file": [], "live": []}
        for seed in range(args.trials):
            case = trial(seed)
            file_changes = list(classifier.classify(wav_bytes(case.audio), privacy=privacy).changes)
            live = asyncio.run(live_changes(classifier, case.audio, privacy, gate))
            for road, changes in (("file", file_changes), ("live", live)):
                event = first_event(changes)
                if event is None or event.end_seconds is None:
                    continue
                onset_errors[road].append(abs(event.start_seconds - case.onset))
                window_errors[road].append(abs(event.window_start_seconds - case.onset))
                end_errors[road].append(abs(event.end_seconds - case.end))
        for road in ("file", "live"):
            onsets, ends, windows = onset_errors[road], end_errors[road], window_errors[road]
            print(
                f"| {method} | {road} | {len(onsets)}/{args.trials} | {percentile(onsets, 50):.2f} s | "
                f"{percentile(onsets, 95):.2f} s | {max(onsets, default=float('nan')):.2f} s | "
                f"{percentile(ends, 50):.2f} s | {percentile(ends, 95):.2f} s | "
                f"{percentile(windows, 50):.2f} s | {percentile(windows, 95):.2f} s |",
                flush=True,
            )
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
