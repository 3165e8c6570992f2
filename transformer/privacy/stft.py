"""A perfectly reconstructing STFT for whole-clip spectral edits (numpy only).

Square-root periodic Hann windows at 50 % overlap for both analysis and
synthesis: the squared windows sum to exactly 1, so frames left untouched come
back sample-exact. One hop (half a frame) of zeros is added in front (and enough
at the end) so every real sample lies under two frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np


@cache
def sqrt_hann(length: int) -> np.ndarray:
    """(length,) float64 read-only square-root periodic Hann window."""
    window = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length))
    window.setflags(write=False)
    return window


@dataclass(frozen=True)
class FrameGrid:
    """How a clip of ``num_samples`` is cut into ``num_frames`` frames of ``frame`` samples."""

    num_samples: int
    frame: int
    hop: int

    @property
    def num_frames(self) -> int:
        # Frames needed so samples [0, n) plus ``hop`` leading zeros are all covered twice.
        return -(-self.num_samples // self.hop) + 1

    @property
    def padded_length(self) -> int:
        return (self.num_frames - 1) * self.hop + self.frame

    def pad(self, samples: np.ndarray) -> np.ndarray:
        """(padded_length,) float64: ``samples`` (n,) with ``hop`` zeros in front and zeros after."""
        padded = np.zeros(self.padded_length)
        padded[self.hop : self.hop + self.num_samples] = samples
        return padded

    def frames(self, padded: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows), frame) float64 windowed frames ``rows`` of a ``pad``-ed clip.

        Only the requested rows are copied, so a long clip can be processed in
        batches of frames without ever holding all its frames at once.
        """
        framed = np.lib.stride_tricks.sliding_window_view(padded, self.frame)[:: self.hop]
        return framed[rows] * sqrt_hann(self.frame)

    def overlap_add_into(self, padded: np.ndarray, spectra: np.ndarray, rows: np.ndarray) -> None:
        """Add the signal of some frames' spectra to a ``pad``-ed clip, in place.

        Args:
            padded: (padded_length,) float64, modified.
            spectra: (len(rows), frame // 2 + 1) complex spectra.
            rows: (k,) distinct int frame indices the spectra belong to.
        """
        frames = np.fft.irfft(spectra, n=self.frame, axis=1) * sqrt_hann(self.frame)
        # At 50 % overlap, frames of the same parity never overlap, so each
        # parity can be added with one fancy-indexed += (no repeated indices).
        for parity in (0, 1):
            chosen = rows % 2 == parity
            positions = rows[chosen, None] * self.hop + np.arange(self.frame)
            padded[positions] += frames[chosen]

    def unpad(self, padded: np.ndarray) -> np.ndarray:
        """(num_samples,) view of the clip's own samples in a ``pad``-ed array."""
        return padded[self.hop : self.hop + self.num_samples]


def frame_grid(num_samples: int, sample_rate: int, frame_seconds: float = 0.032) -> FrameGrid:
    """A 50 %-overlap grid with frames of ~``frame_seconds`` (an even number of samples)."""
    frame = 2 * max(1, round(frame_seconds * sample_rate / 2))
    return FrameGrid(num_samples=num_samples, frame=frame, hop=frame // 2)
