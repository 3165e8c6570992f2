"""The one place the privacy methods get their randomness from.

In production every random number is derived from bytes of the operating
system's CSPRNG (``secrets.token_bytes``): the segment order of ``scramble``,
the noise of ``dp_noise`` and the block order and noise of ``speech_mask``. A
pseudo-random generator such as numpy's PCG64 is fast but not
cryptographically secure: whoever learns its state from a few outputs predicts
the rest (and could subtract the noise). Tests pass a seed, which swaps the
byte source for numpy's seeded generator; the transformations of the bytes
into numbers are the same either way, so the tests exercise them too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np

_UNIT = 2.0**32


class PrivacyRandom:
    """Uniform, Laplace and Gaussian draws and permutations from one byte source.

    Args:
        seed: None (production) for the OS's CSPRNG; an int (tests only) for a
            reproducible numpy byte stream.
    """

    def __init__(self, seed: int | None) -> None:
        self._bytes: Callable[[int], bytes] = (
            secrets.token_bytes if seed is None else np.random.default_rng(seed).bytes
        )

    def uniform(self, size: int) -> np.ndarray:
        """(size,) float64 in the open interval (0, 1), 32 random bits each.

        32 bits are plenty for noise (the Laplace tail stops at 22 scales, the
        Gaussian at 6.7 sigma) and halve the bytes drawn from the OS.
        """
        words = np.frombuffer(self._bytes(4 * size), dtype=np.uint32)
        u = np.add(words, 0.5, dtype=np.float64)
        u /= _UNIT
        return u

    def permutation(self, n: int) -> np.ndarray:
        """(n,) int64: a uniformly random order of ``range(n)``.

        Sorting 64-bit random keys: every order is equally likely unless two
        keys tie, which happens with probability below n^2 / 2^65.
        """
        keys = np.frombuffer(self._bytes(8 * n), dtype=np.uint64)
        return np.argsort(keys, kind="stable")

    def laplace(self, scale: float, size: int) -> np.ndarray:
        """(size,) float64 Laplace(0, ``scale``) by the inverse CDF.

        ``X = sign(v) * -scale * ln(1 - 2|v|)`` with ``v = u - 0.5``, computed in
        place: a 10-min clip's noise needs one float64 array, not five.
        """
        v = self.uniform(size)
        v -= 0.5
        negative = v < 0.0
        np.abs(v, out=v)
        v *= -2.0
        v += 1.0  # 1 - 2|v| lies in (0, 1]: the uniforms never hit 0 or 1
        np.log(v, out=v)
        v *= -scale
        np.negative(v, out=v, where=negative)
        return v

    def standard_normal(self, shape: tuple[int, ...]) -> np.ndarray:
        """``shape`` float64 N(0, 1) draws (Box-Muller)."""
        count = int(np.prod(shape))
        pairs = (count + 1) // 2
        u = self.uniform(2 * pairs)
        radius = np.sqrt(-2.0 * np.log(u[:pairs]))
        angle = 2.0 * np.pi * u[pairs:]
        normal = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])
        return normal[:count].reshape(shape)
