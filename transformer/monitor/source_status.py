"""What the status endpoint and the metrics say of one source (its supervisor keeps it current)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

State = Literal["starting", "online", "reconnecting", "finished", "failed", "stopped"]


@dataclass
class SourceStatus:
    """One source's capture as it stands: nothing of its audio beyond its level."""

    name: str
    url: str
    state: State = "starting"
    last_audio: float | None = None  # time.monotonic() of the last chunk
    level_dbfs: float | None = None
    restarts: int = 0
    dropped_chunks: int = 0
    seconds_captured: float = 0.0
    sample_rate: int | None = None
    channels: int | None = None
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        return {
            "name": self.name,
            "url": self.url,
            "state": self.state,
            "seconds_since_audio": None if self.last_audio is None else round(now - self.last_audio, 3),
            "level_dbfs": None if self.level_dbfs is None else round(self.level_dbfs, 1),
            "restarts": self.restarts,
            "dropped_chunks": self.dropped_chunks,
            "seconds_captured": round(self.seconds_captured, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "last_error": self.last_error,
        }


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of samples in [-1, 1] in dBFS (digital silence and below: -120)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples))))
    return max(-120.0, 20 * math.log10(rms)) if rms > 0 else -120.0
