"""Listening to live sources, measured: event latency, capacity, CPU per source.

    python -m bench.monitor_benchmark --model_dir DIR [--latency_runs 5] [--sources 1,8,16,32,48]
        [--precision fp32|int8] [--rate 16000] [--privacy none|dp_noise|scramble|speech_mask]
        [--audio both|loud|quiet] [--lifecycles 1/1,2/3,3/4]

Real services as ``audioguard serve`` starts them (``python -m predictor`` and ``python -m
transformer --sources_file``), real ffmpeg captures, the real SIFIS DHT broker
(``scripts/install-dht-broker.sh``). Synthetic weights fire the default groups on any sound, so
the loudness gate (-45 dBFS) decides when there is an event: quiet noise (-70 dBFS) is never one,
loud noise (-15 dBFS) always is.

1. **Latency** (onset to DHT): an HTTP audio stream (ffmpeg ``-re -listen 1``, as a camera
   restream) is quiet for ``ONSET_SECONDS`` and then loud. The onset's wall time is dated from
   the audio the transformer has captured (its status) once the stream runs at real time; the
   latency runs until the event's start record is stored in the broker (polled every 20 ms).
   Each run restarts the transformer on a new stream.
2. **Capacity and CPU**: N file sources played at real time by N ffmpeg captures (each source
   its own recording), for ``MEASURE_SECONDS``, loud (every window scored and detected) and quiet
   (gated); the transformer's process tree's CPU (its ffmpeg children included) per second of
   wall time, the audio chunks dropped because detection fell behind, and the failed steps. A
   host keeps up with N sources when nothing was dropped.

Options: ``--precision int8`` runs VGGish quantised; ``--rate`` records the sources at another rate
(the monitor resamples them as the file path does); ``--privacy`` anonymises every source (the
latency then includes the method's window, ``privacy_window_seconds``).
The CPU's model and flags are printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf

from bench.load_benchmark import cpu_flags
from bench.services import Services, free_port
from tests.support.dht_broker import DhtBroker

ANOMALY_TOPIC = "SIFIS:Audio_Anomaly"
ONSET_SECONDS = 25.0
LOUD_SECONDS = 8.0
MEASURE_SECONDS = 30.0
GATE_DBFS = -45.0
POLL_SECONDS = 0.02


def recording(path: Path, quiet_seconds: float, loud_seconds: float, seed: int, rate: int = 16_000) -> Path:
    """Noise at -70 dBFS then at -15 dBFS (RMS), 16 kHz mono PCM16."""
    rng = np.random.default_rng(seed)
    quiet = 10 ** (-70 / 20) * rng.standard_normal(int(quiet_seconds * rate))
    loud = 10 ** (-15 / 20) * rng.standard_normal(int(loud_seconds * rate))
    sf.write(path, np.concatenate([quiet, loud]).clip(-1, 1), rate, subtype="PCM_16")
    return path


def poll(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def monitor_status(services: Services) -> dict[str, Any]:
    answer = requests.get(f"http://127.0.0.1:{services.args.http_port}/v1/monitor", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


#: What every run varies: VGGish precision, the recordings' rate, the sources' privacy method.
OPTIONS: dict[str, Any] = {"precision": "fp32", "rate": 16_000, "privacy": "none", "lifecycle": (2, 3)}


def source_line(name: str, url: str, **fields: object) -> str:
    values = {"name": name, "url": url, **fields, "privacy": OPTIONS["privacy"]}
    return (
        "  - {"
        + ", ".join(
            f"{key}: {value!r}" if isinstance(value, str) else f"{key}: {str(value).lower()}"
            for key, value in values.items()
        )
        + "}"
    )


def listen(services: Services, sources_file: Path, broker: DhtBroker) -> float:
    return services.restart_transformer(
        [
            "--sources_file", str(sources_file),
            "--loudness_gate_dbfs", str(GATE_DBFS),
            "--dht_url", broker.url,
            "--outbox_path", str(sources_file.parent / f"outbox-{time.monotonic_ns()}.sqlite3"),
            "--vggish_precision", OPTIONS["precision"],
            "--event_min_hits", str(OPTIONS["lifecycle"][0]),
            "--event_within_hops", str(OPTIONS["lifecycle"][1]),
        ]
    )  # fmt: skip


def latency_run(services: Services, broker: DhtBroker, work: Path, run: int) -> float:
    """Seconds from the stream's onset to its event's start record stored at the DHT."""
    wav = recording(work / f"latency-{run}.wav", ONSET_SECONDS, LOUD_SECONDS, seed=run, rate=OPTIONS["rate"])
    port = free_port()
    server = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(wav), "-f", "wav",
         "-listen", "1", f"http://127.0.0.1:{port}/live"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    sources = work / f"latency-{run}.yaml"
    sources.write_text(f"sources:\n{source_line(f'stream-{run}', f'http://127.0.0.1:{port}/live')}\n")
    try:
        time.sleep(0.3)  # ffmpeg binds its port; the transformer's capture retries until it does
        before = set(broker.entries(ANOMALY_TOPIC))
        listen(services, sources, broker)

        def captured() -> float:
            (source,) = monitor_status(services)["sources"]
            return float(source["seconds_captured"])

        poll(lambda: captured() > 0, 60, "the stream online")
        # ffmpeg's -re clock starts with ffmpeg, not with its client: what it held back while the
        # transformer started comes at once, then the stream runs at real time. So the onset is
        # dated from the audio captured a second later, in the real-time part.
        time.sleep(1.0)
        now, seconds = time.monotonic(), captured()
        if seconds >= ONSET_SECONDS:
            raise RuntimeError(
                f"the stream's first burst ({seconds:.1f} s) passed the onset: raise ONSET_SECONDS"
            )
        onset = now + ONSET_SECONDS - seconds

        def started() -> bool:
            return any(
                key not in before
                and value.get("change") == "start"
                and value.get("source") == f"stream-{run}"
                for key, value in broker.entries(ANOMALY_TOPIC).items()
            )

        poll(started, ONSET_SECONDS + 30, "the event's start record at the DHT")
        return time.monotonic() - onset
    finally:
        server.kill()
        server.wait()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its living descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        if current in stats:
            total += (int(stats[current][11]) + int(stats[current][12])) / ticks
        stack.extend(children.get(current, []))
    return total


def capacity_run(services: Services, broker: DhtBroker, work: Path, count: int, loud: bool) -> dict[str, Any]:
    seconds = MEASURE_SECONDS + 15
    lines = ["sources:"]
    for index in range(count):
        quiet, noisy = (0.0, seconds) if loud else (seconds, 0.0)
        wav = recording(
            work / f"capacity-{count}-{loud}-{index}.wav",
            quiet,
            noisy,
            seed=1000 + index,
            rate=OPTIONS["rate"],
        )
        lines.append(source_line(f"source-{index}", f"file:{wav}", realtime=True))
    sources = work / f"capacity-{count}-{loud}.yaml"
    sources.write_text("\n".join(lines) + "\n")
    listen(services, sources, broker)
    assert services.transformer.process is not None
    pid = services.transformer.process.pid
    poll(lambda: all(s["state"] == "online" for s in monitor_status(services)["sources"]), 60, "all online")
    time.sleep(5)  # the first windows fill (10 examples) before the steady state is measured
    first, cpu_first = monitor_status(services), tree_cpu_seconds(pid)
    started = time.monotonic()
    time.sleep(MEASURE_SECONDS)
    last, cpu_last = monitor_status(services), tree_cpu_seconds(pid)
    wall = time.monotonic() - started
    captured = [
        b["seconds_captured"] - a["seconds_captured"]
        for a, b in zip(first["sources"], last["sources"], strict=True)
    ]
    return {
        "sources": count,
        "loud": loud,
        "cpu_cores": (cpu_last - cpu_first) / wall,
        "dropped_chunks": sum(s["dropped_chunks"] for s in last["sources"]),
        "failed_steps": last["failed_steps"],
        "captured_per_wall_second": min(captured) / wall,
        "steps_per_second": (last["steps"] - first["steps"]) / wall,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, default=Path("models"), help="the three model files")
    parser.add_argument("--latency_runs", type=int, default=5, help="streams timed for the latency")
    parser.add_argument("--sources", default="1,8,16,32,48", help="source counts for the capacity runs")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="VGGish precision")
    parser.add_argument("--rate", type=int, default=16_000, help="sample rate of the sources' audio (Hz)")
    parser.add_argument(
        "--privacy", choices=("none", "dp_noise", "scramble", "speech_mask"), default="none",
        help="anonymisation of every source",
    )  # fmt: skip
    parser.add_argument("--audio", choices=("both", "loud", "quiet"), default="both", help="capacity runs")
    parser.add_argument(
        "--lifecycles", default="2/3",
        help="event lifecycles timed for the latency, MIN_HITS/WITHIN_HOPS, comma-separated "
        "(the first is used for the capacity runs)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        lifecycles = [tuple(int(n) for n in item.split("/")) for item in args.lifecycles.split(",")]
        assert all(len(pair) == 2 and 1 <= pair[0] <= pair[1] for pair in lifecycles)
    except (ValueError, AssertionError):
        parser.error(f"--lifecycles: expected e.g. 1/1,2/3, got {args.lifecycles!r}")
    OPTIONS.update(precision=args.precision, rate=args.rate, privacy=args.privacy)
    counts = [int(n) for n in args.sources.split(",") if n.strip()]
    print(f"CPU: {cpu_flags()}, {os.cpu_count()} cores")
    print(f"VGGish {args.precision}, sources at {args.rate} Hz, privacy {args.privacy}")
    work = Path(tempfile.mkdtemp(prefix="monitor-benchmark-"))
    services = Services(args.model_dir)
    broker = DhtBroker(work / "dht")
    try:
        broker.start()
        services.start()
        for min_hits, within_hops in lifecycles:
            OPTIONS["lifecycle"] = (min_hits, within_hops)
            latencies = [latency_run(services, broker, work, run) for run in range(args.latency_runs)]
            if latencies:  # --latency_runs 0: capacity only
                ordered = sorted(latencies)
                p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
                print(
                    f"\nlatency, onset -> start record at the DHT ({len(latencies)} streams, hop 1, "
                    f"{min_hits} hits in {within_hops} hops): "
                    f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s, "
                    f"all {', '.join(f'{x:.2f}' for x in latencies)}",
                    flush=True,
                )
        OPTIONS["lifecycle"] = lifecycles[0]
        if counts:
            print(
                "\n| sources | audio | CPU (cores) | CPU per source (% of a core) | dropped chunks "
                "| failed steps | captured s per wall s (slowest) |\n|---:|---|---:|---:|---:|---:|---:|"
            )
            for count in counts:
                for loud in {"both": (True, False), "loud": (True,), "quiet": (False,)}[args.audio]:
                    row = capacity_run(services, broker, work, count, loud)
                    print(
                        f"| {count} | {'loud' if loud else 'quiet (gated)'} | {row['cpu_cores']:.2f} "
                        f"| {100 * row['cpu_cores'] / count:.1f} | {row['dropped_chunks']} "
                        f"| {row['failed_steps']} | {row['captured_per_wall_second']:.2f} |",
                        flush=True,
                    )
    finally:
        services.stop()
        broker.stop()


if __name__ == "__main__":
    main()
