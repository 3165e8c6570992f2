"""What each privacy method protects and what it costs, measured (issue 4).

    python -m bench.privacy_report [--audio_dir DIR] [--speech FILE ...] [--events FILE ...]
                                   [--model_dir DIR] [--seeds 3] [--no_tts] [--no_asr]

Privacy: STOI (pystoi) of the anonymised speech against the original, lower is
better, plain and after an attacker re-aligns 0.25-s pieces to where they fit
the original best (that undoes a shuffle; plain STOI cannot see through one).
Also the share of voiced frames that are still voiced (pitch carries speaker
identity and intonation), and, alignment-free, what a speech recogniser still
understands: the share of the word pairs PocketSphinx (offline, its bundled
US-English model) hears in the original that it also hears in the anonymised
speech, in any order (a shuffle keeps pairs inside its segments; a recogniser
fed noise hallucinates words, so the chance row gives the floor). A second
baseline row, the clean speech shifted by half its length, shows that plain STOI
falls to its floor for speech that is complete but misplaced. Speech:
PhilippeRemy_001.wav from ``--audio_dir``, espeak-ng sentences (alone and mixed
with events at 10 and 0 dB SNR) and the tests' synthetic speech-like signal.

Utility: mean |difference| of the VGGish log-mel features versus the original on
event recordings (``--audio_dir``: birds1, gunshots, thunder, rain, snoring) and
synthetic alarm / siren / glass / scream / tone signals; on the speech + event
mixtures, the same distance from the event alone in the log-mel cells the event
dominates (does an event survive when someone talks over it?). With
``--model_dir`` also the cosine similarity of the VGGish embeddings and the
top-5 agreement of the classifier scores versus ``none`` (through
``audioguard.offline``); the report prints ``asset_report`` of the weights, and
with non-official (e.g. synthetic) weights those two columns only show how far
each method moves the pipeline's numbers.

Cost: extra milliseconds of ``apply_privacy`` per 10-s clip.

Without ``--audio_dir`` (or when ../shared/audio is absent) only synthesised
signals are used. Recordings are decoded in memory; nothing is written to disk.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import nan
from pathlib import Path

import numpy as np
from pystoi import stoi

from bench.speech_recognition import SpeechRecognizer, word_pair_recall
from contract.assets import asset_report
from tests.support import speech_synth as synth
from transformer.audio.decode import load_waveform
from transformer.audio.features import waveform_to_examples
from transformer.privacy import PRIVACY_METHODS, PrivacyRequest, apply_privacy, parse_privacy_request
from transformer.privacy.speech_mask import speech_weights

SR = 16_000
DEFAULT_AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
SPEECH_FILES = ("PhilippeRemy_001.wav",)
EVENT_FILES = ("birds1.wav", "gunshots.wav", "thunder.wav", "rain.wav", "snoring.wav")
TTS_SENTENCES = (
    (
        "en-us",
        "Please call me back when you get home tonight. The door code is seven four one nine, "
        "and the spare keys are under the mat.",
    ),
    (
        "en-gb+f3",
        "I told you already, we cannot leave the children alone in the house while the "
        "workers are here. Where did you put the car keys?",
    ),
)
MIX_SNR_DB = (10.0, 0.0)
#: Speech groups the recogniser is run on: clean speech only (mixtures would measure the event).
ASR_GROUPS = ("recorded", "tts")
REALIGN_CHUNK = SR // 4


# --- signals -----------------------------------------------------------------------


def read_clip(path: Path) -> np.ndarray:
    """A recording as the transformer sees it: decoded in memory, mono, 16 kHz float64."""
    return load_waveform(path.read_bytes(), max_seconds=600.0)


def espeak(voice: str, text: str) -> np.ndarray | None:
    """espeak-ng speech (WAV on stdout, decoded in memory) at 16 kHz, None if unavailable."""
    if shutil.which("espeak-ng") is None:
        return None
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], capture_output=True, check=True
    ).stdout
    return load_waveform(wav, max_seconds=600.0)


def fitted(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` looped or cut to ``length``."""
    return np.resize(samples, length)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def synthetic_events(seconds: float = 8.0) -> dict[str, np.ndarray]:
    return {
        "alarm (synth)": synth.beeping_alarm(seconds),
        "siren (synth)": synth.siren(seconds),
        "glass (synth)": synth.glass_bursts(seconds),
        "scream (synth)": synth.scream(seconds),
        "tone 1 kHz (synth)": synth.tone(seconds),
    }


@dataclass(frozen=True)
class SpeechCase:
    """Speech to protect: ``reference`` is the clean speech, ``signal`` what is anonymised.

    ``event`` is the event sound mixed into ``signal`` (as mixed), None for clean speech.
    """

    group: str
    name: str
    reference: np.ndarray
    signal: np.ndarray
    event: np.ndarray | None = None


def speech_cases(
    audio_dir: Path | None, extra: Sequence[Path], use_tts: bool, events: dict[str, np.ndarray]
) -> list[SpeechCase]:
    cases = []
    recorded = [audio_dir / name for name in SPEECH_FILES] if audio_dir else []
    for path in [*recorded, *extra]:
        clip = read_clip(path)
        cases.append(SpeechCase("recorded", path.name, clip, clip))
    if use_tts:
        for index, (voice, text) in enumerate(TTS_SENTENCES):
            speech = espeak(voice, text)
            if speech is None:
                print("> espeak-ng is not installed (apt-get install espeak-ng): no TTS speech.\n")
                break
            cases.append(SpeechCase("tts", f"tts{index + 1}", speech, speech))
            # Mix the first sentence with every event, the second with a few.
            mixed_events = events if index == 0 else dict(list(events.items())[:2])
            for event_name, event in mixed_events.items():
                looped = fitted(event, speech.size)
                for snr in MIX_SNR_DB:
                    gain = rms(speech) / max(rms(looped), 1e-12) * 10 ** (-snr / 20)
                    name = f"tts{index + 1}+{event_name}@{snr:g}dB"
                    mixed = gain * looped
                    cases.append(SpeechCase("tts+event", name, speech, speech + mixed, mixed))
    cases.append(
        SpeechCase("synthetic", "speech_like", synth.speech_like(8.0, seed=1), synth.speech_like(8.0, seed=1))
    )
    return cases


def event_clips(audio_dir: Path | None, extra: Sequence[Path]) -> dict[str, np.ndarray]:
    recorded = [audio_dir / name for name in EVENT_FILES if (audio_dir / name).exists()] if audio_dir else []
    clips = {path.name: read_clip(path) for path in [*recorded, *extra]}
    clips.update(synthetic_events())
    return clips


# --- measures ----------------------------------------------------------------------


def _decimated(samples: np.ndarray, factor: int) -> np.ndarray:
    """Low-passed (FFT) and decimated copy for a coarse lag search."""
    spectrum = np.fft.rfft(samples)
    keep = spectrum.size // factor
    return np.fft.irfft(spectrum[:keep], n=samples.size // factor) / factor


def realigned_reference(original: np.ndarray, processed: np.ndarray) -> np.ndarray:
    """``original`` rearranged chunk by chunk to best match ``processed``.

    For each 0.25-s chunk of ``processed`` the lag into ``original`` with the
    highest normalised cross-correlation is searched at 4 kHz, refined at
    16 kHz, and that stretch of ``original`` becomes the reference there.
    """
    factor = 4
    n = original.size
    coarse_original = _decimated(original, factor)
    coarse_processed = _decimated(processed, factor)
    m = coarse_original.size
    size = 1 << int(np.ceil(np.log2(2 * m)))
    original_spectrum = np.fft.rfft(coarse_original, size)
    coarse_energy = np.concatenate([[0.0], np.cumsum(coarse_original**2)])
    reference = np.zeros(n)
    for start in range(0, n, REALIGN_CHUNK):
        length = min(REALIGN_CHUNK, n - start)
        piece = coarse_processed[start // factor : (start + length) // factor]
        span = piece.size
        if span == 0:
            reference[start : start + length] = original[start : start + length]
            continue
        correlation = np.fft.irfft(original_spectrum * np.conj(np.fft.rfft(piece, size)), size)
        window_energy = coarse_energy[span:] - coarse_energy[: m - span + 1]
        coarse_lag = int(np.argmax(correlation[: m - span + 1] / np.sqrt(window_energy + 1e-12)))
        target = processed[start : start + length]
        candidates = [
            lag
            for lag in range(coarse_lag * factor - factor, coarse_lag * factor + factor + 1)
            if 0 <= lag <= n - length
        ]
        scores = [
            float(np.dot(original[lag : lag + length], target))
            / np.sqrt(np.sum(original[lag : lag + length] ** 2) + 1e-12)
            for lag in candidates
        ]
        best = candidates[int(np.argmax(scores))]
        reference[start : start + length] = original[best : best + length]
    return reference


def voiced_frames(samples: np.ndarray) -> np.ndarray:
    """(frames,) bool: 16-ms-hop frames whose 80-1000 Hz band repeats itself at a pitch period.

    Normalised cross-correlation of a 20-ms stretch with the same stretch 2.5 to
    12.5 ms later (80-400 Hz pitch), no window taper, so white or speech-shaped
    noise stays far below the 0.8 threshold while voiced speech reaches ~1.
    Frames more than 20 dB below the loudest are ignored.
    """
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(samples.size, 1 / SR)
    low = np.fft.irfft(spectrum * ((freqs >= 80) & (freqs <= 1000)), samples.size)
    length, max_lag = 320, 200
    frames = np.lib.stride_tricks.sliding_window_view(low, length + max_lag)[::256]
    first = frames[:, :length]
    correlation = np.fft.irfft(
        np.fft.rfft(frames, 1024, axis=1) * np.conj(np.fft.rfft(first, 1024, axis=1)), 1024, axis=1
    )[:, : max_lag + 1]
    cumulative = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    shifted_energy = cumulative[:, length : length + max_lag + 1] - cumulative[:, : max_lag + 1]
    energy = cumulative[:, length]
    nccf = correlation / np.sqrt(shifted_energy * energy[:, None] + 1e-20)
    return (energy > 0.01 * energy.max()) & (nccf[:, 40:].max(axis=1) >= 0.8)


def log_mel_distances(original: np.ndarray, processed: np.ndarray) -> tuple[float, float]:
    """Mean |difference| of the VGGish log-mel features (natural log units).

    Returns:
        (frame by frame, of the clip-average spectrum). The second ignores where
        in the clip things happen, which is what a shuffle changes.
    """
    reference = waveform_to_examples(original).reshape(-1, 64)
    features = waveform_to_examples(processed).reshape(-1, 64)
    return (
        float(np.mean(np.abs(features - reference))),
        float(np.mean(np.abs(features.mean(axis=0) - reference.mean(axis=0)))),
    )


def event_cell_distance(case: SpeechCase, processed: np.ndarray) -> float:
    """How far the anonymised mixture is from the event alone where the event dominates.

    Mean |difference| of the log-mel features over the cells (frame, mel band)
    whose event magnitude is at least twice the speech's (6 dB): ~0 when the
    event passes unchanged, > 1 when it was replaced or moved.
    """
    assert case.event is not None
    event = waveform_to_examples(case.event).reshape(-1, 64)
    speech = waveform_to_examples(case.reference).reshape(-1, 64)
    features = waveform_to_examples(processed).reshape(-1, 64)
    dominated = event > speech + np.log(2.0)
    return float(np.mean(np.abs(features - event)[dominated]))


def replaced_fraction(samples: np.ndarray) -> float:
    """Share of STFT frames speech_mask replaces (fully or partly) in ``samples``."""
    margin = parse_privacy_request("speech_mask", {}).params["margin_ms"]
    return float(np.mean(speech_weights(samples, SR, margin) > 0))


def requests(method: str, seeds: int) -> list[PrivacyRequest]:
    """``seeds`` seeded default requests (one for ``none``: it is deterministic)."""
    base = parse_privacy_request(method, {})
    return [
        PrivacyRequest(base.method, base.params, seed=seed)
        for seed in range(1 if method == "none" else seeds)
    ]


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
        embedded = self.classifier.pipeline.embed_waveform(clip, request)
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
        self.classifier.pipeline.embed_waveform(clip, none)
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.classifier.pipeline.embed_waveform(clip, none)
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


# --- tables ------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pair(values: tuple[float, float]) -> str:
    return f"{values[0]:.2f} / {values[1]:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--audio_dir",
        type=Path,
        default=DEFAULT_AUDIO_DIR if DEFAULT_AUDIO_DIR.is_dir() else None,
        help="folder with PhilippeRemy_001.wav and the event recordings (default ../shared/audio)",
    )
    parser.add_argument("--speech", type=Path, nargs="*", default=[], help="more speech recordings")
    parser.add_argument("--events", type=Path, nargs="*", default=[], help="more event recordings")
    parser.add_argument(
        "--model_dir",
        type=Path,
        default=None,
        help="model directory for the embedding / score comparison (optional)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="random draws averaged per randomised method")
    parser.add_argument("--no_tts", action="store_true", help="skip the espeak-ng speech")
    parser.add_argument("--no_asr", action="store_true", help="skip the speech-recogniser measure")
    args = parser.parse_args(argv)
    audio_dir: Path | None = args.audio_dir
    if audio_dir is not None and not audio_dir.is_dir():
        print(f"> {audio_dir} does not exist: synthesised signals only.\n")
        audio_dir = None

    started = time.perf_counter()
    events = event_clips(audio_dir, args.events)
    mix_events = {
        name: clip
        for name, clip in events.items()
        if name in {"gunshots.wav", "rain.wav", "alarm (synth)", "siren (synth)", "glass (synth)"}
    }
    cases = speech_cases(audio_dir, args.speech, not args.no_tts, mix_events)
    groups = list(dict.fromkeys(case.group for case in cases))
    counts = {group: sum(case.group == group for case in cases) for group in groups}

    recognizer = None if args.no_asr else speech_recognizer()
    measure = Intelligibility(recognizer)
    privacy = {method: privacy_measures(cases, method, args.seeds, measure) for method in PRIVACY_METHODS}
    baselines = {
        "unrelated noise (chance level)": reference_measures(cases, measure, unrelated_noise),
        "the clean speech shifted by half its length (all words intact)": reference_measures(
            cases, measure, shifted_speech
        ),
    }
    asr_groups = [group for group in groups if group in ASR_GROUPS] if recognizer else []
    log_mel = {method: log_mel_measures(events, method, args.seeds) for method in PRIVACY_METHODS}
    speech_clip, event_clip = cases[0].signal, next(iter(events.values()))
    cost = {
        method: (cost_ms(speech_clip, request), cost_ms(event_clip, request))
        for method in PRIVACY_METHODS
        for request in [parse_privacy_request(method, {})]
    }
    model: ModelComparison | None = None
    if args.model_dir is not None:
        model = ModelComparison(args.model_dir, events)
    through_model = {method: model.measures(method) for method in PRIVACY_METHODS} if model else {}

    print("### Summary\n")
    header = [
        "method",
        *(f"STOI {group} ({counts[group]}), plain / re-aligned" for group in groups),
        *(f"ASR word pairs heard, {group}" for group in asr_groups),
        "voiced frames left",
        "event log-mel mean abs diff",
        "event-dominated cells in mixtures: log-mel diff from the event",
    ]
    if model:
        header += ["event embedding cosine vs none", "event top-5 agreement vs none"]
    header.append("extra ms per 10-s clip (speech / event)")
    rows = []
    for method in PRIVACY_METHODS:
        row = [
            method,
            *(pair(privacy[method].stoi[group]) for group in groups),
            *(f"{100 * privacy[method].word_pairs[group]:.0f} %" for group in asr_groups),
            f"{100 * privacy[method].voiced_left:.0f} %",
            f"{np.mean([d[0] for d in log_mel[method].values()]):.2f}",
            f"{privacy[method].event_cells:.2f}",
        ]
        if model:
            row += [
                f"{through_model[method].embedding_cosine:.3f}",
                f"{100 * through_model[method].top5_agreement:.0f} %",
            ]
        row.append(f"{cost[method][0]:.1f} / {cost[method][1]:.1f}")
        rows.append(row)
    for name, (floor, floor_recall) in baselines.items():
        baseline = [
            name,
            *(pair(floor[group]) for group in groups),
            *(f"{100 * floor_recall[group]:.0f} %" for group in asr_groups),
            "",
            "",
            "",
        ]
        rows.append(baseline + (["", ""] if model else []) + [""])
    print(markdown_table(header, rows) + "\n")
    if model:
        print(model.weights_note())
        print(
            f"For scale: the transformer's own work on a 10-s clip (log-mel, VGGish, PCA; "
            f"`none`) takes {model.pipeline_ms(event_clip):.0f} ms on this machine.\n"
        )
    else:
        print(
            "> no --model_dir: embedding and top-5 comparison skipped (log-mel measures are weight-free).\n"
        )

    print(
        "### Log-mel distance per event clip (mean abs difference of the VGGish log-mel features, "
        "frame by frame / of the clip-average spectrum; 0 = unchanged)\n"
    )
    rows = [[method, *(pair(tuple(log_mel[method][name])) for name in events)] for method in PRIVACY_METHODS]
    print(markdown_table(["method", *events], rows) + "\n")

    if recognizer is not None:
        for case in (case for case in cases if case.group == "recorded"):
            print(f"### What the recogniser hears in {case.name} (first draw of each method)\n")
            print(markdown_table(["signal", "PocketSphinx transcript"], transcripts(case, recognizer)) + "\n")

    print("### Frames speech_mask replaces (default parameters)\n")
    speech = [(case.name, case.signal) for case in cases if case.group != "tts+event" or "@0dB" in case.name]
    rows = [[name, "speech", f"{100 * replaced_fraction(samples):.0f} %"] for name, samples in speech]
    rows += [[name, "event", f"{100 * replaced_fraction(samples):.0f} %"] for name, samples in events.items()]
    print(markdown_table(["clip", "kind", "frames replaced"], rows) + "\n")

    print(
        f"_{len(cases)} speech clips ({', '.join(f'{counts[g]} {g}' for g in groups)}), {len(events)} event "
        f"clips, {args.seeds} draws per randomised method (1 through the model), "
        f"{time.perf_counter() - started:.0f} s._"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
