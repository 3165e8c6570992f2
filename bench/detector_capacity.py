"""What the class-agnostic detectors add to a live source's cost: the in-process monitor run twice.

The same streams (loud rain with knocks and speech, every window scored: no loudness gate) go
through the real monitor (front end, shared VGGish embedder, classifier, detection, lifecycle)
with the models of ``--model_dir`` (synthetic weights in the official formats are enough: the
cost does not depend on the weights), once with no detector and once with all three at their
most expensive: ``sudden_loud`` on, ``voices_while_armed`` listening (every source ``away``),
``unusual_sound`` learnt within the first minute and then judging every window. The figure is
the ratio of the process's CPU time of the two runs (alternating, ``--rounds`` each, the
fastest of each kind), on one noisy machine: the capacity of the live benchmark
(``bench.monitor_benchmark``) drops by about that share, less since ffmpeg's decoding (not run
here) is part of a source's real cost.

    python -m bench.detector_capacity --model_dir DIR [--sources 4] [--seconds 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audioguard.offline import OfflineClassifier
from bench.detector_beds import Burst, rain, with_bursts
from bench.load_benchmark import cpu_flags
from tests.support import speech_synth as synth
from transformer import wiring
from transformer.analysis.detectors import DETECTOR_GROUPS
from transformer.analysis.detectors.novelty import NoveltySettings
from transformer.analysis.detectors.sudden_loud import SuddenLoudSettings
from transformer.analysis.detectors.voices import VoicesSettings
from transformer.analysis.modes import ModeBoard, ModesSpec
from transformer.analysis.types import PredictorScores
from transformer.monitor.chunks import Chunk
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec

STEP_CHUNKS = 10  # 1 s of every source per step, as a service that keeps up takes them


def streams(sources: int, seconds: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    made = {}
    for index in range(sources):
        audio = with_bursts(
            rain(seconds, rng, dbfs=-30.0), [Burst(at, 15.0) for at in range(10, int(seconds), 20)], rng
        )
        speech = synth.speech_like(5.0, seed=index, level=0.1)
        audio[25 * 16_000 : 25 * 16_000 + speech.size] += speech
        made[f"s{index}"] = np.clip(audio, -1, 1)
    return made


async def cpu_seconds(classifier: OfflineClassifier, audio: dict[str, np.ndarray], detectors: bool) -> float:
    worker = wiring.embedding_worker(classifier.settings, classifier.pipeline, "capacity")

    async def score(windows: np.ndarray) -> PredictorScores:
        return PredictorScores(await asyncio.to_thread(classifier.classifier.predict, windows), False)

    names = list(audio)
    monitor = Monitor(
        [SourceSpec(name=name, url=f"pulse:{name}") for name in names],
        embed=worker.embed_examples,
        score=score,
        record=lambda changes, context: None,
        groups=classifier.groups,
        labels=classifier.labels,
        sudden_loud=SuddenLoudSettings() if detectors else None,
        voices=VoicesSettings() if detectors else None,
        novelty=NoveltySettings(learning_seconds=60.0) if detectors else None,
        modes=ModeBoard(
            ModesSpec(initial="away"),
            {name: None for name in names},
            [group.name for group in classifier.groups] + list(DETECTOR_GROUPS),
        )
        if detectors
        else None,
    )
    pieces = {name: np.split(samples, samples.size // 1600) for name, samples in audio.items()}
    count = min(len(parts) for parts in pieces.values())
    began = time.process_time()
    for first in range(0, count, STEP_CHUNKS):
        await monitor.process(
            [
                Chunk(name, pieces[name][i], i * 0.1, 1, droppable=False)
                for i in range(first, min(count, first + STEP_CHUNKS))
                for name in names
            ]
        )
    await monitor.close()
    spent = time.process_time() - began
    worker.close()
    return spent


async def run(model_dir: Path, sources: int, seconds: float, rounds: int) -> None:
    classifier = OfflineClassifier.from_model_dir(model_dir)
    audio = streams(sources, seconds)
    without: list[float] = []
    with_all: list[float] = []
    for _ in range(rounds):
        without.append(await cpu_seconds(classifier, audio, False))
        with_all.append(await cpu_seconds(classifier, audio, True))
    audio_seconds = sources * seconds
    base, more = min(without), min(with_all)
    print(f"CPU: {cpu_flags()}")
    print(f"{sources} sources x {seconds:g} s, every window scored, {rounds} rounds (fastest of each)")
    print(f"without detectors: {base:.2f} s CPU ({100 * base / audio_seconds:.2f} % of a core per source)")
    print(f"with all three:    {more:.2f} s CPU ({100 * more / audio_seconds:.2f} % of a core per source)")
    print(f"added: {100 * (more / base - 1):+.1f} % (all runs: without {without}, with {with_all})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    asyncio.run(run(args.model_dir, args.sources, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
