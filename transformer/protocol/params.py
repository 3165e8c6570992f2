"""Scalar request parameters, validated the same way on every path (v2 parameters, SIFIS form).

Numbers may arrive as strings (form fields, gRPC parameters carry no floats); the parsing is
``contract.parsing``'s. Error messages describe a bad value without quoting a long one.
"""

from __future__ import annotations

from contract import parsing
from contract.constants import NUM_CLASSES
from contract.errors import InvalidParameter
from contract.parsing import describe_value

#: longest SIFIS id accepted (requestor_id, requestor_type, request_id, audio_file)
MAX_ID_LENGTH = 256


def parse_start_time(value: object) -> float:
    """``start_time`` as finite seconds >= 0 (numbers or numeric strings)."""
    number = number_parameter("start_time", value)
    if number < 0:
        raise InvalidParameter(f"start_time must be >= 0 seconds, got {number:g}")
    return number


def parse_top_k(value: object) -> int:
    """``top_k`` as an integer between 1 and the number of classes."""
    number = number_parameter("top_k", value)
    if not number.is_integer() or not 1 <= number <= NUM_CLASSES:
        raise InvalidParameter(f"top_k must be an integer between 1 and {NUM_CLASSES}, got {value!r}")
    return int(number)


def bool_parameter(name: str, value: object) -> bool:
    """A boolean parameter: true/false, 0/1, or the strings true/false, yes/no, on/off, 1/0."""
    try:
        return parsing.parse_bool(value)
    except parsing.NotABoolean:
        raise InvalidParameter(
            f"{name} must be a boolean (true or false), got {describe_value(value)}"
        ) from None


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


def number_parameter(name: str, value: object) -> float:
    """A finite number parameter (numbers or numeric strings)."""
    try:
        return parsing.parse_number(value)
    except parsing.NotFinite:
        raise InvalidParameter(f"{name} must be a finite number, got {describe_value(value)}") from None
    except parsing.NotANumber:
        raise InvalidParameter(f"{name} must be a number, got {describe_value(value)}") from None
