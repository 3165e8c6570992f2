"""Throughput of the in-process core path, stage by stage (issue: audio-to-scores core).

Reports audio-seconds processed per wall-second (x real time) for 10-s clips at
16 kHz mono and 44.1 kHz stereo, for each stage (decode, resample, log-mel,
VGGish, classifier) and end to end, plus the bare batched Keras VGGish call at
batch 10 and 64 in the same run, so ratios are comparable on a noisy machine.

    python -m bench.core_benchmark --model_dir models [--repeats 5]

Synthetic weights give the same speed as the official ones (same shapes).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from audioguard.offline import OfflineClassifier

CLIP_SECONDS = 10.0


def _clip(sample_rate: int, channels: int, seed: int = 0) -> bytes:
    """A 10-s PCM16 WAV of band-limited noise and tones (deterministic)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_SECONDS * sample_rate)) / sample_rate
    mono = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    samples = np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up call (least noise)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _time_stages(
    classifier: OfflineClassifier, data: bytes, rate: int, repeats: int
) -> list[tuple[str, float]]:
    """Best seconds of each core stage, and of the whole path, for one encoded clip."""
    from transformer.analysis.windows import select_windows
    from transformer.audio.decode import decode_audio
    from transformer.audio.features import waveform_to_examples
    from transformer.audio.resample import resample_to_16k
    from transformer.privacy import parse_privacy_request

    embedder = classifier.pipeline.embedder
    native, _ = decode_audio(data, max_seconds=600)
    samples = resample_to_16k(native, rate)
    examples = waveform_to_examples(samples)
    windows = select_windows(embedder.embed_quantized(examples))
    none = parse_privacy_request("none", {})
    return [
        ("decode", best_seconds(lambda: decode_audio(data, max_seconds=600), repeats)),
        ("resample", best_seconds(lambda: resample_to_16k(native, rate), repeats)),
        ("log-mel", best_seconds(lambda: waveform_to_examples(samples), repeats)),
        ("VGGish+PCA", best_seconds(lambda: embedder.embed_quantized(examples), repeats)),
        ("classifier", best_seconds(lambda: classifier.score_windows(windows), repeats)),
        ("end to end", best_seconds(lambda: classifier.classify(data, privacy=none), repeats)),
    ]


def run(model_dir: Path, repeats: int) -> list[tuple[str, str, float, str]]:
    """Time every stage; return rows (input, stage, seconds, rate text)."""
    import tensorflow as tf

    from audioguard.offline import OfflineClassifier
    from transformer.audio.vggish import build_vggish

    classifier = OfflineClassifier.from_model_dir(model_dir)
    embedder = classifier.pipeline.embedder
    rows: list[tuple[str, str, float, str]] = []
    for name, rate, channels in (("16 kHz mono", 16_000, 1), ("44.1 kHz stereo", 44_100, 2)):
        for stage, seconds in _time_stages(classifier, _clip(rate, channels), rate, repeats):
            rows.append((name, stage, seconds, f"{CLIP_SECONDS / seconds:8.1f}x real time"))

    # the reference: a bare batched Keras VGGish call, same process, same run
    bare = build_vggish()
    call = tf.function(lambda x: bare(x, training=False), reduce_retracing=True)
    for batch in (10, 64):
        x = tf.constant(np.random.default_rng(1).normal(size=(batch, 96, 64, 1)).astype(np.float32))
        seconds = best_seconds(lambda x=x: call(x).numpy(), repeats)
        rows.append((f"bare Keras batch {batch}", "VGGish", seconds, f"{batch / seconds:8.1f} examples/s"))
    many = np.random.default_rng(2).normal(size=(64, 96, 64)).astype(np.float32)
    seconds = best_seconds(lambda: embedder.embed_quantized(many), repeats)
    rows.append(("embedder batch 64", "VGGish+PCA", seconds, f"{64 / seconds:8.1f} examples/s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, default=Path("models"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = run(args.model_dir, args.repeats)
    print("| input | stage | best time (ms) | rate |")
    print("|---|---|---:|---|")
    for name, stage, seconds, rate in rows:
        print(f"| {name} | {stage} | {seconds * 1000:.1f} | {rate.strip()} |")


if __name__ == "__main__":
    main()
