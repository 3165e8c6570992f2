"""The one retry delay rule: DHT posts, the listener's socket, and a monitor source's capture.

Exponential: after ``failures`` consecutive failures the cap is
``min(maximum, base * 2**(failures - 1))``. The jitter spreads clients that
failed together, so that they do not retry together:

- ``"equal"`` (the DHT leg): the delay is uniform in [cap/2, cap].
- ``"proportional"`` (a monitor source's restart): the delay is the cap +-``spread``
  (20 %: 1, 2, 4 ... 30 s, each 0.8 to 1.2 times that).
"""

from __future__ import annotations

import random
from typing import Literal

Jitter = Literal["equal", "proportional"]


class Backoff:
    """Delays for consecutive failures; seed ``rng`` for reproducible delays."""

    def __init__(
        self,
        base: float,
        maximum: float,
        rng: random.Random | None = None,
        *,
        jitter: Jitter = "equal",
        spread: float = 0.2,
    ) -> None:
        """
        Args:
            base: delay cap after the first failure, in seconds; doubles per failure.
            maximum: largest delay cap, in seconds.
            rng: jitter source.
            jitter: ``"equal"`` (uniform in [cap/2, cap]) or ``"proportional"`` (cap +-``spread``).
            spread: the ``"proportional"`` jitter, as a fraction of the cap.

        Raises:
            ValueError: unless 0 < base <= maximum and 0 <= spread < 1.
        """
        if not 0 < base <= maximum:
            raise ValueError(f"need 0 < backoff_base <= backoff_max, got {base}, {maximum}")
        if not 0 <= spread < 1:
            raise ValueError(f"need 0 <= spread < 1, got {spread}")
        self.base = base
        self.maximum = maximum
        self.jitter = jitter
        self.spread = spread
        self._rng = rng or random.Random()

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failures."""
        cap = min(self.maximum, self.base * 2.0 ** min(max(failures - 1, 0), 60))
        if self.jitter == "proportional":
            return cap * (1 + self._rng.uniform(-self.spread, self.spread))
        return cap / 2 + self._rng.uniform(0, cap / 2)
