"""The ``audioguard`` command: weights, offline classification, local serving, client.

audioguard weights download --dest DIR   official files, sha512-verified
audioguard weights synthetic --dest DIR  synthetic files in the official formats
audioguard weights verify DIR            are these the official files?
audioguard classify FILE... --model-dir DIR [--all-windows] [--plot OUT.png]
audioguard serve --model-dir DIR         predictor + transformer on this machine
audioguard client FILE... --url URL      send files to a running service (v2)
audioguard monitor --sources FILE        listen to live sources, print events
audioguard evaluate                      detection measured on a labelled set
audioguard calibrate FILE... --budget R  thresholds for a false-alarm budget

Flags are written with hyphens (--model-dir); the underscore spelling (--model_dir) is accepted too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from audioguard.render import describe
from audioguard.synthetic import PARTS as SYNTHETIC_PARTS
from audioguard.synthetic import write_synthetic_assets
from contract import cli_types, weights_cli
from contract.assets import HOW_TO_GET_WEIGHTS
from contract.cli_style import CliParser, hyphenated, known_flags
from contract.errors import AudioGuardError
from contract.interrupts import exit_on_interrupt, run_interruptibly
from contract.native_logs import quiet_native_logs
from transformer.privacy import PRIVACY_METHODS

if TYPE_CHECKING:
    from audioguard.offline import OfflineClassifier
    from transformer.analysis.types import AnalysisResult


def _weights_synthetic(args: argparse.Namespace) -> int:
    from contract.native_logs import native_stderr_to_debug

    # TensorFlow's import and its checkpoint writer sit in C code for seconds: Ctrl-C still exits;
    # its native banners are not this command's output
    with native_stderr_to_debug("tensorflow"):
        written = run_interruptibly(
            write_synthetic_assets, args.dest, seed=args.seed, include=args.only, force=args.force
        )
    for name, path in written.items():
        print(f"{name}: {path} (SYNTHETIC: random weights in the official format, not the real model)")
    return 0


def _synthetic_parts(value: str) -> list[str]:
    """``--only``'s comma-separated part names, checked before any writer (TensorFlow) loads."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in parts if part not in SYNTHETIC_PARTS]
    if unknown or not parts:
        problem = f"unknown part(s) {', '.join(map(repr, unknown))}" if unknown else f"no part in {value!r}"
        raise argparse.ArgumentTypeError(f"{problem}: choose from {', '.join(SYNTHETIC_PARTS)}")
    return parts


def _classify(args: argparse.Namespace) -> int:
    # every argument is checked before the model loads (tens of seconds): a typo costs nothing
    problems = classify_problems(args)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from contract.native_logs import native_stderr_to_debug
    from transformer.analysis.document import result_document
    from transformer.analysis.labels import parse_label_filter

    only = parse_label_filter(args.filter)
    # TensorFlow's native banners (the classifier) are not the command's output; the load and
    # the analyses run in a worker thread, so that Ctrl-C exits at once (``contract.interrupts``)
    with native_stderr_to_debug("tensorflow"):
        classifier = run_interruptibly(_load_classifier, args.model_dir, args.max_audio_seconds)
    failures = 0
    outputs: list[Any] = []
    for path in tqdm(args.files, unit="file", disable=None if len(args.files) > 1 else True, file=sys.stderr):
        try:
            result = run_interruptibly(
                classifier.classify,
                Path(path).read_bytes(),
                privacy=args.privacy,
                start_time=args.start_time,
                all_windows=args.all_windows,
                hop=args.hop,
                top_k=args.top_k,
                only=only,
            )
        except (AudioGuardError, OSError) as error:
            failures += 1
            message = error.message if isinstance(error, AudioGuardError) else str(error)
            print(f"{path}: error: {message}", file=sys.stderr)
            continue
        if args.plot:
            _plot(classifier, path, result, args.plot, len(args.files))
        document = {"file": path, **result_document(result)}
        outputs.append(document if args.json else describe(path, document))
    if args.json:
        print(json.dumps(outputs, indent=2))
    elif outputs:  # every file failed: the errors are all there is to say
        print("\n".join(outputs))
    return 1 if failures else 0


def _load_classifier(model_dir: Path, max_audio_seconds: float) -> OfflineClassifier:
    from audioguard.offline import OfflineClassifier

    return OfflineClassifier.from_model_dir(model_dir, max_audio_seconds=max_audio_seconds)


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be classified, from its header alone (the services' own check:
    ``transformer.audio.decode.probe_audio``), or None."""
    from transformer.audio.decode import probe_audio

    if not Path(path).is_file():
        return f"{path}: no such file"
    try:
        probe_audio(Path(path).read_bytes())
    except OSError as error:
        return f"{path}: cannot read it ({error.strerror or type(error).__name__})"
    except AudioGuardError as error:
        return f"{path}: {error.message}"
    return None


def classify_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with ``classify``'s files (missing, unreadable, not audio), model folder,
    filter and plot path (nothing loaded)."""
    from contract.assets import ALL_ASSETS, require_assets
    from contract.errors import MissingModelAsset
    from transformer.analysis.labels import parse_label_filter

    problems = [problem for problem in map(file_problem, args.files) if problem is not None]
    if not Path(args.model_dir).is_dir():
        problems.append(f"model folder {args.model_dir} does not exist: {HOW_TO_GET_WEIGHTS}")
    else:
        try:
            require_assets(args.model_dir, ALL_ASSETS)
        except MissingModelAsset as error:
            problems.append(error.message)
    try:
        parse_label_filter(args.filter)
    except AudioGuardError as error:
        problems.append(f"--filter: {error.message}")
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        problems.append(f"--plot: folder {Path(args.plot).parent} does not exist")
    return problems


def _plot(classifier: OfflineClassifier, path: str, result: AnalysisResult, target: str, count: int) -> None:
    from audioguard.plot import draw_timeline
    from audioguard.timeline import timeline_data

    out = Path(target)
    if count > 1:
        out = out.with_name(f"{out.stem}-{Path(path).stem}{out.suffix or '.png'}")
    draw_timeline(timeline_data(result, classifier.labels, title=Path(path).name), out)
    print(f"timeline plot: {out}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="audioguard", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Any, name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        return group.add_parser(  # type: ignore[no-any-return]
            name, help=text, description=description or text[0].upper() + text[1:] + ".",
            allow_abbrev=False,
        )  # fmt: skip

    weights = command(sub, "weights", "get, generate or verify model files").add_subparsers(
        dest="weights_command", required=True, metavar="ACTION"
    )
    weights_cli.add_download_arguments(
        command(weights, "download", "download the official files and verify their sha512")
    )
    synthetic = command(
        weights,
        "synthetic",
        "write synthetic weights in the official formats",
        "Write random weights in the official file formats (tests, offline demos). "
        "Refuses (exit 2) when a target file already exists in DEST, unless --force; an official "
        "file (its sha512 is the published one) is never replaced, even with --force.",
    )
    synthetic.add_argument("--dest", type=Path, required=True, help="model directory to fill")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    synthetic.add_argument(
        "--only",
        type=_synthetic_parts,
        default=list(SYNTHETIC_PARTS),
        metavar="PARTS",
        help=f"comma-separated subset of {','.join(SYNTHETIC_PARTS)}",
    )
    synthetic.add_argument(
        "--force",
        action="store_true",
        help="replace existing files in DEST (without it the command refuses and exits 2); "
        "official files (sha512 verified) are never replaced",
    )
    synthetic.set_defaults(handler=_weights_synthetic)
    weights_cli.add_verify_arguments(
        command(weights, "verify", "report whether a model directory holds the official files")
    )

    classify = command(
        sub,
        "classify",
        "classify audio files offline (no servers)",
        "Classify audio files in this process, as the services would: top labels per window and the "
        "anomaly events of the whole recording (same groups, thresholds, loudness gate and event "
        "lifecycle as the services and a live source; AUDIOGUARD_* variables apply). Every argument "
        "is checked before the model loads.",
    )
    classify.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, MP3, ...)")
    classify.add_argument(
        "--model-dir", type=Path, default=Path("models"), help="folder of the three model files"
    )
    classify.add_argument("--all-windows", action="store_true", help="labels for every 10-embedding window")
    classify.add_argument(
        "--hop",
        type=cli_types.hop,
        default=10,
        help="hop between the labelled windows of --all-windows in embeddings (0.96 s each), 1-10; "
        "anomalies are scanned every AUDIOGUARD_MONITOR_HOP examples (1), as a live source is",
    )
    classify.add_argument("--top-k", type=cli_types.top_k, default=5, help="labels per window, 1-527")
    classify.add_argument(
        "--start-time", type=cli_types.seconds, default=0.0, help="seconds into the file (MAX's start_time)"
    )
    classify.add_argument("--filter", help="MAX's filter: comma-separated labels kept among the top k")
    classify.add_argument(
        "--privacy",
        choices=PRIVACY_METHODS,
        default=None,
        help="anonymisation applied before features (unset: the configured minimum, none by default)",
    )
    classify.add_argument(
        "--max-audio-seconds",
        type=cli_types.positive_seconds,
        default=3600.0,
        help="longest recording accepted",
    )
    classify.add_argument(
        "--plot", metavar="OUT.png", help="also draw the windows and anomalies of each file as a PNG timeline"
    )
    classify.add_argument("--json", action="store_true", help="print the JSON documents instead of text")
    classify.set_defaults(handler=_classify)

    for name, text in DELEGATED.items():
        delegated = command(sub, name, text, f"{text[0].upper()}{text[1:]}: see `audioguard {name} --help`.")
        delegated.add_argument(
            "arguments", nargs=argparse.REMAINDER, help=f"the options of audioguard {name}"
        )
    return parser


#: Subcommands whose parser lives in their own module (``audioguard.local``, ``audioguard.client``).
DELEGATED: Final = {
    "serve": "run predictor + transformer on this machine (SIFIS port 5000)",
    "client": "send audio files to a running service over v2",
    "monitor": "listen to live sources (cameras, streams, sound cards) and print anomaly events",
    "evaluate": "measure detection on a labelled set through the live pipeline (precision, recall, "
    "PSDS2, false alarms per hour)",
    "calibrate": "choose each group's threshold for a false-alarm budget from your own audio",
}
_DELEGATE_MODULES: Final = {
    "serve": "audioguard.local",
    "client": "audioguard.client",
    "monitor": "audioguard.monitor",
    "evaluate": "audioguard.evaluate_cli",
    "calibrate": "audioguard.calibrate_cli",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; Ctrl-C exits 130 at once, without a traceback (``contract.interrupts``;
    ``monitor`` and ``serve`` first stop what they run)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_native_logs()
    with exit_on_interrupt():
        if argv and argv[0] in DELEGATED:
            import importlib

            module = importlib.import_module(_DELEGATE_MODULES[argv[0]])
            return int(module.main(argv[1:]))
        parser = build_parser()
        return weights_cli.run(parser.parse_args(hyphenated(argv, known_flags(parser))))


if __name__ == "__main__":
    sys.exit(main())
