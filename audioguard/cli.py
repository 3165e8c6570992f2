"""The ``audioguard`` command: weights, offline classification, local serving, client.

audioguard weights download --dest DIR      official files, sha512-verified
audioguard weights synthetic --dest DIR     synthetic files in the official formats (--force to replace)
audioguard weights verify DIR               are these the official files?
audioguard classify FILE... --model_dir DIR [--all-windows] [--plot OUT.png]
audioguard serve --model_dir DIR            predictor + transformer on this machine
audioguard client FILE... --url URL         send files to a running service (v2)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioguard.synthetic import PARTS as SYNTHETIC_PARTS
from audioguard.synthetic import write_synthetic_assets
from contract import weights_cli
from contract.errors import AudioGuardError

if TYPE_CHECKING:
    from audioguard.offline import ClipResult, OfflineClassifier
    from transformer.privacy import PrivacyRequest


def _weights_synthetic(args: argparse.Namespace) -> int:
    written = write_synthetic_assets(args.dest, seed=args.seed, include=args.only, force=args.force)
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
    from tqdm import tqdm

    from audioguard.offline import OfflineClassifier
    from transformer.analysis.labels import parse_label_filter
    from transformer.privacy import parse_privacy_request

    classifier = OfflineClassifier.from_model_dir(args.model_dir, max_audio_seconds=args.max_audio_seconds)
    if not classifier.asset_report()["official"]:
        print(
            "note: these weights are not the official ones; scores are not the published model's",
            file=sys.stderr,
        )
    privacy = parse_privacy_request(args.privacy, {})
    only = parse_label_filter(args.filter)
    failures = 0
    outputs: list[Any] = []
    for path in tqdm(args.files, unit="file", disable=None if len(args.files) > 1 else True, file=sys.stderr):
        try:
            result = classifier.classify(
                Path(path).read_bytes(),
                privacy=privacy,
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
            _plot(classifier, path, args, privacy, len(args.files))
        outputs.append(_describe(path, result, args.json))
    if args.json:
        print(json.dumps(outputs, indent=2))
    elif outputs:  # every file failed: the errors are all there is to say
        print("\n".join(outputs))
    return 1 if failures else 0


def _describe(path: str, result: ClipResult, as_json: bool) -> Any:
    """The JSON object, or the printed table, for one file's result (window keys as in v2/SIFIS)."""
    windows: list[dict[str, Any]] = [
        {"start_seconds": w.start_seconds, "end_seconds": w.end_seconds, "top": w.top} for w in result.windows
    ]
    if as_json:
        return {
            "file": path,
            "duration_seconds": result.duration_seconds,
            "privacy": result.privacy_method,
            "windows": windows,
        }
    lines = [f"{path} ({result.duration_seconds:.2f} s, privacy={result.privacy_method})"]
    for window in windows:
        if len(windows) > 1:
            lines.append(f"  [{window['start_seconds']:7.2f} s - {window['end_seconds']:7.2f} s]")
        for rank, item in enumerate(window["top"], 1):
            lines.append(f"    {rank}. {item['label']:<40} {item['probability']:.4f}  {item['label_id']}")
    return "\n".join(lines)


def _plot(
    classifier: OfflineClassifier, path: str, args: argparse.Namespace, privacy: PrivacyRequest, count: int
) -> None:
    from audioguard.plot import plot_timeline

    # one-embedding hop gives a 0.96 s resolution timeline
    timeline = classifier.classify(
        Path(path).read_bytes(), privacy=privacy, start_time=args.start_time, all_windows=True, hop=1
    )
    out = Path(args.plot)
    if count > 1:
        out = out.with_name(f"{out.stem}-{Path(path).stem}{out.suffix or '.png'}")
    plot_timeline(timeline, classifier.labels, out, title=Path(path).name)
    print(f"timeline plot: {out}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioguard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    weights = sub.add_parser("weights", help="get, generate or verify model files").add_subparsers(
        dest="weights_command", required=True
    )
    weights_cli.add_download_arguments(
        weights.add_parser("download", help="download the official files and verify their sha512")
    )
    synthetic = weights.add_parser(
        "synthetic",
        help="write synthetic weights in the official formats",
        description="Write random weights in the official file formats (tests, offline demos). "
        "Refuses (exit 2) when a target file already exists in DEST, unless --force; an official "
        "file (its sha512 is the published one) is never replaced, even with --force.",
    )
    synthetic.add_argument("--dest", type=Path, required=True, help="model directory to fill")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument(
        "--only",
        type=_synthetic_parts,
        default=list(SYNTHETIC_PARTS),
        metavar="PARTS",
        help=f"comma-separated subset of {','.join(SYNTHETIC_PARTS)} (default: all)",
    )
    synthetic.add_argument(
        "--force",
        action="store_true",
        help="replace existing files in DEST (without it the command refuses and exits 2); "
        "official files (sha512 verified) are never replaced",
    )
    synthetic.set_defaults(handler=_weights_synthetic)
    weights_cli.add_verify_arguments(
        weights.add_parser("verify", help="report whether a model directory holds the official files")
    )

    classify = sub.add_parser("classify", help="classify audio files offline (no servers)")
    classify.add_argument("files", nargs="+")
    classify.add_argument("--model_dir", "--model-dir", type=Path, default=Path("models"))
    classify.add_argument("--all-windows", action="store_true", help="score every 10-embedding window")
    classify.add_argument("--hop", type=int, default=10, help="window hop in embeddings (0.96 s each)")
    classify.add_argument("--top-k", type=int, default=5)
    classify.add_argument("--start-time", type=float, default=0.0, help="seconds; MAX's start_time")
    classify.add_argument("--filter", help="MAX's filter: comma-separated labels kept among the top k")
    classify.add_argument("--privacy", default="none", help="none, dp_noise, scramble, speech_mask")
    classify.add_argument("--max-audio-seconds", type=float, default=3600.0)
    classify.add_argument("--plot", help="write a PNG timeline of the leading classes")
    classify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    classify.set_defaults(handler=_classify)

    for name, module, text in (
        ("serve", "audioguard.local", "run predictor + transformer on this machine (SIFIS port 5000)"),
        ("client", "audioguard.client", "send audio files to a running service over v2"),
    ):
        delegated = sub.add_parser(name, help=text, add_help=False)
        delegated.set_defaults(delegate=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    if argv and argv[0] in ("serve", "client"):
        import importlib

        module = importlib.import_module(f"audioguard.{'local' if argv[0] == 'serve' else 'client'}")
        return int(module.main(argv[1:]))
    return weights_cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
