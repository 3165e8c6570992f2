"""The anomaly groups: the shipped table and an operator's overrides, validated by one schema.

A *group* (glass_break, scream, smoke_fire_alarm, ...) maps several AudioSet
classes to one user label and a threshold (detection: ``transformer.analysis.anomalies``).
The shipped groups live in ``transformer/data/anomaly_groups.json``; an operator
file (format in docs/anomalies-and-dht.md) is read with the same pydantic
schema (``extra="forbid"``: a misspelt key is an error, never ignored). Each
entry is merged by name into the shipped group (only the given fields change)
or added as a new group. A bad file raises ``InvalidConfiguration`` listing
every problem, so the service refuses to start.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from contract.constants import NUM_CLASSES
from contract.errors import InvalidConfiguration

GROUPS_FILE: Final = "anomaly_groups.json"
#: group names end up in metric labels and DHT topic uuids: keep them plain
NAME_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
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


def _true_or_false(value: object, info: ValidationInfo) -> object:
    """JSON true/false only (no 1, "yes" ...), named as the file names the key."""
    if not isinstance(value, bool):
        raise ValueError(f"'{info.field_name}' must be true or false")
    return value


class GroupEntry(BaseModel):
    """One entry of a groups file; absent fields keep the shipped group's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str | None = None
    members: tuple[int, ...] | None = None
    threshold: float | None = None
    enabled: bool | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _plain_name(cls, value: object) -> object:
        if not isinstance(value, str) or not re.match(NAME_PATTERN, value):
            raise ValueError(f"'name' must match [A-Za-z0-9_-]{{1,64}}, got {value!r}")
        return value

    @field_validator("label", mode="before")
    @classmethod
    def _non_empty_label(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("'label' must be a non-empty string")
        return value.strip()

    @field_validator("members", mode="before")
    @classmethod
    def _audioset_indices(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, list) or not value:
            raise ValueError("'members' must be a non-empty list of AudioSet indices")
        num_classes = (info.context or {}).get("num_classes", NUM_CLASSES)
        problems = []
        for member in value:
            if not isinstance(member, int) or isinstance(member, bool):
                problems.append(f"member {member!r} is not an integer index")
            elif not 0 <= member < num_classes:
                problems.append(f"unknown AudioSet index {member} (valid: 0..{num_classes - 1})")
        repeated = sorted({m for m in value if isinstance(m, int) and value.count(m) > 1})
        if repeated:
            problems.append(f"member(s) {repeated} listed more than once")
        if problems:
            raise ValueError("; ".join(problems))
        return tuple(value)

    @field_validator("threshold", mode="before")
    @classmethod
    def _probability(cls, value: object) -> object:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or not 0 < value <= 1
        ):
            raise ValueError(f"threshold {value!r} is outside (0, 1]")
        return float(value)

    _enabled = field_validator("enabled", mode="before")(_true_or_false)


class GroupsDocument(BaseModel):
    """A groups file: ``groups`` (entries) and ``replace_defaults`` (start from none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    groups: tuple[Any, ...]
    replace_defaults: bool = False

    _replace_defaults = field_validator("replace_defaults", mode="before")(_true_or_false)

    @field_validator("groups", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        if not isinstance(value, list):
            raise ValueError("'groups' must be a list of group objects")
        return value


def _problems(error: ValidationError, where: str) -> list[str]:
    """One readable line per pydantic error, keys named as the file names them."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown {'top-level ' if where == '' else ''}key {field!r}".lstrip(": "))
        elif item["type"] == "value_error":
            lines.append(f"{where}: {item['ctx']['error']}".lstrip(": "))
        elif item["type"] == "missing" and field == "groups":
            lines.append("'groups' must be a list of group objects")
        elif item["type"] == "missing" and field == "name":
            lines.append(f"{where}: 'name' must match [A-Za-z0-9_-]{{1,64}}, got None")
        else:
            lines.append(f"{where}: {field}: {item['msg']}".lstrip(": "))
    return lines


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise InvalidConfiguration(f"duplicate JSON key(s) {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def _read_document(text: str, source: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise InvalidConfiguration(f"anomaly groups file {source} is not valid JSON: {error}") from None
    except InvalidConfiguration as error:
        raise InvalidConfiguration(f"anomaly groups file {source}: {error.message}") from None


def parse_groups_file(
    text: str, source: str, num_classes: int
) -> tuple[GroupsDocument | None, list[GroupEntry], list[str]]:
    """(document, valid entries, problems) of one groups file; every problem is collected.

    Raises:
        InvalidConfiguration: the text is not a JSON object (nothing else can be checked).
    """
    raw = _read_document(text, source)
    if not isinstance(raw, dict):
        raise InvalidConfiguration(
            f"anomaly groups file {source} must hold a JSON object with a 'groups' list"
        )
    problems: list[str] = []
    document: GroupsDocument | None = None
    try:
        document = GroupsDocument.model_validate(raw)
    except ValidationError as error:
        problems += _problems(error, "")
    # the entries are checked even when the document has other problems: every problem at once
    groups = raw.get("groups")
    entries: list[GroupEntry] = []
    seen: set[str] = set()
    for position, entry in enumerate(groups if isinstance(groups, list) else []):
        if not isinstance(entry, dict):
            problems.append(f"groups[{position}] is not an object")
            continue
        name = entry.get("name")
        named = isinstance(name, str) and re.match(NAME_PATTERN, name) is not None
        where = f"group {name!r}" if named else f"groups[{position}]"
        if named and name in seen:
            problems.append(f"{where}: duplicate group name")
            continue
        seen.add(str(name))
        try:
            entries.append(GroupEntry.model_validate(entry, context={"num_classes": num_classes}))
        except ValidationError as error:
            problems += _problems(error, where)
    return document, entries, [f"{source}: {problem}" for problem in problems]


def _shipped_text() -> str:
    return resources.files("transformer").joinpath("data", GROUPS_FILE).read_text("utf-8")


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
    overrides: list[GroupEntry] = []
    problems: list[str] = []
    replace_defaults = False
    source = GROUPS_FILE
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as error:
            raise InvalidConfiguration(
                f"cannot read anomaly groups file {source}: {error.strerror or error}"
            ) from None
        document, overrides, problems = parse_groups_file(text, source, num_classes)
        replace_defaults = document is not None and document.replace_defaults

    merged: dict[str, dict[str, Any]] = {}
    if not replace_defaults:
        _, defaults, default_problems = parse_groups_file(_shipped_text(), GROUPS_FILE, num_classes)
        problems += default_problems
        merged = {entry.name: entry.model_dump(exclude_none=True) for entry in defaults}

    for entry in overrides:
        given = entry.model_dump(exclude_none=True)
        if entry.name in merged:
            merged[entry.name].update(given)
            continue
        missing = [key for key in _REQUIRED_FOR_NEW if key not in given]
        if missing:
            # most often a misspelt group name: say which names exist
            problems.append(
                f"{source}: unknown group {entry.name!r}: a new group needs "
                f"{', '.join(map(repr, missing))}; only existing groups can be changed partially "
                f"(existing: {', '.join(merged) or 'none'})"
            )
            continue
        merged[entry.name] = given

    if problems:
        raise InvalidConfiguration("invalid anomaly group configuration:\n  " + "\n  ".join(problems))
    return tuple(
        AnomalyGroup(
            name=entry["name"],
            label=entry["label"],
            members=tuple(entry["members"]),
            threshold=float(entry["threshold"]),
            enabled=entry.get("enabled", True),
        )
        for entry in merged.values()
    )
