"""The class-agnostic detectors measured: bursts at known times and levels in background beds.

For ``sudden_loud`` (``transformer.analysis.detectors.sudden_loud``): streams built from
background beds (``bench.detector_beds``: room tone, wandering rain, the shared recordings
looped) with one burst each, at a random time and ``-6`` to ``+20`` dB over the bed, go through
the file road's detection step and lifecycle (``Analyzer.events``: every window at hop 1, the
default lifecycle). The classifier's scores are all zero, so no label group fires and nothing
here depends on the weights: only the 0.12-s loudness the audio stage measures is read.

- **detection rate** per bed and level: an event starting within 0.5 s of the burst;
- **onset error**: that event's ``start_seconds`` minus the burst's time (p50 and p95 of |error|);
- **false events per hour**: events in the beds without bursts (``--hours`` of each), and in
  rain fading in over 5, 10 and 20 s (a slow rise should raise none);
- **CPU cost per source**: the detector's time per second of audio (one core), the loudness
  profile it reads being measured by the audio stage anyway.

For ``voices_while_armed`` (speech_mask's speech detector, ``transformer.analysis.detectors.voices``):
detection of 6 s of synthetic speech over room tone at -10 to +20 dB, false events per hour in the
beds and among alarms, a siren, a scream and a tone, and the CPU per armed source.

    python -m bench.detector_benchmark [--trials 20] [--hours 0.5] [--rise_db 8,10,12,15]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.detector_beds import SHARED_BEDS, Burst, rain, rain_start, room, shared, with_bursts
from bench.load_benchmark import cpu_flags
from tests.support import speech_synth as synth
from transformer.analysis.analyzer import AnalysisConfig, Analyzer, PreparedAnalysis
from transformer.analysis.anomalies import WindowSpan
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.detectors.sudden_loud import GROUP, SuddenLoud, SuddenLoudSettings
from transformer.analysis.detectors.voices import Voices
from transformer.analysis.events import EventChange, EventTracker
from transformer.analysis.labels import load_labels
from transformer.analysis.types import AnalysisOptions
from transformer.analysis.windows import select_windows
from transformer.audio.embedded import EmbeddedAudio
from transformer.audio.loudness import example_dbfs, example_profile_dbfs
from transformer.privacy import PrivacyPolicy, parse_privacy_request

LEVELS = (-6.0, -3.0, 0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 20.0)
STREAM_SECONDS = 60.0
HIT_SECONDS = 0.5


async def _unused(*_: object) -> object:
    raise AssertionError("the benchmark analyses prepared audio: nothing is embedded or scored")


def analyzer(settings: SuddenLoudSettings) -> Analyzer:
    return Analyzer(
        AnalysisConfig(sudden_loud=settings),
        PrivacyPolicy(),
        embed=_unused,  # type: ignore[arg-type]
        score=_unused,  # type: ignore[arg-type]
        groups=load_anomaly_groups(),
        labels=load_labels(),
    )


def prepared(audio: np.ndarray) -> PreparedAnalysis:
    """A recording as the audio stage hands it on: its loudness, embeddings all zero."""
    examples = (audio.size - 15_600) // 15_360 + 1
    embeddings = np.zeros((examples, 128), dtype=np.uint8)
    embedded = EmbeddedAudio(
        embeddings,
        example_dbfs(audio, examples),
        audio.size / 16_000,
        parse_privacy_request("none", {}),
        example_profile_dbfs(audio, examples),
    )
    return PreparedAnalysis(
        AnalysisOptions(),
        embedded,
        select_windows(embeddings),
        select_windows(embeddings, all_windows=True, hop=1, end_aligned=False),
        "none",
        "bench",
    )


def starts(road: Analyzer, audio: np.ndarray) -> list[EventChange]:
    """The sudden_loud events the file road finds in ``audio`` (their starts)."""
    ready = prepared(audio)
    changes = road.events(ready, np.zeros((len(ready.scan), 527)))
    return [change for change in changes if change.change == "start" and change.group == GROUP]


@dataclass
class Tally:
    trials: int = 0
    detected: int = 0
    false: int = 0
    errors: list[float] | None = None

    def add(self, found: Sequence[EventChange], at: float) -> None:
        self.trials += 1
        hit = [change for change in found if abs(change.start_seconds - at) <= HIT_SECONDS]
        self.detected += bool(hit)
        self.false += len(found) - len(hit[:1])
        if hit:
            self.errors = (self.errors or []) + [hit[0].start_seconds - at]


def beds(seconds: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    made = {"room": room(seconds, rng), "rain": rain(seconds, rng)}
    for name in SHARED_BEDS:
        bed = shared(seconds, name)
        if bed is not None:
            made[f"shared {name}"] = bed
    return made


def detection(road: Analyzer, trials: int, seed: int) -> dict[tuple[str, float], Tally]:
    rng = np.random.default_rng(seed)
    tallies: dict[tuple[str, float], Tally] = {}
    for _ in range(trials):
        for name, bed in beds(STREAM_SECONDS, rng).items():
            for level in LEVELS:
                at = float(rng.uniform(15.0, STREAM_SECONDS - 10.0))
                audio = with_bursts(bed, [Burst(at, level, float(rng.uniform(0.15, 0.6)))], rng)
                tallies.setdefault((name, level), Tally()).add(starts(road, audio), at)
    return tallies


def false_per_hour(road: Analyzer, hours: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    pieces = max(1, round(hours * 3600 / 600))  # 10-minute streams
    counts: dict[str, int] = {}
    for _ in range(pieces):
        for name, bed in beds(600.0, rng).items():
            counts[name] = counts.get(name, 0) + len(starts(road, bed))
    rises = {f"rain fading in over {ramp:g} s": rain_start(60.0, rng, 20.0, ramp) for ramp in (5, 10, 20)}
    found = {name: len(starts(road, audio)) for name, audio in rises.items()}
    return {**{name: count / (pieces * 600 / 3600) for name, count in counts.items()}, **found}


def cpu_seconds_per_audio_second(settings: SuddenLoudSettings, seed: int) -> float:
    """The detector alone over 10 minutes of rain at hop 1 (the windows a live source gives)."""
    ready = prepared(rain(600.0, np.random.default_rng(seed)))
    profile = ready.embedded.example_profile_dbfs
    assert profile is not None
    detector = SuddenLoud(settings)
    began = time.process_time()
    for index, (start, end) in enumerate(zip(ready.scan.start_seconds, ready.scan.end_seconds, strict=True)):
        first = round(start / 0.96)
        detector.window(WindowSpan(float(start), float(end), None, profile[first : first + 10]), index=index)
    return (time.process_time() - began) / 600.0


def report(rise_db: float, trials: int, hours: float, seed: int) -> None:
    settings = SuddenLoudSettings(rise_db=rise_db)
    road = analyzer(settings)
    print(f"\n## sudden_loud, rise_db={rise_db:g} (other settings default: {settings})")
    tallies = detection(road, trials, seed)
    names = sorted({name for name, _ in tallies})
    print("| bed | " + " | ".join(f"{level:+g} dB" for level in LEVELS) + " | false in trials |")
    print("|---|" + "---|" * (len(LEVELS) + 1))
    for name in names:
        row = [tallies[(name, level)] for level in LEVELS]
        cells = [f"{100 * t.detected / t.trials:.0f} %" for t in row]
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(t.false for t in row)} |")
    errors = np.abs([e for t in tallies.values() for e in (t.errors or [])])
    if errors.size:
        print(
            f"onset error |start - burst|: p50 {np.percentile(errors, 50):.3f} s, "
            f"p95 {np.percentile(errors, 95):.3f} s ({errors.size} events)"
        )
    print(
        "false events: "
        + ", ".join(
            f"{name} {value:.1f}" + ("/h" if "fading" not in name else "")
            for name, value in false_per_hour(road, hours, seed).items()
        )
    )
    cost = cpu_seconds_per_audio_second(settings, seed)
    print(f"CPU per source: {1e6 * cost:.0f} us per second of audio ({100 * cost:.3f} % of one core)")


def voices_events(audio: np.ndarray) -> list[EventChange]:
    """The voices_while_armed events of a stream (armed throughout): 0.1-s pushes, windows at hop 1,
    the default lifecycle, as the monitor runs them."""
    voices = Voices(listening=True)
    voices.restart(0.0)
    tracker = EventTracker("bench")
    changes: list[EventChange] = []
    pushed = 0
    for window in range(int((audio.size / 16_000 - 9.6) / 0.96) + 1):
        start, end = window * 0.96, window * 0.96 + 9.6
        while pushed < end * 16_000:
            voices.push(audio[pushed : pushed + 1600])
            pushed += 1600
        changes += tracker.update(end, voices.window(WindowSpan(start, end), window))
    return [change for change in changes + tracker.close(source_ended=True) if change.change == "start"]


def report_voices(trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print("\n## voices_while_armed (armed throughout; speech_like: tests/support/speech_synth.py)")
    cells = []
    for snr in (-10.0, -5.0, 0.0, 10.0, 20.0):
        found = 0
        for trial in range(trials):
            audio = room(30.0, rng, dbfs=-45.0)
            speech = synth.speech_like(6.0, seed=trial)
            speech *= 10 ** ((-45.0 + snr) / 20) / np.sqrt(np.mean(np.square(speech)))
            audio[12 * 16_000 : 12 * 16_000 + speech.size] += speech
            found += any(11.5 <= change.start_seconds <= 19.0 for change in voices_events(audio))
        cells.append(f"{snr:+g} dB {100 * found / trials:.0f} %")
    print("detection of 6 s of speech over room tone (speech RMS over the bed): " + ", ".join(cells))
    others = {
        **{name: bed for name, bed in beds(600.0, rng).items()},
        "alarms, siren, scream, tone in room tone": _events_in_room(rng),
    }
    print(
        "false events: "
        + ", ".join(
            f"{name} {len(voices_events(audio)) * 3600 / (audio.size / 16_000):.1f}/h"
            for name, audio in others.items()
        )
    )
    speech = np.concatenate([synth.speech_like(10.0, seed=n) for n in range(6)])
    voices = Voices(listening=True)
    voices.restart(0.0)
    began = time.process_time()
    for offset in range(0, speech.size, 1600):
        voices.push(speech[offset : offset + 1600])
    cost = (time.process_time() - began) / (speech.size / 16_000)
    print(
        f"CPU per armed source: {1e3 * cost:.1f} ms per second of audio ({100 * cost:.2f} % of one core; "
        "none while its mode does not watch voices)"
    )


def _events_in_room(rng: np.random.Generator) -> np.ndarray:
    audio = room(120.0, rng, dbfs=-45.0)
    sounds = [
        synth.beeping_alarm(20.0, level=0.2),
        synth.siren(20.0, level=0.2),
        synth.scream(5.0, level=0.2),
    ]
    sounds.append(synth.tone(20.0, 440.0, level=0.2))
    for index, sound in enumerate(sounds):
        start = (5 + 28 * index) * 16_000
        audio[start : start + sound.size] += sound
    return audio


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20, help="bursts per bed and level")
    parser.add_argument("--hours", type=float, default=0.5, help="hours of each bed for false events")
    parser.add_argument("--rise_db", default=str(SuddenLoudSettings().rise_db), help="comma-separated")
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_flags()}")
    print(f"streams of {STREAM_SECONDS:g} s, one burst 15 s or more in; hit: an event within {HIT_SECONDS} s")
    for rise_db in (float(value) for value in args.rise_db.split(",")):
        report(rise_db, args.trials, args.hours, args.seed)
    report_voices(max(5, args.trials // 2), args.seed)


if __name__ == "__main__":
    main()
