"""One source's front end: its audio as it arrives, to 0.96 s examples, as the file path computes them.

Mono samples at the source's rate -> ``StreamingResampler`` (resampy 0.2.2's kaiser_best, the
file path's numbers) -> the source's ``StreamAnonymiser`` (seamless, on stream-aligned
windows) -> ``StreamingExamples`` (log-mel). Each stage keeps only what its next output
needs. One front per capture segment: a reconnect starts a new one (its audio is not
continuous with the last), after ``finish`` has flushed the old one's held-back tail.
CPU-bound: the monitor calls it from a worker thread.
"""

from __future__ import annotations

import numpy as np

from transformer.audio.resample_stream import StreamingResampler
from transformer.monitor.stream_features import StreamingExamples
from transformer.privacy.stream import StreamAnonymiser

Examples = tuple[np.ndarray, np.ndarray]  # ((k, 96, 64) log-mel, (k,) dBFS)


class SourceFront:
    """Resample, anonymise, frame: one capture segment of one source."""

    def __init__(self, sample_rate: int, anonymiser: StreamAnonymiser) -> None:
        self.sample_rate = sample_rate
        self._resampler = StreamingResampler(sample_rate)
        self._anonymiser = anonymiser
        self._examples = StreamingExamples()

    def push(self, samples: np.ndarray) -> Examples:
        """(n,) float64 at ``sample_rate`` in; the examples they complete out."""
        return self._examples.push(self._anonymiser.push(self._resampler.push(samples)))

    def finish(self) -> Examples:
        """The segment ended: the examples its held-back audio completes."""
        anonymised = np.concatenate(
            [self._anonymiser.push(self._resampler.finish()), self._anonymiser.finish()]
        )
        return self._examples.push(anonymised)
