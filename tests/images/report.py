"""``python -m tests.images.report REPORT BUILD_SECONDS``: scripts/images.sh's summary table.

REPORT is the JSON the image tests wrote (size and seconds to ready per service); BUILD_SECONDS has
one ``<tag> <seconds>`` line per image built in this run (cached layers make later builds short).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from bench.load_benchmark import cpu_flags


def main(argv: list[str]) -> int:
    figures = json.loads(Path(argv[0]).read_text()) if Path(argv[0]).is_file() else {}
    builds = dict(line.split() for line in Path(argv[1]).read_text().splitlines() if line.strip())
    print(f"[images] {platform.machine()}, {os.cpu_count()} CPUs: {cpu_flags()}")
    print(f"{'image':44} {'size':>9} {'build s':>8} {'ready s':>8} {'RSS MiB':>8}")
    for tag, seconds in builds.items():
        name, _, version = tag.split("/")[-1].partition(":")
        variant = version.rpartition("-")[2] if version.endswith(("-ray", "-listen")) else ""
        service = name.removeprefix("audioguard-") + (f"-{variant}" if variant else "")
        row = figures.get(service, {})
        size = f"{row['image_bytes'] / 1e9:.2f} GB" if "image_bytes" in row else "-"
        ready = f"{row['ready_seconds']:.1f}" if "ready_seconds" in row else "-"
        rss = f"{row['rss_mib']:.0f}" if "rss_mib" in row else "-"
        print(f"{tag:44} {size:>9} {seconds:>8} {ready:>8} {rss:>8}")
    for start, label in (("calibrating", "first start, calibrates"), ("cached", "from its cache")):
        int8 = figures.get(f"transformer-int8-{start}")
        if int8:
            print(
                f"{'transformer, int8, ' + label:44} "
                f"{'':>9} {'':>8} {int8['ready_seconds']:>8.1f} {int8['rss_mib']:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
