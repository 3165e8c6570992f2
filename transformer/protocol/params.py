"""Scalar request parameters, validated the same way on every path (v2 parameters, SIFIS form).

Numbers may arrive as strings (form fields, gRPC parameters carry no floats).
Error messages describe a bad value without quoting a long one.
"""

from __future__ import annotations

import math

from contract.constants import NUM_CLASSES
from contract.errors import InvalidParameter

#: longest SIFIS id accepted (requestor_id, requestor_type, request_id, audio_file)
MAX_ID_LENGTH = 256


def parse_start_time(value: object) -> float:
    """``start_time`` as finite seconds >= 0 (numbers or numeric strings)."""
    number = parse_number("start_time", value)
    if number < 0:
        raise InvalidParameter(f"start_time must be >= 0 seconds, got {number:g}")
    return number


def parse_top_k(value: object) -> int:
    """``top_k`` as an integer between 1 and the number of classes."""
    number = parse_number("top_k", value)
    if not number.is_integer() or not 1 <= number <= NUM_CLASSES:
        raise InvalidParameter(f"top_k must be an integer between 1 and {NUM_CLASSES}, got {value!r}")
    return int(number)


def parse_bool(name: str, value: object) -> bool:
    """A boolean parameter: true/false, or the strings true/false/1/0/yes/no."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise InvalidParameter(f"{name} must be a boolean (true or false), got {describe_value(value)}")


def parse_identifier(name: str, value: object) -> str:
    """A SIFIS id: a printable string (integers are accepted and converted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a string, got {describe_value(value)}")
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise InvalidParameter(
            f"{name} must be 1 to {MAX_ID_LENGTH} printable characters, got {len(value)} characters"
        )
    return value


def parse_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParameter(f"{name} must be a number, got {describe_value(value)}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidParameter(f"{name} must be a number, got {describe_value(value)}") from None
    if not math.isfinite(number):
        raise InvalidParameter(f"{name} must be a finite number, got {value!r}")
    return number


def describe_value(value: object) -> str:
    """A short, payload-free description of a bad value for error messages."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)
    return f"a value of type {type(value).__name__}"
