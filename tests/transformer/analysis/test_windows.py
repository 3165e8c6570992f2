"""MAX's clip handling (start_time, crop, cyclic repeat) and sliding windows."""

from __future__ import annotations

import numpy as np
import pytest

from contract.errors import InvalidParameter, StartTimeOutOfRange
from transformer.analysis.windows import select_windows


def _embeddings(n: int) -> np.ndarray:
    """Row i is filled with the value i, so a window's rows name their origin."""
    return np.repeat(np.arange(n, dtype=np.uint8)[:, None], 128, axis=1)


def _origins(windows) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return windows.embeddings[:, :, 0].astype(int).tolist()


def test_short_clip_repeats_cyclically_to_ten() -> None:
    windows = select_windows(_embeddings(3))
    assert _origins(windows) == [[0, 1, 2, 0, 1, 2, 0, 1, 2, 0]]
    assert windows.start_seconds.tolist() == [0.0]
    assert windows.end_seconds.tolist() == pytest.approx([3 * 0.96])


def test_long_clip_keeps_only_first_ten_by_default() -> None:
    windows = select_windows(_embeddings(25))
    assert _origins(windows) == [list(range(10))]


def test_start_time_crops_like_max() -> None:
    # int(start / 0.96): 2.0 s falls in example 2; 2.88 s is exactly example 3
    assert _origins(select_windows(_embeddings(25), start_time=2.0))[0][0] == 2
    assert _origins(select_windows(_embeddings(25), start_time=2.88))[0][0] == 3
    # from example 20 only 5 remain: repeated cyclically
    assert _origins(select_windows(_embeddings(25), start_time=20 * 0.96)) == [[20, 21, 22, 23, 24] * 2]


@pytest.mark.parametrize("start", [-0.1, 25 * 0.96, 1e9, float("nan"), float("inf")])
def test_start_outside_clip_is_a_400(start: float) -> None:
    with pytest.raises(StartTimeOutOfRange, match="outside audio clip") as caught:
        select_windows(_embeddings(25), start_time=start)
    assert caught.value.status_code == 400


def test_all_windows_cover_the_whole_recording() -> None:
    windows = select_windows(_embeddings(25), all_windows=True)
    assert [row[0] for row in _origins(windows)] == [0, 10, 15]  # last aligned to the end
    assert all(row == list(range(row[0], row[0] + 10)) for row in _origins(windows))
    assert windows.start_seconds.tolist() == pytest.approx([0.0, 9.6, 14.4])
    assert windows.end_seconds.tolist() == pytest.approx([9.6, 19.2, 24.0])


def test_all_windows_with_hop_one_and_exact_multiple() -> None:
    assert len(select_windows(_embeddings(12), all_windows=True, hop=1)) == 3
    assert [r[0] for r in _origins(select_windows(_embeddings(20), all_windows=True))] == [0, 10]


def test_event_late_in_a_long_recording_gets_its_own_window() -> None:
    # minute 3 = example 187; some window must contain it
    windows = select_windows(_embeddings(250), all_windows=True)
    assert any(187 in row for row in _origins(windows))


def test_bad_hop_is_rejected() -> None:
    with pytest.raises(InvalidParameter, match="hop"):
        select_windows(_embeddings(20), all_windows=True, hop=0)
