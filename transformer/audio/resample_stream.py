"""Resampling a live mono stream to 16 kHz, giving the numbers ``resample_to_16k`` gives the file.

The design (how the time register, the input kept and the arithmetic stay the file path's,
what may still differ, and the cost) is in docs/resampler.md.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from transformer.audio.constants import SAMPLE_RATE
from transformer.audio.resample import rate_filter, resampled_length
from transformer.audio.resample_blocks import drifted_outputs, zero_padded
from transformer.audio.resample_kernels import exact_interpolation, gathered_interpolation, positions
from transformer.audio.resample_plan import BlockPlan, block_plan, block_plan_fits

#: Outputs between restarts of the time register at an output's exact time (600 s: the longest
#: upload the service takes by default, so a stream equals any file up to it). resampy's register
#: drifts without bound (0.2 input samples after an hour at 44.1 kHz), and so would the cost of
#: the outputs it moves onto other taps; restarting at an exact time, with the history kept,
#: changes no sample's reach, so there is no seam.
ANCHOR_OUTPUTS = 600 * SAMPLE_RATE

#: Input samples kept beyond the first pending output's reach to the left (a block's lead, or the
#: widest wing): an output whose time drifted across a sample reads one sample further, with one
#: more tap.
_MARGIN = 2


class StreamingResampler:
    """Incremental ``resample_to_16k`` of one mono stream (see the module docstring).

    ``push`` returns every output whose filter reach is in, ``finish`` the rest; together they are
    ``resample_to_16k`` of the whole stream. At 16 kHz samples pass unchanged.
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self._finished = False
        self._received = 0  # input samples pushed so far
        self._emitted = 0  # outputs returned so far
        self._buffer = np.zeros(0)  # input from global sample ``_base`` to the last pushed
        self._base = 0
        self._times = np.zeros(0)  # accumulated times of outputs from global output ``_first`` on
        self._first = 0
        self._last_time: float | None = None  # the register: time of the last output timed
        if sample_rate == SAMPLE_RATE:
            return
        self._filter = filt = rate_filter(sample_rate)
        self._step = 1.0 / (SAMPLE_RATE / sample_rate)  # as resample_to_16k computes it
        common = math.gcd(sample_rate, SAMPLE_RATE)
        period = (SAMPLE_RATE // common, sample_rate // common)
        self._step_error = float(abs(Fraction(self._step) - Fraction(period[1], period[0])))
        self._step_numerator = Fraction(self._step).numerator
        self._reach = filt.window.shape[0] // filt.step  # widest wing, in input samples
        self._plan: BlockPlan | None = block_plan(filt, *period) if block_plan_fits(filt, *period) else None
        self._phases: dict[float, np.ndarray] = {}

    @property
    def buffered_samples(self) -> int:
        """Input samples held: the filter's reach on both sides plus about a block, not the stream."""
        return int(self._buffer.shape[0])

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append (n,) float64 input; returns the (k,) float64 16 kHz outputs now complete."""
        signal = np.asarray(samples, dtype=np.float64)
        if signal.ndim != 1:
            raise ValueError(f"expected a 1-D signal, got shape {signal.shape}")
        if self._finished:
            raise RuntimeError("push() after finish(): the stream has ended")
        self._received += signal.shape[0]
        if self.sample_rate == SAMPLE_RATE:
            return signal.copy()  # a copy: the caller may reuse its read buffer
        if signal.shape[0]:
            self._buffer = np.concatenate([self._buffer, signal])
        return self._emit(final=False)

    def finish(self) -> np.ndarray:
        """End the stream: the remaining outputs, wings cut at its end (resampy's edge handling),
        ``resampled_length(total input)`` outputs in all. Only once."""
        if self._finished:
            raise RuntimeError("finish() called twice: the stream has already ended")
        self._finished = True
        if self.sample_rate == SAMPLE_RATE:
            return np.zeros(0)
        output = self._emit(final=True)
        self._buffer, self._times = np.zeros(0), np.zeros(0)
        return output

    def _emit(self, final: bool) -> np.ndarray:
        """The outputs from ``_emitted`` on that are complete (all of them when ``final``)."""
        total = resampled_length(self._received, self.sample_rate)
        self._extend_times(total)
        if final:
            stop = total
        else:  # int(t) + reach < received, i.e. t < received - reach (times increase)
            pending = self._times[self._emitted - self._first :]
            stop = self._emitted + int(np.searchsorted(pending, float(self._received - self._reach)))
        if stop <= self._emitted:
            return np.zeros(0)
        output = self._blocks(self._plan, stop) if self._plan is not None else self._taps(stop)
        self._emitted = stop
        self._trim()
        return output

    def _extend_times(self, total: int) -> None:
        """Time outputs up to ``total`` (exclusive), continuing the register sequentially; at
        every ``ANCHOR_OUTPUTS``-th output it restarts from that output's exact time."""
        pieces = [self._times]
        output = self._first + self._times.shape[0]
        while output < total:
            stop = min(total, (output // ANCHOR_OUTPUTS + 1) * ANCHOR_OUTPUTS)
            if output % ANCHOR_OUTPUTS == 0:  # t[0] = 0, and each anchor's exact (integer) time
                register = np.full(stop - output, self._step)
                register[0] = float(output * self.sample_rate // SAMPLE_RATE)
                np.add.accumulate(register, out=register)
            else:  # later pushes continue from the last time
                register = np.full(stop - output + 1, self._step)
                register[0] = self._last_time
                np.add.accumulate(register, out=register)
                register = register[1:]
            self._last_time = float(register[-1])
            pieces.append(register)
            output = stop
        if len(pieces) > 1:
            self._times = np.concatenate(pieces)

    def _blocks(self, plan: BlockPlan, stop: int) -> np.ndarray:
        """Outputs ``_emitted`` to ``stop``: ``block_interpolation``'s operations, with the times in
        the frame of block ``_first // outputs`` (a block before the first pending one, so that no
        drifted time there falls below 0, where ``int`` would not floor), from the block holding
        output ``_emitted`` on."""
        filt = self._filter
        origin = self._first // plan.outputs * plan.inputs  # the frame's input sample 0
        first_block = (self._emitted - self._first) // plan.outputs  # 1, or 0 at the stream's start
        skipped = first_block * plan.outputs
        blocks = -(-(stop - self._first) // plan.outputs) - first_block
        times = self._times[: stop - self._first] - float(origin)  # exact: an integer origin
        count = times.shape[0] - skipped
        grid = np.empty((blocks, plan.outputs))
        grid.reshape(-1)[:count] = times[skipped:]
        grid.reshape(-1)[count:] = times[-1]
        deviation = grid - (np.arange(first_block, first_block + blocks) * float(plan.inputs))[:, None]
        deviation -= plan.sample
        deviation *= filt.scale
        deviation *= filt.taps_per_zero_crossing
        deviation -= plan.left_index
        # one copy of the blocks' spans, zeros before the stream's start and after its end (the
        # file path's edge padding), so each column group is one product over a strided view
        start = origin + first_block * plan.inputs - plan.lead - self._base
        source = zero_padded(self._buffer, start, (blocks - 1) * plan.inputs + plan.span)
        for group in plan.groups:
            width, size = group.stop_row - group.start_row, group.matrix.shape[1] // 2
            view = np.ndarray(
                (blocks, width), buffer=source, offset=group.start_row * source.itemsize,
                strides=(plan.inputs * source.itemsize, source.itemsize),
            )  # fmt: skip
            product = view @ group.matrix
            target = deviation[:, group.first_output : group.first_output + size]
            target *= product[:, size:]
            target += product[:, :size]
        y = deviation.reshape(-1)[:count]
        # the outputs near a boundary that the drift moved across it, from their taps
        near = (skipped + np.arange(blocks) * plan.outputs)[:, None] + self._near_phases(plan, stop)
        near = near[(near >= self._emitted - self._first) & (near < times.shape[0])]
        if near.shape[0]:
            near = near[drifted_outputs(times, near, filt, plan, self._received - origin)]
        outliers = near
        if outliers.shape[0]:
            at = positions(self._times[outliers] - float(self._base), filt, self._buffer.shape[0])
            # a push's few drifted outputs cost least tap by tap; once the register has drifted by
            # table entries (after ~10 min at 44.1 kHz nearly every output), grouped by phase
            interpolate = gathered_interpolation if outliers.shape[0] > plan.outputs else exact_interpolation
            y[outliers - skipped] = interpolate(self._buffer, at, np.arange(outliers.shape[0]), filt)
        return y[self._emitted - self._first - skipped :]

    def _near_phases(self, plan: BlockPlan, count: int) -> np.ndarray:
        """``plan.boundary_phases`` for ``drift_bound`` of the stream's first ``count`` times (not a
        push's shifted ones), rounded up to a power of two: a superset, built once per power."""
        # the most steps any pending output is past its anchor (the register's exact start)
        crosses = (count - 1) // ANCHOR_OUTPUTS != self._emitted // ANCHOR_OUTPUTS
        since = ANCHOR_OUTPUTS if crosses else (count - 1) % ANCHOR_OUTPUTS + 1
        if since < 2 or (self._step_error == 0 and (since - 1) * self._step_numerator < 2**53):
            return np.zeros(0, dtype=np.int64)  # every time exact: no drift
        last = self._times[count - 1 - self._first]
        drift = since * (float(np.spacing(last)) / 2 + self._step_error)
        bound = math.ldexp(1.0, math.frexp(drift)[1])
        if bound not in self._phases:
            self._phases[bound] = plan.boundary_phases(bound, self._filter)
        return self._phases[bound]

    def _taps(self, stop: int) -> np.ndarray:
        """Outputs ``_emitted`` to ``stop`` from their taps (rates without a block plan)."""
        times = self._times[self._emitted - self._first : stop - self._first] - float(self._base)
        at = positions(times, self._filter, self._buffer.shape[0])
        return gathered_interpolation(self._buffer, at, np.arange(times.shape[0]), self._filter)

    def _trim(self) -> None:
        """Drop the input and times that no pending output (nor the block history) needs."""
        if self._plan is not None:  # the block frame starts a block before the first pending output
            block = self._emitted // self._plan.outputs
            first = max(0, block - 1) * self._plan.outputs
            base = max(self._base, block * self._plan.inputs - self._plan.lead - _MARGIN)
        else:
            first = self._emitted
            pending = self._times[first - self._first :]
            earliest = float(pending[0]) if pending.shape[0] else self._last_time or 0.0
            base = max(self._base, int(earliest) - self._reach - _MARGIN)  # the left wing's reach
        self._times = self._times[first - self._first :].copy()  # copies let long arrays go
        self._buffer = self._buffer[base - self._base :].copy()
        self._first, self._base = first, base
