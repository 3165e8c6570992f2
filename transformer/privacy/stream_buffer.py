"""The recent past of a stream, addressed by sample index since the stream began.

The streaming anonymisers read around segment and frame borders that lie before the newest
chunk: this holds the samples they may still read (``forget_before`` drops the rest) and
gives, outside the stream, the values the file methods see: ``np.pad(mode="reflect")``'s
mirror (``read``) or zeros (``read_zero_padded``).
"""

from __future__ import annotations

import numpy as np


class SampleBuffer:
    """Samples ``[start, received)`` of one stream, float64."""

    def __init__(self) -> None:
        self._samples = np.zeros(0)
        self.start = 0  # stream index of ``_samples[0]``
        self.received = 0
        self.finished = False

    def append(self, samples: np.ndarray) -> None:
        if self.finished:
            raise RuntimeError("the stream has finished: it takes no more samples")
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        if samples.size:
            self._samples = np.concatenate([self._samples, samples])
            self.received += samples.shape[0]

    def finish(self) -> None:
        self.finished = True

    def read(self, low: int, high: int) -> np.ndarray:
        """Samples ``[low, high)``, mirrored at the start (and at the end once finished)."""
        index = np.abs(np.arange(low, high))
        if self.finished and self.received:
            last = self.received - 1
            index = np.clip(np.where(index > last, 2 * last - index, index), 0, last)
        return self._samples[self._checked(index)]

    def read_zero_padded(self, low: int, high: int) -> np.ndarray:
        """Samples ``[low, high)`` with zeros before the stream (and after it, once finished)."""
        out = np.zeros(high - low)
        top = min(high, self.received) if self.finished else high
        bottom = max(low, 0)
        if top > bottom:
            out[bottom - low : top - low] = self._samples[self._checked(np.arange(bottom, top))]
        return out

    def forget_before(self, index: int) -> None:
        """Nothing before ``index`` will be read again."""
        drop = min(max(0, index - self.start), self._samples.shape[0])
        if drop:
            self._samples = self._samples[drop:].copy()
            self.start += drop

    def _checked(self, index: np.ndarray) -> np.ndarray:
        if index.size and (index.min() < self.start or index.max() >= self.received):
            raise ValueError(
                f"samples {index.min()}..{index.max()} read, {self.start}..{self.received - 1} held"
            )
        return index - self.start
