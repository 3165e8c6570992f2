"""``dp_noise`` on a live stream: Laplace noise scaled to the peak of each stream-aligned block.

A file gets noise relative to its own peak; a stream has no end to take the peak of, so it
is cut into blocks of the stream's ``window`` (aligned to the stream, not to the chunks it
arrives in) and each block gets noise relative to its peak, exactly as the file method
treats a clip of that length (a stream shorter than one block comes out as the file method
gives it). With ``lowpass_hz`` the noisy signal is filtered across block borders by one
linear-phase FIR with the file method's response (``LOWPASS_TAPS``, delay compensated), in the
signal's own scale (``x + peak * noise``, then clipped to the block's peak), so a change of
peak between blocks changes the noise level but never cuts the waveform: no seams.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Final

import numpy as np

from transformer.privacy.dp_noise import laplace_noise
from transformer.privacy.randomness import PrivacyRandom
from transformer.privacy.stream_buffer import SampleBuffer

#: Half the low-pass FIR's length (16 ms at 16 kHz): well past the 200-Hz raised-cosine transition.
LOWPASS_HALF_TAPS: Final = 256


@cache
def lowpass_fir(cutoff_hz: float, sample_rate: int, half_taps: int = LOWPASS_HALF_TAPS) -> np.ndarray:
    """(2 * half_taps + 1,) float64 linear-phase FIR with ``dp_noise``'s low-pass response.

    The file method's raised-cosine response sampled finely, turned into an impulse response,
    cut to the taps and tapered by a Hann window; unit gain at 0 Hz.
    """
    size = 16 * (2 * half_taps + 1)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    response = 0.5 + 0.5 * np.cos(np.pi * np.clip((freqs - cutoff_hz) / 200.0, 0.0, 1.0))
    impulse = np.roll(np.fft.irfft(response, n=size), half_taps)[: 2 * half_taps + 1]
    impulse *= np.hanning(2 * half_taps + 3)[1:-1]
    impulse = (impulse + impulse[::-1]) / 2  # exactly symmetric: a delay of exactly half_taps
    impulse /= impulse.sum()
    impulse.setflags(write=False)
    return impulse


class StreamingNoise:
    """Adds ``dp_noise`` to a stream block by block (see the module)."""

    def __init__(
        self, params: Mapping[str, float], rng: PrivacyRandom, sample_rate: int, window_samples: int
    ) -> None:
        self._params = {name: params[name] for name in ("epsilon", "sensitivity")}
        self._rng = rng
        self._block = max(1, window_samples)
        self._lowpass = (
            lowpass_fir(float(params["lowpass_hz"]), sample_rate) if "lowpass_hz" in params else None
        )
        self._half_taps = LOWPASS_HALF_TAPS if self._lowpass is not None else 0
        self._x = SampleBuffer()
        self._noisy = SampleBuffer()  # x + peak * noise, before the low-pass
        self._peaks: list[float] = []  # per block, while its samples may still be emitted
        self._emitted = 0
        self.latency_samples = self._block + self._half_taps

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._x.append(samples)
        pieces = []
        while self._x.received - self._noisy.received >= self._block:
            pieces.append(self._add_noise(self._noisy.received + self._block))
        return self._emit(pieces)

    def finish(self) -> np.ndarray:
        pieces = [self._add_noise(self._x.received)] if self._x.received > self._noisy.received else []
        self._x.finish()
        self._noisy.finish()
        return self._emit(pieces)

    def _add_noise(self, stop: int) -> np.ndarray:
        """Noise for the next block ``[noisy.received, stop)``; its final output when unfiltered."""
        block = self._x.read(self._noisy.received, stop)
        self._x.forget_before(stop)
        if self._lowpass is None:
            out = laplace_noise(block, self._params, self._rng, 0)
            self._noisy.append(out)
            self._noisy.forget_before(self._noisy.received)  # only its length counts here
            return out
        peak = float(np.max(np.abs(block)))
        noise = self._rng.laplace(self._params["sensitivity"] / self._params["epsilon"], block.shape[0])
        self._noisy.append(block + peak * noise if peak > 0 else block)
        self._peaks.append(peak)
        return np.zeros(0)

    def _emit(self, pieces: list[np.ndarray]) -> np.ndarray:
        if self._lowpass is None:
            return np.concatenate(pieces) if pieces else np.zeros(0)
        ready = self._noisy.received if self._noisy.finished else self._noisy.received - self._half_taps
        if ready <= self._emitted:
            return np.zeros(0)
        half = self._half_taps
        context = self._noisy.read_zero_padded(self._emitted - half, ready + half)
        filtered = np.convolve(context, self._lowpass, mode="valid")
        # each sample is clipped to its own block's peak
        block_of = (np.arange(self._emitted, ready) // self._block) - (self._emitted // self._block)
        limit = np.asarray(self._peaks)[block_of]
        out = np.clip(filtered, -limit, limit)
        done_blocks = ready // self._block - self._emitted // self._block
        del self._peaks[:done_blocks]
        self._emitted = ready
        self._noisy.forget_before(ready - half)
        return out
