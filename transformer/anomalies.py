"""Home-safety anomalies from classifier scores: groups, thresholds, loudness gate.

A *group* (glass_break, scream, smoke_fire_alarm, ...) maps several AudioSet
classes to one user label. It fires in a window when the highest score among
its members reaches the group's threshold (``>=``). Windows quieter than the
optional loudness gate are skipped. Everything here is a pure function of its
inputs; the shipped groups live in ``transformer/data/anomaly_groups.json`` and
an operator file can replace, add, disable or retune them (format in
docs/anomalies-and-dht.md). A bad configuration raises ``InvalidConfiguration``
naming every problem, so the service refuses to start.

This is a supplement to certified alarms, not a replacement for them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np

from contract.constants import NUM_CLASSES
from contract.errors import InvalidConfiguration
from transformer.labels import Labels, load_labels

GROUPS_FILE: Final = "anomaly_groups.json"
#: group names end up in metric labels and DHT topic uuids: keep them plain
_NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOP_LEVEL_KEYS: Final = frozenset({"description", "groups", "replace_defaults"})
_GROUP_KEYS: Final = frozenset({"name", "label", "members", "threshold", "enabled"})
_REQUIRED_FOR_NEW: Final = ("label", "members", "threshold")


@dataclass(frozen=True)
class AnomalyGroup:
    """One user-facing anomaly and the AudioSet classes that signal it.

    Attributes:
        name: identifier (``[A-Za-z0-9_-]``), e.g. ``glass_break``.
        label: what a person is told, e.g. "Glass breaking".
        members: AudioSet output indices (0..526).
        threshold: the group fires when its best member scores ``>=`` this, in (0, 1].
        enabled: disabled groups never fire.
    """

    name: str
    label: str
    members: tuple[int, ...]
    threshold: float
    enabled: bool = True


@dataclass(frozen=True)
class TriggeringClass:
    """A member class whose score reached the group threshold in the window."""

    index: int
    label: str
    score: float


@dataclass(frozen=True)
class Anomaly:
    """A group that fired in one classifier window.

    Attributes:
        group: the group's name.
        label: the group's user label.
        score: the highest member score in the window.
        threshold: the group's threshold at detection time.
        start_seconds, end_seconds: where the window lies in the recording.
        window_index: position of the window in the analysis (0-based).
        triggered_by: members at or above the threshold, best first (never empty).
    """

    group: str
    label: str
    score: float
    threshold: float
    start_seconds: float
    end_seconds: float
    window_index: int
    triggered_by: tuple[TriggeringClass, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (the shape used in responses and DHT messages)."""
        return {
            "group": self.group,
            "label": self.label,
            "score": self.score,
            "threshold": self.threshold,
            "start_seconds": self.start_seconds,
            "end_seconds": self.end_seconds,
            "window_index": self.window_index,
            "triggered_by": [
                {"index": cls.index, "label": cls.label, "score": cls.score} for cls in self.triggered_by
            ],
        }


# --- configuration ---------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise InvalidConfiguration(f"duplicate JSON key(s) {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def _read_document(text: str, source: str) -> dict[str, Any]:
    try:
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise InvalidConfiguration(f"anomaly groups file {source} is not valid JSON: {error}") from None
    except InvalidConfiguration as error:
        raise InvalidConfiguration(f"anomaly groups file {source}: {error.message}") from None
    if not isinstance(document, dict):
        raise InvalidConfiguration(
            f"anomaly groups file {source} must hold a JSON object with a 'groups' list"
        )
    return document


def _check_fields(entry: Mapping[str, Any], where: str, num_classes: int) -> list[str]:
    """Problems with the fields present in one group entry (absent fields are not checked)."""
    problems = []
    if "label" in entry and (not isinstance(entry["label"], str) or not entry["label"].strip()):
        problems.append(f"{where}: 'label' must be a non-empty string")
    if "members" in entry:
        members = entry["members"]
        if not isinstance(members, list) or not members:
            problems.append(f"{where}: 'members' must be a non-empty list of AudioSet indices")
        else:
            for member in members:
                if not isinstance(member, int) or isinstance(member, bool):
                    problems.append(f"{where}: member {member!r} is not an integer index")
                elif not 0 <= member < num_classes:
                    problems.append(f"{where}: unknown AudioSet index {member} (valid: 0..{num_classes - 1})")
            repeated = sorted({m for m in members if isinstance(m, int) and members.count(m) > 1})
            if repeated:
                problems.append(f"{where}: member(s) {repeated} listed more than once")
    if "threshold" in entry:
        threshold = entry["threshold"]
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not math.isfinite(threshold)
            or not 0 < threshold <= 1
        ):
            problems.append(f"{where}: threshold {threshold!r} is outside (0, 1]")
    if "enabled" in entry and not isinstance(entry["enabled"], bool):
        problems.append(f"{where}: 'enabled' must be true or false")
    return problems


def _parse_entries(
    document: Mapping[str, Any], source: str, num_classes: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The group entries of one file and every problem found in them."""
    problems = [f"unknown top-level key {key!r}" for key in sorted(set(document) - _TOP_LEVEL_KEYS)]
    if "replace_defaults" in document and not isinstance(document["replace_defaults"], bool):
        problems.append("'replace_defaults' must be true or false")
    raw = document.get("groups")
    if not isinstance(raw, list):
        return [], [*problems, "'groups' must be a list of group objects"]
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict):
            problems.append(f"groups[{position}] is not an object")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            problems.append(f"groups[{position}]: 'name' must match [A-Za-z0-9_-]{{1,64}}, got {name!r}")
            continue
        where = f"group {name!r}"
        if name in seen:
            problems.append(f"{where}: duplicate group name")
            continue
        seen.add(name)
        problems += [f"{where}: unknown key {key!r}" for key in sorted(set(entry) - _GROUP_KEYS)]
        problems += _check_fields(entry, where, num_classes)
        entries.append(entry)
    return entries, [f"{source}: {problem}" for problem in problems]


def _build(entry: Mapping[str, Any]) -> AnomalyGroup:
    return AnomalyGroup(
        name=entry["name"],
        label=entry["label"].strip(),
        members=tuple(entry["members"]),
        threshold=float(entry["threshold"]),
        enabled=entry.get("enabled", True),
    )


def load_anomaly_groups(
    path: Path | None = None, *, num_classes: int = NUM_CLASSES
) -> tuple[AnomalyGroup, ...]:
    """The shipped anomaly groups, with the operator's overrides applied.

    Args:
        path: optional JSON override file. Each entry of its ``groups`` list is
            merged by ``name`` into the shipped group of that name (only the given
            fields change) or added as a new group (``label``, ``members`` and
            ``threshold`` required). ``"replace_defaults": true`` starts from no
            groups instead of the shipped ones.
        num_classes: number of classifier outputs (member indices must be below it).

    Returns:
        The groups in shipped order, new ones after them in file order.

    Raises:
        InvalidConfiguration: the file is unreadable or invalid; the message
            lists every problem (unknown index, threshold outside (0, 1], empty
            members, duplicate names, unknown keys, ...).
    """
    document: dict[str, Any] = {}
    source = GROUPS_FILE
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as error:
            raise InvalidConfiguration(
                f"cannot read anomaly groups file {source}: {error.strerror or error}"
            ) from None
        document = _read_document(text, source)
    overrides, problems = _parse_entries(document, source, num_classes) if path is not None else ([], [])

    merged: dict[str, dict[str, Any]] = {}
    if document.get("replace_defaults") is not True:
        shipped = resources.files("transformer").joinpath("data", GROUPS_FILE).read_text("utf-8")
        defaults, default_problems = _parse_entries(
            _read_document(shipped, GROUPS_FILE), GROUPS_FILE, num_classes
        )
        problems += default_problems
        merged = {entry["name"]: dict(entry) for entry in defaults}

    for entry in overrides:
        if entry["name"] in merged:
            merged[entry["name"]].update(entry)
            continue
        missing = [key for key in _REQUIRED_FOR_NEW if key not in entry]
        if missing:
            # most often a misspelt group name: say which names exist
            problems.append(
                f"{source}: unknown group {entry['name']!r}: a new group needs "
                f"{', '.join(map(repr, missing))}; only existing groups can be changed partially "
                f"(existing: {', '.join(merged) or 'none'})"
            )
            continue
        merged[entry["name"]] = dict(entry)

    if problems:
        raise InvalidConfiguration("invalid anomaly group configuration:\n  " + "\n  ".join(problems))
    return tuple(_build(entry) for entry in merged.values())


# --- detection ---------------------------------------------------------------------------


def detect_anomalies(
    scores: np.ndarray,
    window_starts: np.ndarray,
    window_ends: np.ndarray,
    groups: Sequence[AnomalyGroup],
    *,
    window_dbfs: np.ndarray | None = None,
    gate_dbfs: float | None = None,
    labels: Labels | None = None,
) -> list[Anomaly]:
    """Every (window, enabled group) where the group's best member reaches its threshold.

    Args:
        scores: (W, C) float classifier scores, one row per window.
        window_starts, window_ends: (W,) float seconds of each window in the recording.
        groups: the configured groups (``load_anomaly_groups``).
        window_dbfs: (W,) float RMS level of each window (``transformer.loudness``);
            needed when ``gate_dbfs`` is set.
        gate_dbfs: skip windows whose level is below this (None = no gate).
        labels: display names for ``triggered_by`` (default: the shipped AudioSet labels).

    Returns:
        Anomalies ordered by window, then by group order.

    Raises:
        ValueError: inconsistent shapes, non-finite scores, or a gate without levels.
    """
    scores = np.asarray(scores, dtype=np.float64)
    starts = np.asarray(window_starts, dtype=np.float64)
    ends = np.asarray(window_ends, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (windows, classes), got shape {scores.shape}")
    num_windows = scores.shape[0]
    if starts.shape != (num_windows,) or ends.shape != (num_windows,):
        raise ValueError(
            f"{num_windows} score rows but window bounds of shapes {starts.shape} and {ends.shape}"
        )
    if not np.all(np.isfinite(scores)):
        # a NaN never reaches a threshold: silently missing an alarm is worse than failing
        raise ValueError("classifier scores contain NaN or infinity")
    audible = np.ones(num_windows, dtype=bool)
    if gate_dbfs is not None:
        if window_dbfs is None:
            raise ValueError("a loudness gate needs the level of each window (window_dbfs)")
        levels = np.asarray(window_dbfs, dtype=np.float64)
        if levels.shape != (num_windows,):
            raise ValueError(f"window_dbfs has shape {levels.shape}, expected ({num_windows},)")
        audible = levels >= gate_dbfs

    active = [group for group in groups if group.enabled]
    for group in active:
        if max(group.members) >= scores.shape[1]:
            raise ValueError(f"group {group.name!r} has members beyond the {scores.shape[1]} score columns")
    names = labels if labels is not None else load_labels()

    anomalies = []
    for window in np.flatnonzero(audible):
        row = scores[window]
        for group in active:
            member_scores = row[list(group.members)]
            best = float(member_scores.max())
            if best < group.threshold:
                continue
            # best first; ties keep the configured member order
            order = np.argsort(-member_scores, kind="stable")
            triggered = tuple(
                TriggeringClass(
                    group.members[i], names[group.members[i]].display_name, float(member_scores[i])
                )
                for i in order
                if member_scores[i] >= group.threshold
            )
            anomalies.append(
                Anomaly(
                    group=group.name,
                    label=group.label,
                    score=best,
                    threshold=group.threshold,
                    start_seconds=float(starts[window]),
                    end_seconds=float(ends[window]),
                    window_index=int(window),
                    triggered_by=triggered,
                )
            )
    return anomalies
