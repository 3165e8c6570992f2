"""A source's learned loudness baseline: a running percentile of its 0.12-s levels per hour of day.

Kept as a few numbers per source (24 hourly estimates, one for all hours, and how many levels
each has seen), never audio. The estimate is the stochastic-approximation quantile (each level
moves it ``step_db`` up with probability ``1 - q`` and down with probability ``q``), so it needs
no stored history and follows a slow change (a new fridge, the season) within minutes.

``BaselineStore`` keeps every source's baseline in one small JSON file, written atomically (a
temporary file renamed over it), read at start: a restarted monitor knows each source's normal
level at once instead of learning it again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from contract.errors import InvalidConfiguration

HOURS: Final = 24
#: the whole-day estimate's slot (used while the current hour has seen too little)
ALL_HOURS: Final = HOURS
STORE_VERSION: Final = 1


@dataclass
class HourlyBaseline:
    """Running ``quantile`` of the levels heard in each hour of the day (and in all of them).

    Attributes:
        quantile: the percentile tracked, in (0, 1) (0.5: the median level).
        step_db: how far one level moves the estimate (dB).
        min_count: levels an hour needs before its own estimate is used.
        levels: per slot (0-23, then ``ALL_HOURS``), the estimate in dBFS (None: nothing heard).
        counts: per slot, the levels it has taken in.
    """

    quantile: float = 0.5
    step_db: float = 0.05
    min_count: int = 500  # one minute of 0.12-s levels
    levels: list[float | None] = field(default_factory=lambda: [None] * (HOURS + 1))
    counts: list[int] = field(default_factory=lambda: [0] * (HOURS + 1))

    def add(self, level_dbfs: float, hour: int) -> None:
        """One 0.12-s level heard during ``hour`` (0-23, local time)."""
        for slot in (hour, ALL_HOURS):
            current = self.levels[slot]
            if current is None:
                self.levels[slot] = level_dbfs
            elif level_dbfs > current:
                self.levels[slot] = current + self.step_db * self.quantile
            elif level_dbfs < current:
                self.levels[slot] = current - self.step_db * (1.0 - self.quantile)
            self.counts[slot] += 1

    def level(self, hour: int) -> float | None:
        """The baseline for ``hour``: its own estimate once it has seen ``min_count`` levels, else
        the whole day's once that has, else None (still learning)."""
        for slot in (hour, ALL_HOURS):
            estimate = self.levels[slot]
            if estimate is not None and self.counts[slot] >= self.min_count:
                return estimate
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"levels": [None if v is None else round(v, 3) for v in self.levels], "counts": self.counts}

    def restore(self, stored: Mapping[str, Any]) -> None:
        """Take a stored baseline's numbers (ValueError when they are not the store's shape)."""
        levels, counts = stored.get("levels"), stored.get("counts")
        if not (isinstance(levels, list) and isinstance(counts, list)):
            raise ValueError("a baseline needs 'levels' and 'counts' lists")
        if len(levels) != HOURS + 1 or len(counts) != HOURS + 1:
            raise ValueError(f"a baseline has {HOURS + 1} levels and counts")
        if not all(v is None or isinstance(v, int | float) for v in levels):
            raise ValueError("baseline levels must be numbers or null")
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise ValueError("baseline counts must be non-negative integers")
        self.levels = [None if v is None else float(v) for v in levels]
        self.counts = list(counts)


class BaselineStore:
    """Every source's baseline in one JSON file (numbers only), loaded once, saved atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stored: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as error:
            message = f"cannot read the baselines file {self.path}: {error.strerror}"
            raise InvalidConfiguration(message) from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidConfiguration(f"the baselines file {self.path} is not valid JSON: {error}") from None
        if not isinstance(document, dict) or document.get("version") != STORE_VERSION:
            raise InvalidConfiguration(
                f"the baselines file {self.path} is not a version-{STORE_VERSION} baselines file"
            )
        sources = document.get("sources", {})
        return sources if isinstance(sources, dict) else {}

    def restore(self, source: str, baseline: HourlyBaseline) -> bool:
        """Fill ``baseline`` with ``source``'s stored numbers; False when none are stored.
        InvalidConfiguration names the source when its entry is damaged."""
        stored = self._stored.get(source)
        if stored is None:
            return False
        try:
            baseline.restore(stored)
        except (ValueError, AttributeError) as error:
            raise InvalidConfiguration(f"the baselines file {self.path}: source {source}: {error}") from None
        return True

    def save(self, baselines: Mapping[str, HourlyBaseline]) -> None:
        """Write ``baselines`` (with the other sources' stored ones kept) atomically."""
        self._stored.update({name: baseline.to_dict() for name, baseline in baselines.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".baselines-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"version": STORE_VERSION, "sources": self._stored}, file)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def forget(self, source: str) -> None:
        """Drop ``source``'s stored baseline (the next save writes the file without it)."""
        self._stored.pop(source, None)
