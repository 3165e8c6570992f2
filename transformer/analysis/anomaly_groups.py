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
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contract.constants import NUM_CLASSES
from contract.errors import InvalidConfiguration

GROUPS_FILE: Final = "anomaly_groups.json"
#: group and source names end up in metric labels and DHT topic uuids: keep them plain
NAME_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
#: a detection threshold (of a group, or of one source's override): a score in (0, 1]
Probability = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
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


class GroupEntry(BaseModel):
    """One entry of a groups file; absent fields keep the shipped group's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = None
    # JSON integers only (no "441", 441.0 or true); the service's classifier may have fewer outputs
    members: tuple[Annotated[StrictInt, Field(ge=0, lt=NUM_CLASSES)], ...] | None = Field(None, min_length=1)
    threshold: Annotated[Probability, Strict()] | None = None
    enabled: StrictBool | None = None

    @field_validator("members")
    @classmethod
    def _known_once(cls, value: tuple[int, ...] | None, info: ValidationInfo) -> tuple[int, ...] | None:
        if value is None:
            return value
        num_classes = (info.context or {}).get("num_classes", NUM_CLASSES)
        problems = [_unknown_index(member, num_classes) for member in value if member >= num_classes]
        repeated = sorted({member for member in value if value.count(member) > 1})
        if repeated:
            problems.append(f"member(s) {repeated} listed more than once")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _no_nulls(self) -> GroupEntry:
        # a key is given a value or left out (then the shipped value stays); null is neither
        nulls = sorted(key for key in self.model_fields_set if getattr(self, key) is None)
        if nulls:
            raise ValueError(f"{', '.join(map(repr, nulls))} must not be null (leave the key out instead)")
        return self


class GroupsDocument(BaseModel):
    """A groups file: ``groups`` (entries) and ``replace_defaults`` (start from none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    groups: list[Any]
    replace_defaults: StrictBool = False


def _unknown_index(member: int, num_classes: int) -> str:
    return f"unknown AudioSet index {member} (valid: 0..{num_classes - 1})"


#: what each key must be, said as the file names it (a pydantic message does not name the key)
_RULES: Final = {
    "name": "'name' must match [A-Za-z0-9_-]{1,64}",
    "label": "'label' must be a non-empty string",
    "members": "'members' must be a non-empty list of AudioSet indices",
    "threshold": "'threshold' must be a number in (0, 1]",
    "enabled": "'enabled' must be true or false",
    "replace_defaults": "'replace_defaults' must be true or false",
    "groups": "'groups' must be a list of group objects",
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem(item: Any, where: str, num_classes: int) -> str:
    """One pydantic error as the file's author reads it; only a number the file gave is quoted."""
    loc, kind, value = item["loc"], item["type"], item.get("input")
    field = ".".join(str(part) for part in loc)
    if kind == "extra_forbidden":
        return f"unknown {'top-level ' if where == '' else ''}key {field!r}"
    if kind == "value_error":
        return str(item["ctx"]["error"])
    if loc[:1] == ("members",) and len(loc) == 2:  # one member of the list
        if kind in ("greater_than_equal", "less_than"):
            return _unknown_index(value, num_classes)
        return f"member {loc[1]} (counted from 0) is not an integer index"
    if loc == ("threshold",) and _is_number(value):
        return f"threshold {value} is outside (0, 1]"
    if len(loc) == 1 and loc[0] in _RULES:
        return _RULES[str(loc[0])] + (" (it is missing)" if kind == "missing" else "")
    return f"{field}: {item['msg']}"


def _problems(error: ValidationError, where: str, num_classes: int = NUM_CLASSES) -> list[str]:
    """One readable line per pydantic error, keys named as the file names them, no input echoed."""
    errors = error.errors()
    bad_members = any(item["loc"][:1] == ("members",) and len(item["loc"]) == 2 for item in errors)
    lines = []
    for item in errors:
        if bad_members and item["loc"] == ("members",) and item["type"] == "too_short":
            continue  # the bad members are named already; "empty" would only confuse
        lines.append(f"{where}: {_problem(item, where, num_classes)}".lstrip(": "))
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
        named = isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None
        where = f"group {name!r}" if named else f"groups[{position}]"
        if named and name in seen:
            problems.append(f"{where}: duplicate group name")
            continue
        seen.add(str(name))
        try:
            entries.append(GroupEntry.model_validate(entry, context={"num_classes": num_classes}))
        except ValidationError as error:
            problems += _problems(error, where, num_classes)
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
        num_classes: number of classifier outputs (member indices must be below it); at most
            ``NUM_CLASSES``, the AudioSet classes.

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
