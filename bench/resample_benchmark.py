"""Resampling to 16 kHz: resampy's compiled kernel (numba, the path before) against the numpy
kernels (transformer/audio/resample_blocks.py and resample_kernels.py), in one run.

    python -m bench.resample_benchmark [--seconds 10] [--repeats 5]

For each rate: a mono clip of noise plus a chirp, both paths on the same times and table, the
largest absolute difference, and the best of ``--repeats`` timings (after one warm-up call each,
which also compiles numba and builds the block plan). Needs resampy (the dev venv has it).
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.core_benchmark import best_seconds
from bench.load_benchmark import cpu_flags
from transformer.audio.resample import kaiser_best_v02_filter, resample_to_16k

RATES = (8_000, 11_025, 22_050, 24_000, 32_000, 44_056, 44_100, 48_000, 96_000)


def compiled_kernel(signal: np.ndarray, rate: int) -> np.ndarray:
    """The path before: accumulated times and the rebuilt table through resampy's numba kernel."""
    from resampy.interpn import resample_f_s

    count = signal.shape[0] * 16_000 // rate
    table, precision, _ = kaiser_best_v02_filter()
    ratio = 16_000 / rate
    if ratio < 1:
        table = ratio * table
    increments = np.full(count, 1.0 / ratio)
    increments[:1] = 0.0
    out = np.zeros(count)
    delta = np.diff(table, append=table[-1])
    resample_f_s(signal, np.add.accumulate(increments), table, delta, precision, min(1.0, ratio), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {cpu_flags()}")
    print(f"{args.seconds:g}-s mono clips, best of {args.repeats}")
    print(f"{'rate':>7} {'numba ms':>9} {'numpy ms':>9} {'speed-up':>9} {'max |diff|':>11}")
    rng = np.random.default_rng(0)
    for rate in RATES:
        frames = int(args.seconds * rate)
        times = np.arange(frames) / rate
        signal = 0.3 * rng.standard_normal(frames) + 0.3 * np.sin(2 * np.pi * (50 + 350 * times) * times)
        before = best_seconds(lambda signal=signal, rate=rate: compiled_kernel(signal, rate), args.repeats)
        after = best_seconds(lambda signal=signal, rate=rate: resample_to_16k(signal, rate), args.repeats)
        difference = float(np.max(np.abs(resample_to_16k(signal, rate) - compiled_kernel(signal, rate))))
        timings = f"{1000 * before:>9.1f} {1000 * after:>9.1f} {before / after:>8.1f}x"
        print(f"{rate:>7} {timings} {difference:>11.1e}")


if __name__ == "__main__":
    main()
