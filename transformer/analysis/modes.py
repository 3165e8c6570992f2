"""Modes: each live source is ``home``, ``away`` or ``night``, and the mode says which groups raise events.

Set three ways, whichever came last winning:

- a **schedule** (the sources file's ``modes.schedule``, or a source's own ``schedule``): daily
  switches at local times of the host, e.g. ``night`` at 23:00 and ``home`` at 07:00;
- a **request** (``PUT /v1/monitor/mode``, a SIFIS DHT request): for one source or all of
  them; it holds until the source's next scheduled switch (without a schedule: until the next
  request);
- ``initial`` at start, while no schedule says otherwise.

Which groups raise events in each mode is configuration (``modes.groups``: a list of group
names or ``all``); by default every group in every mode, except ``voices_while_armed``, which
only ``away`` has. A hit of a group the current mode lacks is dropped before the event
lifecycle, so an event of such a group ends as "not heard" and none starts. Every change of a
source's mode is a ``ModeChange`` (recorded like an event: ``transformer.analysis.mode_records``).
Pure: the time is always given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.errors import InvalidParameter

Mode = Literal["home", "away", "night"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
SetBy = Literal["start", "schedule", "api", "dht"]
#: the group that only an armed mode watches by default
ARMED_ONLY_GROUP: Final = "voices_while_armed"
ARMED_MODES: Final[tuple[Mode, ...]] = ("away",)
_CLOCK: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ScheduleEntry(BaseModel):
    """A daily switch: from ``at`` (``HH:MM``, the host's local time) the mode is ``mode``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str
    mode: Mode

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"'at' must be a time of day as HH:MM (00:00-23:59), got {value!r}")
        return value

    @property
    def time(self) -> time:
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))


def _distinct_times(entries: Sequence[ScheduleEntry]) -> Sequence[ScheduleEntry]:
    times = [entry.at for entry in entries]
    repeated = sorted({at for at in times if times.count(at) > 1})
    if repeated:
        raise ValueError(f"the schedule switches twice at {', '.join(repeated)}")
    return entries


class ModesSpec(BaseModel):
    """The sources file's ``modes`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: Mode = "home"
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    groups: dict[Mode, list[str] | Literal["all"]] = Field(default_factory=dict)

    _check_schedule = field_validator("schedule")(_distinct_times)


@dataclass(frozen=True)
class ModeChange:
    """A source's mode changing (at start: its first mode, ``previous`` None)."""

    source: str
    mode: Mode
    previous: Mode | None
    set_by: SetBy
    at: datetime  # when (aware)
    groups: tuple[str, ...] = ()  # the groups the new mode watches


@dataclass(frozen=True)
class _Request:
    mode: Mode
    by: SetBy
    at: datetime


def scheduled(schedule: Sequence[ScheduleEntry], now: datetime) -> tuple[Mode, datetime] | None:
    """The mode the schedule gives at ``now`` and since when (None: no schedule)."""
    if not schedule:
        return None
    local = now.astimezone()
    switches = sorted(
        (datetime.combine(local.date() + timedelta(days=day), entry.time, local.tzinfo), entry.mode)
        for day in (-1, 0)
        for entry in schedule
    )
    since, mode = max((switch for switch in switches if switch[0] <= local), key=lambda switch: switch[0])
    return mode, since


class ModeBoard:
    """Every source's mode, the groups each mode watches, and the changes to record."""

    def __init__(
        self,
        spec: ModesSpec,
        sources: Mapping[str, Sequence[ScheduleEntry] | None],
        groups: Iterable[str],
    ) -> None:
        """``sources``: each source's own schedule (None: the file's); ``groups``: every group name
        a source can raise (the mode lists are checked against them: ``unknown_mode_groups``)."""
        self.spec = spec
        self._schedules = {name: spec.schedule if own is None else list(own) for name, own in sources.items()}
        names = list(groups)
        default = [name for name in names if name != ARMED_ONLY_GROUP]
        self._active: dict[Mode, frozenset[str]] = {}
        for mode in MODES:
            chosen = spec.groups.get(mode)
            if chosen is None:
                chosen = names if mode in ARMED_MODES else default
            self._active[mode] = frozenset(names if chosen == "all" else chosen)
        self._requests: dict[str, _Request] = {}
        self._current: dict[str, tuple[Mode, SetBy, datetime]] = {}

    @property
    def sources(self) -> list[str]:
        return list(self._schedules)

    def active(self, source: str, group: str) -> bool:
        """Whether ``source``'s current mode (as of the last ``update``) watches ``group``."""
        current = self._current.get(source)
        mode = self.spec.initial if current is None else current[0]
        return group in self._active[mode]

    def groups_of(self, mode: Mode) -> frozenset[str]:
        return self._active[mode]

    def request(self, mode: Mode, source: str | None, by: SetBy, now: datetime) -> list[ModeChange]:
        """Set ``source``'s mode (None: every source's) until its next scheduled switch; KeyError
        names an unknown source."""
        targets = self.sources if source is None else [source]
        for name in targets:
            if name not in self._schedules:
                raise KeyError(name)
        for name in targets:
            self._requests[name] = _Request(mode, by, now)
        return self.update(now)

    def update(self, now: datetime) -> list[ModeChange]:
        """Each source's mode at ``now``; the changes since the last update (at the first: every
        source's starting mode)."""
        changes = []
        for name in self._schedules:
            mode, by, since = self._mode_at(name, now)
            previous = self._current.get(name)
            if previous is None or previous[0] != mode:
                before = None if previous is None else previous[0]
                changes.append(ModeChange(name, mode, before, by, now, tuple(sorted(self._active[mode]))))
                self._current[name] = (mode, by, since)
        return changes

    def _mode_at(self, name: str, now: datetime) -> tuple[Mode, SetBy, datetime]:
        plan = scheduled(self._schedules[name], now)
        request = self._requests.get(name)
        if request is not None and (plan is None or request.at >= plan[1]):
            return request.mode, request.by, request.at
        if plan is not None:
            return plan[0], "schedule", plan[1]
        started = self._current.get(name)
        return self.spec.initial, "start", now if started is None else started[2]

    def status(self) -> dict[str, dict[str, object]]:
        """Per source: its mode, who set it and since when (ISO 8601), and the groups it watches."""
        return {
            name: {
                "mode": mode,
                "set_by": by,
                "since": since.isoformat(timespec="seconds"),
                "groups": sorted(self._active[mode]),
            }
            for name, (mode, by, since) in self._current.items()
        }


def mode_request(value: object, sources: Sequence[str]) -> tuple[Mode, str | None]:
    """The mode and the source (None: every source) a request names (``{"mode": ..., "source": ...}``);
    InvalidParameter says what is wrong without echoing what was sent."""
    shape = 'a mode request is a JSON object: {"mode": "home" | "away" | "night", "source": NAME}'
    if not isinstance(value, dict):
        raise InvalidParameter(shape)
    unknown = sorted(str(key) for key in value if key not in ("mode", "source"))
    if unknown:
        raise InvalidParameter(f"unknown key(s) in a mode request (known: mode, source); {shape}")
    mode = value.get("mode")
    if mode not in MODES:
        raise InvalidParameter(f"'mode' must be one of {', '.join(MODES)}")
    source = value.get("source")
    if source is not None and source not in sources:
        raise InvalidParameter(
            f"'source' must be one of the sources listened to ({', '.join(sources)}), or left out for all"
        )
    return mode, source


def unknown_mode_groups(spec: ModesSpec, known: Iterable[str]) -> list[str]:
    """One sentence per mode whose group list names a group that does not exist."""
    names = set(known)
    problems = []
    for mode, chosen in spec.groups.items():
        unknown = [] if chosen == "all" else sorted(set(chosen) - names)
        if unknown:
            problems.append(
                f"modes.groups.{mode}: unknown group(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(names))})"
            )
    return problems
