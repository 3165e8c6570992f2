"""One flag style for the ``audioguard`` command: ``--model-dir``, with ``--model_dir`` accepted.

The services' own entry points (``python -m transformer`` / ``predictor``) keep
KServe's underscore flags (``--http_port``); the user-facing command uses
hyphens and accepts the underscore spelling of each of its flags as an alias
(rewritten before parsing, so help lists each flag once). Every option shows
its default in ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and ``(default: ...)`` after every option's help."""


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
