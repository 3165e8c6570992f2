"""``audioguard calibrate``: each anomaly group's threshold for a false-alarm budget.

Your own audio, taken as free of real anomalies (every event on it is a false alarm): files, or
the live sources of a sources file for ``--duration``. It goes once through the live pipeline
(only window scores are kept, never audio); the detection step and the event lifecycle are then
replayed at a grid of thresholds, and each group gets the lowest threshold whose false-alarm
rate stays within ``--budget`` at ``--confidence`` (a Poisson upper bound). Too little audio
for the budget is refused, with the minimum needed (e.g. 1/week at 95 % needs 503 h). The
result is an anomaly-groups file the service loads as today's (``AUDIOGUARD_ANOMALY_GROUPS_FILE``,
``--anomaly-groups-file``); ``--evaluation-set`` adds each group's expected recall at the new
thresholds on a labelled set (``audioguard evaluate``'s format).

    audioguard calibrate night1.wav night2.wav --budget 1/day
    audioguard calibrate --sources sources.yaml --duration 259200 --budget 1/day
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract import cli_types
from contract.cli_style import CliParser, hyphenated, known_flags
from contract.errors import AudioGuardError
from transformer.privacy import PRIVACY_METHODS


def confidence(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="audioguard calibrate", description=__doc__, allow_abbrev=False)
    parser.add_argument("files", nargs="*", type=Path, help="recordings of the household's ordinary sound")
    parser.add_argument(
        "--sources", type=Path, help="or listen to the sources of this file (YAML or JSON) ..."
    )
    parser.add_argument("--duration", type=cli_types.positive_seconds, help="... for this many seconds")
    parser.add_argument(
        "--budget", required=True, help="false alarms allowed per source: COUNT/UNIT (hour, day, week)"
    )
    parser.add_argument(
        "--confidence", type=confidence, default=0.95, help="confidence that the budget holds (0.95)"
    )
    parser.add_argument("--groups", help="comma-separated groups to calibrate (default: every enabled group)")
    parser.add_argument(
        "--privacy", choices=PRIVACY_METHODS, help="privacy method for the files (as the source runs it)"
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path("models"), help="folder of the three model files"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("calibrated-groups.json"), help="the groups file written"
    )
    parser.add_argument(
        "--evaluation-set", type=Path, metavar="ANNOTATIONS", help="report the expected recall on this set"
    )
    parser.add_argument(
        "--labels", type=Path, help="its label -> group map (default: groups_map.json beside it)"
    )
    parser.add_argument("--collar", type=float, default=1.0, help="onset collar of that recall, seconds")
    parser.add_argument("--ffmpeg", default="ffmpeg", help="the ffmpeg program")
    return parser


def _known_hours(args: argparse.Namespace) -> float | None:
    """The audio's duration before anything runs (file headers, or ``--duration``), if known."""
    import soundfile as sf

    if args.sources is not None:
        return float(args.duration) / 3600
    try:
        return sum(float(sf.info(str(path)).duration) for path in args.files) / 3600
    except (RuntimeError, sf.LibsndfileError):
        return None  # a format only ffmpeg reads: checked after the run


def _recall(args: argparse.Namespace, classifier: Any, thresholds: dict[str, float]) -> dict[str, float]:
    from audioguard.evaluation.drive import run_recordings
    from audioguard.evaluation.evaluate import load_set
    from audioguard.evaluation.metrics import event_counts
    from audioguard.evaluation.mixtures import GROUP_MAP
    from audioguard.evaluation.replay import as_events, replay

    labels = args.labels or args.evaluation_set.parent / GROUP_MAP
    labelled = load_set(args.evaluation_set, labels, [g.name for g in classifier.groups])
    heard = asyncio.run(run_recordings(classifier, labelled.files, args.privacy, ffmpeg=args.ffmpeg))
    detected = [
        e
        for name, h in zip(labelled.names, heard, strict=True)
        for e in as_events(name, replay(h, thresholds))
    ]
    return {g: event_counts(labelled.reference, detected, g, args.collar).recall for g in labelled.groups}


def calibrate(args: argparse.Namespace, per_hour: float) -> int:
    from audioguard.evaluation.calibrate import calibrate as choose
    from audioguard.evaluation.calibrate import groups_document, rate_words
    from audioguard.evaluation.drive import run_recordings, run_sources
    from audioguard.evaluation.report import MEANINGLESS
    from audioguard.monitor import _load_classifier
    from contract.native_logs import native_stderr_to_debug

    with native_stderr_to_debug("tensorflow"):
        classifier = _load_classifier(args.model_dir)
    enabled = [g.name for g in classifier.groups if g.enabled]
    groups = [g.strip() for g in args.groups.split(",")] if args.groups else enabled
    unknown = sorted(set(groups) - set(enabled))
    if unknown:
        print(f"error: --groups: unknown or disabled group(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.sources is not None:
        by_name = asyncio.run(
            run_sources(classifier, args.sources, duration=args.duration, ffmpeg=args.ffmpeg)
        )
        heard = list(by_name.values())
    else:
        heard = asyncio.run(run_recordings(classifier, args.files, args.privacy, ffmpeg=args.ffmpeg))
    hours = sum(one.seconds for one in heard) / 3600
    choices = choose(heard, groups, per_hour, confidence=args.confidence)
    args.out.write_text(
        json.dumps(groups_document(choices, per_hour, hours, args.confidence), indent=2) + "\n"
    )
    chosen = {c.group: c.threshold for c in choices if c.threshold is not None}
    recall = _recall(args, classifier, chosen) if args.evaluation_set else {}
    if not classifier.weights.official:
        print(MEANINGLESS.replace("every figure below measures", "these thresholds fit"))
    was = {g.name: g.threshold for g in classifier.groups}
    print(
        f"{hours:.2f} h of audio; budget {rate_words(per_hour)} per source, {args.confidence:.0%} confidence"
    )
    print(f"{'group':<18} {'was':>5} {'now':>5} {'events':>6} {'bound/h':>9} {'recall':>6}")
    for c in choices:
        now = "-" if c.threshold is None else f"{c.threshold:.2f}"
        r = recall.get(c.group)
        rec = "-" if r is None or math.isnan(r) else f"{r:.2f}"
        print(f"{c.group:<18} {was[c.group]:>5.2f} {now:>5} {c.events:>6} {c.upper_per_hour:>9.3g} {rec:>6}")
    failed = [c.group for c in choices if c.threshold is None]
    print(f"groups file: {args.out} (load it with AUDIOGUARD_ANOMALY_GROUPS_FILE={args.out})")
    if failed:
        print(
            f"no threshold meets the budget for {', '.join(failed)}: left at their threshold", file=sys.stderr
        )
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(hyphenated(argv, known_flags(parser)))
    from audioguard.evaluation.calibrate import TooLittleAudio, parse_budget, refuse_short
    from contract.assets import ALL_ASSETS, require_assets

    if bool(args.files) == (args.sources is not None):
        parser.error("give either recordings or --sources (with --duration)")
    if args.sources is not None and args.duration is None:
        parser.error("--sources needs --duration: a live source does not end")
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    try:
        per_hour = parse_budget(args.budget)
        hours = _known_hours(args)
        if hours is not None:  # refused before the model loads
            refuse_short(hours, per_hour, args.confidence)
        require_assets(args.model_dir, ALL_ASSETS)
        return calibrate(args, per_hour)
    except TooLittleAudio as error:
        print(f"refused: {error.message}", file=sys.stderr)
        return 2
    except AudioGuardError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a recording the live pipeline could not analyse
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
