"""The web page /ui with 64 live sources, measured in a real headless Chromium.

Real predictor and transformer processes (synthetic weights) listen to ``--sources`` live WAV
streams on loopback (``tests.support.live_wav``, paced in real time, quiet below the loudness
gate); one Chromium (Debian's, through Selenium) opens the page. Figures:

- page load: from ``driver.get`` to every source's card on screen with its state (the first
  server-sent update drawn), and the browser's own DOMContentLoaded;
- update lag: for each server-sent update received in ``--seconds``, the browser's clock at
  receipt minus the snapshot's ``now`` (same machine, same clock), median / p95 / max; plus the
  period between two updates and the size of one update;
- level lag: a burst on one stream until its card's level shows it (capture + detection + page).

    python -m bench.ui_benchmark --sources 64 --seconds 20
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.load_benchmark import cpu_flags
from tests.support.browser import headless_chromium
from tests.support.live_wav import LiveWavStream
from tests.support.serverutil import start_server
from tests.support.service_clients import MODEL, predictor_args

COLLECT = """
window.__lags = []; window.__sizes = []; window.__times = [];
const probe = new EventSource("/ui/api/stream");
probe.addEventListener("status", (m) => {
  const now = Date.now() / 1000;
  window.__lags.push(now - JSON.parse(m.data).now);
  window.__sizes.push(m.data.length);
  window.__times.push(now);
});
window.__probe = probe;
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of updates collected")
    args = parser.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from audioguard.synthetic import write_synthetic_assets

    print(f"CPU: {cpu_flags()}, {os.cpu_count()} cores")
    work = Path(tempfile.mkdtemp(prefix="ui-benchmark-"))
    write_synthetic_assets(work / "model")
    stream = LiveWavStream()
    names = [f"mic-{i:02d}" for i in range(args.sources)]
    (work / "sources.yaml").write_text(
        "sources:\n" + "".join(f"  - {{name: {name}, url: '{stream.url}'}}\n" for name in names)
    )
    predictor = start_server("predictor", predictor_args(work / "model"))
    transformer = start_server(
        "transformer",
        [
            "--model_name", MODEL, "--model_dir", str(work / "model"),
            "--predictor_host", predictor.grpc_address, "--predictor_protocol", "grpc-v2",
            "--bind_host", "127.0.0.1", "--sources_file", str(work / "sources.yaml"),
            "--loudness_gate_dbfs", "-40", "--outbox_path", str(work / "outbox.sqlite3"),
            "--ui_store_path", str(work / "ui.sqlite3"), "--baselines_path", str(work / "baselines.json"),
        ],
    )  # fmt: skip
    try:
        url = f"{transformer.http_url}/ui"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every capture connected before the page is timed
            status = requests.get(f"{transformer.http_url}/v1/monitor", timeout=10).json()
            if all(source["state"] == "online" for source in status["sources"]):
                break
            time.sleep(0.5)
        with headless_chromium() as driver:
            loads = []
            for _ in range(3):
                started = time.perf_counter()
                driver.get(url)
                WebDriverWait(driver, 30, poll_frequency=0.01).until(
                    lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card .state-online")) == args.sources
                )
                loads.append(time.perf_counter() - started)
                dom = driver.execute_script(
                    "const t = performance.timing; return t.domContentLoadedEventEnd - t.navigationStart;"
                )
            driver.execute_script(COLLECT)
            time.sleep(args.seconds)  # the browser collects the updates meanwhile
            lags = driver.execute_script("return window.__lags;")
            sizes = driver.execute_script("return window.__sizes;")
            times = driver.execute_script("return window.__times;")
            card = f'.card[data-source="{names[0]}"] .level'
            burst = stream.burst(2.0)

            def loud(d: Any) -> bool:
                text = d.find_element(By.CSS_SELECTOR, card).text
                return text.endswith("dBFS") and float(text.split()[0]) > -20

            WebDriverWait(driver, 20, poll_frequency=0.01).until(loud)
            level_lag = time.time() - burst
        periods = [b - a for a, b in itertools.pairwise(times)]
        print(f"sources: {args.sources} live streams, page: {url}")
        print(
            f"page load (get -> all {args.sources} cards online), 3 loads: "
            + ", ".join(f"{value:.3f}" for value in loads)
            + f" s; DOMContentLoaded {dom} ms"
        )
        print(
            f"update lag over {len(lags)} updates in {args.seconds:.0f} s: "
            f"median {statistics.median(lags):.3f} s, "
            f"p95 {percentile(lags, 0.95):.3f} s, max {max(lags):.3f} s; period median "
            f"{statistics.median(periods):.3f} s; update size {statistics.median(sizes) / 1024:.1f} KiB"
        )
        print(f"level lag (burst on {names[0]} -> its card shows > -20 dBFS): {level_lag:.3f} s")
        print(f"UI store after the run: {(work / 'ui.sqlite3').stat().st_size / 1024:.0f} KiB (+ WAL)")
    finally:
        transformer.stop()
        predictor.stop()
        stream.close()


if __name__ == "__main__":
    main()
