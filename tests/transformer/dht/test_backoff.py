"""The one retry delay rule (DHT outbox sender, request listener, monitor source restarts)."""

from __future__ import annotations

import random

import pytest

from transformer.dht.backoff import Backoff


@pytest.mark.parametrize(("base", "maximum"), [(0.5, 8.0), (0.05, 0.2)])
def test_delay_is_exponential_with_equal_jitter(base: float, maximum: float) -> None:
    backoff = Backoff(base, maximum, random.Random(3))
    for failures in range(1, 12):
        cap = min(maximum, base * 2 ** (failures - 1))
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays), failures
        assert max(delays) - min(delays) > cap / 4  # jittered, not constant


def test_seeded_delays_repeat() -> None:
    first = [Backoff(0.5, 8.0, random.Random(7)).delay(n) for n in range(1, 6)]
    second = [Backoff(0.5, 8.0, random.Random(7)).delay(n) for n in range(1, 6)]
    assert first == second


def test_a_huge_failure_count_stays_at_the_maximum() -> None:
    assert 4.0 <= Backoff(0.5, 8.0).delay(10_000) <= 8.0


@pytest.mark.parametrize(("base", "maximum"), [(2, 1), (0, 1), (-1, 1)])
def test_invalid_settings_are_refused(base: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff_base"):
        Backoff(base, maximum)


def test_proportional_jitter_spreads_each_delay_around_its_cap() -> None:
    """A monitor source's restarts: 1, 2, 4 ... 30 s, each +-20 %."""
    backoff = Backoff(1.0, 30.0, random.Random(5), jitter="proportional")
    for failures, cap in enumerate([1, 2, 4, 8, 16, 30, 30], start=1):
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(0.8 * cap <= d <= 1.2 * cap for d in delays), failures
        assert min(delays) < cap < max(delays)  # jittered both ways


def test_the_spread_is_bounded() -> None:
    with pytest.raises(ValueError, match="spread"):
        Backoff(1.0, 30.0, jitter="proportional", spread=1.0)
