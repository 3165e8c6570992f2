"""Polyphase resampling as one matrix product per block of input (for rate ratios with short periods).

With ``L = 16000 / gcd`` and ``M = rate / gcd``, output ``q + b*L`` reads the input exactly like
output ``q`` does, ``b*M`` samples later: the same input sample offset, the same two table
offsets. A block of ``g*L`` outputs (``g`` periods, so that a block has at least ~128 outputs)
therefore reads a fixed span of ``g*M`` input samples plus the filter's reach, through a fixed
(span, 3 * g*L) matrix built once per rate: for each output, the table taps of both wings, the
left wing's deltas and the right wing's deltas. All outputs are then ``blocks @ matrix`` (BLAS)
over a strided view of the zero-padded input, and each output adds its own interpolation factors:
``sum + left_eta * left_slope + right_eta * right_slope``. Zero padding is resampy's edge handling
(a wing cut by the signal's end sums nothing beyond it).

The matrix assumes each output's exact rational position. The accumulated float64 times that
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
#: Largest block matrix built (bytes); longer periods go phase by phase instead.
MAX_MATRIX_BYTES = 32 * 1024 * 1024
#: How far (in table entries) a position may sit from the integer between two offsets and still be
#: read with the other offset's weights (see ``_same_weights``).
BOUNDARY_SLACK = 1e-6
#: Blocks per matrix product, so the (copied) strided view stays small.
_BLOCKS_PER_PRODUCT = 1024


@dataclass(frozen=True)
class BlockPlan:
    """How one block of outputs reads its input span (see the module docstring).

    Attributes:
        outputs: outputs per block (a whole number of periods).
        inputs: input samples per block.
        lead: how many samples before the block's first input sample its span starts.
        matrix: (span, 3 * outputs) float64, read-only; column 3q + j is output q's
            j-th product (0: taps of both wings, 1: left deltas, 2: right deltas).
        sample: (outputs,) int64 input sample of each output, relative to its block.
        left_offset, right_offset: (outputs,) int64 table offsets of each output's wings.
    """

    outputs: int
    inputs: int
    lead: int
    matrix: np.ndarray
    sample: np.ndarray
    left_offset: np.ndarray
    right_offset: np.ndarray


def block_periods(period_outputs: int) -> int:
    """Periods per block: enough for ``MIN_BLOCK_OUTPUTS`` outputs."""
    return max(1, -(-MIN_BLOCK_OUTPUTS // period_outputs))


def block_plan_fits(filt: Filter, period_outputs: int, period_inputs: int) -> bool:
    """Whether the block matrix for this period stays under ``MAX_MATRIX_BYTES``."""
    periods = block_periods(period_outputs)
    reach = 2 * (filt.window.shape[0] // filt.step + 1)
    span = periods * period_inputs + reach
    return span * 3 * periods * period_outputs * 8 <= MAX_MATRIX_BYTES


@functools.lru_cache(maxsize=16)
def block_plan(filt: Filter, period_outputs: int, period_inputs: int) -> BlockPlan:
    """The plan of one rate, built once (``filt`` is hashable by identity: one per rate)."""
    periods = block_periods(period_outputs)
    outputs, inputs = periods * period_outputs, periods * period_inputs
    q = np.arange(outputs)
    sample = q * period_inputs // period_outputs
    frac = filt.scale * ((q * period_inputs % period_outputs) / period_outputs)
    left_offset = (frac * filt.taps_per_zero_crossing).astype(np.int64)
    right_offset = ((filt.scale - frac) * filt.taps_per_zero_crossing).astype(np.int64)
    table = filt.window.shape[0]
    left_width = (table - left_offset) // filt.step
    right_width = (table - right_offset) // filt.step
    lead = int(np.max(left_width - 1 - sample))
    span = int(np.max(sample + right_width)) + 1 + lead
    matrix = np.zeros((span, 3 * outputs))
    for k in range(outputs):
        left = left_offset[k] + filt.step * np.arange(left_width[k])
        right = right_offset[k] + filt.step * np.arange(right_width[k])
        left_rows = sample[k] + lead - np.arange(left_width[k])
        right_rows = sample[k] + lead + 1 + np.arange(right_width[k])
        matrix[left_rows, 3 * k] = filt.window[left]
        matrix[right_rows, 3 * k] = filt.window[right]
        matrix[left_rows, 3 * k + 1] = filt.delta[left]
        matrix[right_rows, 3 * k + 2] = filt.delta[right]
    matrix.flags.writeable = False
    return BlockPlan(outputs, inputs, lead, matrix, sample, left_offset, right_offset)


def block_interpolation(x: np.ndarray, at: Positions, filt: Filter, plan: BlockPlan) -> np.ndarray:
    """All outputs: block products over the zero-padded input, then the drifted ones exactly."""
    count = at.sample.shape[0]
    blocks = -(-count // plan.outputs)
    span = plan.matrix.shape[0]
    padded = np.zeros(max(blocks * plan.inputs + span, plan.lead + x.shape[0]))
    padded[plan.lead : plan.lead + x.shape[0]] = x
    products = np.empty((blocks, plan.matrix.shape[1]))
    stride = padded.strides[0]
    for first in range(0, blocks, _BLOCKS_PER_PRODUCT):
        rows = min(_BLOCKS_PER_PRODUCT, blocks - first)
        start = padded[first * plan.inputs :]
        view = as_strided(start, shape=(rows, span), strides=(plan.inputs * stride, stride))
        np.matmul(view, plan.matrix, out=products[first : first + rows])
    per_output = products.reshape(blocks * plan.outputs, 3)[:count]
    index = np.arange(count)
    within, block = index % plan.outputs, index // plan.outputs
    left_offset, right_offset = plan.left_offset[within], plan.right_offset[within]
    # interpolation factors relative to the block's offsets (within (-1, 2) where it matters)
    left_eta, right_eta = at.left_index - left_offset, at.right_index - right_offset
    y = per_output[:, 0] + left_eta * per_output[:, 1] + right_eta * per_output[:, 2]

    table, step = filt.window.shape[0], filt.step
    drifted = (
        (at.sample != block * plan.inputs + plan.sample[within])
        | ~_same_weights(at.left_offset, at.left_index, left_offset)
        | ~_same_weights(at.right_offset, at.right_index, right_offset)
        | ((table - at.left_offset) // step != (table - left_offset) // step)
        | ((table - at.right_offset) // step != (table - right_offset) // step)
    )
    outliers = np.flatnonzero(drifted)
    if outliers.shape[0]:
        y[outliers] = exact_interpolation(x, at, outliers, filt)
    return y


def _same_weights(offset: np.ndarray, index: np.ndarray, planned: np.ndarray) -> np.ndarray:
    """Whether a wing read at table position ``index`` gets the planned offset's weights: the same
    offset, or the neighbouring one with the position within ``BOUNDARY_SLACK`` of their common
    integer (the weights then differ by slack x the table's second difference, < 1e-12)."""
    near_boundary = np.abs(index - np.rint(index)) <= BOUNDARY_SLACK
    return (offset == planned) | ((np.abs(offset - planned) == 1) & near_boundary)
