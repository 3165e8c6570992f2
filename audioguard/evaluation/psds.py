"""PSDS2 (DCASE 2021 task 4, scenario 2: detection-oriented) through ``psds_eval``, the reference
implementation: DTC 0.1, GTC 0.1, CTTC 0.3, alpha_ct 0.5, alpha_st 0, max eFPR 100 per hour.

``psds_eval`` 0.5.3 (the last release) stops under NumPy 2 in ``PSDSEval._auc``: ``int()`` of a
one-element 2-D array, an error since NumPy 2.0 (``int(np.argwhere(...))``). ``_PSDSEval``
replaces that one method with the same staircase area, the index taken as ``[0, 0]``; the rest
(matching, the criteria, the ROC, eTPR) is the library's.

Its operating points are the service's events at a sweep of thresholds (``replay``): each
point one detection table, all groups at the same threshold.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Final

from audioguard.evaluation.annotations import COLUMNS, Event

PSDS2: Final = {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3}
ALPHA_CT: Final = 0.5
ALPHA_ST: Final = 0.0
MAX_EFPR: Final = 100.0


def _reference_class() -> type:
    import numpy as np
    from psds_eval import PSDSEval

    class _PSDSEval(PSDSEval):  # type: ignore[misc]
        @staticmethod
        def _auc(
            x: np.ndarray, y: np.ndarray, max_x: float | None = None, decreasing_y: bool = False
        ) -> float:
            # the library's staircase area (checks as there), NumPy 2's scalar conversion fixed
            assert x.size == y.size and not np.any(np.diff(x) < 0)
            assert decreasing_y or not np.any(np.diff(y) < 0)
            _x, _y = np.array(x), np.array(y)
            if max_x is None:
                max_x = float(_x.max())
            if max_x not in _x:
                _x = np.sort(np.concatenate([_x, [max_x]]))
                max_i = int(np.argwhere(_x == max_x)[0, 0])
                _y = np.concatenate([_y[:max_i], [_y[max_i - 1]], _y[max_i:]])
            valid = _x <= max_x
            return float(np.sum(np.diff(_x[valid]) * np.array(_y[valid])[:-1]))

    return _PSDSEval


def merged(events: Sequence[Event]) -> list[Event]:
    """Overlapping events of one file and label joined (the library refuses them: two of the
    service's events of a group can overlap where the second's placed onset precedes the
    first's end)."""
    out: list[Event] = []
    for event in sorted(events, key=lambda e: (e.filename, e.label, e.onset)):
        last = out[-1] if out else None
        if (
            last
            and (last.filename, last.label) == (event.filename, event.label)
            and event.onset <= last.offset
        ):
            out[-1] = Event(last.filename, last.onset, max(last.offset, event.offset), last.label)
        else:
            out.append(event)
    return out


def _table(events: Sequence[Event]):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows = [(e.filename, e.onset, e.offset, e.label) for e in events]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def psds2(
    reference: Sequence[Event],
    operating_points: Sequence[Sequence[Event]],
    durations: Mapping[str, float],
    groups: Sequence[str],
    *,
    alpha_ct: float = ALPHA_CT,
) -> float:
    """PSDS2 of ``groups`` (nan when no group has an annotated event)."""
    import numpy as np
    import pandas as pd

    reference = [e for e in reference if e.label in groups]
    present = sorted({e.label for e in reference})
    if not present:
        return math.nan
    metadata = pd.DataFrame(list(durations.items()), columns=["filename", "duration"])
    evaluation = _reference_class()(
        **PSDS2, ground_truth=_table(reference), metadata=metadata, class_names=present
    )
    with warnings.catch_warnings():  # pandas' FutureWarnings from inside the library
        warnings.simplefilter("ignore")
        for index, detections in enumerate(operating_points):
            kept = [e for e in detections if e.label in present]
            evaluation.add_operating_point(_table(merged(kept)), info={"point": index})
        if evaluation.num_operating_points() == 0:
            return 0.0
        if len(present) > 1:
            return float(evaluation.psds(alpha_ct=alpha_ct, alpha_st=ALPHA_ST, max_efpr=MAX_EFPR).value)
        # one class: no cross-trigger to weigh (the library's eFPR is then NaN): its TPR-FPR
        # ROC, which is the eFPR ROC when alpha_ct is 0, and its area as ``psds`` takes it
        roc = evaluation.psd_roc_curves(0.0)[0]
        tpr = np.nan_to_num(roc.yp[0], nan=0.0)
        return float(evaluation._auc(roc.xp, tpr, MAX_EFPR) / MAX_EFPR)
