"""What the live sources learn, kept across restarts: loudness baselines and novelty models.

Numbers only (``transformer.analysis.detectors``: ``BaselineStore``, ``NoveltyStore``). Saved
every ``SAVE_SECONDS`` while listening (a crash loses minutes, not days), with the step in which
a source ends, and when the monitor stops; a novelty reset (on the event loop, where detection
changes the models) waits for a save in progress, so a save can never write back a model just
forgotten.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Final

from transformer.analysis.detectors.baseline import BaselineStore
from transformer.analysis.detectors.novelty import NoveltyStore
from transformer.monitor.source_state import SourceState

SAVE_SECONDS: Final = 300.0


class Learnt:
    """Every source's learnt state and where it is kept."""

    def __init__(
        self,
        sources: Mapping[str, SourceState],
        baselines: BaselineStore | None,
        novelty: NoveltyStore | None,
    ) -> None:
        self._sources, self.baselines, self.novelty = sources, baselines, novelty
        self._saved_at = time.monotonic()
        self._saving = threading.Lock()

    def save_soon(self) -> None:
        """Save with the next check (a source has ended)."""
        self._saved_at = -math.inf

    def due(self) -> bool:
        """Whether a save is due now (and then counts it as done)."""
        if time.monotonic() - self._saved_at < SAVE_SECONDS:
            return False
        self._saved_at = time.monotonic()
        return True

    def save(self) -> None:
        """Write every source's baseline and novelty model to their stores (a worker thread)."""
        with self._saving:
            if self.novelty is not None:
                for name, source in self._sources.items():
                    if source.novelty is not None:
                        self.novelty.save(name, source.novelty)
            learned = {
                name: source.loud.baseline
                for name, source in self._sources.items()
                if source.loud is not None and source.loud.baseline is not None
            }
            if self.baselines is not None and learned:
                self.baselines.save(learned)

    def forget_novelty(self, names: Sequence[str]) -> None:
        """Reset these sources' novelty models and delete their stored ones (on the event loop)."""
        with self._saving:
            for name in names:
                model = self._sources[name].novelty
                if model is not None:
                    model.reset()
                    if self.novelty is not None:
                        self.novelty.forget(name)
