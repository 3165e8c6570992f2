"""The recogniser-based intelligibility measure of the privacy report."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.speech_recognition import word_pair_recall
from transformer.audio.decode import load_waveform
from transformer.privacy import PrivacyRequest, apply_privacy, parse_privacy_request

SHARED_SPEECH = Path(__file__).resolve().parents[3] / "shared" / "audio" / "PhilippeRemy_001.wav"


def test_word_pair_recall_counts_pairs_in_any_order() -> None:
    reference = ["the", "door", "code", "is", "seven", "four"]  # 5 pairs
    # Two of them, moved to other places, plus unrelated words.
    hypothesis = ["seven", "four", "and", "then", "the", "door"]
    assert word_pair_recall(reference, hypothesis) == pytest.approx(2 / 5)


def test_word_pair_recall_ignores_single_words_out_of_context() -> None:
    reference = ["the", "door", "code", "is", "seven"]
    # Every word is there, no pair is: a recogniser hallucinating common words scores 0.
    assert word_pair_recall(reference, ["seven", "is", "code", "door", "the"]) == 0.0


def test_word_pair_recall_counts_repeated_pairs_once_each() -> None:
    reference = ["of", "the", "of", "the", "end"]  # pairs: (of,the) x2, (the,of), (the,end)
    assert word_pair_recall(reference, ["of", "the"]) == pytest.approx(1 / 4)
    assert word_pair_recall(reference, ["of", "the", "x", "of", "the"]) == pytest.approx(2 / 4)


def test_word_pair_recall_of_a_single_word_reference_is_undefined() -> None:
    assert np.isnan(word_pair_recall(["hello"], ["hello", "there"]))


def seeded(method: str, seed: int) -> PrivacyRequest:
    base = parse_privacy_request(method, {})
    return PrivacyRequest(base.method, base.params, seed=seed)


def speech_clips() -> list[np.ndarray]:
    clips = []
    if SHARED_SPEECH.exists():
        clips.append(load_waveform(SHARED_SPEECH.read_bytes(), max_seconds=60.0))
    if shutil.which("espeak-ng") is not None:
        text = "When a man looks for something beyond his reach, his friends say he is looking for gold."
        wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True)
        clips.append(load_waveform(wav.stdout, max_seconds=60.0))
    return clips


@pytest.mark.slow
def test_recogniser_hears_scrambled_words_but_not_masked_ones() -> None:
    pytest.importorskip("pocketsphinx")
    clips = speech_clips()
    if not clips:
        pytest.skip("needs ../shared/audio/PhilippeRemy_001.wav or espeak-ng for natural-ish speech")
    from bench.speech_recognition import SpeechRecognizer

    recognizer = SpeechRecognizer()
    for speech in clips:
        heard = recognizer.words(speech)
        assert len(heard) >= 6, heard  # the recogniser understands the original at all
        scramble = np.mean(
            [
                word_pair_recall(heard, recognizer.words(apply_privacy(speech, seeded("scramble", s))))
                for s in range(3)
            ]
        )
        mask = np.mean(
            [
                word_pair_recall(heard, recognizer.words(apply_privacy(speech, seeded("speech_mask", s))))
                for s in range(3)
            ]
        )
        assert scramble >= 0.1
        assert mask <= 0.05
        assert mask < scramble / 2
