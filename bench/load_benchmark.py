"""Load benchmark: many large uploads at once against real services, memory and health measured.

Reproduces the case that took the transformer past its 4-GiB limit: N clients
each upload a valid 500-s 48 kHz stereo WAV (96 MB, under every limit) at the
same moment, over v2 REST with the binary extension. For each N it starts a
fresh predictor + transformer (as ``audioguard serve`` does, loopback only),
and reports:

- the transformer's peak resident memory (``VmHWM`` of /proc, the kernel's own
  high-water mark) against the chart's 4-GiB limit;
- the answers by status (200 analysed, 503 refused at capacity with Retry-After);
- the latency of ``/v2/health/ready`` probed every 100 ms during the run (p95, max);
- the wall time.

With ``--compare-unbounded`` the first N runs once more with admission control
effectively off (budgets far above the load): the behaviour before it existed.

    python -m bench.load_benchmark --model_dir models [--uploads 12 32] [--compare-unbounded]

Bounded: N requests per run, one run per N, loopback only, each run stops itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf

from audioguard.client import BINARY_HEADER, rest_body
from bench.services import Services

LIMIT_MIB = 4096  # the chart's and the manifests' transformer memory limit
UNBOUNDED = ["--max_inflight_analyses", "100000", "--max_inflight_mb", "1000000"]
PROBE_INTERVAL_S = 0.1


def cpu_flags() -> str:
    """The SIMD flags of this CPU (benchmark figures differ between AVX2 and AVX-512 hosts)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = re.search(r"model name\s*:\s*(.+)", text)
    flags = re.search(r"flags\s*:\s*(.+)", text)
    names = flags.group(1).split() if flags else []
    simd = sorted(f for f in names if f.startswith(("avx", "fma", "sse4")))
    return f"{model.group(1) if model else platform.processor()} [{' '.join(simd)}]"


def large_upload(seconds: float, rate: int, channels: int) -> bytes:
    """A valid PCM16 WAV: noise with a slow envelope (no two seconds alike)."""
    rng = np.random.default_rng(96)
    frames = int(seconds * rate)
    envelope = 0.1 + 0.2 * np.abs(np.sin(np.linspace(0, 40 * np.pi, frames)))[:, None]
    samples = (envelope * rng.standard_normal((frames, channels))).clip(-1, 1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def peak_rss_mib(pid: int) -> float:
    """The process's resident-memory high-water mark (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@dataclass
class Run:
    uploads: int
    admission: str
    peak_rss_mib: float
    statuses: dict[str, int]
    retry_after: list[str]
    health_p95_ms: float
    health_max_ms: float
    health_probes: int
    wall_s: float

    def row(self) -> str:
        statuses = ", ".join(f"{count} x {status}" for status, count in sorted(self.statuses.items()))
        under = "under" if self.peak_rss_mib < LIMIT_MIB else "OVER"
        return (
            f"| {self.uploads} | {self.admission} | {self.peak_rss_mib:,.0f} MiB ({under} {LIMIT_MIB}) | "
            f"{statuses} | {self.health_p95_ms:.0f} / {self.health_max_ms:.0f} ms | {self.wall_s:.0f} s |"
        )


def run_once(model_dir: Path, body: bytes, json_length: int, uploads: int, extra: Sequence[str]) -> Run:
    services = Services(model_dir)
    services.base_transformer_command += list(extra)
    services.transformer.command = list(services.base_transformer_command)
    services.start()
    try:
        transformer = services.transformer.process
        assert transformer is not None
        health_url = services.infer_url.split("/v2/")[0] + "/v2/health/ready"
        done = threading.Event()
        latencies: list[float] = []

        def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                with contextlib.suppress(requests.RequestException):
                    requests.get(health_url, timeout=10)
                latencies.append(time.perf_counter() - started)
                done.wait(PROBE_INTERVAL_S)

        statuses: list[str] = []
        retry_after: list[str] = []
        barrier = threading.Barrier(uploads)

        def upload() -> None:
            barrier.wait()
            try:
                answer = requests.post(
                    services.infer_url,
                    data=body,
                    headers={BINARY_HEADER: str(json_length), "Content-Type": "application/octet-stream"},
                    timeout=1800,
                )
                statuses.append(str(answer.status_code))
                if "Retry-After" in answer.headers:
                    retry_after.append(answer.headers["Retry-After"])
            except requests.RequestException as error:
                statuses.append(type(error).__name__)

        prober = threading.Thread(target=probe)
        clients = [threading.Thread(target=upload) for _ in range(uploads)]
        started = time.perf_counter()
        prober.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        wall = time.perf_counter() - started
        done.set()
        prober.join()
        peak = peak_rss_mib(transformer.pid)
    finally:
        services.stop()
    ordered = sorted(latencies)
    return Run(
        uploads=uploads,
        admission="off (budgets far above the load)" if extra else "on (defaults)",
        peak_rss_mib=peak,
        statuses=dict(Counter(statuses)),
        retry_after=sorted(set(retry_after)),
        health_p95_ms=1000 * ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan"),
        health_max_ms=1000 * max(ordered) if ordered else float("nan"),
        health_probes=len(ordered),
        wall_s=wall,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_benchmark", description=__doc__)
    parser.add_argument("--model_dir", type=Path, required=True, help="official or synthetic weights")
    parser.add_argument("--uploads", type=int, nargs="+", default=[12, 32], help="uploads at once, per run")
    parser.add_argument("--seconds", type=float, default=500.0, help="length of each upload")
    parser.add_argument(
        "--compare-unbounded", action="store_true", help="also run the first N without admission control"
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    audio = large_upload(args.seconds, 48_000, 2)
    body, json_length = rest_body(audio, {})
    print(f"CPU: {cpu_flags()}")
    print(f"upload: {len(audio) / 1e6:.1f} MB WAV ({args.seconds:g} s, 48 kHz stereo PCM16)", flush=True)
    runs = []
    if args.compare_unbounded:
        runs.append(run_once(args.model_dir, body, json_length, args.uploads[0], UNBOUNDED))
        print(runs[-1].row(), flush=True)
    for uploads in args.uploads:
        runs.append(run_once(args.model_dir, body, json_length, uploads, ()))
        print(runs[-1].row(), flush=True)
    print("\n| uploads at once | admission | transformer peak RSS | answers | health p95 / max | wall |")
    print("|---:|---|---:|---|---:|---:|")
    for run in runs:
        print(run.row())
    retry = sorted({value for run in runs for value in run.retry_after})
    print(
        f"Retry-After on the 503s: {', '.join(retry) or 'none'} s; health probes per run: "
        f"{statistics.mean(run.health_probes for run in runs):.0f} on average"
    )
    if args.json:
        report: dict[str, Any] = {"cpu": cpu_flags(), "runs": [asdict(run) for run in runs]}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
