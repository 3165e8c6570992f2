"""One style for every command line of the project: help, usage errors, flag spelling.

``CliParser`` is the parser of every command (``audioguard ...``, ``python -m
transformer`` / ``predictor``, the weights and dead-letter tools):

- a usage error is one line, ``PROG: error: MESSAGE``, then ``try 'PROG --help'``,
  exit 2 (not argparse's usage block); an unknown option or choice gets
  ``did you mean ...?`` (the closest known one, underscores and hyphens alike);
  an unknown option after a subcommand is that subcommand's error;
- ``--help`` (``HelpFormatter``) reflows prose descriptions, keeps indented or
  column-aligned lines as written, writes reST ````code```` as ```code```, and
  adds ``(default: X)`` to an option's help only when X says something: not for
  None, an empty value, an on/off switch, or a help text that already speaks
  of its default.

The user-facing ``audioguard`` command uses hyphens (``--model-dir``) and
accepts the underscore spelling of each of its flags as an alias (rewritten
before parsing by ``hyphenated``, so help lists each flag once); the services'
own entry points keep KServe's underscore flags (``--http_port``).
"""

from __future__ import annotations

import argparse
import difflib
import re
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import Any, NoReturn

#: usage errors exit with this status (argparse's)
USAGE_ERROR = 2
_REST_CODE = re.compile(r"``(.+?)``", re.DOTALL)
#: a paragraph with such a line is kept as written: indented, a list item, or spaces aligning columns
_PREFORMATTED = re.compile(r"^\s|^[-*] |\S {2,}\S")
_SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)


def plain_text(text: str) -> str:
    """``text`` with reST's double-backtick code (````x````) written as Markdown's ```x```."""
    return _REST_CODE.sub(r"`\1`", text)


def default_text(value: object) -> str | None:
    """How an option's default reads in ``--help``, or None when it says nothing (an on/off
    switch's False says nothing either: ``HelpFormatter`` leaves switches out)."""
    if value is None or value is argparse.SUPPRESS:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(map(str, value)) or None
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, PurePath):
        return str(value)
    text = str(value)
    return text or None


class HelpFormatter(argparse.HelpFormatter):
    """Prose reflowed, tables and examples kept, ``code`` plain, meaningful defaults shown once."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n\s*\n", plain_text(text).strip("\n"))
        filled = []
        for paragraph in paragraphs:
            lines = paragraph.splitlines()
            if any(_PREFORMATTED.search(line) for line in lines):
                filled.append("\n".join(indent + line for line in lines))
                continue
            filled.append(
                textwrap.fill(
                    " ".join(line.strip() for line in lines),
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent,
                )
            )
        return "\n\n".join(filled)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help is None:
            return None
        text = plain_text(action.help)
        shown = default_text(action.default)
        if (
            shown is not None
            and action.option_strings
            and not isinstance(action, _SWITCHES)
            and "default" not in text.lower()
        ):
            # the help string is %-formatted by argparse: a literal % must be doubled
            text = f"{text} (default: {shown.replace('%', '%%')})"
        return text


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` most likely misspells, or None; ``_`` and ``-`` count as the same."""
    by_key = {_spelling_key(c): c for c in candidates}
    found = difflib.get_close_matches(_spelling_key(word), list(by_key), n=1, cutoff=0.6)
    return by_key[found[0]] if found else None


def _spelling_key(word: str) -> str:
    return word.lstrip("-").replace("_", "-").lower()


def unrecognized(extras: Sequence[str], options: Iterable[str]) -> str:
    """The error for arguments no parser took: the unknown options, each with its likely
    meaning among ``options``; a stray value alone is named as argparse does."""
    known = set(options)
    unknown = [arg.split("=", 1)[0] for arg in extras if _looks_like_option(arg)]
    if not unknown:
        return f"unrecognized arguments: {' '.join(extras)}"
    named = []
    for option in unknown:
        guess = closest(option, known)
        named.append(f"{option} (did you mean {guess}?)" if guess else option)
    noun = "option" if len(named) == 1 else "options"
    return f"unrecognized {noun}: {', '.join(named)}"


def _looks_like_option(arg: str) -> bool:
    if not arg.startswith("-") or arg in ("-", "--"):
        return False
    try:
        float(arg)
    except ValueError:
        return True
    return False  # a negative number is a value


def chosen_parser(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost subcommand parser ``namespace`` was parsed by (``parser`` without subcommands)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(namespace, action.dest, None)
            if isinstance(name, str) and name in action.choices:
                return chosen_parser(action.choices[name], namespace)
    return parser


class CliParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the project's help and one-line usage errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\ntry '{self.prog} --help'\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # argparse reports them on the top parser; they belong to the subcommand that was run
            owner = chosen_parser(self, parsed)
            owner.error(unrecognized(extras, known_flags(owner)))
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            guess = closest(str(value), map(str, action.choices)) if isinstance(value, str) else None
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {choices}){hint}")


def known_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option string of ``parser`` and of its subcommands, recursively."""
    flags: set[str] = set()
    for action in parser._actions:
        flags.update(opt for opt in action.option_strings if opt.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                flags |= known_flags(sub)
    return flags


def hyphenated(argv: Sequence[str], flags: Iterable[str]) -> list[str]:
    """``argv`` with ``--foo_bar[=v]`` written ``--foo-bar[=v]`` where that is a known flag.

    Stops at ``--`` (what follows is positional); unknown flags pass unchanged.
    """
    known = set(flags)
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[index:])
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, sep, value = arg.partition("=")
            alias = name.replace("_", "-")
            if alias in known:
                arg = f"{alias}{sep}{value}"
        out.append(arg)
    return out


def underscored(argv: Sequence[str]) -> list[str]:
    """``--foo-bar[=v]`` as ``--foo_bar[=v]``: flags passed on to a service's own parser."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "-" in arg[2:].split("=", 1)[0]:
            name, sep, value = arg.partition("=")
            arg = "--" + name[2:].replace("-", "_") + sep + value
        out.append(arg)
    return out
