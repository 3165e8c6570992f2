"""A stream's log-mel examples, computed as its audio arrives, equal to the file path's.

The file path (``transformer.audio.features.waveform_to_examples``) frames the whole
waveform; example ``k`` reads samples ``15360 k .. 15360 k + 15599`` only. So a
stream keeps just the samples the next example still needs (at most 15,600 plus
the newest chunk), computes each example with the same function once its samples
are there, and forgets what no later example reads: bounded memory, every example
computed once, and the same numbers as the whole recording sent as one file
(tested with random chunk sizes).

Input: 16 kHz mono float64 samples (resampled and anonymised by ``front``).
"""

from __future__ import annotations

import numpy as np

from transformer.audio.constants import EXAMPLE_FRAMES, NUM_MEL_BANDS, STFT_HOP_SAMPLES
from transformer.audio.features import log_mel_frames
from transformer.audio.loudness import EXAMPLE_HOP_SAMPLES, EXAMPLE_SPAN_SAMPLES, example_dbfs


class StreamingExamples:
    """16 kHz PCM chunks in, complete 0.96 s examples (and their loudness) out."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)  # samples from the next example's start on

    @property
    def buffered_samples(self) -> int:
        return int(self._pending.shape[0])

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add (n,) float64 samples; return the examples they complete and their levels.

        Returns:
            ((k, 96, 64) float64 log-mel examples, (k,) float64 dBFS), k >= 0.
        """
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64)])
        ready = 0
        if self._pending.shape[0] >= EXAMPLE_SPAN_SAMPLES:
            ready = 1 + (self._pending.shape[0] - EXAMPLE_SPAN_SAMPLES) // EXAMPLE_HOP_SAMPLES
        if ready == 0:
            return np.zeros((0, EXAMPLE_FRAMES, NUM_MEL_BANDS)), np.zeros(0)
        rows = log_mel_frames(self._pending, 0, ready * EXAMPLE_FRAMES)
        examples = rows.reshape(ready, EXAMPLE_FRAMES, NUM_MEL_BANDS)
        levels = example_dbfs(self._pending, ready)
        self._pending = self._pending[ready * EXAMPLE_HOP_SAMPLES :].copy()
        assert EXAMPLE_HOP_SAMPLES == EXAMPLE_FRAMES * STFT_HOP_SAMPLES
        return examples, levels
