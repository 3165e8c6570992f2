"""Expose a pydantic-settings class as command-line flags.

Each field ``foo_bar`` becomes ``--foo_bar`` (underscores, like KServe's own
flags) with the field's description as help. Precedence: flag > environment
variable (the class's env prefix) > default.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from contract.parsing import NotABoolean, parse_bool

S = TypeVar("S", bound=BaseSettings)


def _bool_flag(text: str) -> bool:
    """A command-line boolean (true/false, yes/no, on/off, 1/0)."""
    try:
        return parse_bool(text)
    except NotABoolean:
        raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}") from None


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(arg is bool for arg in typing.get_args(annotation))
    return False


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings_cls: type[BaseSettings],
    *,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Add one ``--field`` flag per settings field (all default to None = "not given")."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    group = parser.add_argument_group(f"{settings_cls.__name__} (env prefix {prefix})")
    existing = {opt for action in parser._actions for opt in action.option_strings}
    for name, field in settings_cls.model_fields.items():
        flag = f"--{name}"
        if name in skip or flag in existing:
            continue
        help_text = (field.description or "").replace("%", "%%")
        env_name = f"{prefix}{name}".upper()
        default = field.default if field.default is not None else "unset"
        group.add_argument(
            flag,
            dest=name,
            default=None,
            type=_bool_flag if _is_bool(field.annotation) else str,
            help=f"{help_text} [env {env_name}; default {default}]",
        )


def settings_from_args(settings_cls: type[S], args: argparse.Namespace | dict[str, Any]) -> S:
    """Build settings: given flags override environment variables and defaults."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    given = {
        name: values[name]
        for name in settings_cls.model_fields
        if name in values and values[name] is not None
    }
    return settings_cls(**given)
