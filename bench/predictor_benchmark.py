"""The predictor before (TensorFlow) and after (ONNX Runtime), in one run: images and classifier.

For each image: its size, seconds from ``podman run`` to ``/v2/health/ready`` with
the weights present (the ONNX image's second start, from its cached conversion; the
first start converts), and the process's resident memory once ready and after
200 requests of 64 windows. Classifier throughput (windows/s, each runtime in a
process of its own, alternating rounds, best of each) of the Keras reference on
TensorFlow against the served ONNX Runtime classifier, at batch 1, 64 (the default
max_batch_size) and 256; ONNX Runtime with the service default (``--threads 0``: one per core,
as TensorFlow's own default) and with the 1 thread the chart and the gateway profile set.

    python -m bench.predictor_benchmark --before localhost/audioguard-predictor:before-tf \\
        --after localhost/audioguard-predictor:test [--model_dir DIR]

Weights are synthetic official-format files unless ``--model_dir`` holds the real
``classifier_model.h5``: the computation and its cost are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests

from contract.assets import CLASSIFIER_H5

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni")
PREDICTOR_CMD = ["--model_name", "audioguard", "--model_dir", "/mnt/models", "--http_port", "8080"]


def cpu_flags() -> str:
    words = set(Path("/proc/cpuinfo").read_text().split())
    return " ".join(flag for flag in CPU_FLAGS if flag in words) or "none of " + ",".join(CPU_FLAGS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=300).stdout


def image_size_gb(image: str) -> float:
    return int(_podman("image", "inspect", "--format", "{{.Size}}", image).strip()) / 1e9


def _resident_mib(name: str) -> float:
    status = _podman("exec", name, "cat", "/proc/1/status")
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


def _infer(port: int, windows: np.ndarray) -> None:
    body = {
        "inputs": [
            {
                "name": "embeddings",
                "shape": list(windows.shape),
                "datatype": "UINT8",
                "data": windows.ravel().tolist(),
            }
        ]
    }
    answer = requests.post(f"http://127.0.0.1:{port}/v2/models/audioguard/infer", json=body, timeout=60)
    answer.raise_for_status()


def run_image(image: str, models: Path, *, starts: int) -> dict[str, float]:
    """Start ``image`` ``starts`` times on ``models``; the last start's ready seconds and memory."""
    figures: dict[str, float] = {}
    for _ in range(starts):
        name, port = f"audioguard-bench-{uuid.uuid4().hex[:8]}", _free_port()
        started = time.monotonic()
        _podman(
            "run", "-d", "--name", name, "--user", "1000:1000", "-p", f"127.0.0.1:{port}:8080",
            "--volume", f"{models}:/mnt/models", image, *PREDICTOR_CMD,
        )  # fmt: skip
        try:
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() - started > 180:
                    raise RuntimeError(
                        f"{image} not ready in 180 s: {_podman('logs', name, check=False)[-2000:]}"
                    )
                time.sleep(0.02)
            figures["ready_seconds"] = time.monotonic() - started
            figures["rss_ready_mib"] = _resident_mib(name)
            windows = np.random.default_rng(1).integers(0, 256, (64, 10, 128), dtype=np.uint8)
            for _ in range(200):
                _infer(port, windows)
            figures["rss_after_traffic_mib"] = _resident_mib(name)
        finally:
            _podman("rm", "-f", name, check=False)
    return figures


def throughput(predict: Callable[[np.ndarray], np.ndarray], batch: int, seconds: float = 2.0) -> float:
    windows = np.random.default_rng(batch).integers(0, 256, (batch, 10, 128), dtype=np.uint8)
    predict(windows)  # warm
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predict(windows)
        done += batch
    return done / (time.perf_counter() - started)


def _child_rates(runtime: str, h5: Path) -> dict[int, float]:
    """One runtime's windows/s per batch size, in this process (run in a child of its own)."""
    if runtime == "tensorflow":
        from predictor.keras_reference import KerasAttentionClassifier

        predict = KerasAttentionClassifier.from_file(h5).predict
    else:
        from predictor.classifier import AttentionClassifier

        threads = 1 if runtime == "onnxruntime-1-thread" else 0
        with tempfile.TemporaryDirectory() as cache:
            predict = AttentionClassifier.from_file(h5, cache_dir=Path(cache), threads=threads).predict
    return {batch: throughput(predict, batch) for batch in (1, 64, 256)}


RUNTIMES = {
    "tensorflow": "tensorflow (before)",
    "onnxruntime": "onnxruntime (after)",
    "onnxruntime-1-thread": "onnxruntime, 1 thread",
}


def classifier_throughput(h5: Path, rounds: int = 3) -> dict[str, dict[int, float]]:
    """Each runtime in a process of its own (TensorFlow's spinning pool would slow a neighbour),
    alternating, ``rounds`` times; the best rate of each."""
    best: dict[str, dict[int, float]] = {label: {} for label in RUNTIMES.values()}
    for _ in range(rounds):
        for runtime, label in RUNTIMES.items():
            child = [sys.executable, "-m", "bench.predictor_benchmark", "--child", runtime, str(h5)]
            output = subprocess.run(child, capture_output=True, text=True, check=True, timeout=600).stdout
            for batch, rate in json.loads(output.splitlines()[-1]).items():
                best[label][int(batch)] = max(best[label].get(int(batch), 0.0), rate)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="localhost/audioguard-predictor:before-tf")
    parser.add_argument("--after", default="localhost/audioguard-predictor:test")
    parser.add_argument(
        "--model_dir", type=Path, default=None, help="holds classifier_model.h5 (default: synthetic)"
    )
    parser.add_argument("--skip_images", action="store_true", help="the in-process throughput only")
    parser.add_argument("--child", nargs=2, metavar=("RUNTIME", "H5"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child_rates(args.child[0], Path(args.child[1]))))
        return
    print(f"CPU flags: {cpu_flags()}; cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as scratch:
        source = (
            args.model_dir / CLASSIFIER_H5 if args.model_dir else Path(scratch) / "source" / CLASSIFIER_H5
        )
        if not args.model_dir:
            from audioguard.synthetic.classifier import write_synthetic_classifier_h5

            write_synthetic_classifier_h5(source)
        rates = classifier_throughput(source)
        print("classifier throughput, windows/s (best of 3 alternating rounds, a process each):")
        for name, by_batch in rates.items():
            print(f"  {name:22s} " + "  ".join(f"batch {b}: {r:9.0f}" for b, r in by_batch.items()))
        results: dict[str, object] = {"cpu_flags": cpu_flags(), "throughput": rates}
        if not args.skip_images:
            for label, image, starts in (("before", args.before, 1), ("after", args.after, 2)):
                models = Path(scratch) / label
                models.mkdir()
                shutil.copyfile(source, models / CLASSIFIER_H5)
                models.chmod(0o777)  # the service (uid 1000) writes its cached conversion here
                figures = {"image_gb": image_size_gb(image), **run_image(image, models, starts=starts)}
                results[label] = figures
                print(f"{label:6s} {image}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
        print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
