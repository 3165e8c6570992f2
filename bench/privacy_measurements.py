"""The measurements of the privacy report: privacy, intelligibility, utility and cost per method."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from math import nan
from pathlib import Path

import numpy as np
from pystoi import stoi

from bench.privacy_measures import (
    event_cell_distance,
    log_mel_distances,
    realigned_reference,
    requests,
    voiced_frames,
)
from bench.privacy_signals import (
    ASR_GROUPS,
    SR,
    SpeechCase,
    fitted,
)
from bench.speech_recognition import SpeechRecognizer, word_pair_recall
from contract.assets import asset_report
from transformer.privacy import PRIVACY_METHODS, PrivacyRequest, apply_privacy, parse_privacy_request

# --- measurements --------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyMeasures:
    """Mean STOI per speech group (plain, re-aligned), the share of voiced frames left, the
    mean ``event_cell_distance`` over the speech + event mixtures (nan without any), and
    the mean recogniser word-pair recall per group of clean speech (``ASR_GROUPS``)."""

    stoi: dict[str, tuple[float, float]]
    voiced_left: float
    event_cells: float
    word_pairs: dict[str, float]


def unrelated_noise(case: SpeechCase) -> np.ndarray:
    """Noise with the reference's long-term spectrum and nothing else of it."""
    noise_spectrum = np.fft.rfft(np.random.default_rng(0).standard_normal(case.signal.size))
    return np.fft.irfft(
        noise_spectrum / np.abs(noise_spectrum) * np.abs(np.fft.rfft(case.reference)), case.signal.size
    )


class Intelligibility:
    """What is left of the speech of one case in a processed signal, by three measures.

    The recogniser's transcript of the clean reference is computed once per
    case; without a recogniser (or outside ``ASR_GROUPS``) word-pair recall is nan.
    """

    def __init__(self, recognizer: SpeechRecognizer | None) -> None:
        self.recognizer = recognizer
        self._reference_words: dict[str, list[str]] = {}

    def stoi(self, case: SpeechCase, processed: np.ndarray) -> tuple[float, float]:
        """(plain, re-aligned) STOI of ``processed`` against the clean reference."""
        return (
            float(stoi(case.reference, processed, SR)),
            float(stoi(realigned_reference(case.reference, processed), processed, SR)),
        )

    def word_pair_recall(self, case: SpeechCase, processed: np.ndarray) -> float:
        if self.recognizer is None or case.group not in ASR_GROUPS:
            return nan
        if case.name not in self._reference_words:
            self._reference_words[case.name] = self.recognizer.words(case.reference)
        return word_pair_recall(self._reference_words[case.name], self.recognizer.words(processed))


def group_means(values: dict[str, list[float]]) -> dict[str, float]:
    """Mean per group, nan for a group without finite values."""
    means = {}
    for group, numbers in values.items():
        finite = [number for number in numbers if not np.isnan(number)]
        means[group] = float(np.mean(finite)) if finite else nan
    return means


def shifted_speech(case: SpeechCase) -> np.ndarray:
    """The clean speech rotated by half its length: every word intact, in the wrong place."""
    return np.roll(case.reference, case.reference.size // 2)


def reference_measures(
    cases: list[SpeechCase], measure: Intelligibility, signal_of: Callable[[SpeechCase], np.ndarray]
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """STOI and word-pair recall per group of a signal made from each case.

    With ``unrelated_noise`` it is the 'nothing left' floor; with
    ``shifted_speech`` it shows what plain STOI gives for speech that is all
    there but not time-aligned.
    """
    floor: dict[str, tuple[float, float]] = {}
    recall: dict[str, list[float]] = {}
    for group in dict.fromkeys(case.group for case in cases):
        scores = []
        for case in (case for case in cases if case.group == group):
            signal = signal_of(case)
            scores.append(measure.stoi(case, signal))
            recall.setdefault(group, []).append(measure.word_pair_recall(case, signal))
        floor[group] = (float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores])))
    return floor, group_means(recall)


def privacy_measures(
    cases: list[SpeechCase], method: str, seeds: int, measure: Intelligibility
) -> PrivacyMeasures:
    scores: dict[str, tuple[float, float]] = {}
    recall: dict[str, list[float]] = {}
    kept, event_cells = [], []
    for group in dict.fromkeys(case.group for case in cases):
        pairs = []
        for case in (case for case in cases if case.group == group):
            voiced = np.sum(voiced_frames(case.reference))
            for request in requests(method, seeds):
                out = apply_privacy(case.signal, request)
                pairs.append(measure.stoi(case, out))
                recall.setdefault(group, []).append(measure.word_pair_recall(case, out))
                if case.event is None:
                    kept.append(np.sum(voiced_frames(out)) / max(1, voiced))
                else:
                    event_cells.append(event_cell_distance(case, out))
        scores[group] = (float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs])))
    return PrivacyMeasures(
        scores,
        float(np.mean(kept)),
        float(np.mean(event_cells)) if event_cells else nan,
        group_means(recall),
    )


def transcripts(case: SpeechCase, recognizer: SpeechRecognizer) -> list[list[str]]:
    """Rows (method, what the recogniser hears) for one clip, first seed of each method."""
    rows = [["original", " ".join(recognizer.words(case.reference))]]
    for method in PRIVACY_METHODS:
        heard = recognizer.words(apply_privacy(case.signal, requests(method, 1)[0]))
        rows.append([method, " ".join(heard) or "(nothing)"])
    rows.append(["unrelated noise", " ".join(recognizer.words(unrelated_noise(case))) or "(nothing)"])
    return rows


def speech_recognizer() -> SpeechRecognizer | None:
    """The offline recogniser, or None (with a note) when pocketsphinx is not installed."""
    try:
        return SpeechRecognizer()
    except ImportError:
        print("> pocketsphinx is not installed (it is in the dev extra): no recogniser measure.\n")
        return None


def log_mel_measures(events: dict[str, np.ndarray], method: str, seeds: int) -> dict[str, np.ndarray]:
    """Per event clip: (2,) mean log-mel distances (frame by frame, clip average) over the draws."""
    return {
        name: np.mean(
            [log_mel_distances(clip, apply_privacy(clip, request)) for request in requests(method, seeds)],
            axis=0,
        )
        for name, clip in events.items()
    }


def cost_ms(samples: np.ndarray, request: PrivacyRequest, repeats: int = 5) -> float:
    """Median milliseconds of ``apply_privacy`` on ``samples`` looped to 10 s."""
    clip = fitted(samples, 10 * SR)
    apply_privacy(clip, request)  # warm caches
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        apply_privacy(clip, request)
        timings.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(timings))


@dataclass(frozen=True)
class ModelMeasures:
    """Through VGGish + PCA + classifier, versus ``none``, averaged over the event clips."""

    embedding_cosine: float
    top5_agreement: float


class ModelComparison:
    """The offline pipeline of ``model_dir`` and its results for ``none`` on the event clips."""

    def __init__(self, model_dir: Path, events: dict[str, np.ndarray]) -> None:
        # Imported here: it loads TensorFlow, which the weight-free measures do not need.
        from audioguard.offline import OfflineClassifier

        self.model_dir = model_dir
        self.report = asset_report(model_dir)
        self.classifier = OfflineClassifier.from_model_dir(model_dir)
        self.events = events
        none = parse_privacy_request("none", {})
        self.baseline = {name: self.run(clip, none) for name, clip in events.items()}

    def run(self, clip: np.ndarray, request: PrivacyRequest) -> tuple[np.ndarray, np.ndarray]:
        """((N, 128) embeddings as the predictor sees them, (527,) first-window scores)."""
        pipeline = self.classifier.pipeline
        embedded = pipeline.embed_features(pipeline.waveform_features(clip, request))
        scores = self.classifier.classify_embedded(embedded).windows[0].scores
        return (embedded.embeddings.astype(np.float64) - 128.0) / 128.0, np.asarray(scores)

    def measures(self, method: str) -> ModelMeasures:
        cosines, agreements = [], []
        for name, clip in self.events.items():
            embeddings, scores = self.run(clip, requests(method, 1)[0])
            reference_embeddings, reference_scores = self.baseline[name]
            dot = np.sum(embeddings * reference_embeddings, axis=1)
            norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(reference_embeddings, axis=1)
            cosines.append(float(np.mean(dot / np.maximum(norms, 1e-12))))
            top, reference_top = np.argsort(scores)[-5:], np.argsort(reference_scores)[-5:]
            agreements.append(len(set(top) & set(reference_top)) / 5)
        return ModelMeasures(float(np.mean(cosines)), float(np.mean(agreements)))

    def pipeline_ms(self, samples: np.ndarray, repeats: int = 3) -> float:
        """Median ms of the transformer's own work (log-mel, VGGish, PCA) on a 10-s clip."""
        clip = fitted(samples, 10 * SR)
        none = parse_privacy_request("none", {})
        pipeline = self.classifier.pipeline
        pipeline.embed_features(pipeline.waveform_features(clip, none))
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            pipeline.embed_features(pipeline.waveform_features(clip, none))
            timings.append(time.perf_counter() - start)
        return 1000.0 * float(np.median(timings))

    def weights_note(self) -> str:
        files = self.report["files"]
        assert isinstance(files, dict)
        listing = ", ".join(
            f"{name} ({'official' if status['official'] else 'NOT official'}, "
            f"sha512 {str(status['sha512'])[:12]}...)"
            for name, status in files.items()
        )
        if self.report["official"]:
            verdict = "the official IBM MAX weights (every sha512 matches)"
        else:
            verdict = (
                "NOT the official weights (sha512 mismatch; e.g. synthetic random weights in the "
                "official formats). The embedding and top-5 columns then only show how far each method "
                "moves the pipeline's numbers, not whether the real model would still recognise the events"
            )
        return f"Weights: `{self.model_dir}`: {verdict}. Files: {listing}."
