"""An alignment-free intelligibility measure: what an offline recogniser still hears.

STOI compares the signals frame by frame, so any reordering drives it to its
floor even when every word survives inside the reordered pieces. A speech
recogniser does not care where a word sits in the clip. PocketSphinx (CMU,
BSD licence) ships a US-English acoustic and language model in its wheel and
runs offline, so the measure needs no download beyond the package registry.

The measure is the recall of word *pairs*: single short words ("the", "is")
come out of any noise, whereas a pair of consecutive words repeated from the
original is evidence that speech got through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

SAMPLE_RATE = 16_000


class SpeechRecognizer:
    """PocketSphinx with its bundled en-us model, decoding whole clips held in memory."""

    def __init__(self) -> None:
        # Imported here so the rest of the report works without the package.
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def words(self, samples: np.ndarray) -> list[str]:
        """Recognised words of a (n,) float waveform at 16 kHz in [-1, 1]."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr.split() if hypothesis is not None else []


def word_pairs(words: Sequence[str]) -> Counter[tuple[str, str]]:
    """Multiset of consecutive word pairs."""
    return Counter(pairwise(words))


def word_pair_recall(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Share of the reference's consecutive word pairs that the hypothesis also contains.

    Counted as multisets, in any order and position; nan when the reference has
    fewer than two words.
    """
    wanted = word_pairs(reference)
    total = sum(wanted.values())
    if total == 0:
        return float("nan")
    return sum((wanted & word_pairs(hypothesis)).values()) / total
