"""Anonymisation of live streams: the file methods, applied as the audio arrives, without seams.

A stream has no end, so each method works on stream-aligned windows of ``window_seconds``
(the ``dp_noise`` peak, the ``scramble`` shuffle group, the ``speech_mask`` analysis block)
and holds back that much audio (``latency_samples``) before its output is final. Every
window's borders are fixed in stream time, never where a chunk of the capture happened to
end, and fades, filters and frames run across them: the output does not depend on how the
audio was chunked (tested bit for bit with random chunk sizes), and a stream that ends within
one window comes out exactly as the file method gives the same clip.

``push`` takes (n,) float64 samples and returns the output that became final (any length;
concatenated, the outputs are as long as the inputs once ``finish`` has flushed the rest).
CPU-bound and synchronous: call it from a worker thread.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np

from transformer.privacy.randomness import PrivacyRandom
from transformer.privacy.request import PrivacyRequest
from transformer.privacy.stream_noise import StreamingNoise
from transformer.privacy.stream_scramble import StreamingScramble
from transformer.privacy.stream_speech import StreamingSpeechMask

#: Default window: a scramble of 4 one-second segments (24 orders), and 4 s of speech per shuffle.
DEFAULT_WINDOW_SECONDS: Final = 4.0


class StreamAnonymiser(Protocol):
    """One stream's anonymisation; ``latency_samples`` bounds what it holds back."""

    latency_samples: int

    def push(self, samples: np.ndarray) -> np.ndarray: ...

    def finish(self) -> np.ndarray: ...


class PassThrough:
    """Method ``none``: the samples as they come."""

    latency_samples = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        return np.asarray(samples, dtype=np.float64).reshape(-1)

    def finish(self) -> np.ndarray:
        return np.zeros(0)


def stream_anonymiser(
    request: PrivacyRequest, *, sample_rate: int = 16_000, window_seconds: float = DEFAULT_WINDOW_SECONDS
) -> StreamAnonymiser:
    """A fresh anonymiser for one stream (its own secure randomness; ``request.seed`` in tests)."""
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    if request.method == "none":
        return PassThrough()
    rng = PrivacyRandom(request.seed)
    window = round(window_seconds * sample_rate)
    if request.method == "dp_noise":
        return StreamingNoise(request.params, rng, sample_rate, window)
    if request.method == "scramble":
        return StreamingScramble(request.params, rng, sample_rate, window)
    return StreamingSpeechMask(request.params, rng, sample_rate, window)
