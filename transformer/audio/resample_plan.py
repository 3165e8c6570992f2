"""The per-rate plan of the block resampler (``resample_blocks``): which input rows each group of a
block's outputs reads and the matrices that map them, built once per rate.

With ``L = 16000 / gcd`` and ``M = rate / gcd``, output ``q + b*L`` reads the input exactly like
output ``q`` does, ``b*M`` samples later: the same input sample offset, the same two table
offsets. A block of ``g*L`` outputs (``g`` periods: at least ~128 outputs, and blocks at least as
far apart as a group reads) therefore reads a fixed span of ``g*M`` input samples plus the
filter's reach, through fixed matrices. Each output has two columns: its filter at its planned
interpolation factors (both wings), and its left deltas minus its right deltas, the derivative
with respect to the left factor (the two factors sum to a constant, so one derivative serves
both). Outputs are split into groups of ``GROUP_OUTPUTS`` whose matrices hold only the rows the
group reads, which skips most of the band's zeros.

The plan assumes each output's exact rational position; ``drift_bound`` bounds how far the
accumulated float64 times resampy uses can stray from it, and ``BlockPlan.boundary_phases`` names
the outputs of a block that such a drift could move onto another sample or table offset.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from transformer.audio.resample_kernels import Filter

#: Outputs a block should hold at least (tiny periods, e.g. 48 kHz with L = 1, are grouped).
MIN_BLOCK_OUTPUTS = 128
#: Outputs per column group: each group multiplies only the rows its outputs read, so a block's
#: product skips most of the zeros of the whole (span, outputs) band.
GROUP_OUTPUTS = 32
#: Largest block matrix built (bytes); longer periods go phase by phase instead.
MAX_MATRIX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ColumnGroup:
    """Consecutive outputs of a block and the rows of the block's span they read.

    ``matrix`` is (stop_row - start_row, 2 * outputs) float64, read-only: column q is the group's
    output q's filter at its planned interpolation factors (both wings), column outputs + q its
    left deltas minus its right deltas (the derivative with respect to the left factor).
    """

    first_output: int
    start_row: int
    stop_row: int
    matrix: np.ndarray


@dataclass(frozen=True)
class BlockPlan:
    """How one block of outputs reads its input span (see the module docstring).

    Attributes:
        outputs: outputs per block (a whole number of periods).
        inputs: input samples per block.
        lead: how many samples before the block's first input sample its span starts.
        span: input samples a block reads.
        groups: the block's outputs in column groups, each with its rows of the span.
        sample: (outputs,) int64 input sample of each output, relative to its block.
        left_offset, right_offset: (outputs,) int64 table offsets of each output's wings.
        left_eta: (outputs,) float64 the planned left interpolation factor of each output.
        time_frac: (outputs,) float64 where each output's exact time lies between two samples.
        left_index, right_index: (outputs,) float64 its exact table positions (offset + factor).
    """

    outputs: int
    inputs: int
    lead: int
    span: int
    groups: tuple[ColumnGroup, ...]
    sample: np.ndarray
    left_offset: np.ndarray
    right_offset: np.ndarray
    left_eta: np.ndarray
    time_frac: np.ndarray
    left_index: np.ndarray
    right_index: np.ndarray

    def boundary_phases(self, drift: float, filt: Filter) -> np.ndarray:
        """Outputs of a block that a time drift of up to ``drift`` input samples can move onto
        another input sample or table offset (``drift`` from ``drift_bound``)."""
        if drift == 0.0:  # exact times read exactly what the plan says
            return np.zeros(0, dtype=np.int64)
        reach = drift * filt.scale * filt.taps_per_zero_crossing + 1e-9
        near_sample = np.minimum(self.time_frac, 1.0 - self.time_frac) <= drift + 1e-12
        near_left = np.abs(self.left_index - np.rint(self.left_index)) <= reach
        near_right = np.abs(self.right_index - np.rint(self.right_index)) <= reach
        return np.flatnonzero(near_sample | near_left | near_right)


def drift_bound(times: np.ndarray, period_outputs: int, period_inputs: int) -> float:
    """Largest ``|times[k] - k * M / L|`` the accumulated times can have, in input samples.

    ``times`` grows by one float64 ``step`` per output: each addition rounds by at most half a
    unit in the last place of the largest time, and the step itself differs from ``M / L``. When
    the step is ``M / L`` exactly and every multiple of it up to the last is a float64 (48, 32,
    24, 8 kHz...), no addition rounds: 0.
    """
    count = times.shape[0]
    if count < 2:
        return 0.0
    step = Fraction(float(times[1]))
    step_error = abs(step - Fraction(period_inputs, period_outputs))
    if step_error == 0 and (count - 1) * step.numerator < 2**53:
        return 0.0
    return count * (float(np.spacing(times[-1])) / 2 + float(step_error))


@dataclass(frozen=True)
class _Phases:
    """Where each of the first ``n`` outputs of a period reads, at its exact rational time."""

    sample: np.ndarray
    left_index: np.ndarray
    right_index: np.ndarray
    left_offset: np.ndarray
    right_offset: np.ndarray
    left_width: np.ndarray
    right_width: np.ndarray


def _phases(filt: Filter, period_outputs: int, period_inputs: int, count: int) -> _Phases:
    q = np.arange(count)
    frac = filt.scale * ((q * period_inputs % period_outputs) / period_outputs)
    left_index = frac * filt.taps_per_zero_crossing
    right_index = (filt.scale - frac) * filt.taps_per_zero_crossing
    left_offset, right_offset = left_index.astype(np.int64), right_index.astype(np.int64)
    table = filt.window.shape[0]
    return _Phases(
        q * period_inputs // period_outputs, left_index, right_index, left_offset, right_offset,
        (table - left_offset) // filt.step, (table - right_offset) // filt.step,
    )  # fmt: skip


def _group_rows(phases: _Phases, first: int, last: int) -> tuple[int, int]:
    """(start, stop) of the input rows outputs ``first`` to ``last`` read, relative to sample 0."""
    sample = phases.sample[first:last]
    start = int(np.min(sample - (phases.left_width[first:last] - 1)))
    return start, int(np.max(sample + phases.right_width[first:last])) + 1


@functools.lru_cache(maxsize=16)
def block_periods(filt: Filter, period_outputs: int, period_inputs: int) -> int:
    """Periods per block: enough for ``MIN_BLOCK_OUTPUTS`` outputs, and blocks at least as far
    apart as a column group reads, so that a group's rows of consecutive blocks do not overlap:
    its strided view is then a plain matrix for BLAS, not a copy (48 kHz: 30 % faster)."""
    periods = max(1, -(-MIN_BLOCK_OUTPUTS // period_outputs))
    while True:
        outputs = periods * period_outputs
        phases = _phases(filt, period_outputs, period_inputs, outputs)
        widest = max(
            stop - start
            for start, stop in (
                _group_rows(phases, first, min(first + GROUP_OUTPUTS, outputs))
                for first in range(0, outputs, GROUP_OUTPUTS)
            )
        )
        if widest <= periods * period_inputs:
            return periods
        periods = max(periods + 1, -(-widest // period_inputs))


@functools.lru_cache(maxsize=16)
def block_plan_fits(filt: Filter, period_outputs: int, period_inputs: int) -> bool:
    """Whether the block's matrices stay under ``MAX_MATRIX_BYTES`` (bounded by the whole band)."""
    if period_outputs > MAX_MATRIX_BYTES:
        return False
    periods = max(1, -(-MIN_BLOCK_OUTPUTS // period_outputs))
    reach = 2 * (filt.window.shape[0] // filt.step + 1)
    if (periods * period_inputs + reach) * 2 * periods * period_outputs * 8 > MAX_MATRIX_BYTES:
        return False  # checked before ``block_periods`` lays out that many outputs
    periods = block_periods(filt, period_outputs, period_inputs)
    span = periods * period_inputs + reach
    return span * 2 * periods * period_outputs * 8 <= MAX_MATRIX_BYTES


@functools.lru_cache(maxsize=16)
def block_plan(filt: Filter, period_outputs: int, period_inputs: int) -> BlockPlan:
    """The plan of one rate, built once (``filt`` is hashable by identity: one per rate)."""
    periods = block_periods(filt, period_outputs, period_inputs)
    outputs, inputs = periods * period_outputs, periods * period_inputs
    phases = _phases(filt, period_outputs, period_inputs, outputs)
    sample, left_index, right_index = phases.sample, phases.left_index, phases.right_index
    left_offset, right_offset = phases.left_offset, phases.right_offset
    left_width, right_width = phases.left_width, phases.right_width
    left_eta, right_eta = left_index - left_offset, right_index - right_offset
    lead = int(np.max(left_width - 1 - sample))
    span = int(np.max(sample + right_width)) + 1 + lead
    band = np.zeros((span, 2 * outputs))
    for k in range(outputs):
        left = left_offset[k] + filt.step * np.arange(left_width[k])
        right = right_offset[k] + filt.step * np.arange(right_width[k])
        left_rows = sample[k] + lead - np.arange(left_width[k])
        right_rows = sample[k] + lead + 1 + np.arange(right_width[k])
        band[left_rows, 2 * k] = filt.window[left] + left_eta[k] * filt.delta[left]
        band[right_rows, 2 * k] = filt.window[right] + right_eta[k] * filt.delta[right]
        band[left_rows, 2 * k + 1] = filt.delta[left]
        band[right_rows, 2 * k + 1] = -filt.delta[right]
    groups = []
    for first in range(0, outputs, GROUP_OUTPUTS):
        last = min(first + GROUP_OUTPUTS, outputs)
        start, stop = (row + lead for row in _group_rows(phases, first, last))
        columns = np.r_[2 * first : 2 * last : 2, 2 * first + 1 : 2 * last : 2]  # filters, then slopes
        matrix = np.ascontiguousarray(band[start:stop][:, columns])
        matrix.flags.writeable = False
        groups.append(ColumnGroup(first, start, stop, matrix))
    time_frac = (np.arange(outputs) * period_inputs % period_outputs) / period_outputs
    for array in (sample, left_offset, right_offset, left_eta, time_frac, left_index, right_index):
        array.flags.writeable = False
    return BlockPlan(
        outputs, inputs, lead, span, tuple(groups), sample, left_offset, right_offset, left_eta,
        time_frac, left_index, right_index,
    )  # fmt: skip
