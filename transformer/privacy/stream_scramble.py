"""``scramble`` on a live stream: segments shuffled within consecutive groups, crossfaded at every join.

A file is shuffled as a whole; a stream never ends, so it is cut into groups of
``segments`` consecutive segments (the stream's ``window``: how many orders the shuffle can
produce, and how long the audio is held back) and each group is shuffled on its own, with
the same secure permutation and the same crossfades as ``scramble_segments``. The groups are
aligned to the stream, not to the chunks it arrives in, and every join (inside a group or
between two) fades the outgoing segment's own continuation into the incoming segment's own
lead-in: nothing depends on where a chunk ended, so there is no seam. A stream that ends
within its first group comes out exactly as the file method gives it.

Group ``g`` (samples ``[g*span, (g+1)*span)``) is shuffled once audio up to ``(g+1)*span + half``
has arrived (its last segment's continuation); its output is final up to ``(g+1)*span - half``,
where the fade into the next group begins.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from transformer.privacy.randomness import PrivacyRandom
from transformer.privacy.scramble import _raised_cosine_fade_in
from transformer.privacy.stream_buffer import SampleBuffer


class StreamingScramble:
    """Shuffles a stream's segments group by group (see the module)."""

    def __init__(
        self, params: Mapping[str, float], rng: PrivacyRandom, sample_rate: int, window_samples: int
    ) -> None:
        self._segment = max(1, round(params["segment_seconds"] * sample_rate))
        self._half = round(params["crossfade_ms"] * sample_rate / 2000.0)
        self.segments = max(2, round(window_samples / self._segment))
        self._span = self.segments * self._segment
        self._fade_in = _raised_cosine_fade_in(2 * self._half)
        self._rng = rng
        self._x = SampleBuffer()
        self._group = 0
        self._fade_out_pending = np.zeros(0)  # the last group's outgoing fade (2 * half)
        self._plain_pending = np.zeros(0)  # the same samples unfaded (if the stream ends there)
        self.latency_samples = self._span + 2 * self._half

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._x.append(samples)
        pieces = []
        while self._x.received >= (self._group + 1) * self._span + self._half:
            pieces.append(self._shuffle_group((self._group + 1) * self._span))
        return np.concatenate(pieces) if pieces else np.zeros(0)

    def finish(self) -> np.ndarray:
        self._x.finish()
        return self._shuffle_group(self._x.received)

    def _shuffle_group(self, stop: int) -> np.ndarray:
        """Shuffle samples ``[g*span, stop)``; return the output that became final."""
        first, segment, half = self._group * self._span, self._segment, self._half
        final = self._x.finished
        starts = np.arange(first, stop, segment)
        if final and starts.size > 1 and stop - starts[-1] < 2 * half:
            starts = starts[:-1]  # a tail too short for two half-fades joins the segment before it
        stops = np.append(starts[1:], stop)
        order = self._rng.permutation(starts.size) if starts.size > 1 else np.zeros(starts.size, int)
        core = np.empty(stop - first)
        position = 0
        for index in order:
            core[position : position + stops[index] - starts[index]] = self._x.read(
                starts[index], stops[index]
            )
            position += stops[index] - starts[index]
        fade_out = 1.0 - self._fade_in
        join = 0
        for previous, following in itertools.pairwise(order):
            join += int(stops[previous] - starts[previous])
            if half:
                outgoing = self._x.read(stops[previous] - half, stops[previous] + half)
                incoming = self._x.read(starts[following] - half, starts[following] + half)
                core[join - half : join + half] = fade_out * outgoing + self._fade_in * incoming
        out = core
        if self._group > 0:  # the join with the previous group, centred on ``first``
            if starts.size:
                incoming = self._x.read(starts[order[0]] - half, starts[order[0]] + half)
                head = self._fade_out_pending + self._fade_in * incoming
                out = np.concatenate([head, core[half:]])[: stop - first + half]
            else:  # the stream ended right at the group border: the last segment ends unfaded
                out = self._plain_pending
        if not final and starts.size:
            last = int(stops[order[-1]])
            self._plain_pending = self._x.read(last - half, last)
            self._fade_out_pending = fade_out * self._x.read(last - half, last + half)
            out = out[: out.shape[0] - half]
        self._group += 1
        self._x.forget_before(self._group * self._span - half)
        return out
