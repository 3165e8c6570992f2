"""``voices_while_armed``: speech on a source while its mode is armed (``away`` by default).

Speech presence is the one ``speech_mask`` finds (``transformer.privacy.speech_detect``: voicing
at a speaking pitch, no single tone, energy in the speech band, syllabic rhythm), here run on the
source's 16-kHz audio *before* anonymisation, in blocks of ``BLOCK_SECONDS`` (4 s) with
``CONTEXT_SECONDS`` (1 s) of audio either side. Only the times of the speech are kept (a few
intervals over the last window), never the audio beyond the block being analysed and never
anything of what is said. It runs only while the source's mode watches the group
(``listening``): at home nothing of the speech is even analysed.

A classifier window holding at least ``min_speech_seconds`` of speech reports a hit (score: the
fraction of the window that is speech; ``measures``: ``speech_seconds``), and the one event
lifecycle makes events of the hits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from transformer.analysis.anomalies import Anomaly, WindowSpan
from transformer.analysis.detectors.ranges import out_of_range, raise_problems
from transformer.privacy.speech_mask import speech_weights
from transformer.privacy.stft import frame_grid

GROUP: Final = "voices_while_armed"
LABEL: Final = "Voices while nobody should be home"
RATE: Final = 16_000
BLOCK_SECONDS: Final = 4.0  # with the context either side, 1.5 s analysed per second heard
CONTEXT_SECONDS: Final = 1.0


@dataclass(frozen=True)
class VoicesSettings:
    """How much speech in a window is a hit.

    Attributes:
        min_speech_seconds: speech a window (9.6 s) must hold (0.1-9.6 s).
    """

    min_speech_seconds: float = 1.0

    def __post_init__(self) -> None:
        window = EMBEDDINGS_PER_WINDOW * EXAMPLE_SECONDS
        raise_problems(out_of_range("min_speech_seconds", self.min_speech_seconds, 0.1, window))


@dataclass
class Voices:
    """Speech presence of one live source, fed its 16-kHz audio in stream order."""

    settings: VoicesSettings = field(default_factory=VoicesSettings)
    listening: bool = False  # set by the monitor from the source's mode
    _buffer: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _buffer_start: float = 0.0  # stream time of ``_buffer[0]``
    _decided: float = 0.0  # stream time up to which speech has been decided
    _speech: deque[tuple[float, float]] = field(default_factory=deque)

    def restart(self, start_seconds: float) -> None:
        """A new stretch of audio from ``start_seconds`` (a new segment, or after a gap)."""
        self._buffer, self._buffer_start, self._decided = np.zeros(0), start_seconds, start_seconds

    def push(self, samples: np.ndarray) -> None:
        """The next 16-kHz samples (before anonymisation); analysed in blocks while ``listening``."""
        if not self.listening:  # time passes, nothing is kept or analysed
            end = self._buffer_start + (self._buffer.size + samples.size) / RATE
            self._buffer, self._buffer_start, self._decided = np.zeros(0), end, end
            return
        self._buffer = np.concatenate([self._buffer, samples])
        while (
            self._buffer_start + self._buffer.size / RATE >= self._decided + BLOCK_SECONDS + CONTEXT_SECONDS
        ):
            self._decide(self._decided + BLOCK_SECONDS)

    def _decide(self, until: float) -> None:
        """Find the speech of ``[decided, until)`` on it plus the context either side."""
        first = max(self._buffer_start, self._decided - CONTEXT_SECONDS)
        low = round((first - self._buffer_start) * RATE)
        high = min(self._buffer.size, round((until + CONTEXT_SECONDS - self._buffer_start) * RATE))
        weights = speech_weights(self._buffer[low:high], RATE, 0.0)
        hop = frame_grid(high - low, RATE).hop / RATE  # frame i is centred on sample i * hop
        times = first + np.arange(weights.size) * hop
        inside = (times >= self._decided) & (times < until) & (weights > 0)
        for start, end in _runs(times[inside], hop):
            self._add(start, end)
        self._decided = until
        keep = round((until - CONTEXT_SECONDS - self._buffer_start) * RATE)
        if keep > 0:
            self._buffer, self._buffer_start = self._buffer[keep:], self._buffer_start + keep / RATE
        oldest = until - 2 * EMBEDDINGS_PER_WINDOW * EXAMPLE_SECONDS
        while self._speech and self._speech[0][1] < oldest:
            self._speech.popleft()

    def _add(self, start: float, end: float) -> None:
        if self._speech and start - self._speech[-1][1] <= 0.05:
            self._speech[-1] = (self._speech[-1][0], end)
        else:
            self._speech.append((start, end))

    @property
    def intervals(self) -> list[tuple[float, float]]:
        """The speech found in the last two windows' time: (start, end) stream seconds."""
        return list(self._speech)

    def window(self, span: WindowSpan, index: int = 0) -> list[Anomaly]:
        """The window's hit when it holds ``min_speech_seconds`` of the speech decided so far."""
        parts = [
            (max(start, span.start_seconds), min(end, span.end_seconds))
            for start, end in self._speech
            if end > span.start_seconds and start < span.end_seconds
        ]
        seconds = sum(end - start for start, end in parts)
        if seconds < self.settings.min_speech_seconds:
            return []
        length = span.end_seconds - span.start_seconds
        return [
            Anomaly(
                group=GROUP,
                label=LABEL,
                score=min(1.0, seconds / length),
                threshold=self.settings.min_speech_seconds / length,
                start_seconds=span.start_seconds,
                end_seconds=span.end_seconds,
                window_index=index,
                triggered_by=(),
                onset_seconds=parts[0][0],
                offset_seconds=parts[-1][1],
                located=True,
                measures={"speech_seconds": round(seconds, 2)},
            )
        ]


def _runs(times: np.ndarray, hop: float) -> list[tuple[float, float]]:
    """Consecutive frame times (one hop apart) as (start, end) intervals."""
    if times.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(times) > 1.5 * hop)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [times.size - 1]])
    return [(float(times[s]), float(times[e]) + hop) for s, e in zip(starts, ends, strict=True)]
