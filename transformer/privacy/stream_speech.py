"""``speech_mask`` on a live stream: speech found and replaced block by block, on one global STFT.

The file method analyses a whole clip; a stream is analysed in blocks of ``window`` seconds
of STFT frames (aligned to the stream, not to its chunks). A block's speech decision is made
on the block plus ``context`` seconds of audio either side (the cues average over up to
~1.5 s and the region is widened by ``margin_ms``), so a region running over a block border
is found on both sides of it; its replaced frames' envelopes are shuffled within the block.
All blocks share one frame grid over the stream and overlap-add their differences into one
output, so the frames at a block border overlap exactly as inside a block: no seam. Frames
without speech pass through sample-exact. A stream that ends within its first block comes
out exactly as the file method gives it (the same grid, weights and random draws).

Block ``b`` (frames ``[b*W, (b+1)*W)``) is analysed once samples up to ``((b+1)*W + C)*hop``
have arrived; the output is then final up to sample ``((b+1)*W - 1)*hop``, where the next
block's first frame begins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from transformer.privacy.randomness import PrivacyRandom
from transformer.privacy.speech_mask import frame_weights, replace_frames
from transformer.privacy.stft import FrameGrid, frame_grid
from transformer.privacy.stream_buffer import SampleBuffer

#: Audio either side of a block that its speech decision sees, beyond ``margin_ms``.
CONTEXT_SECONDS: Final = 1.0


class StreamingSpeechMask:
    """Replaces a stream's speech block by block (see the module)."""

    def __init__(
        self, params: Mapping[str, float], rng: PrivacyRandom, sample_rate: int, window_samples: int
    ) -> None:
        self._params, self._rng, self._rate = params, rng, sample_rate
        unit = frame_grid(0, sample_rate)
        self._frame, self._hop = unit.frame, unit.hop
        self._block = max(1, round(window_samples / self._hop))
        seconds = CONTEXT_SECONDS + params["margin_ms"] / 1000.0
        self._context = round(seconds * sample_rate / self._hop)
        self._x = SampleBuffer()
        self._out = np.zeros(self._hop)  # the output in padded coordinates (sample i at i + hop)
        self._out_start = 0  # padded index of ``_out[0]``
        self._next = 0  # first frame of the next block
        self._emitted = 0  # samples emitted
        self.latency_samples = (self._block + self._context + 1) * self._hop

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        self._x.append(samples)
        self._out = np.concatenate([self._out, samples])
        while self._x.received >= (self._next + self._block + self._context) * self._hop:
            self._mask(self._next + self._block, self._next + self._block + self._context)
        return self._emit(max(0, (self._next - 1) * self._hop))

    def finish(self) -> np.ndarray:
        self._x.finish()
        total_frames = -(-self._x.received // self._hop) + 1  # the file method's grid
        if total_frames > self._next:
            self._mask(total_frames, total_frames)
        return self._emit(self._x.received)

    def _mask(self, stop: int, context_stop: int) -> None:
        """Replace the speech of frames ``[next, stop)``, deciding on ``[next - C, context_stop)``."""
        first = max(0, self._next - self._context)
        count = context_stop - first
        grid = FrameGrid(num_samples=(count - 1) * self._hop, frame=self._frame, hop=self._hop)
        region = self._x.read_zero_padded((first - 1) * self._hop, context_stop * self._hop)
        weight = frame_weights(grid, region, self._rate, self._params["margin_ms"])
        weight[: self._next - first] = 0.0  # earlier blocks decided their own frames
        weight[stop - first :] = 0.0
        replaced = np.flatnonzero(weight > 0.0)
        low = first * self._hop - self._out_start
        high = low + region.shape[0]
        if high > self._out.shape[0]:  # the frames past a finished stream's end
            self._out = np.concatenate([self._out, np.zeros(high - self._out.shape[0])])
        if replaced.size:
            replace_frames(
                grid, region, weight, replaced, self._params, self._rng, self._rate, self._out[low:high]
            )
        self._next = stop
        self._x.forget_before((max(0, stop - self._context) - 1) * self._hop)

    def _emit(self, stop: int) -> np.ndarray:
        """Output samples ``[emitted, stop)`` (final: no later frame reaches them)."""
        if stop <= self._emitted:
            return np.zeros(0)
        low = self._emitted + self._hop - self._out_start
        out = self._out[low : low + stop - self._emitted].copy()
        self._emitted = stop
        # the next block's region reads from its context's first frame on
        keep_from = min(self._emitted + self._hop, max(0, self._next - self._context) * self._hop)
        drop = keep_from - self._out_start
        if drop > 0:
            self._out = self._out[drop:]
            self._out_start += drop
        return out
