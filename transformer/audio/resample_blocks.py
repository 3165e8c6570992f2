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
resampy uses drift from it, by at most ``drift_bound`` (the sum of the additions' roundings and of
the step's own error). Only outputs whose planned position lies within that bound of a boundary
(of an input sample, or of a table offset of either wing) can read another sample or offset than
planned: only those phases' outputs are located exactly (``Positions``); every other output keeps
its block product and its factor's deviation from the plan, with no per-output checks. An output
whose table position drifted just across an integer (offset ``o - 1`` with factor ~1 instead of
``o`` with ~0; at 11.025 kHz a fifth of all outputs sit on such a boundary) reads the same weights,
since linear interpolation is continuous (``win[o-1] + 1 * delta[o-1] = win[o]``): within
``BOUNDARY_SLACK`` of the boundary it keeps its block product, with its factor taken relative to
the block's offset. Outputs on another input sample, further from the boundary, or with another
number of taps are recomputed from their taps (``gathered_interpolation``). The result is
resampy's to float64 rounding.
"""

from __future__ import annotations

import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import as_strided

from transformer.audio.resample_kernels import Filter, gathered_interpolation, positions

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
#: Threads a long signal's block products are split across (one per core, at most two: the
#: service runs one BLAS thread per call and concurrent requests fill the cores anyway).
RESAMPLE_THREADS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
#: Fewest outputs worth a thread of their own (about a second of audio, ~0.6 ms of products).
MIN_SPLIT_OUTPUTS = 16_000
#: Blocks per matrix product, so each product's result stays small.
_BLOCKS_PER_PRODUCT = 1024


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


def block_interpolation(x: np.ndarray, times: np.ndarray, filt: Filter, plan: BlockPlan) -> np.ndarray:
    """All outputs at the accumulated ``times``: block products, each corrected by its own
    factor, then the few outputs that drifted across a boundary from their taps.

    An output's exact sum is ``filter(eta_left, eta_right) . x``, linear in both factors. The
    factors sum to a constant (``left_index + right_index = scale * taps`` up to rounding), so
    the planned filter plus ``(eta_left - planned) * (left deltas - right deltas) . x`` is the
    same sum to float64 rounding, with two columns per output instead of three.
    """
    count = times.shape[0]
    blocks = -(-count // plan.outputs)
    # resampy's left table position of each output, read from its planned sample (the same float64
    # operations; ``t - n`` is exact), less the planned position: the factor's deviation.
    if count == blocks * plan.outputs:
        grid = times.reshape(blocks, plan.outputs)
    else:
        grid = np.empty((blocks, plan.outputs))
        grid.reshape(-1)[:count] = times
        grid.reshape(-1)[count:] = times[-1]
    deviation = grid - (np.arange(blocks) * float(plan.inputs))[:, None]
    deviation -= plan.sample
    deviation *= filt.scale
    deviation *= filt.taps_per_zero_crossing
    deviation -= plan.left_index
    # then, in place, each output's filtered value plus its deviation times its slope; the
    # blocks are split across the cores (disjoint rows; BLAS and numpy release the GIL)
    tasks = _split(_block_sources(x, blocks, plan), plan.outputs, plan.inputs)
    if len(tasks) == 1:
        _apply_products(*tasks[0], plan, deviation)
    else:
        for done in [_pool().submit(_apply_products, *task, plan, deviation) for task in tasks]:
            done.result()
    y = deviation.reshape(-1)[:count]

    # Only outputs planned next to a boundary can have crossed it: locate those exactly.
    phases = plan.boundary_phases(drift_bound(times, plan.outputs, plan.inputs), filt)
    if phases.shape[0]:
        near = (np.arange(blocks)[:, None] * plan.outputs + phases[None, :]).reshape(-1)
        near = near[near < count]
        outliers = near[_drifted(times, near, filt, plan, x.shape[0])]
        if outliers.shape[0]:
            at = positions(times[outliers], filt, x.shape[0])
            y[outliers] = gathered_interpolation(x, at, np.arange(outliers.shape[0]), filt)
    return y


def _block_sources(x: np.ndarray, blocks: int, plan: BlockPlan) -> list[tuple[np.ndarray, int, int, int]]:
    """Where blocks read: (array, offset of block ``first``'s span in it, first, stop).

    Block ``b`` reads ``span`` samples from ``b * inputs - lead`` of the signal zero-padded on both
    sides (resampy's edge handling: a cut wing sums nothing). The blocks whose span lies inside
    the signal read it in place; only the few at either end read small zero-padded copies.
    """
    inside_first = -(-plan.lead // plan.inputs)
    inside_stop = min(blocks, (x.shape[0] + plan.lead - plan.span) // plan.inputs + 1)
    if inside_stop <= inside_first:
        return [(_zero_padded(x, -plan.lead, blocks * plan.inputs + plan.span), 0, 0, blocks)]
    sources = [(x, inside_first * plan.inputs - plan.lead, inside_first, inside_stop)]
    if inside_first > 0:
        head = _zero_padded(x, -plan.lead, inside_first * plan.inputs + plan.span)
        sources.append((head, 0, 0, inside_first))
    if inside_stop < blocks:
        start = inside_stop * plan.inputs - plan.lead
        tail = _zero_padded(x, start, (blocks - inside_stop) * plan.inputs + plan.span)
        sources.append((tail, 0, inside_stop, blocks))
    return sources


def _split(
    sources: list[tuple[np.ndarray, int, int, int]], outputs: int, inputs: int
) -> list[tuple[np.ndarray, int, int, int]]:
    """The first source's blocks (``outputs`` and ``inputs`` each) in up to ``RESAMPLE_THREADS``
    ranges, each with enough outputs to be worth a thread."""
    source, offset, first, stop = sources[0]
    parts = min(RESAMPLE_THREADS, (stop - first) * outputs // MIN_SPLIT_OUTPUTS)
    if parts <= 1:
        return sources
    bounds = [first + (stop - first) * i // parts for i in range(parts + 1)]
    ranges = itertools.pairwise(bounds)
    return [(source, offset + (a - first) * inputs, a, b) for a, b in ranges] + sources[1:]


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Shared by every caller: at most ``RESAMPLE_THREADS`` block ranges run at once."""
    return ThreadPoolExecutor(max_workers=RESAMPLE_THREADS, thread_name_prefix="audioguard-resample")


def _zero_padded(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """``x[start : start + length]`` with zeros wherever that range leaves the signal."""
    out = np.zeros(length)
    low, high = max(start, 0), min(start + length, x.shape[0])
    if high > low:
        out[low - start : high - start] = x[low:high]
    return out


def _apply_products(
    source: np.ndarray, offset: int, first: int, stop: int, plan: BlockPlan, deviation: np.ndarray
) -> None:
    """Blocks ``first`` to ``stop`` (block ``first`` reading ``source`` from ``offset``): each
    group's rows of every block as one strided matrix (blocks never overlap) times its matrix;
    ``deviation`` (blocks, outputs) becomes ``filtered + deviation * slope`` in place."""
    stride = source.strides[0]
    widest = max(group.matrix.shape[1] for group in plan.groups)
    buffer = np.empty((min(_BLOCKS_PER_PRODUCT, stop - first), widest))
    for chunk in range(first, stop, _BLOCKS_PER_PRODUCT):
        rows = min(_BLOCKS_PER_PRODUCT, stop - chunk)
        base = offset + (chunk - first) * plan.inputs
        for group in plan.groups:
            width, size = group.stop_row - group.start_row, group.matrix.shape[1] // 2
            view = as_strided(
                source[base + group.start_row :], shape=(rows, width), strides=(plan.inputs * stride, stride)
            )
            product = np.matmul(view, group.matrix, out=buffer[:rows, : 2 * size])
            target = deviation[chunk : chunk + rows, group.first_output : group.first_output + size]
            target *= product[:, size:]
            target += product[:, :size]


def _drifted(times: np.ndarray, near: np.ndarray, filt: Filter, plan: BlockPlan, length: int) -> np.ndarray:
    """Which outputs ``near`` boundaries do not read their block's weights (mask over ``near``)."""
    at = positions(times[near], filt, length)
    phase = near % plan.outputs
    expected_sample = near // plan.outputs * plan.inputs + plan.sample[phase]
    planned_left, planned_right = plan.left_offset[phase], plan.right_offset[phase]
    table, step = filt.window.shape[0], filt.step
    return (
        (at.sample != expected_sample)
        | ~_same_weights(at.left_offset, at.left_index, planned_left)
        | ~_same_weights(at.right_offset, at.right_index, planned_right)
        | ((table - at.left_offset) // step != (table - planned_left) // step)
        | ((table - at.right_offset) // step != (table - planned_right) // step)
    )


def _same_weights(offset: np.ndarray, index: np.ndarray, planned: np.ndarray) -> np.ndarray:
    """Whether a wing read at table position ``index`` gets the planned offset's weights: the same
    offset, or the neighbouring one with the position within ``BOUNDARY_SLACK`` of their common
    integer (the weights then differ by slack x the table's second difference, < 1e-12)."""
    near_boundary = np.abs(index - np.rint(index)) <= BOUNDARY_SLACK
    return (offset == planned) | ((np.abs(offset - planned) == 1) & near_boundary)
