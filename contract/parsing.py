"""The one number parser and the one boolean parser: request parameters, privacy parameters, flags.

Numbers and booleans arrive as JSON values or as text (form fields, gRPC parameters, which
carry no floats, and command-line flags). Each parser raises a ``ValueError`` subclass whose
message never holds the value: the caller names the field, says what it expected and
describes the bad value as much as it safely can (``describe_value``).
"""

from __future__ import annotations

import math
from typing import Final

#: the words of a boolean given as text (case and surrounding blanks do not matter)
TRUE_WORDS: Final = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS: Final = frozenset({"false", "no", "off", "0"})


class NotANumber(ValueError):
    """Neither a number nor a numeric string (booleans are not numbers)."""


class NotFinite(ValueError):
    """A number, but NaN or infinite."""


class NotABoolean(ValueError):
    """Neither a boolean, 0 or 1, nor one of ``TRUE_WORDS``/``FALSE_WORDS``."""


def parse_number(value: object) -> float:
    """A finite float from a number or a numeric string.

    Raises:
        NotANumber: a bool, another type, or a string ``float()`` refuses.
        NotFinite: NaN or an infinity (as a number or as a string).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NotANumber("not a number")
    try:
        number = float(value)
    except ValueError:
        raise NotANumber("not a number") from None
    if not math.isfinite(number):
        raise NotFinite("not a finite number")
    return number


def parse_integer(value: object) -> int:
    """An int from an int or an integer string (``"3"``, not ``"3.0"``).

    Raises:
        NotANumber: a bool, another type, or a string ``int()`` refuses.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NotANumber("not an integer")
    try:
        return int(value)
    except ValueError:
        raise NotANumber("not an integer") from None


def parse_bool(value: object) -> bool:
    """A bool from a bool, 0 or 1, or a word: true/false, yes/no, on/off, 1/0.

    Raises:
        NotABoolean: anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise NotABoolean("not a boolean")


def describe_value(value: object) -> str:
    """A short, payload-free description of a bad value for error messages."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)
    return f"a value of type {type(value).__name__}"
