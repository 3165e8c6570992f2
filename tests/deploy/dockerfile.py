"""A small Dockerfile reader for checks that need no Docker engine.

Handles what the project's Dockerfiles use: parser directives and comments,
backslash continuations, global ``ARG`` before the first ``FROM``, named
stages, exec (JSON) and shell forms, ``COPY`` flags, ``ENV`` key=value pairs
and ``HEALTHCHECK`` options. Anything it cannot read raises ``DockerfileError``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

KNOWN_INSTRUCTIONS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
        "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip


class DockerfileError(ValueError):
    """The text is not a Dockerfile this reader understands."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON-array form of CMD/ENTRYPOINT/RUN (raises if it is the shell form)."""
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError as error:
            raise DockerfileError(f"line {self.line}: {self.keyword} is not in exec form") from error
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise DockerfileError(f"line {self.line}: {self.keyword} exec form must be a list of strings")
        return parsed


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: str
    from_stage: str | None
    chown: str | None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def copies(self) -> list[Copy]:
        return [parse_copy(item) for item in self.all("COPY")]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in self.all("ENV"):
            values.update(parse_env(item))
        return values

    def args(self) -> dict[str, str | None]:
        declared: dict[str, str | None] = {}
        for item in self.all("ARG"):
            name, _, default = item.value.partition("=")
            declared[name.strip()] = default.strip() if "=" in item.value else None
        return declared


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, joined text) per instruction; comments dropped."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(part for part in pending if part)))
        pending = []
    if pending:
        raise DockerfileError(f"line {start}: continuation runs past the end of the file")
    return lines


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword not in KNOWN_INSTRUCTIONS:
            raise DockerfileError(f"line {number}: unknown instruction {keyword!r}")
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", value.strip(), flags=re.IGNORECASE)
            if match is None:
                raise DockerfileError(f"line {number}: cannot read FROM {value!r}")
            stages.append(Stage(base=match.group(1), name=match.group(2)))
            continue
        if not stages:
            if keyword != "ARG":
                raise DockerfileError(f"line {number}: {keyword} before the first FROM")
            name, _, default = value.partition("=")
            global_args[name.strip()] = default.strip() if "=" in value else None
            continue
        stages[-1].instructions.append(Instruction(keyword, value.strip(), number))
    if not stages:
        raise DockerfileError("no FROM instruction")
    return Dockerfile(global_args, stages)


def read_dockerfile(path: Path) -> Dockerfile:
    return parse_dockerfile(path.read_text("utf-8"))


def parse_copy(item: Instruction) -> Copy:
    words = shlex.split(item.value)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, flag_value = words.pop(0)[2:].partition("=")
        flags[name] = flag_value
    if len(words) < 2:
        raise DockerfileError(f"line {item.line}: COPY needs a source and a destination")
    return Copy(tuple(words[:-1]), words[-1], flags.get("from"), flags.get("chown"))


def parse_env(item: Instruction) -> dict[str, str]:
    words = shlex.split(item.value)
    if not all("=" in word for word in words):
        raise DockerfileError(f"line {item.line}: use ENV key=value pairs")
    return dict(word.split("=", 1) for word in words)


def healthcheck_command(item: Instruction) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK options ({"interval": "30s", ...}) and its CMD in exec form."""
    options: dict[str, str] = {}
    rest = item.value
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, option_value = option[2:].partition("=")
        options[name] = option_value
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    if keyword.upper() != "CMD":
        raise DockerfileError(f"line {item.line}: HEALTHCHECK must be followed by CMD")
    return options, Instruction("CMD", command.strip(), item.line).exec_form()
