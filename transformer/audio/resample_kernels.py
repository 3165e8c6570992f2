"""resampy's band-limited interpolation (``resample_f_s``) in numpy: exact per sample, and polyphase.

Output sample ``k`` at input time ``t`` (``n = int(t)``) sums two wings of taps read from the filter
table with linear interpolation: the left wing over ``x[n - i]`` at table positions
``offset + i * step`` with weight ``win + eta * delta``, the right wing over ``x[n + 1 + i]`` with
``scale - frac`` in place of ``frac``. ``exact_interpolation`` does exactly that for any times
(vectorised over outputs in chunks).

``polyphase_interpolation`` uses the period of a rational rate ratio: outputs ``k`` and
``k + L`` (``L = 16000 / gcd``) sit at the same filter phase, ``M = rate / gcd`` input samples
apart. For all outputs of one phase that share its table offsets, a weight is
``win[o] + eta_k * delta[o]``, linear in that output's own ``eta_k``, so the phase's outputs are
two matrix products over strided views of the input (BLAS) combined with their own ``eta``. The
times stay the accumulated float64 ones; an output whose integer sample or table offset differs
from its phase's (the accumulated time drifts across a boundary), or whose wings are cut by the
signal's ends, is computed by ``exact_interpolation``. Results agree with resampy's kernel to
float64 rounding (the sums run in another order).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

#: Outputs per chunk of the exact path: (chunk x taps) float64 temporaries stay near 8 MB.
_EXACT_CHUNK_OUTPUTS = 4096


@dataclass(frozen=True, eq=False)
class Filter:
    """The interpolation table and how one rate reads it (hashed by identity: one per rate).

    Attributes:
        window: (W,) float64 right wing of the filter (already scaled for downsampling).
        delta: (W,) float64 ``window[i + 1] - window[i]`` (last entry 0).
        taps_per_zero_crossing: table entries per input sample at unit scale (512).
        scale: ``min(1, 16000 / rate)``.
    """

    window: np.ndarray
    delta: np.ndarray
    taps_per_zero_crossing: int
    scale: float

    @property
    def step(self) -> int:
        """Table entries between two consecutive taps (resampy's ``index_step``)."""
        return int(self.scale * self.taps_per_zero_crossing)


class Positions:
    """Where each output reads the input and the table (resampy's per-output variables).

    All (n_out,) arrays: ``sample`` int64 ``int(t)``; ``left_index``/``right_index`` float64 table
    positions of the wings' first taps; ``left_offset``/``right_offset`` int64 their integer parts.
    The interpolation factors and tap counts are derived on demand (``factors``, ``taps``, for
    some outputs; the whole-array properties for all), since the block path needs them only for
    its few drifted outputs.
    """

    def __init__(self, times: np.ndarray, filt: Filter, input_length: int) -> None:
        """resampy's float64 arithmetic for every output at once (same operations, same order)."""
        self.sample = times.astype(np.int64)  # times >= 0: truncation is int()
        frac = filt.scale * (times - self.sample)
        self.left_index = frac * filt.taps_per_zero_crossing
        self.left_offset = self.left_index.astype(np.int64)
        self.right_index = (filt.scale - frac) * filt.taps_per_zero_crossing
        self.right_offset = self.right_index.astype(np.int64)
        self.input_length = input_length
        self._table, self._step = filt.window.shape[0], filt.step

    def factors(self, outputs: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) interpolation factors (the fractional table positions) of ``outputs``."""
        return (
            self.left_index[outputs] - self.left_offset[outputs],
            self.right_index[outputs] - self.right_offset[outputs],
        )

    def taps(self, outputs: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) numbers of taps of ``outputs``, after the signal's ends are applied."""
        sample = self.sample[outputs]
        left = np.minimum(sample + 1, (self._table - self.left_offset[outputs]) // self._step)
        right = np.minimum(
            self.input_length - sample - 1, (self._table - self.right_offset[outputs]) // self._step
        )
        return left, right

    @functools.cached_property
    def left_eta(self) -> np.ndarray:
        return self.factors(slice(None))[0]

    @functools.cached_property
    def right_eta(self) -> np.ndarray:
        return self.factors(slice(None))[1]

    @functools.cached_property
    def left_taps(self) -> np.ndarray:
        return self.taps(slice(None))[0]

    @functools.cached_property
    def right_taps(self) -> np.ndarray:
        return self.taps(slice(None))[1]


def positions(times: np.ndarray, filt: Filter, input_length: int) -> Positions:
    """resampy's positions of every output (see ``Positions``)."""
    return Positions(times, filt, input_length)


def _wing(
    x: np.ndarray, filt: Filter, first: np.ndarray, direction: int,
    offset: np.ndarray, eta: np.ndarray, taps: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """One wing for a batch of outputs: sum over i < taps of (win + eta*delta)[offset + i*step]
    * x[first + direction * i]."""
    width = int(taps.max(initial=0))
    if width <= 0:
        return np.zeros(first.shape[0])
    i = np.arange(width)
    valid = i[None, :] < taps[:, None]
    where = np.where(valid, offset[:, None] + i[None, :] * filt.step, 0)
    weights = filt.window[where] + eta[:, None] * filt.delta[where]
    samples = x[np.where(valid, first[:, None] + direction * i[None, :], 0)]
    return np.einsum("ij,ij->i", np.where(valid, weights, 0.0), samples)


def exact_interpolation(x: np.ndarray, at: Positions, outputs: np.ndarray, filt: Filter) -> np.ndarray:
    """The outputs with indices ``outputs``, each computed tap by tap as resampy does."""
    result = np.empty(outputs.shape[0])
    for start in range(0, outputs.shape[0], _EXACT_CHUNK_OUTPUTS):
        chunk = outputs[start : start + _EXACT_CHUNK_OUTPUTS]
        n = at.sample[chunk]
        (left_eta, right_eta), (left_taps, right_taps) = at.factors(chunk), at.taps(chunk)
        left = _wing(x, filt, n, -1, at.left_offset[chunk], left_eta, left_taps)
        right = _wing(x, filt, n + 1, 1, at.right_offset[chunk], right_eta, right_taps)
        result[start : start + chunk.shape[0]] = left + right
    return result


def gathered_interpolation(x: np.ndarray, at: Positions, outputs: np.ndarray, filt: Filter) -> np.ndarray:
    """The outputs with indices ``outputs``, as ``exact_interpolation`` gives them, faster.

    Outputs whose wings lie wholly inside the signal are grouped by their pair of table offsets:
    the outputs of one pair read the same taps, so each group is one product of its gathered input
    rows with that pair's ``phase_filters``, combined with each output's own factors. Outputs near
    the signal's ends (cut wings) go tap by tap.
    """
    result = np.empty(outputs.shape[0])
    table, step = filt.window.shape[0], filt.step
    left_offset, right_offset = at.left_offset[outputs], at.right_offset[outputs]
    left_width, right_width = (table - left_offset) // step, (table - right_offset) // step
    left_taps, right_taps = at.taps(outputs)
    whole = np.flatnonzero((left_taps == left_width) & (right_taps == right_width))
    keys = left_offset[whole] * (table + 1) + right_offset[whole]
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    # every group's rows are the first columns of one window view over the signal and a zero tail
    widest = 2 * (table // step + 1)
    windows = sliding_window_view(np.concatenate([x, np.zeros(widest)]), widest) if whole.shape[0] else x
    for members in np.split(whole[order], bounds) if whole.shape[0] else ():
        first = members[0]
        filters = phase_filters(filt, int(left_offset[first]), int(right_offset[first]))
        for start in range(0, members.shape[0], _EXACT_CHUNK_OUTPUTS):
            chunk = members[start : start + _EXACT_CHUNK_OUTPUTS]
            picked = outputs[chunk]
            rows = windows[at.sample[picked] - (left_width[first] - 1), : filters.shape[0]]
            products = rows @ filters
            left_eta, right_eta = at.factors(picked)
            result[chunk] = products[:, 0] + left_eta * products[:, 1] + right_eta * products[:, 2]
    cut = np.ones(outputs.shape[0], dtype=bool)
    cut[whole] = False
    if cut.any():
        result[cut] = exact_interpolation(x, at, outputs[cut], filt)
    return result


@functools.lru_cache(maxsize=2048)
def phase_filters(filt: Filter, left_offset: int, right_offset: int) -> np.ndarray:
    """(left + right taps, 3) float64 for one phase, over x[n - left + 1 : n + right + 1]:
    columns = the table taps of both wings (left reversed), the left wing's deltas (zero on the
    right), the right wing's deltas (zero on the left). Built once per rate and pair (read-only,
    at most ~8 KB each)."""
    table = filt.window.shape[0]
    left = left_offset + filt.step * np.arange((table - left_offset) // filt.step)
    right = right_offset + filt.step * np.arange((table - right_offset) // filt.step)
    columns = np.zeros((left.shape[0] + right.shape[0], 3))
    columns[: left.shape[0], 0] = filt.window[left][::-1]
    columns[left.shape[0] :, 0] = filt.window[right]
    columns[: left.shape[0], 1] = filt.delta[left][::-1]
    columns[left.shape[0] :, 2] = filt.delta[right]
    columns.flags.writeable = False
    return columns


def _phase_products(x: np.ndarray, start: int, rows: int, hop: int, filters: np.ndarray) -> np.ndarray:
    """(rows, 3): x[start + r*hop : start + r*hop + len(filters)] @ filters for every row r.

    Used for long periods, where rows do not overlap (hop >= taps), so BLAS reads the strided
    view in place; overlapping rows would be copied first (still correct).
    """
    width = filters.shape[0]
    view = as_strided(x[start:], shape=(rows, width), strides=(hop * x.strides[0], x.strides[0]))
    return np.asarray(view @ filters)


def polyphase_interpolation(
    x: np.ndarray, at: Positions, filt: Filter, period_outputs: int, period_inputs: int
) -> np.ndarray:
    """All outputs, phase by phase with BLAS, the exceptions exactly (see the module docstring)."""
    count = at.sample.shape[0]
    y = np.empty(count)
    exact = np.ones(count, dtype=bool)  # cleared where a phase product is valid
    table = filt.window.shape[0]
    for phase in range(min(period_outputs, count)):
        outputs = np.arange(phase, count, period_outputs)
        middle = outputs[outputs.shape[0] // 2]
        left_offset, right_offset = int(at.left_offset[middle]), int(at.right_offset[middle])
        left_width = (table - left_offset) // filt.step
        right_width = (table - right_offset) // filt.step
        base = int(at.sample[middle]) - (outputs.shape[0] // 2) * period_inputs
        # rows whose wings are whole: the left needs n - (width - 1) >= 0, the right n + width < len(x)
        first = max(0, -((base - left_width + 1) // period_inputs))
        last = min(outputs.shape[0], (x.shape[0] - 1 - right_width - base) // period_inputs + 1)
        if last <= first:
            continue
        inner = outputs[first:last]
        products = _phase_products(
            x, base + first * period_inputs - (left_width - 1), last - first, period_inputs,
            phase_filters(filt, left_offset, right_offset),
        )  # fmt: skip
        y[inner] = products[:, 0] + at.left_eta[inner] * products[:, 1] + at.right_eta[inner] * products[:, 2]
        same = (
            (at.sample[inner] == base + np.arange(first, last) * period_inputs)
            & (at.left_offset[inner] == left_offset)
            & (at.right_offset[inner] == right_offset)
            & (at.left_taps[inner] == left_width)
            & (at.right_taps[inner] == right_width)
        )
        exact[inner[same]] = False
    rest = np.flatnonzero(exact)
    if rest.shape[0]:
        y[rest] = gathered_interpolation(x, at, rest, filt)
    return y
