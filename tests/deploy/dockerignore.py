""".dockerignore evaluated as Docker's builder does, to list what a build context holds.

Patterns are matched against slash-separated paths relative to the context
root; ``*`` and ``?`` stay within one path segment, ``**`` spans any number of
segments, ``[...]`` is a character class, a leading ``!`` re-includes, and the last matching pattern wins. A
pattern matching a directory also matches everything below it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    include: bool


def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index:]:
            end = pattern.index("]", index)
            parts.append("[" + pattern[index + 1 : end].replace("\\", "\\\\") + "]")
            index = end + 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts))


def read_rules(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append(Rule(_compile(pattern), include))
    return rules


def is_excluded(path: str, rules: list[Rule]) -> bool:
    """Whether a context-relative file path is left out of the build context."""
    segments = path.split("/")
    candidates = ["/".join(segments[: end + 1]) for end in range(len(segments))]
    excluded = False
    for rule in rules:
        if any(rule.regex.fullmatch(candidate) for candidate in candidates):
            excluded = not rule.include
    return excluded


def context_files(
    root: Path, rules: list[Rule], skip_dirs: frozenset[str] = frozenset({".git"})
) -> Iterator[str]:
    """Every file under ``root`` that the build context would contain (symlinks not followed)."""
    for folder, dirs, files in os.walk(root):
        relative_folder = Path(folder).relative_to(root).as_posix()
        dirs[:] = [d for d in dirs if d not in skip_dirs]
        for name in files:
            path = name if relative_folder == "." else f"{relative_folder}/{name}"
            if not is_excluded(path, rules):
                yield path
