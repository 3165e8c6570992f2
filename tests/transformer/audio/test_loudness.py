"""Per-example loudness for the minimum-volume gate."""

from __future__ import annotations

import numpy as np
import pytest

from transformer.audio.loudness import SILENCE_DBFS, example_dbfs, window_dbfs


def test_levels_of_known_signals() -> None:
    t = np.arange(3 * 15_360 + 240) / 16_000
    sine = np.sin(2 * np.pi * 440 * t)  # RMS 1/sqrt(2) -> -3.01 dBFS
    quiet = 0.01 * sine  # 40 dB lower
    samples = np.concatenate([sine[:15_360], quiet[:15_360], np.zeros(15_360 + 240)])
    levels = example_dbfs(samples, 3)
    # each example spans 15,600 samples: 15,360 of its own and 240 of the next
    assert levels[0] == pytest.approx(10 * np.log10((15_360 * 0.5 + 240 * 0.5e-4) / 15_600), abs=0.01)
    assert levels[1] == pytest.approx(10 * np.log10(15_360 * 0.5e-4 / 15_600), abs=0.01)
    assert levels[2] == SILENCE_DBFS


def test_window_level_is_its_loudest_example() -> None:
    levels = np.array([-60.0, -10.0, -70.0, -80.0])
    starts = np.array([0.0, 2 * 0.96])
    ends = np.array([2 * 0.96, 4 * 0.96])
    assert window_dbfs(levels, starts, ends).tolist() == [-10.0, -70.0]
