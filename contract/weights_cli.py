"""Get or check the official weights: ``download`` and ``verify``, in every image.

    python -m contract.weights_cli download --dest DIR [--mirror URL] [--timeout S] [--force]
    python -m contract.weights_cli verify DIR

Both service images carry this (a Kubernetes Job or a build stage fills a
model volume with it); ``audioguard weights download|verify`` is the same code.
Exit codes: 0 done (verify: official files), 1 verify found other files,
2 missing files or an error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from contract import asset_download, assets
from contract.cli_style import CliParser
from contract.errors import AudioGuardError


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``download`` subcommand's options."""
    parser.add_argument("--dest", type=Path, required=True, help="model directory to fill")
    parser.add_argument("--force", action="store_true", help="download even if verified files exist")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout per request (s)")
    parser.add_argument(
        "--mirror",
        metavar="URL",
        help="fetch URL/vggish_model.ckpt, URL/vggish_pca_params.npz and URL/assets.tar.gz "
        "instead of the official hosts (sha512 still checked against the official sums)",
    )
    parser.set_defaults(handler=download)


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``verify`` subcommand's options."""
    parser.add_argument("model_dir", type=Path, help="the model directory to check")
    parser.set_defaults(handler=verify)


def download(args: argparse.Namespace) -> int:
    """Download the official files into ``args.dest`` (sha512-verified), with progress bars."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(url: str, done: int, total: int | None) -> None:
        bar = bars.get(url)
        if bar is None:
            bar = bars[url] = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1])
        bar.update(done - bar.n)

    registry, tarball_url = (assets.OFFICIAL_ASSETS, assets.MAX_ASSETS_TARBALL)
    if args.mirror:
        registry, tarball_url = asset_download.mirrored_assets(args.mirror)
    try:
        written = asset_download.download_assets(
            args.dest,
            assets=registry,
            tarball_url=tarball_url,
            timeout=args.timeout,
            force=args.force,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    for name, path in written.items():
        print(f"{name}: {path} (sha512 verified)")
    return 0


def verify(args: argparse.Namespace) -> int:
    """Print the asset report of ``args.model_dir``; 0 official, 1 other files, 2 missing."""
    report = assets.asset_report(args.model_dir)
    print(json.dumps(report, indent=2))
    files = report["files"]
    assert isinstance(files, dict)
    missing = [name for name, status in files.items() if not status["present"]]
    if missing:
        print(f"missing: {', '.join(missing)}; {assets.HOW_TO_GET_WEIGHTS}", file=sys.stderr)
        return 2
    return 0 if report["official"] else 1


def build_parser(prog: str = "python -m contract.weights_cli") -> argparse.ArgumentParser:
    parser = CliParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    add_download_arguments(
        sub.add_parser("download", help="download the official files and verify their sha512")
    )
    add_verify_arguments(
        sub.add_parser("verify", help="report whether a model directory holds the official files")
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Call the chosen handler; an ``AudioGuardError`` is one ``error:`` line and exit 2."""
    try:
        return int(args.handler(args))
    except AudioGuardError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
