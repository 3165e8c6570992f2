"""What each privacy method protects and what it costs, measured (issue 4).

    python -m bench.privacy_report [--audio_dir DIR] [--speech FILE ...] [--events FILE ...]
                                   [--model_dir DIR] [--seeds 3] [--no_tts] [--no_asr]

Privacy: STOI (pystoi) of the anonymised speech against the original, lower is
better, plain and after an attacker re-aligns 0.25-s pieces to where they fit
the original best (that undoes a shuffle; plain STOI cannot see through one).
Also the share of voiced frames that are still voiced (pitch carries speaker
identity and intonation), and, alignment-free, what a speech recogniser still
understands: the share of the word pairs PocketSphinx (offline, its bundled
US-English model) hears in the original that it also hears in the anonymised
speech, in any order (a shuffle keeps pairs inside its segments; a recogniser
fed noise hallucinates words, so the chance row gives the floor). A second
baseline row, the clean speech shifted by half its length, shows that plain STOI
falls to its floor for speech that is complete but misplaced. Speech:
PhilippeRemy_001.wav from ``--audio_dir``, espeak-ng sentences (alone and mixed
with events at 10 and 0 dB SNR) and the tests' synthetic speech-like signal.

Utility: mean |difference| of the VGGish log-mel features versus the original on
event recordings (``--audio_dir``: birds1, gunshots, thunder, rain, snoring) and
synthetic alarm / siren / glass / scream / tone signals; on the speech + event
mixtures, the same distance from the event alone in the log-mel cells the event
dominates (does an event survive when someone talks over it?). With
``--model_dir`` also the cosine similarity of the VGGish embeddings and the
top-5 agreement of the classifier scores versus ``none`` (through
``audioguard.offline``); the report prints ``asset_report`` of the weights, and
with non-official (e.g. synthetic) weights those two columns only show how far
each method moves the pipeline's numbers.

Cost: extra milliseconds of ``apply_privacy`` per 10-s clip.

Without ``--audio_dir`` (or when ../shared/audio is absent) only synthesised
signals are used. Recordings are decoded in memory; nothing is written to disk.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bench.privacy_measurements import (
    Intelligibility,
    ModelComparison,
    cost_ms,
    log_mel_measures,
    privacy_measures,
    reference_measures,
    shifted_speech,
    speech_recognizer,
    transcripts,
    unrelated_noise,
)
from bench.privacy_measures import (
    replaced_fraction,
)
from bench.privacy_signals import (
    ASR_GROUPS,
    DEFAULT_AUDIO_DIR,
    event_clips,
    speech_cases,
)
from transformer.privacy import PRIVACY_METHODS, parse_privacy_request

# --- tables ------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pair(values: tuple[float, float]) -> str:
    return f"{values[0]:.2f} / {values[1]:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--audio_dir",
        type=Path,
        default=DEFAULT_AUDIO_DIR if DEFAULT_AUDIO_DIR.is_dir() else None,
        help="folder with PhilippeRemy_001.wav and the event recordings (default ../shared/audio)",
    )
    parser.add_argument("--speech", type=Path, nargs="*", default=[], help="more speech recordings")
    parser.add_argument("--events", type=Path, nargs="*", default=[], help="more event recordings")
    parser.add_argument(
        "--model_dir",
        type=Path,
        default=None,
        help="model directory for the embedding / score comparison (optional)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="random draws averaged per randomised method")
    parser.add_argument("--no_tts", action="store_true", help="skip the espeak-ng speech")
    parser.add_argument("--no_asr", action="store_true", help="skip the speech-recogniser measure")
    args = parser.parse_args(argv)
    audio_dir: Path | None = args.audio_dir
    if audio_dir is not None and not audio_dir.is_dir():
        print(f"> {audio_dir} does not exist: synthesised signals only.\n")
        audio_dir = None

    started = time.perf_counter()
    events = event_clips(audio_dir, args.events)
    mix_events = {
        name: clip
        for name, clip in events.items()
        if name in {"gunshots.wav", "rain.wav", "alarm (synth)", "siren (synth)", "glass (synth)"}
    }
    cases = speech_cases(audio_dir, args.speech, not args.no_tts, mix_events)
    groups = list(dict.fromkeys(case.group for case in cases))
    counts = {group: sum(case.group == group for case in cases) for group in groups}

    recognizer = None if args.no_asr else speech_recognizer()
    measure = Intelligibility(recognizer)
    privacy = {method: privacy_measures(cases, method, args.seeds, measure) for method in PRIVACY_METHODS}
    baselines = {
        "unrelated noise (chance level)": reference_measures(cases, measure, unrelated_noise),
        "the clean speech shifted by half its length (all words intact)": reference_measures(
            cases, measure, shifted_speech
        ),
    }
    asr_groups = [group for group in groups if group in ASR_GROUPS] if recognizer else []
    log_mel = {method: log_mel_measures(events, method, args.seeds) for method in PRIVACY_METHODS}
    speech_clip, event_clip = cases[0].signal, next(iter(events.values()))
    cost = {
        method: (cost_ms(speech_clip, request), cost_ms(event_clip, request))
        for method in PRIVACY_METHODS
        for request in [parse_privacy_request(method, {})]
    }
    model: ModelComparison | None = None
    if args.model_dir is not None:
        model = ModelComparison(args.model_dir, events)
    through_model = {method: model.measures(method) for method in PRIVACY_METHODS} if model else {}

    print("### Summary\n")
    header = [
        "method",
        *(f"STOI {group} ({counts[group]}), plain / re-aligned" for group in groups),
        *(f"ASR word pairs heard, {group}" for group in asr_groups),
        "voiced frames left",
        "event log-mel mean abs diff",
        "event-dominated cells in mixtures: log-mel diff from the event",
    ]
    if model:
        header += ["event embedding cosine vs none", "event top-5 agreement vs none"]
    header.append("extra ms per 10-s clip (speech / event)")
    rows = []
    for method in PRIVACY_METHODS:
        row = [
            method,
            *(pair(privacy[method].stoi[group]) for group in groups),
            *(f"{100 * privacy[method].word_pairs[group]:.0f} %" for group in asr_groups),
            f"{100 * privacy[method].voiced_left:.0f} %",
            f"{np.mean([d[0] for d in log_mel[method].values()]):.2f}",
            f"{privacy[method].event_cells:.2f}",
        ]
        if model:
            row += [
                f"{through_model[method].embedding_cosine:.3f}",
                f"{100 * through_model[method].top5_agreement:.0f} %",
            ]
        row.append(f"{cost[method][0]:.1f} / {cost[method][1]:.1f}")
        rows.append(row)
    for name, (floor, floor_recall) in baselines.items():
        baseline = [
            name,
            *(pair(floor[group]) for group in groups),
            *(f"{100 * floor_recall[group]:.0f} %" for group in asr_groups),
            "",
            "",
            "",
        ]
        rows.append(baseline + (["", ""] if model else []) + [""])
    print(markdown_table(header, rows) + "\n")
    if model:
        print(model.weights_note())
        print(
            f"For scale: the transformer's own work on a 10-s clip (log-mel, VGGish, PCA; "
            f"`none`) takes {model.pipeline_ms(event_clip):.0f} ms on this machine.\n"
        )
    else:
        print(
            "> no --model_dir: embedding and top-5 comparison skipped (log-mel measures are weight-free).\n"
        )

    print(
        "### Log-mel distance per event clip (mean abs difference of the VGGish log-mel features, "
        "frame by frame / of the clip-average spectrum; 0 = unchanged)\n"
    )
    rows = [[method, *(pair(tuple(log_mel[method][name])) for name in events)] for method in PRIVACY_METHODS]
    print(markdown_table(["method", *events], rows) + "\n")

    if recognizer is not None:
        for case in (case for case in cases if case.group == "recorded"):
            print(f"### What the recogniser hears in {case.name} (first draw of each method)\n")
            print(markdown_table(["signal", "PocketSphinx transcript"], transcripts(case, recognizer)) + "\n")

    print("### Frames speech_mask replaces (default parameters)\n")
    speech = [(case.name, case.signal) for case in cases if case.group != "tts+event" or "@0dB" in case.name]
    rows = [[name, "speech", f"{100 * replaced_fraction(samples):.0f} %"] for name, samples in speech]
    rows += [[name, "event", f"{100 * replaced_fraction(samples):.0f} %"] for name, samples in events.items()]
    print(markdown_table(["clip", "kind", "frames replaced"], rows) + "\n")

    print(
        f"_{len(cases)} speech clips ({', '.join(f'{counts[g]} {g}' for g in groups)}), {len(events)} event "
        f"clips, {args.seeds} draws per randomised method (1 through the model), "
        f"{time.perf_counter() - started:.0f} s._"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
