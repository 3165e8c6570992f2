"""Admission control: a bounded amount of work in flight, and an immediate 503 beyond it.

Every waiting upload holds its whole body, and decoding multiplies it (a PCM16
WAV becomes float64 channels, then mono, then 16 kHz: about 8 times its size at
the peak). Without a bound, twelve 96-MB uploads at once took the transformer to
5.3 GB, an OOM kill under a 4-GiB limit that loses every request in flight.

A request is admitted when both budgets have room: analyses in flight
(``max_inflight_analyses``) and decoding memory (``EXPANSION`` x its body bytes
against ``max_inflight_mb``). The REST and SIFIS routes ask before reading the
body (from Content-Length), gRPC when its message arrives. A refused request
gets ``Overloaded``: 503 with ``Retry-After`` (gRPC UNAVAILABLE), never a queue.
A request larger than the whole memory budget is still admitted when nothing
else is in flight, so the upload limit, not the budget, decides what fits.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Final

from contract.errors import Overloaded
from transformer.metrics import ADMISSION_INFLIGHT, ADMISSION_REJECTED

logger = logging.getLogger(__name__)

#: peak decoding memory per body byte (PCM16 -> float64 channels + mono + 16 kHz)
EXPANSION: Final = 8
#: the transformer's own resident memory (TensorFlow, VGGish, the app), kept out of the budget
SERVICE_BASELINE_MB: Final = 1536
#: what an unlimited container is assumed to have (the chart's and the manifests' limit)
DEFAULT_MEMORY_LIMIT_MB: Final = 4096
_CGROUP_LIMITS: Final = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
_MIB: Final = 1024 * 1024


def cgroup_memory_limit_mb() -> float | None:
    """This container's memory limit in MiB (cgroup v2 or v1), None when unlimited or unknown."""
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            return int(text) / _MIB
    return None


def memory_budget_mb(memory_limit_mb: float | None) -> float:
    """Decoding memory for admitted requests: the limit (given, else the cgroup's, else 4 GiB)
    less the service's own baseline, at least 256 MiB."""
    limit = memory_limit_mb or cgroup_memory_limit_mb() or DEFAULT_MEMORY_LIMIT_MB
    return max(256.0, limit - SERVICE_BASELINE_MB)


class Ticket:
    """One admitted request's share of the budgets; ``release`` it exactly once (idempotent)."""

    def __init__(self, admission: Admission, cost_bytes: int) -> None:
        self._admission = admission
        self.cost_bytes = cost_bytes
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._give_back(self.cost_bytes)


class Admission:
    """The two budgets; thread-safe, never blocks."""

    def __init__(self, *, max_analyses: int, max_memory_mb: float, retry_after_seconds: int) -> None:
        self.max_analyses = max_analyses
        self.max_memory_bytes = int(max_memory_mb * _MIB)
        self.retry_after_seconds = retry_after_seconds
        self._lock = threading.Lock()
        self._analyses = 0
        self._memory = 0
        self._publish()

    def admit(self, body_bytes: int) -> Ticket:
        """A ticket for a request of ``body_bytes``; ``Overloaded`` (503) when a budget is full."""
        cost = EXPANSION * max(0, body_bytes)
        with self._lock:
            if self._analyses >= self.max_analyses:
                reason = "analyses"
            elif self._analyses and self._memory + cost > self.max_memory_bytes:
                reason = "memory"
            else:
                self._analyses += 1
                self._memory += cost
                reason = ""
        if reason:
            ADMISSION_REJECTED.labels(reason=reason).inc()
            budget = "analyses" if reason == "analyses" else "decoding memory"
            logger.info("refused a request (%s full): 503, retry in %d s", budget, self.retry_after_seconds)
            raise Overloaded(
                f"the service is at capacity ({budget} in flight); retry in {self.retry_after_seconds} s",
                retry_after_seconds=self.retry_after_seconds,
            )
        self._publish()
        return Ticket(self, cost)

    def _give_back(self, cost: int) -> None:
        with self._lock:
            self._analyses -= 1
            self._memory -= cost
        self._publish()

    def in_flight(self) -> tuple[int, int]:
        """(analyses, decoding-memory bytes) admitted now."""
        with self._lock:
            return self._analyses, self._memory

    def _publish(self) -> None:
        analyses, memory = self.in_flight()
        ADMISSION_INFLIGHT.labels(budget="analyses").set(analyses)
        ADMISSION_INFLIGHT.labels(budget="memory_bytes").set(memory)
