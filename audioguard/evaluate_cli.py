"""``audioguard evaluate``: how often the service detects, misses and cries wolf, measured.

The set (by default the shipped one, generated: synthesised alarms, sirens and knocks mixed into
room tone, rain-like noise and a real rain recording at -6/0/+6 dB, plus negative-only audio;
or your own recordings with ``--annotations``) goes through the live pipeline, exactly as a
``file:`` source of ``audioguard monitor`` with ``realtime: false`` (as fast as the host allows),
once per privacy method. Printed: per anomaly group, event-based precision/recall/F1 (onset
collar), PSDS2, false alarms per hour, onset error and alert delay; ``--json`` and ``--plot``
write the document and the recall-against-false-alarms plot. With synthetic weights the first
line says the figures are meaningless. Format and meaning: docs/evaluation.md.

    audioguard evaluate --json report.json --plot report.png
    audioguard evaluate --annotations my/annotations.tsv --privacy none
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract.cli_style import CliParser, hyphenated, known_flags
from contract.errors import AudioGuardError
from transformer.privacy import PRIVACY_METHODS


def privacy_methods(value: str) -> list[str]:
    """``all`` or a comma-separated list of privacy methods."""
    if value.strip() == "all":
        return list(PRIVACY_METHODS)
    methods = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [m for m in methods if m not in PRIVACY_METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown privacy method(s) {', '.join(unknown) or repr(value)}: choose from all, "
            + ", ".join(PRIVACY_METHODS)
        )
    return methods


def positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="audioguard evaluate", description=__doc__, allow_abbrev=False)
    parser.add_argument(
        "--model-dir", type=Path, default=Path("models"), help="folder of the three model files"
    )
    parser.add_argument(
        "--annotations",
        type=Path,
        help="your own set: a DCASE-style annotation file; every audio file in its folder is evaluated "
        "(a file without events is negative-only audio). Default: the shipped set, generated",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        help="label -> anomaly group JSON (default: groups_map.json beside the annotations)",
    )
    parser.add_argument(
        "--set-dir", type=Path, help="generate the shipped set here and keep it (default: a temporary folder)"
    )
    parser.add_argument(
        "--privacy",
        type=privacy_methods,
        default=list(PRIVACY_METHODS),
        help="privacy methods: all (default) or a comma-separated list",
    )
    parser.add_argument(
        "--collar", type=positive, default=1.0, help="onset collar in seconds (default 1.0: a window hop)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="also write the report as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="OUT.png", help="also draw recall against false alarms per hour"
    )
    parser.add_argument("--ffmpeg", default="ffmpeg", help="the ffmpeg program")
    return parser


def run(args: argparse.Namespace, set_dir: Path) -> dict[str, Any]:
    from audioguard.evaluation.evaluate import evaluate_method, load_set
    from audioguard.evaluation.mixtures import GROUP_MAP, generate_set
    from audioguard.monitor import _load_classifier
    from contract.native_logs import native_stderr_to_debug

    started = time.perf_counter()
    annotations = args.annotations or generate_set(set_dir)
    labels = args.labels or annotations.parent / GROUP_MAP
    with native_stderr_to_debug("tensorflow"):
        classifier = _load_classifier(args.model_dir)
    labelled = load_set(annotations, labels, [g.name for g in classifier.groups])
    methods = {}
    for method in args.privacy:
        print(f"evaluating privacy {method} ...", file=sys.stderr, flush=True)
        methods[method] = evaluate_method(classifier, labelled, method, args.collar, ffmpeg=args.ffmpeg)
    audio_seconds = next(iter(methods.values()))["audio_seconds"]
    return {
        "weights_official": classifier.weights.official,
        "weights_warning": classifier.weights.warning,
        "set": {
            "annotations": str(annotations),
            "files": len(labelled.files),
            "hours": audio_seconds / 3600,
            "events": len(labelled.reference),
            "distractors": labelled.distractors,
        },
        "groups": list(labelled.groups),
        "collar_seconds": args.collar,
        "methods": methods,
        "run_seconds": time.perf_counter() - started,
    }


def check_set(args: argparse.Namespace) -> None:
    """The user's set against the configured groups (InvalidConfiguration names the problem)."""
    from audioguard.evaluation.evaluate import load_set
    from audioguard.evaluation.mixtures import GROUP_MAP
    from transformer.analysis.anomaly_groups import load_anomaly_groups
    from transformer.settings import TransformerSettings

    settings = TransformerSettings(**{"model_dir": args.model_dir})  # and AUDIOGUARD_* variables
    groups = [group.name for group in load_anomaly_groups(settings.anomaly_groups_file)]
    load_set(args.annotations, args.labels or args.annotations.parent / GROUP_MAP, groups)


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(hyphenated(argv, known_flags(parser)))
    from audioguard.evaluation.evaluate import clean
    from audioguard.evaluation.report import plot, table
    from contract.assets import ALL_ASSETS, require_assets

    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None and not path.resolve().parent.is_dir():
            parser.error(f"{option}: folder {path.parent} does not exist")
    if args.annotations is not None and not args.annotations.is_file():
        parser.error(f"--annotations: no such file {args.annotations}")
    try:
        if args.annotations is not None:  # a bad annotation file or map is said before the model loads
            check_set(args)
        require_assets(args.model_dir, ALL_ASSETS)
        with tempfile.TemporaryDirectory(prefix="audioguard-set-") as temporary:
            report = run(args, args.set_dir or Path(temporary))
    except AudioGuardError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a recording the live pipeline could not analyse
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table(report))
    print(f"run time: {report['run_seconds']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(clean(report), indent=2) + "\n")
        print(f"JSON: {args.json}", file=sys.stderr)
    if args.plot:
        plot(report, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
