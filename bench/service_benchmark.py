"""End-to-end service benchmark: the full HTTP path beside the in-process core, in one run.

Measures, for a 10-s 16 kHz clip (issue: KServe transformer + predictor):

1. the in-process core path (``audioguard.offline``: decode -> log-mel ->
   VGGish -> PCA -> classifier) with 1 and 2 threads, before and after the
   server phases (their mean is the reference, so drift on a shared machine
   shows up as the spread);
2. the full HTTP path: real ``python -m predictor`` + ``python -m transformer``
   processes on loopback (gRPC v2 between them, as ``audioguard serve`` runs
   them), clients posting the clip over v2 REST with the binary extension at
   concurrency 1, 4 and 16: throughput (audio-seconds per wall-second) and
   p50/p95 latency;
3. batching end to end, full path at concurrency 16 with both batchers on
   (the defaults: the transformer merges concurrent requests' VGGish calls,
   the predictor their classifier calls), with only the transformer's off
   (``--vggish_request_batching false``), and with both off (also
   ``--max_batch_size 1`` on the predictor); both services are restarted for
   each configuration, and "both on" is measured again at the end, so drift
   on a shared machine shows up as the spread of the two "on" rows. The gain
   is the mean of the "on" rows over "both off";
4. the predictor alone (16 concurrent one-window gRPC requests, windows/s),
   default batching vs batch size 1.

    python -m bench.service_benchmark --model_dir models [--requests 48] [--json out.json]

Synthetic weights have the official shapes, so they run at the official speed.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf

from audioguard.client import BINARY_HEADER, rest_body
from bench.services import Services

CLIP_SECONDS = 10.0
MODEL = "audioguard"
HTTP_CONCURRENCY = (1, 4, 16)
BATCH_CONCURRENCY = 16
CORE_THREADS = (1, 2)
DISTINCT_CLIPS = 16
PREDICTOR_DIRECT_REQUESTS = 512
#: Flags that turn each batcher off.
TRANSFORMER_BATCHING_OFF = ("--vggish_request_batching", "false")
PREDICTOR_BATCHING_OFF = ("--max_batch_size", "1")
#: The "request chunks per model call" histogram of each service's /metrics.
VGGISH_BATCH_METRIC = "audioguard_transformer_vggish_batch_requests"
CLASSIFIER_BATCH_METRIC = "audioguard_predictor_batch_requests"


@dataclass(frozen=True)
class Measurement:
    """One load level: ``requests`` clips of ``CLIP_SECONDS`` at ``concurrency``."""

    path: str
    concurrency: int
    requests: int
    wall_seconds: float
    latencies: tuple[float, ...]
    failures: int

    @property
    def audio_seconds_per_second(self) -> float:
        return (self.requests - self.failures) * CLIP_SECONDS / self.wall_seconds

    @property
    def p50_ms(self) -> float:
        return 1000 * float(np.percentile(self.latencies, 50))

    @property
    def p95_ms(self) -> float:
        return 1000 * float(np.percentile(self.latencies, 95))

    def summary(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["latencies"]
        return {
            **fields,
            "audio_seconds_per_second": round(self.audio_seconds_per_second, 2),
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
        }


def clips(count: int) -> list[bytes]:
    """``count`` distinct 10-s PCM16 WAV clips (tones + noise, deterministic)."""
    encoded = []
    t = np.arange(int(CLIP_SECONDS * 16000)) / 16000
    for seed in range(count):
        rng = np.random.default_rng(seed)
        tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        samples = np.clip(tone + 0.05 * rng.standard_normal(t.size), -1, 1)
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
        encoded.append(buffer.getvalue())
    return encoded


def run_load(
    path: str, call: Callable[[int], object], *, concurrency: int, requests_total: int
) -> Measurement:
    """Run ``call(i)`` for i in range(requests_total) on ``concurrency`` threads; time each call."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def one(index: int) -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            call(index)
        except Exception as error:  # counted and reported, the run goes on
            with lock:
                failures += 1
            print(f"  {path}: request {index} failed: {error}", file=sys.stderr)
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests_total)))
    return Measurement(
        path, concurrency, requests_total, time.perf_counter() - started, tuple(latencies), failures
    )


# --- the in-process core path ------------------------------------------------------------------


def measure_core(model_dir: Path, audio: Sequence[bytes], requests_total: int) -> list[Measurement]:
    """``OfflineClassifier.classify`` on 1 and 2 threads (after one warm-up call)."""
    from audioguard.offline import OfflineClassifier

    classifier = OfflineClassifier.from_model_dir(model_dir)
    classifier.classify(audio[0])
    return [
        run_load(
            "in-process core",
            lambda i: classifier.classify(audio[i % len(audio)]),
            concurrency=threads,
            requests_total=requests_total,
        )
        for threads in CORE_THREADS
    ]


# --- the services ------------------------------------------------------------------------------------


def http_caller(url: str, audio: Sequence[bytes]) -> Callable[[int], None]:
    """One v2 REST request with the clip as a binary BYTES tensor (a session per thread)."""
    bodies = [rest_body(clip, {}) for clip in audio]
    local_state = threading.local()

    def call(index: int) -> None:
        session = getattr(local_state, "session", None)
        if session is None:
            session = local_state.session = requests.Session()
        body, json_length = bodies[index % len(bodies)]
        answer = session.post(
            url,
            data=body,
            headers={"Content-Type": "application/octet-stream", BINARY_HEADER: str(json_length)},
            timeout=300,
        )
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
        answer.json()

    return call


def predictor_caller(address: str) -> Callable[[int], None]:
    """One gRPC ModelInfer with a single (1, 10, 128) uint8 window (what a 10-s clip sends)."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    channel = grpc.insecure_channel(address)
    stub = GRPCInferenceServiceStub(channel)
    windows = [np.random.default_rng(i).integers(0, 256, (1, 10, 128), dtype=np.uint8) for i in range(64)]
    tensor = pb.ModelInferRequest.InferInputTensor(name="embeddings", datatype="UINT8", shape=[1, 10, 128])

    def call(index: int) -> None:
        request = pb.ModelInferRequest(
            model_name=MODEL, inputs=[tensor], raw_input_contents=[windows[index % len(windows)].tobytes()]
        )
        stub.ModelInfer(request, timeout=60)

    return call


def batch_counters(metrics_url: str, metric: str = CLASSIFIER_BATCH_METRIC) -> tuple[float, float]:
    """(model calls, request chunks) from a service's "requests per call" Prometheus histogram."""
    text = requests.get(metrics_url, timeout=10).text
    values = []
    for suffix in ("count", "sum"):
        match = re.search(rf'^{metric}_{suffix}{{model_name="{MODEL}"}} (\S+)$', text, re.M)
        values.append(float(match.group(1)) if match else 0.0)
    return values[0], values[1]


def requests_per_call(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Mean request chunks per model call between two ``batch_counters`` readings."""
    calls = after[0] - before[0]
    return round((after[1] - before[1]) / calls, 2) if calls else 0.0


def measure_predictor_direct(services: Services, label: str) -> tuple[Measurement, float]:
    """16 concurrent one-window requests; returns the measurement and mean requests per call."""
    before = batch_counters(services.predictor_metrics_url)
    measurement = run_load(
        f"predictor alone, {label}",
        predictor_caller(services.predictor_grpc),
        concurrency=BATCH_CONCURRENCY,
        requests_total=PREDICTOR_DIRECT_REQUESTS,
    )
    return measurement, requests_per_call(before, batch_counters(services.predictor_metrics_url))


@dataclass(frozen=True)
class HttpRun:
    """One full-path load level and how many requests each model call served meanwhile."""

    measurement: Measurement
    vggish_requests_per_call: float
    classifier_requests_per_call: float

    def summary(self) -> dict[str, Any]:
        return {
            **self.measurement.summary(),
            "vggish_requests_per_call": self.vggish_requests_per_call,
            "classifier_requests_per_call": self.classifier_requests_per_call,
        }


def measure_http(
    services: Services, label: str, call: Callable[[int], object], concurrency: int, requests_total: int
) -> HttpRun:
    """The full path at ``concurrency``, with the batch counters of both services around it."""
    vggish_before = batch_counters(services.transformer_metrics_url, VGGISH_BATCH_METRIC)
    classifier_before = batch_counters(services.predictor_metrics_url)
    measurement = run_load(label, call, concurrency=concurrency, requests_total=requests_total)
    run = HttpRun(
        measurement,
        requests_per_call(
            vggish_before, batch_counters(services.transformer_metrics_url, VGGISH_BATCH_METRIC)
        ),
        requests_per_call(classifier_before, batch_counters(services.predictor_metrics_url)),
    )
    print_rows([measurement], [run])
    return run


# --- the run -------------------------------------------------------------------------------------------


def run(model_dir: Path, requests_total: int) -> dict[str, Any]:
    audio = clips(DISTINCT_CLIPS)
    core_before = measure_core(model_dir, audio, requests_total)
    print_rows(core_before)
    services = Services(model_dir)
    try:
        services.start()
        call = http_caller(services.infer_url, audio)

        def level(label: str, concurrency: int = BATCH_CONCURRENCY) -> HttpRun:
            return measure_http(services, label, call, concurrency, requests_total)

        run_load("warm-up", call, concurrency=4, requests_total=8)
        http = [level("HTTP v2 (batching on)", concurrency) for concurrency in HTTP_CONCURRENCY]
        predictor_batched, batched_mean = measure_predictor_direct(services, "batching on")
        print_rows([predictor_batched])

        services.restart(transformer_extra=TRANSFORMER_BATCHING_OFF)
        run_load("warm-up", call, concurrency=4, requests_total=8)
        http_vggish_off = level("HTTP v2 (VGGish batching off)")

        services.restart(transformer_extra=TRANSFORMER_BATCHING_OFF, predictor_extra=PREDICTOR_BATCHING_OFF)
        run_load("warm-up", call, concurrency=4, requests_total=8)
        http_off = level("HTTP v2 (batching off: VGGish + max_batch_size 1)")
        predictor_unbatched, unbatched_mean = measure_predictor_direct(services, "max_batch_size 1")
        print_rows([predictor_unbatched])

        services.restart()
        run_load("warm-up", call, concurrency=4, requests_total=8)
        http_on_again = level("HTTP v2 (batching on, again)")
    finally:
        services.stop()
    core_after = measure_core(model_dir, audio, requests_total)
    print_rows(core_after)

    core_reference = statistics.mean(
        max(m.audio_seconds_per_second for m in core) for core in (core_before, core_after)
    )
    http16 = next(r for r in http if r.measurement.concurrency == BATCH_CONCURRENCY)
    on_rates = [r.measurement.audio_seconds_per_second for r in (http16, http_on_again)]
    on_rate = statistics.mean(on_rates)
    return {
        "clip_seconds": CLIP_SECONDS,
        "requests_per_level": requests_total,
        "core_before": [m.summary() for m in core_before],
        "core_after": [m.summary() for m in core_after],
        "http": [r.summary() for r in http],
        "http_vggish_batching_off": http_vggish_off.summary(),
        "http_batching_off": http_off.summary(),
        "http_batching_on_again": http_on_again.summary(),
        "predictor_alone_batching_on": {**predictor_batched.summary(), "requests_per_call": batched_mean},
        "predictor_alone_max_batch_size_1": {
            **predictor_unbatched.summary(),
            "requests_per_call": unbatched_mean,
        },
        "core_reference_audio_seconds_per_second": round(core_reference, 2),
        "http_stack_cost_at_16": round(1 - http16.measurement.audio_seconds_per_second / core_reference, 3),
        "batching_on_spread_at_16": round(max(on_rates) / min(on_rates) - 1, 3),
        "batching_gain_full_path_at_16": round(on_rate / http_off.measurement.audio_seconds_per_second, 3),
        "vggish_batching_gain_full_path_at_16": round(
            on_rate / http_vggish_off.measurement.audio_seconds_per_second, 3
        ),
        "batching_gain_predictor_alone_at_16": round(
            predictor_batched.requests / predictor_batched.wall_seconds
            / (predictor_unbatched.requests / predictor_unbatched.wall_seconds),
            3,
        ),
    }  # fmt: skip


def print_rows(measurements: Sequence[Measurement], runs: Sequence[HttpRun] | None = None) -> None:
    """Table rows; full-path runs add the requests each VGGish / classifier call served."""
    for index, m in enumerate(measurements):
        rate = (
            f"{(m.requests - m.failures) / m.wall_seconds:8.1f} windows/s"
            if m.path.startswith("predictor alone")
            else f"{m.audio_seconds_per_second:8.1f} audio-s/s"
        )
        merged: tuple[str, ...] = ("", "")
        if runs is not None:
            merged = tuple(
                f"{mean:.1f}"
                for mean in (runs[index].vggish_requests_per_call, runs[index].classifier_requests_per_call)
            )
        latency = (f"{m.p50_ms:.0f}", f"{m.p95_ms:.0f}")
        cells = (m.path, m.concurrency, rate.strip(), *latency, *merged, m.failures)
        print("| " + " | ".join(map(str, cells)) + " |", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, default=Path("models"))
    parser.add_argument("--requests", type=int, default=48, help="10-s clips per load level")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    print(
        "| path | concurrency | throughput | p50 ms | p95 ms "
        "| requests per VGGish call | requests per classifier call | failures |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    results = run(args.model_dir, args.requests)
    print(
        f"\nin-process reference {results['core_reference_audio_seconds_per_second']} audio-s/s; "
        f"HTTP stack cost at concurrency 16: {100 * results['http_stack_cost_at_16']:.1f}% (target < 20%)\n"
        f"end-to-end batching gain at 16 (both batchers on / both off): "
        f"x{results['batching_gain_full_path_at_16']} "
        f"(the transformer's VGGish batching alone x{results['vggish_batching_gain_full_path_at_16']}; "
        f"the two 'on' runs differ by {100 * results['batching_on_spread_at_16']:.1f}%)\n"
        f"predictor alone x{results['batching_gain_predictor_alone_at_16']} "
        f"({results['predictor_alone_batching_on']['requests_per_call']:.1f} requests per classifier call)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
