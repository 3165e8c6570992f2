"""The annotation file of an evaluation set and its label -> anomaly group map.

Annotation: tab-separated, DCASE style, one line per event, a header line first::

    filename	onset	offset	event_label
    mix_smoke_alarm_t3_room_tone_+0dB.wav	12.250	19.180	smoke_alarm_t3

``filename`` relative to the annotation's folder; onset and offset in seconds. A recording
without any line is negative-only audio (nothing to detect: every event on it is a false alarm).

Map: a JSON object, ``{"label": "group"}``; a label mapped to ``null`` is a distractor (a sound
that must not fire, e.g. a door knock); a label absent from the map is an error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from contract.errors import InvalidConfiguration

COLUMNS: Final = ("filename", "onset", "offset", "event_label")


@dataclass(frozen=True)
class Event:
    """One annotated (or detected) event."""

    filename: str
    onset: float
    offset: float
    label: str


def write_annotations(path: Path, events: Iterable[Event]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for event in events:
            writer.writerow([event.filename, f"{event.onset:.3f}", f"{event.offset:.3f}", event.label])


def read_annotations(path: Path) -> list[Event]:
    """The events of an annotation file (InvalidConfiguration naming the line of any problem)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise InvalidConfiguration(f"annotation file {path}: {error.strerror or error}") from None
    rows = list(csv.reader(lines, delimiter="\t"))
    if not rows or tuple(cell.strip() for cell in rows[0]) != COLUMNS:
        raise InvalidConfiguration(
            f"annotation file {path}: the first line must be the header {'<TAB>'.join(COLUMNS)}"
        )
    events, problems = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            filename, onset, offset, label = (cell.strip() for cell in row)
            event = Event(filename, float(onset), float(offset), label)
        except ValueError:
            problems.append(f"line {number}: expected filename, onset, offset, event_label")
            continue
        if not 0 <= event.onset < event.offset:
            problems.append(
                f"line {number}: onset {event.onset} must be >= 0 and before offset {event.offset}"
            )
        events.append(event)
    if problems:
        raise InvalidConfiguration(f"annotation file {path}: {'; '.join(problems[:5])}")
    return events


def read_group_map(path: Path) -> dict[str, str | None]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InvalidConfiguration(f"label map {path}: {error}") from None
    if not isinstance(document, dict) or not all(
        isinstance(key, str) and (value is None or isinstance(value, str)) for key, value in document.items()
    ):
        raise InvalidConfiguration(f"label map {path}: must be an object of label -> group name or null")
    return document


def grouped(
    events: Sequence[Event], labels_to_groups: Mapping[str, str | None], known_groups: Iterable[str]
) -> list[Event]:
    """The events of labels mapped to a group, relabelled with the group (distractors dropped)."""
    known = set(known_groups)
    unmapped = sorted({event.label for event in events} - set(labels_to_groups))
    unknown = sorted({g for g in labels_to_groups.values() if g is not None} - known)
    if unmapped or unknown:
        problems = [f"label(s) {', '.join(unmapped)} missing from the map"] if unmapped else []
        problems += [f"group(s) {', '.join(unknown)} are not anomaly groups"] if unknown else []
        raise InvalidConfiguration("; ".join(problems))
    return [
        Event(event.filename, event.onset, event.offset, group)
        for event in events
        if (group := labels_to_groups[event.label]) is not None
    ]
