"""The one delay rule for retrying a DHT post and re-opening the listener's socket.

Exponential with "equal jitter": after ``failures`` consecutive failures the
cap is ``min(maximum, base * 2**(failures - 1))`` and the delay is uniform in
[cap/2, cap], so many clients that failed together do not retry together.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive failures; seed ``rng`` for reproducible delays."""

    def __init__(self, base: float, maximum: float, rng: random.Random | None = None) -> None:
        """
        Args:
            base: delay cap after the first failure, in seconds; doubles per failure.
            maximum: largest delay cap, in seconds.
            rng: jitter source.

        Raises:
            ValueError: unless 0 < base <= maximum.
        """
        if not 0 < base <= maximum:
            raise ValueError(f"need 0 < backoff_base <= backoff_max, got {base}, {maximum}")
        self.base = base
        self.maximum = maximum
        self._rng = rng or random.Random()

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failures."""
        cap = min(self.maximum, self.base * 2.0 ** min(max(failures - 1, 0), 60))
        return cap / 2 + self._rng.uniform(0, cap / 2)
