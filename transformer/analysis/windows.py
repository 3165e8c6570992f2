"""From a recording's embeddings to classifier windows of 10 embeddings (docs/reference/model.md §4).

MAX semantics: ``start_time`` picks the first example, the clip is cropped to
10 embeddings and repeated cyclically when shorter. Our extension classifies
every 10-embedding window of a long recording (``all_windows``) so that an
event at minute 3 is found, with a configurable hop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, EXAMPLE_SECONDS
from contract.errors import InvalidParameter, StartTimeOutOfRange

# int(2.88 / 0.96) is 2 in floating point; a start given to the printed
# precision of an example boundary must select that example.
_BOUNDARY_EPSILON = 1e-9


@dataclass(frozen=True)
class Windows:
    """Classifier input windows and where they lie in the recording.

    Attributes:
        embeddings: (W, 10, 128) uint8 quantised embeddings.
        start_seconds: (W,) float64 start of each window in the recording.
        end_seconds: (W,) float64 end of the audio each window covers (a
            cyclically repeated short clip ends where the clip ends).
    """

    embeddings: np.ndarray
    start_seconds: np.ndarray
    end_seconds: np.ndarray

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


def start_example(start_time: float, num_examples: int) -> int:
    """Index of the example ``start_time`` seconds falls in; 400 outside the clip."""
    if not math.isfinite(start_time) or start_time < 0:
        raise StartTimeOutOfRange(
            f"Invalid start time: value outside audio clip ({start_time} s; it must be >= 0)"
        )
    index = int(start_time / EXAMPLE_SECONDS + _BOUNDARY_EPSILON)
    if index >= num_examples:
        raise StartTimeOutOfRange(
            f"Invalid start time: value outside audio clip ({start_time} s; the clip's "
            f"last example starts at {(num_examples - 1) * EXAMPLE_SECONDS:.2f} s)"
        )
    return index


def _window_starts(first: int, num_examples: int, hop: int, end_aligned: bool = True) -> list[int]:
    remaining = num_examples - first
    if remaining <= EMBEDDINGS_PER_WINDOW:
        return [first]
    starts = list(range(first, num_examples - EMBEDDINGS_PER_WINDOW + 1, hop))
    # cover the tail with a window that ends at the last example
    if end_aligned and starts[-1] + EMBEDDINGS_PER_WINDOW < num_examples:
        starts.append(num_examples - EMBEDDINGS_PER_WINDOW)
    return starts


def select_windows(
    embeddings: np.ndarray,
    *,
    start_time: float = 0.0,
    all_windows: bool = False,
    hop: int = EMBEDDINGS_PER_WINDOW,
    end_aligned: bool = True,
) -> Windows:
    """Cut (N, 128) uint8 embeddings into classifier windows.

    Without ``all_windows`` the result is MAX's single window: the 10
    embeddings from ``start_time`` on, repeated cyclically (``rows[i % n]``)
    when fewer remain. With it, windows start every ``hop`` embeddings from
    ``start_time`` and (``end_aligned``) a last one is aligned to the end of the
    recording; the anomaly scan has none, as a live source's windows have none.
    """
    if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_SIZE:
        raise ValueError(f"expected (N, {EMBEDDING_SIZE}) embeddings, got {embeddings.shape}")
    if not 1 <= hop <= EMBEDDINGS_PER_WINDOW:
        raise InvalidParameter(f"window hop must be between 1 and {EMBEDDINGS_PER_WINDOW}, got {hop}")
    num_examples = embeddings.shape[0]
    first = start_example(start_time, num_examples)
    starts = _window_starts(first, num_examples, hop, end_aligned) if all_windows else [first]

    offsets = np.arange(EMBEDDINGS_PER_WINDOW)
    rows = []
    ends = []
    for start in starts:
        available = min(EMBEDDINGS_PER_WINDOW, num_examples - start)
        rows.append(start + offsets % available)
        ends.append(start + available)
    index = np.stack(rows)
    return Windows(
        embeddings=embeddings[index],
        start_seconds=np.asarray(starts, dtype=np.float64) * EXAMPLE_SECONDS,
        end_seconds=np.asarray(ends, dtype=np.float64) * EXAMPLE_SECONDS,
    )
