"""unusual_sound measured: a model learnt on one bed, then false events per hour and detection.

Through the real in-process monitor (front end, VGGish and classifier of ``--model_dir``, the
detection step and lifecycle; no label group watched, no loudness gate) one live source hears
``--learn`` minutes of a bed (learning, then calibrating), then ``--hours`` of the same kind of
bed (every event there is a false one), then the bed with sounds it never heard inserted every
40 s (a beeping alarm, a siren, synthetic speech, glass-like bursts, a scream), each counted as
found when an event starts within 10 s of it.

With synthetic weights (``audioguard.synthetic``) VGGish is a random network: the embeddings are
random projections of the log-mel, so these figures show the mechanism, not what the official
model would do. Prints the CPU flags.

    python -m bench.novelty_benchmark --model_dir DIR [--bed rain] [--learn 10] [--hours 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from audioguard.offline import OfflineClassifier
from bench.detector_beds import rain, room
from bench.load_benchmark import cpu_flags
from tests.support import speech_synth as synth
from transformer import wiring
from transformer.analysis.detectors.novelty import GROUP, NoveltySettings
from transformer.analysis.events import EventChange
from transformer.analysis.types import PredictorScores
from transformer.monitor.chunks import Chunk
from transformer.monitor.loop import Monitor
from transformer.monitor.sources import SourceSpec

BEDS: dict[str, Callable[[float, np.random.Generator], np.ndarray]] = {
    "rain": lambda seconds, rng: rain(seconds, rng, dbfs=-30.0),
    "room": lambda seconds, rng: room(seconds, rng, dbfs=-40.0),
}
UNSEEN: dict[str, Callable[[], np.ndarray]] = {
    "beeping alarm": lambda: synth.beeping_alarm(6.0, level=0.1),
    "siren": lambda: synth.siren(6.0, level=0.1),
    "speech": lambda: synth.speech_like(6.0, seed=3, level=0.1),
    "glass-like bursts": lambda: synth.glass_bursts(6.0, seed=3, level=0.2),
    "scream": lambda: synth.scream(3.0, seed=3, level=0.1),
}


async def run(model_dir: Path, bed: str, learn_minutes: float, hours: float, quantile: float) -> None:
    classifier = OfflineClassifier.from_model_dir(model_dir)
    worker = wiring.embedding_worker(classifier.settings, classifier.pipeline, "novelty")

    async def score(windows: np.ndarray) -> PredictorScores:
        return PredictorScores(await asyncio.to_thread(classifier.classifier.predict, windows), False)

    changes: list[EventChange] = []
    monitor = Monitor(
        [SourceSpec(name="site", url="pulse:site")],
        embed=worker.embed_examples,
        score=score,
        record=lambda done, context: changes.extend(done),
        groups=[],
        labels=classifier.labels,
        novelty=NoveltySettings(learning_seconds=learn_minutes * 60, quantile=quantile),
    )
    rng = np.random.default_rng(11)
    learn, judge = learn_minutes * 60 + 30.0, hours * 3600
    trial_seconds = 40.0 * 3 * len(UNSEEN)
    audio = BEDS[bed](learn + judge + trial_seconds, rng)
    inserted: list[tuple[str, float]] = []
    for index in range(3 * len(UNSEEN)):
        name = list(UNSEEN)[index % len(UNSEEN)]
        at = learn + judge + 20.0 + 40.0 * index
        sound = UNSEEN[name]()
        audio[round(at * 16_000) : round(at * 16_000) + sound.size] += sound
        inserted.append((name, at))
    parts = np.split(audio[: audio.size // 1600 * 1600], audio.size // 1600)
    for first in range(0, len(parts), 50):
        await monitor.process(
            [
                Chunk("site", parts[i], i * 0.1, 1, droppable=False)
                for i in range(first, min(len(parts), first + 50))
            ]
        )
    await monitor.close()
    worker.close()
    model = monitor.heard("site").novelty
    assert model is not None
    starts = [c.start_seconds for c in changes if c.change == "start" and c.group == GROUP]
    false = [t for t in starts if learn <= t < learn + judge]
    print(f"CPU: {cpu_flags()}")
    print(f"bed {bed}; learnt {learn_minutes:g} min ({model.status()}), quantile {quantile}")
    print(f"false events: {len(false)} in {hours:g} h of the same bed ({len(false) / hours:.1f}/h)")
    for name in UNSEEN:
        times = [at for kind, at in inserted if kind == name]
        found = sum(any(at - 1.0 <= t <= at + 10.0 for t in starts) for at in times)
        print(f"  {name}: found {found} of {len(times)}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--bed", choices=sorted(BEDS), default="rain")
    parser.add_argument("--learn", type=float, default=10.0, help="minutes learnt from")
    parser.add_argument("--hours", type=float, default=0.5, help="hours of the bed judged afterwards")
    parser.add_argument("--quantile", type=float, default=NoveltySettings().quantile)
    args = parser.parse_args(argv)
    asyncio.run(run(args.model_dir, args.bed, args.learn, args.hours, args.quantile))


if __name__ == "__main__":
    main()
