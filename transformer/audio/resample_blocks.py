"""Polyphase resampling as matrix products per block of input (for rate ratios with short periods).

With ``L = 16000 / gcd`` and ``M = rate / gcd``, output ``q + b*L`` reads the input exactly like
output ``q`` does, ``b*M`` samples later: the same input sample offset, the same two table
offsets. A block of ``g*L`` outputs (``g`` periods, so that a block has at least ~128 outputs)
therefore reads a fixed span of ``g*M`` input samples plus the filter's reach, through fixed
matrices built once per rate. Each output has two columns: its filter at its planned
interpolation factors (both wings), and its left deltas minus its right deltas, the derivative
with respect to the left factor (the two factors sum to a constant, so one derivative serves
both). Outputs are split into groups of ``GROUP_OUTPUTS`` whose matrices hold only the rows the
group reads, which skips most of the band's zeros. All outputs are then ``view @ matrix`` (BLAS)
over strided views of the zero-padded input, and each output adds its own factor's deviation:
``filtered + (left_eta - planned_eta) * slope``. Zero padding is resampy's edge handling (a wing
cut by the signal's end sums nothing beyond it).

The matrices assume each output's exact rational position. The accumulated float64 times that
resampy uses drift from it. An output whose table position drifted just across an integer
(offset ``o - 1`` with factor ~1 instead of ``o`` with ~0; at 11.025 kHz a fifth of all outputs
sit on such a boundary) reads the same weights, since linear interpolation is continuous
(``win[o-1] + 1 * delta[o-1] = win[o]``): within ``BOUNDARY_SLACK`` of the boundary it keeps its
block product, with its factor taken relative to the block's offset. Outputs on another input
sample, further from the boundary, or with another number of taps are recomputed tap by tap
(``exact_interpolation``). The result is resampy's to float64 rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from transformer.audio.resample_kernels import Filter, Positions, exact_interpolation

#: Outputs a block should hold at least (tiny periods, e.g. 48 kHz with L = 1, are grouped).
MIN_BLOCK_OUTPUTS = 128
#: Outputs per column group: each group multiplies only the rows its outputs read, so a block's
#: product skips most of the zeros of the whole (span, outputs) band.
GROUP_OUTPUTS = 32
#: Largest block matrix built (bytes); longer periods go phase by phase instead.
MAX_MATRIX_BYTES = 32 * 1024 * 1024
#: How far (in table entries) a position may sit from the integer between two offsets and still be
#: read with the other offset's weights (see ``_same_weights``).
BOUNDARY_SLACK = 1e-6
#: Blocks per matrix product, so the (copied) strided view stays small.
_BLOCKS_PER_PRODUCT = 1024


@dataclass(frozen=True)
class ColumnGroup:
    """Consecutive outputs of a block and the rows of the block's span they read.

    ``matrix`` is (stop_row - start_row, 2 * outputs) float64, read-only: column 2q is output q's
    filter at its planned interpolation factors (both wings), column 2q + 1 its left deltas minus
    its right deltas (the derivative with respect to the left factor).
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


def block_periods(period_outputs: int) -> int:
    """Periods per block: enough for ``MIN_BLOCK_OUTPUTS`` outputs."""
    return max(1, -(-MIN_BLOCK_OUTPUTS // period_outputs))


def block_plan_fits(filt: Filter, period_outputs: int, period_inputs: int) -> bool:
    """Whether the block's matrices stay under ``MAX_MATRIX_BYTES`` (bounded by the whole band)."""
    periods = block_periods(period_outputs)
    reach = 2 * (filt.window.shape[0] // filt.step + 1)
    span = periods * period_inputs + reach
    return span * 2 * periods * period_outputs * 8 <= MAX_MATRIX_BYTES


@functools.lru_cache(maxsize=16)
def block_plan(filt: Filter, period_outputs: int, period_inputs: int) -> BlockPlan:
    """The plan of one rate, built once (``filt`` is hashable by identity: one per rate)."""
    periods = block_periods(period_outputs)
    outputs, inputs = periods * period_outputs, periods * period_inputs
    q = np.arange(outputs)
    sample = q * period_inputs // period_outputs
    frac = filt.scale * ((q * period_inputs % period_outputs) / period_outputs)
    left_index = frac * filt.taps_per_zero_crossing
    right_index = (filt.scale - frac) * filt.taps_per_zero_crossing
    left_offset, right_offset = left_index.astype(np.int64), right_index.astype(np.int64)
    left_eta, right_eta = left_index - left_offset, right_index - right_offset
    table = filt.window.shape[0]
    left_width = (table - left_offset) // filt.step
    right_width = (table - right_offset) // filt.step
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
        start = int(np.min(sample[first:last] + lead - (left_width[first:last] - 1)))
        stop = int(np.max(sample[first:last] + lead + right_width[first:last])) + 1
        matrix = np.ascontiguousarray(band[start:stop, 2 * first : 2 * last])
        matrix.flags.writeable = False
        groups.append(ColumnGroup(first, start, stop, matrix))
    return BlockPlan(outputs, inputs, lead, span, tuple(groups), sample, left_offset, right_offset, left_eta)


def block_interpolation(x: np.ndarray, at: Positions, filt: Filter, plan: BlockPlan) -> np.ndarray:
    """All outputs: block products over the zero-padded input, then the drifted ones exactly.

    An output's exact sum is ``filter(eta_left, eta_right) . x``, linear in both factors. The
    factors sum to a constant (``left_index + right_index = scale * taps`` up to rounding), so
    the planned filter plus ``(eta_left - planned) * (left deltas - right deltas) . x`` is the
    same sum to float64 rounding, with two columns per output instead of three.
    """
    count = at.sample.shape[0]
    blocks = -(-count // plan.outputs)
    padded = np.zeros(max(blocks * plan.inputs + plan.span, plan.lead + x.shape[0]))
    padded[plan.lead : plan.lead + x.shape[0]] = x
    products = np.empty((blocks, 2 * plan.outputs))
    stride = padded.strides[0]
    for first in range(0, blocks, _BLOCKS_PER_PRODUCT):
        rows = min(_BLOCKS_PER_PRODUCT, blocks - first)
        for group in plan.groups:
            start = padded[first * plan.inputs + group.start_row :]
            width = group.stop_row - group.start_row
            view = as_strided(start, shape=(rows, width), strides=(plan.inputs * stride, stride))
            columns = slice(2 * group.first_output, 2 * group.first_output + group.matrix.shape[1])
            products[first : first + rows, columns] = view @ group.matrix
    per_output = products.reshape(blocks * plan.outputs, 2)[:count]
    left_offset = np.tile(plan.left_offset, blocks)[:count]
    planned_eta = np.tile(plan.left_eta, blocks)[:count]
    y = per_output[:, 0] + (at.left_index - left_offset - planned_eta) * per_output[:, 1]

    # Outputs on another sample or table offset than planned are rare: check only those further.
    expected_sample = np.add.outer(np.arange(blocks) * plan.inputs, plan.sample).ravel()[:count]
    right_offset = np.tile(plan.right_offset, blocks)[:count]
    candidates = np.flatnonzero(
        (at.sample != expected_sample) | (at.left_offset != left_offset) | (at.right_offset != right_offset)
    )
    if candidates.shape[0]:
        table, step = filt.window.shape[0], filt.step
        planned_left, planned_right = left_offset[candidates], right_offset[candidates]
        actual_left, actual_right = at.left_offset[candidates], at.right_offset[candidates]
        drifted = (
            (at.sample[candidates] != expected_sample[candidates])
            | ~_same_weights(actual_left, at.left_index[candidates], planned_left)
            | ~_same_weights(actual_right, at.right_index[candidates], planned_right)
            | ((table - actual_left) // step != (table - planned_left) // step)
            | ((table - actual_right) // step != (table - planned_right) // step)
        )
        outliers = candidates[drifted]
        if outliers.shape[0]:
            y[outliers] = exact_interpolation(x, at, outliers, filt)
    return y


def _same_weights(offset: np.ndarray, index: np.ndarray, planned: np.ndarray) -> np.ndarray:
    """Whether a wing read at table position ``index`` gets the planned offset's weights: the same
    offset, or the neighbouring one with the position within ``BOUNDARY_SLACK`` of their common
    integer (the weights then differ by slack x the table's second difference, < 1e-12)."""
    near_boundary = np.abs(index - np.rint(index)) <= BOUNDARY_SLACK
    return (offset == planned) | ((np.abs(offset - planned) == 1) & near_boundary)
