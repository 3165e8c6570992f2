"""A stream's log-mel examples and their loudness, computed as its audio arrives, equal to the file path's.

The file path (``transformer.audio.features.waveform_to_examples``) frames the whole
waveform; example ``k`` reads samples ``15360 k .. 15360 k + 15599`` only. So a stream
keeps just the samples the next example still needs (at most 15,600 plus the newest
chunk), computes each example with the same function once its samples are there, and
forgets what no later example reads: bounded memory, every example computed once, and the
same numbers as the whole recording sent as one file (tested with random chunk sizes).
``StreamingExamples`` frames the audio the features are made of (the anonymised one);
``StreamingLoudness`` frames the audio the loudness is measured on (before anonymisation,
as ``transformer.audio.loudness`` measures a file's).

Input: 16 kHz mono float64 samples.
"""

from __future__ import annotations

import numpy as np

from transformer.audio.constants import EXAMPLE_FRAMES, NUM_MEL_BANDS, STFT_HOP_SAMPLES
from transformer.audio.features import log_mel_frames
from transformer.audio.loudness import (
    EXAMPLE_HOP_SAMPLES,
    EXAMPLE_SPAN_SAMPLES,
    PROFILE_PARTS,
    example_dbfs,
    example_profile_dbfs,
)

assert EXAMPLE_HOP_SAMPLES == EXAMPLE_FRAMES * STFT_HOP_SAMPLES


class _Framer:
    """The samples from the next example's start on, and how many examples they complete."""

    def __init__(self) -> None:
        self.pending = np.zeros(0, dtype=np.float64)

    def add(self, samples: np.ndarray) -> int:
        self.pending = np.concatenate([self.pending, np.asarray(samples, dtype=np.float64)])
        if self.pending.shape[0] < EXAMPLE_SPAN_SAMPLES:
            return 0
        return 1 + (self.pending.shape[0] - EXAMPLE_SPAN_SAMPLES) // EXAMPLE_HOP_SAMPLES

    def drop(self, examples: int) -> None:
        """Forget what no later example reads."""
        self.pending = self.pending[examples * EXAMPLE_HOP_SAMPLES :].copy()


class StreamingExamples:
    """16 kHz PCM chunks in, complete 0.96 s log-mel examples out."""

    def __init__(self) -> None:
        self._framer = _Framer()

    @property
    def buffered_samples(self) -> int:
        return int(self._framer.pending.shape[0])

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add (n,) float64 samples; (k, 96, 64) float64 log-mel of the examples they complete, k >= 0."""
        ready = self._framer.add(samples)
        if ready == 0:
            return np.zeros((0, EXAMPLE_FRAMES, NUM_MEL_BANDS))
        rows = log_mel_frames(self._framer.pending, 0, ready * EXAMPLE_FRAMES)
        self._framer.drop(ready)
        return rows.reshape(ready, EXAMPLE_FRAMES, NUM_MEL_BANDS)


class StreamingLoudness:
    """16 kHz PCM chunks in, the level and 0.12-s profile of each complete example out."""

    def __init__(self) -> None:
        self._framer = _Framer()

    @property
    def buffered_samples(self) -> int:
        return int(self._framer.pending.shape[0])

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add (n,) float64 samples; ((k,) dBFS, (k, 8) dBFS) of the examples they complete."""
        ready = self._framer.add(samples)
        if ready == 0:
            return np.zeros(0), np.zeros((0, PROFILE_PARTS))
        pending = self._framer.pending
        levels, profiles = example_dbfs(pending, ready), example_profile_dbfs(pending, ready)
        self._framer.drop(ready)
        return levels, profiles
