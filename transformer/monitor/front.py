"""One source's front end: its audio as it arrives, to 0.96 s examples, as the file path computes them.

Mono samples at the source's rate -> ``StreamingResampler`` (resampy 0.2.2's kaiser_best, the
file path's numbers) -> the source's ``StreamAnonymiser`` (seamless, on stream-aligned
windows) -> ``StreamingExamples`` (log-mel, ``transformer.audio.stream_features``). The
loudness of each example (its level and its 0.12-s profile, ``StreamingLoudness``) is measured
on the resampled audio *before* anonymisation, as the file path measures it, and paired with
the example when the anonymiser releases it. Each stage keeps
only what its next output needs. One front per capture segment: a reconnect starts a new one
(its audio is not continuous with the last), after ``finish`` has flushed the old one's
held-back tail. CPU-bound: the monitor calls it from a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from transformer.audio.loudness import PROFILE_PARTS
from transformer.audio.resample_stream import StreamingResampler
from transformer.audio.stream_features import StreamingExamples, StreamingLoudness
from transformer.privacy.stream import StreamAnonymiser


class Examples(NamedTuple):
    """Examples a front end completed: log-mel and loudness, one row each."""

    features: np.ndarray  # (k, 96, 64) float64 log-mel of the anonymised audio
    levels: np.ndarray  # (k,) float64 dBFS before anonymisation
    profiles: np.ndarray  # (k, 8) float64 dBFS of each 0.12-s part, before anonymisation

    @property
    def size(self) -> int:
        return int(self.features.shape[0])


class _Measured:
    """Loudness measured ahead of the examples it belongs to (the anonymiser holds audio back)."""

    def __init__(self) -> None:
        self._loudness = StreamingLoudness()
        self._levels = np.zeros(0)
        self._profiles = np.zeros((0, PROFILE_PARTS))

    def push(self, samples: np.ndarray) -> None:
        levels, profiles = self._loudness.push(samples)
        self._levels = np.concatenate([self._levels, levels])
        self._profiles = np.concatenate([self._profiles, profiles])

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The levels and profiles of the next ``count`` examples (measured already)."""
        assert count <= self._levels.shape[0], "an example was released before its audio was measured"
        levels, profiles = self._levels[:count], self._profiles[:count]
        self._levels, self._profiles = self._levels[count:], self._profiles[count:]
        return levels, profiles


class SourceFront:
    """Resample, measure, anonymise, frame: one capture segment of one source."""

    def __init__(
        self, sample_rate: int, anonymiser: StreamAnonymiser, tap: Callable[[np.ndarray], None] | None = None
    ) -> None:
        """``tap``: also given the resampled audio before anonymisation (the speech detector's)."""
        self.sample_rate = sample_rate
        self._tap = tap
        self._resampler = StreamingResampler(sample_rate)
        self._anonymiser = anonymiser
        self._loudness = _Measured()
        self._examples = StreamingExamples()

    def push(self, samples: np.ndarray) -> Examples:
        """(n,) float64 at ``sample_rate`` in; the examples they complete out."""
        return self._frame(self._resampler.push(samples), final=False)

    def finish(self) -> Examples:
        """The segment ended: the examples its held-back audio completes."""
        return self._frame(self._resampler.finish(), final=True)

    def _frame(self, resampled: np.ndarray, *, final: bool) -> Examples:
        self._loudness.push(resampled)
        if self._tap is not None:
            self._tap(resampled)
        anonymised = self._anonymiser.push(resampled)
        if final:
            anonymised = np.concatenate([anonymised, self._anonymiser.finish()])
        features = self._examples.push(anonymised)
        levels, profiles = self._loudness.take(features.shape[0])
        return Examples(features, levels, profiles)
