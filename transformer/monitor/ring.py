"""A source's last ten examples and the windows due over them, embedded only when scored.

An example enters the ring as its log-mel patch. VGGish embeds it only when a window that is
scored holds it, once; the embedding then stays with it for the later windows. A window is
scored when its loudest example reaches the source's loudness gate (no gate: every window):
a quieter one cannot fire, so a quiet source costs its front end and nothing of VGGish or the
predictor, and an example that leaves the ring unembedded was never needed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from contract.constants import EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from transformer.analysis.anomalies import WindowSpan


@dataclass(eq=False)
class RingEntry:
    """One 0.96-s example: its loudness, its log-mel until embedded, then its embedding."""

    level_dbfs: float
    features: np.ndarray | None  # (96, 64) float log-mel; None once embedded
    profile_dbfs: np.ndarray | None = None  # (8,) dBFS of its 0.12-s parts
    embedding: np.ndarray | None = None  # (128,) uint8
    start_seconds: float = 0.0  # where it starts in the stream (a short gap may lie before it)


@dataclass(frozen=True)
class Window:
    """Ten consecutive examples of one source, due for detection."""

    entries: tuple[RingEntry, ...]
    level_dbfs: float  # the loudest example's
    start_seconds: float
    end_seconds: float
    distinct: int = EMBEDDINGS_PER_WINDOW  # examples of its own (fewer: a short stream, repeated)

    def span(self) -> WindowSpan:
        """The window for the detection step: bounds, level and loudness profile."""
        own = self.entries[: self.distinct]
        profiles = [entry.profile_dbfs for entry in own]
        profile = None if any(p is None for p in profiles) else np.stack(profiles)  # type: ignore[arg-type]
        starts = np.array([entry.start_seconds for entry in own])
        return WindowSpan(self.start_seconds, self.end_seconds, self.level_dbfs, profile, starts)

    def embeddings(self) -> np.ndarray:
        """(10, 128) uint8 (every entry embedded first: ``embed_entries``)."""
        assert all(entry.embedding is not None for entry in self.entries)
        return np.stack([entry.embedding for entry in self.entries])  # type: ignore[misc]


class Ring:
    """The examples of one source's current stretch of audio and the windows they make due."""

    def __init__(self) -> None:
        self.entries: deque[RingEntry] = deque(maxlen=EMBEDDINGS_PER_WINDOW)
        self.examples = 0  # examples since ``offset_seconds``
        self.offset_seconds = 0.0  # stream time where the current stretch starts
        self.since_window = 0
        self.windows_made = 0  # windows due since the last restart

    def restart(self, offset_seconds: float, *, keep: bool) -> None:
        """A new stretch from ``offset_seconds``: after a short gap (``keep``) the examples heard
        last still fill the next windows; after a reconnect or a long gap the ring starts empty."""
        if not keep:
            self.entries.clear()
            self.since_window = 0
            self.windows_made = 0
        self.examples, self.offset_seconds = 0, offset_seconds  # kept: the hop cadence goes on

    def finish(self) -> list[Window]:
        """The stream ended before its first window: one window of what it gave, repeated
        cyclically (as a recording shorter than a window is analysed, ``analysis.windows``)."""
        if self.windows_made or not self.entries:
            return []
        held = tuple(self.entries)
        entries = tuple(held[i % len(held)] for i in range(EMBEDDINGS_PER_WINDOW))
        self.windows_made += 1
        level = max(entry.level_dbfs for entry in held)
        end = held[-1].start_seconds + EXAMPLE_SECONDS
        return [Window(entries, level, held[0].start_seconds, end, len(held))]

    def push(
        self, features: np.ndarray, levels: np.ndarray, hop: int, profiles: np.ndarray | None = None
    ) -> list[Window]:
        """(k, 96, 64) log-mel, (k,) dBFS and (k, 8) profiles in; the windows they make due
        (every ``hop``)."""
        assert features.shape[0] == levels.shape[0]
        parts: Iterable[np.ndarray | None] = [None] * len(levels) if profiles is None else profiles
        due = []
        for patch, level, profile in zip(features, levels, parts, strict=True):
            start = self.offset_seconds + self.examples * EXAMPLE_SECONDS
            self.entries.append(RingEntry(float(level), np.array(patch), profile, start_seconds=start))
            self.examples += 1
            self.since_window += 1
            if len(self.entries) == EMBEDDINGS_PER_WINDOW and self.since_window >= hop:
                self.since_window = 0
                self.windows_made += 1
                entries = tuple(self.entries)
                level_dbfs = max(entry.level_dbfs for entry in entries)
                # timed by its own examples: after a short gap they are not back to back
                end = entries[-1].start_seconds + EXAMPLE_SECONDS
                due.append(Window(entries, level_dbfs, entries[0].start_seconds, end))
        return due


def unembedded(windows: Iterable[Window]) -> list[RingEntry]:
    """The entries of ``windows`` still without an embedding, each once, in order."""
    seen: dict[int, RingEntry] = {}
    for window in windows:
        for entry in window.entries:
            if entry.embedding is None:
                seen.setdefault(id(entry), entry)
    return list(seen.values())


async def embed_entries(
    entries: Sequence[RingEntry], embed: Callable[[np.ndarray], Awaitable[np.ndarray]]
) -> None:
    """Embed ``entries`` in one call of the shared embedder (its batcher merges it with others)."""
    if not entries:
        return
    embeddings = await embed(np.stack([entry.features for entry in entries]))  # type: ignore[misc]
    for entry, embedding in zip(entries, embeddings, strict=True):
        entry.embedding, entry.features = embedding, None
