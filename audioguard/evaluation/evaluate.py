"""``audioguard evaluate``'s figures: the live pipeline over a labelled set, per privacy method.

Per anomaly group of the label map: event-based precision, recall and F1 of the service's own
events (onset collar), PSDS2 over a threshold sweep, false alarms per hour on the audio without
any event of the group, the onset error and the alert delay (when the event is raised after
the sound began) at the median and the 95th percentile, and recall against false alarms per
hour along the sweep (the plot).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from audioguard.evaluation.annotations import Event, grouped, read_annotations, read_group_map
from audioguard.evaluation.drive import Heard, run_recordings
from audioguard.evaluation.metrics import event_counts, false_alarms_per_hour, match, percentiles
from audioguard.evaluation.psds import psds2
from audioguard.evaluation.replay import as_events, replay
from contract.errors import InvalidConfiguration

if TYPE_CHECKING:
    from audioguard.offline import OfflineClassifier

AUDIO_SUFFIXES: Final = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus")
#: the thresholds of the sweep (every group at once), besides each group's configured one
SWEEP: Final = tuple(round(float(t), 2) for t in np.arange(0.05, 1.0, 0.05))


@dataclass(frozen=True)
class LabelledSet:
    """Recordings, their annotated events (labelled with anomaly groups) and the groups measured."""

    files: tuple[Path, ...]
    reference: tuple[Event, ...]
    groups: tuple[str, ...]
    distractors: int  # annotated events of labels mapped to no group

    @property
    def names(self) -> list[str]:
        return [path.name for path in self.files]


def load_set(annotations: Path, label_map: Path, known_groups: Sequence[str]) -> LabelledSet:
    """Every audio file in the annotation file's folder, its events mapped to groups
    (InvalidConfiguration names what is wrong: unknown labels or groups, files missing)."""
    events = read_annotations(annotations)
    mapping = read_group_map(label_map)
    folder = annotations.parent
    files = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES))
    missing = sorted({e.filename for e in events} - {p.name for p in files})
    if missing:
        raise InvalidConfiguration(f"{annotations}: no audio file {', '.join(missing[:5])} in {folder}")
    if not files:
        raise InvalidConfiguration(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    try:
        reference = grouped(events, mapping, known_groups)
    except InvalidConfiguration as error:
        raise InvalidConfiguration(f"label map {label_map}: {error.message}") from None
    groups = tuple(sorted({g for g in mapping.values() if g is not None}))
    return LabelledSet(files, tuple(reference), groups, len(events) - len(reference))


def _group_figures(
    group: str,
    labelled: LabelledSet,
    detected: Sequence[Event],
    alerts: Mapping[Event, float],
    durations: Mapping[str, float],
    collar: float,
) -> dict[str, Any]:
    counts = event_counts(labelled.reference, detected, group, collar)
    rate, hours = false_alarms_per_hour(labelled.reference, detected, group, durations)
    reference = [e for e in labelled.reference if e.label == group]
    pairs = match(reference, [e for e in detected if e.label == group], collar)
    delays = [alerts[d] - r.onset for r, d in pairs if d in alerts]
    onset = percentiles(abs(error) for error in counts.onset_errors)
    delay = percentiles(delays)
    return {
        "events": len(reference),
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "precision": counts.precision,
        "recall": counts.recall,
        "f1": counts.f1,
        "false_alarms_per_hour": rate,
        "negative_hours": hours,
        "onset_error_p50": onset[0],
        "onset_error_p95": onset[1],
        "alert_delay_p50": delay[0],
        "alert_delay_p95": delay[1],
    }


def _sweep(
    labelled: LabelledSet, heard: Sequence[Heard], durations: Mapping[str, float], collar: float
) -> dict[str, Any]:
    """Each group's recall and false alarms per hour at each threshold of the sweep, and PSDS2."""
    points: list[list[Event]] = []
    for threshold in SWEEP:
        at = dict.fromkeys(labelled.groups, threshold)
        points.append(
            [e for name, h in zip(labelled.names, heard, strict=True) for e in as_events(name, replay(h, at))]
        )
    curves: dict[str, list[dict[str, float]]] = {}
    psds: dict[str, float] = {}
    for group in labelled.groups:
        curves[group] = [
            {
                "threshold": threshold,
                "recall": event_counts(labelled.reference, point, group, collar).recall,
                "false_alarms_per_hour": false_alarms_per_hour(labelled.reference, point, group, durations)[
                    0
                ],
            }
            for threshold, point in zip(SWEEP, points, strict=True)
        ]
        psds[group] = psds2(labelled.reference, points, durations, [group])
    overall = psds2(labelled.reference, points, durations, labelled.groups)
    return {"curves": curves, "psds2": psds, "psds2_all": overall}


def evaluate_method(
    classifier: OfflineClassifier, labelled: LabelledSet, privacy: str, collar: float, **run: Any
) -> dict[str, Any]:
    """The figures of one privacy method (``run``: ``run_recordings``' options)."""
    started = time.perf_counter()
    heard = asyncio.run(run_recordings(classifier, labelled.files, privacy, **run))
    pipeline_seconds = time.perf_counter() - started
    durations = {
        name: _duration(path, h) for name, path, h in zip(labelled.names, labelled.files, heard, strict=True)
    }
    detected: list[Event] = []
    alerts: dict[Event, float] = {}
    for name, h in zip(labelled.names, heard, strict=True):
        for change in h.events:
            event = as_events(name, [change])[0]
            detected.append(event)
            if change.event_id in h.alerts:
                alerts[event] = h.alerts[change.event_id]
    groups = {g: _group_figures(g, labelled, detected, alerts, durations, collar) for g in labelled.groups}
    sweep = _sweep(labelled, heard, durations, collar)
    for group, figures in groups.items():
        figures["psds2"] = sweep["psds2"][group]
    return {
        "groups": groups,
        "psds2_all_groups": sweep["psds2_all"],
        "curves": sweep["curves"],
        "other_events": sum(1 for e in detected if e.label not in labelled.groups),
        "events": [
            {"filename": e.filename, "onset": e.onset, "offset": e.offset, "group": e.label} for e in detected
        ],
        "pipeline_seconds": pipeline_seconds,
        "audio_seconds": sum(durations.values()),
    }


def _duration(path: Path, heard: Heard) -> float:
    """The recording's duration from its header, else up to the last window the pipeline took."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, sf.LibsndfileError):
        return heard.seconds


def clean(value: Any) -> Any:
    """JSON-ready: NaN becomes null, floats rounded to 4 decimals."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value
