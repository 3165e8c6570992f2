"""Polyphase resampling as matrix products per block of input (for rate ratios with short periods).

The plan of a rate (``resample_plan``) maps a block's input span to its outputs' two columns
(filter, slope). All outputs are then ``view @ matrix`` (BLAS) over strided views of the input
(zero-padded copies only for the few blocks at either end: zero padding is resampy's edge
handling, a wing cut by the signal's end sums nothing beyond it), and each output adds its own
factor's deviation: ``filtered + (left_eta - planned_eta) * slope``.

The accumulated float64 times that resampy uses drift from the plan's exact positions, by at most
``drift_bound``. Only outputs whose planned position lies within that bound of a boundary (of an
input sample, or of a table offset of either wing) can read another sample or offset than
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

import numpy as np
from numpy.lib.stride_tricks import as_strided

from transformer.audio.resample_kernels import Filter, gathered_interpolation, positions
from transformer.audio.resample_plan import BlockPlan, drift_bound

#: How far (in table entries) a position may sit from the integer between two offsets and still be
#: read with the other offset's weights (see ``_same_weights``).
BOUNDARY_SLACK = 1e-6
#: Threads a long signal's block products are split across (one per core, at most two: the
#: service runs one BLAS thread per call and concurrent requests fill the cores anyway).
RESAMPLE_THREADS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
#: Fewest outputs worth a thread of their own (about a second of audio, ~0.6 ms of products).
MIN_SPLIT_OUTPUTS = 16_000
#: Blocks per matrix product, so each product's result stays small. Products cover fixed ranges
#: of block indices (multiples of this), and threads split only there: BLAS may round a row
#: differently in a product of another height, so the same products make the same bits.
_BLOCKS_PER_PRODUCT = 512


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
        outliers = near[drifted_outputs(times, near, filt, plan, x.shape[0])]
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
        return [(zero_padded(x, -plan.lead, blocks * plan.inputs + plan.span), 0, 0, blocks)]
    sources = [(x, inside_first * plan.inputs - plan.lead, inside_first, inside_stop)]
    if inside_first > 0:
        head = zero_padded(x, -plan.lead, inside_first * plan.inputs + plan.span)
        sources.append((head, 0, 0, inside_first))
    if inside_stop < blocks:
        start = inside_stop * plan.inputs - plan.lead
        tail = zero_padded(x, start, (blocks - inside_stop) * plan.inputs + plan.span)
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
    step = _BLOCKS_PER_PRODUCT  # split on the products' grid only
    cuts = {
        min(stop, max(first, round((first + (stop - first) * i / parts) / step) * step))
        for i in range(1, parts)
    }
    bounds = sorted({first, stop} | cuts)
    ranges = itertools.pairwise(bounds)
    return [(source, offset + (a - first) * inputs, a, b) for a, b in ranges] + sources[1:]


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Shared by every caller: at most ``RESAMPLE_THREADS`` block ranges run at once."""
    return ThreadPoolExecutor(max_workers=RESAMPLE_THREADS, thread_name_prefix="audioguard-resample")


def zero_padded(x: np.ndarray, start: int, length: int) -> np.ndarray:
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
    grid = itertools.chain(
        [first], range((first // _BLOCKS_PER_PRODUCT + 1) * _BLOCKS_PER_PRODUCT, stop, _BLOCKS_PER_PRODUCT)
    )
    for chunk in grid:
        rows = min(_BLOCKS_PER_PRODUCT - chunk % _BLOCKS_PER_PRODUCT, stop - chunk)
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


def drifted_outputs(
    times: np.ndarray, near: np.ndarray, filt: Filter, plan: BlockPlan, length: int
) -> np.ndarray:
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
