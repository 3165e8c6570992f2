"""How numbers are written in every answer (v2 JSON, SIFIS, DHT records, client, classify).

Scores are float32 in the model: written as their shortest float32 decimal
(``0.8402``, not ``0.8402000069618225``). Times are multiples of 0.96 s,
written to the millisecond (``2.88``, not ``2.8800000000000003``).
"""

from __future__ import annotations

import numpy as np

#: Decimal places of times in seconds.
SECONDS_DECIMALS = 3


def score_value(value: float) -> float:
    """A float32 score as the shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def seconds_value(value: float) -> float:
    """A time in seconds to the millisecond."""
    return round(float(value), SECONDS_DECIMALS)
