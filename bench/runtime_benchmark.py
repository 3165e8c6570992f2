"""VGGish runtimes side by side in one run: TensorFlow (before), ONNX Runtime fp32 and int8 (after).

1. In process: the bare runtime call at batch 10 and 64 (the ceiling), then each
   stage of a 10-s 44.1 kHz stereo clip (decode, resample, log-mel, VGGish+PCA
   per runtime, classifier).
2. Through the services (real ``python -m predictor`` + ``python -m transformer``
   on loopback, v2 REST with the binary extension): for each runtime the
   transformer is restarted and measured for seconds to ready, resident memory
   after the load (and its peak), the recordings of ``--audio`` with one client
   and with 8 clients (x real time = audio seconds per wall second), and the
   latency of a 10-s 16 kHz clip (p50/p95). int8 starts twice: once calibrating,
   once from its cache.

    python -m bench.runtime_benchmark --model_dir models --audio ../shared/audio [--passes 3]

The CPU's model and flags are printed with the figures: they decide int8's speed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.core_benchmark import _clip, best_seconds
from bench.load_benchmark import cpu_flags
from bench.service_benchmark import clips, http_caller, run_load
from bench.services import Services
from bench.vggish_fidelity import AUDIO_SUFFIXES

#: (label, transformer flags) of each configuration, the old path first.
RUNTIMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tensorflow fp32 (before)", ("--vggish_runtime", "tensorflow")),
    ("onnxruntime fp32", ("--vggish_runtime", "onnxruntime", "--vggish_precision", "fp32")),
    ("onnxruntime int8", ("--vggish_runtime", "onnxruntime", "--vggish_precision", "int8")),
)
#: Intra-op thread counts tried after the main rows (the default, 0, is one per core).
THREAD_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("onnxruntime fp32, --vggish_threads 1", ("--vggish_precision", "fp32", "--vggish_threads", "1")),
    ("onnxruntime int8 (cached), 1 thread", ("--vggish_precision", "int8", "--vggish_threads", "1")),
)
CLIENTS = 8
CLIP_REQUESTS = 20


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB: resident now, and its peak."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def in_process(model_dir: Path, repeats: int) -> list[tuple[str, str, str]]:
    """Rows (what, runtime, figure) of the bare calls and the stages."""
    from predictor.classifier import AttentionClassifier
    from transformer.analysis.windows import select_windows
    from transformer.audio.decode import decode_audio
    from transformer.audio.embedders import load_embedder
    from transformer.audio.features import waveform_to_examples
    from transformer.audio.resample import resample_to_16k

    checkpoint, pca = model_dir / "vggish_model.ckpt", model_dir / "vggish_pca_params.npz"
    embedders = {
        "tensorflow fp32": load_embedder(checkpoint, pca, runtime="tensorflow"),
        "onnxruntime fp32": load_embedder(checkpoint, pca),
        "onnxruntime int8": load_embedder(checkpoint, pca, precision="int8"),
    }
    rows: list[tuple[str, str, str]] = []
    for batch in (10, 64):
        x = np.random.default_rng(batch).normal(size=(batch, 96, 64)).astype(np.float32)
        for name, embedder in embedders.items():
            seconds = best_seconds(lambda e=embedder, x=x: e.embed(x), repeats)
            rows.append((f"bare VGGish, batch {batch}", name, f"{batch / seconds:.0f} examples/s"))
    data = _clip(44_100, 2)
    native, _ = decode_audio(data, max_seconds=600)
    samples = resample_to_16k(native, 44_100)
    examples = waveform_to_examples(samples)
    stage: dict[str, Callable[[], object]] = {
        "decode": lambda: decode_audio(data, max_seconds=600),
        "resample 44.1 kHz -> 16 kHz (numpy, exact)": lambda: resample_to_16k(native, 44_100),
        "log-mel": lambda: waveform_to_examples(samples),
    }
    try:
        from bench.resample_benchmark import compiled_kernel

        stage["resample (resampy's compiled kernel, before)"] = lambda: compiled_kernel(native, 44_100)
    except ImportError:  # resampy/numba absent: the old figure is not available
        pass
    for name, call in stage.items():
        rows.append((f"10-s 44.1 kHz stereo: {name}", "-", f"{best_seconds(call, repeats) * 1000:.1f} ms"))
    for name, embedder in embedders.items():
        seconds = best_seconds(lambda e=embedder: e.embed_quantized(examples), repeats)
        rows.append(("10-s clip: VGGish + PCA", name, f"{seconds * 1000:.1f} ms"))
    classifier = AttentionClassifier.from_file(model_dir / "classifier_model.h5")
    windows = select_windows(embedders["onnxruntime fp32"].embed_quantized(examples)).embeddings
    seconds = best_seconds(lambda: classifier.predict(windows), repeats)
    rows.append(("10-s clip: classifier", "tensorflow (predictor)", f"{seconds * 1000:.1f} ms"))
    return rows


def through_services(model_dir: Path, audio_dir: Path, passes: int) -> list[dict[str, object]]:
    """One result dict per runtime configuration (int8 twice: calibrating, then cached)."""
    recordings = sorted(p for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    audio = [p.read_bytes() for p in recordings]
    audio_seconds = sum(sf.info(str(p)).duration for p in recordings)
    clip = clips(1)
    # as the transformer image sets it: two malloc arenas instead of one per worker thread kept
    # ~80 MiB of freed request buffers off the resident set (measured 901 vs 982 MiB after load)
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    services = Services(model_dir)
    (model_dir / "vggish_model.int8.onnx").unlink(missing_ok=True)
    results: list[dict[str, object]] = []
    try:
        services.start()
        for label, flags in (*RUNTIMES, ("onnxruntime int8 (cached)", RUNTIMES[-1][1]), *THREAD_ROWS):
            ready = services.restart_transformer(flags)
            if label == RUNTIMES[-1][0]:  # the first int8 start calibrates: only its start-up counts
                results.append({"runtime": label + ", calibrating", "ready_s": ready})
                continue
            call = http_caller(services.infer_url, audio)
            call(0)  # warm-up
            one = run_load("1 client", call, concurrency=1, requests_total=passes * len(audio))
            many = run_load(
                f"{CLIENTS} clients", call, concurrency=CLIENTS, requests_total=passes * len(audio) * 2
            )
            ten = run_load(
                "10-s clip",
                http_caller(services.infer_url, clip),
                concurrency=1,
                requests_total=CLIP_REQUESTS,
            )
            assert services.transformer.process is not None
            rss, peak = memory_mib(services.transformer.process.pid)
            failures = one.failures + many.failures + ten.failures
            results.append(
                {
                    "runtime": label,
                    "ready_s": ready,
                    "rss_mib": rss,
                    "peak_mib": peak,
                    "one_client_x": (one.requests - one.failures)
                    / len(audio)
                    * audio_seconds
                    / one.wall_seconds,
                    "clients_x": (many.requests - many.failures)
                    / len(audio)
                    * audio_seconds
                    / many.wall_seconds,
                    "clip_p50_ms": ten.p50_ms,
                    "clip_p95_ms": ten.p95_ms,
                    "failures": failures,
                }
            )
    finally:
        services.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, default=Path("models"), help="the three model files")
    parser.add_argument("--audio", type=Path, default=Path("../shared/audio"), help="recordings to send")
    parser.add_argument("--passes", type=int, default=3, help="times each recording is sent per load level")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed calls per in-process figure (best kept)"
    )
    parser.add_argument("--skip_in_process", action="store_true", help="only the services part")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_flags()}, {os.cpu_count()} cores")
    if not args.skip_in_process:
        print("\n| in process | runtime | figure |\n|---|---|---:|")
        for what, runtime, figure in in_process(args.model_dir, args.repeats):
            print(f"| {what} | {runtime} | {figure} |")
    print(
        f"\n| through the services | ready (s) | RSS after load (MiB) | peak (MiB) | 1 client (x real time) "
        f"| {CLIENTS} clients (x real time) | 10-s clip p50 / p95 (ms) | failures |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    started = time.perf_counter()
    for row in through_services(args.model_dir, args.audio, args.passes):
        if "rss_mib" not in row:
            print(f"| {row['runtime']} | {row['ready_s']:.1f} | | | | | | |")
            continue
        print(
            f"| {row['runtime']} | {row['ready_s']:.1f} | {row['rss_mib']:.0f} | {row['peak_mib']:.0f} "
            f"| {row['one_client_x']:.1f} | {row['clients_x']:.1f} "
            f"| {row['clip_p50_ms']:.0f} / {row['clip_p95_ms']:.0f} | {row['failures']} |"
        )
    print(f"\n(services part: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
