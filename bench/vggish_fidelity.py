"""How close each VGGish runtime comes to the TensorFlow reference, on real recordings.

For every recording, the reference (Keras VGGish on TensorFlow, the numerics of
IBM MAX) and a candidate (ONNX Runtime fp32 or int8) embed the same audio; then
the same classifier scores every 10-embedding window at hop 1. Reported:
uint8 embedding values equal / within +-1 / within +-2, the largest score
difference, top-1 agreement per window and the mean top-5 overlap.

    python -m bench.vggish_fidelity --model_dir models --audio ../shared/audio

The int8 model is calibrated on generated sounds (``transformer.audio.calibration``),
never on these recordings.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transformer.analysis.windows import select_windows
from transformer.audio.embedders import Embedder, load_embedder
from transformer.audio.features import waveform_to_examples

#: What libsndfile reads among the shared recordings.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff")


@dataclass(frozen=True)
class Fidelity:
    """A candidate's agreement with the reference over a set of recordings."""

    examples: int
    equal: float
    within_1: float
    within_2: float
    max_level_difference: int
    windows: int
    max_score_difference: float
    top1_agreement: float
    top5_overlap: float

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.examples} | {self.equal:.2%} | {self.within_1:.2%} | {self.within_2:.2%} "
            f"| {self.max_level_difference} | {self.windows} | {self.max_score_difference:.1e} "
            f"| {self.top1_agreement:.1%} | {self.top5_overlap:.2f} / 5 |"
        )


HEADER = (
    "| runtime | examples | uint8 equal | within +-1 | within +-2 | max diff | windows "
    "| max score diff | top-1 agree | top-5 overlap |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def recording_examples(paths: list[Path]) -> list[np.ndarray]:
    """Each recording decoded, resampled and cut into (N, 96, 64) log-mel examples."""
    from transformer.audio.decode import load_waveform

    return [
        waveform_to_examples(load_waveform(path.read_bytes(), max_seconds=600, budget_hz=96_000))
        for path in paths
    ]


def window_scores(embeddings: np.ndarray, score: object) -> np.ndarray:
    """(N, 128) uint8 -> (W, 527) scores of every 10-embedding window at hop 1."""
    windows = select_windows(embeddings, all_windows=True, hop=1)
    return score(windows.embeddings)  # type: ignore[operator, no-any-return]


def compare(
    reference: list[np.ndarray], candidate: list[np.ndarray], score: object, *, top_k: int = 5
) -> Fidelity:
    """Per-recording (N, 128) uint8 embeddings of both runtimes -> their agreement."""
    ref_all = np.concatenate(reference).astype(int)
    cand_all = np.concatenate(candidate).astype(int)
    difference = np.abs(ref_all - cand_all)
    top1: list[bool] = []
    overlaps: list[int] = []
    max_score = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        ref_scores, cand_scores = window_scores(ref, score), window_scores(cand, score)
        max_score = max(max_score, float(np.abs(ref_scores - cand_scores).max()))
        for r, c in zip(ref_scores, cand_scores, strict=True):
            ref_top = np.argsort(-r, kind="stable")[:top_k]
            cand_top = np.argsort(-c, kind="stable")[:top_k]
            top1.append(bool(ref_top[0] == cand_top[0]))
            overlaps.append(len(set(ref_top) & set(cand_top)))
    return Fidelity(
        examples=int(ref_all.shape[0]),
        equal=float((difference == 0).mean()),
        within_1=float((difference <= 1).mean()),
        within_2=float((difference <= 2).mean()),
        max_level_difference=int(difference.max()),
        windows=len(top1),
        max_score_difference=max_score,
        top1_agreement=float(np.mean(top1)),
        top5_overlap=float(np.mean(overlaps)),
    )


def quantized(embedder: Embedder, examples: list[np.ndarray]) -> list[np.ndarray]:
    return [embedder.embed_quantized(batch) for batch in examples]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", type=Path, required=True, help="the three model files")
    parser.add_argument("--audio", type=Path, required=True, help="a folder of recordings")
    parser.add_argument(
        "--cache_dir", type=Path, default=None, help="int8 cache (default: beside the weights)"
    )
    args = parser.parse_args(argv)
    from predictor.classifier import AttentionClassifier

    checkpoint, pca = args.model_dir / "vggish_model.ckpt", args.model_dir / "vggish_pca_params.npz"
    paths = sorted(p for p in args.audio.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    examples = recording_examples(paths)
    classifier = AttentionClassifier.from_file(args.model_dir / "classifier_model.h5")
    reference = quantized(load_embedder(checkpoint, pca, runtime="tensorflow"), examples)
    print(f"{len(paths)} recordings in {args.audio}; CPU {platform.processor() or platform.machine()}")
    print(HEADER)
    for precision in ("fp32", "int8"):
        embedder = load_embedder(checkpoint, pca, precision=precision, cache_dir=args.cache_dir)  # type: ignore[arg-type]
        result = compare(reference, quantized(embedder, examples), classifier.predict)
        print(result.row(f"onnxruntime {precision}"))


if __name__ == "__main__":
    main()
