"""The one number parser and the one boolean parser (request, privacy and flag values)."""

from __future__ import annotations

import math

import pytest

from contract.parsing import (
    NotABoolean,
    NotANumber,
    NotFinite,
    describe_value,
    parse_bool,
    parse_integer,
    parse_number,
)


@pytest.mark.parametrize(("value", "expected"), [(3, 3.0), (0.25, 0.25), ("2.5", 2.5), (" 1e3 ", 1000.0)])
def test_numbers_and_numeric_strings_are_numbers(value: object, expected: float) -> None:
    assert parse_number(value) == expected


@pytest.mark.parametrize("value", [True, None, [1], "abc", ""])
def test_anything_else_is_not_a_number(value: object) -> None:
    with pytest.raises(NotANumber) as caught:
        parse_number(value)
    assert str(caught.value) == "not a number"  # the value is the caller's to describe


@pytest.mark.parametrize("value", [math.nan, math.inf, "nan", "-inf"])
def test_nan_and_infinities_are_not_finite(value: object) -> None:
    with pytest.raises(NotFinite):
        parse_number(value)


def test_integers_are_whole_numbers_only() -> None:
    assert parse_integer("12") == 12 and parse_integer(7) == 7
    for value in ("3.0", "x", 3.0, True):
        with pytest.raises(NotANumber):
            parse_integer(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (0, False), (1, True), (" Yes ", True), ("off", False), ("TRUE", True), ("0", False)],
)
def test_booleans_and_their_words(value: object, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", [2, "maybe", "", None, 0.0])
def test_anything_else_is_not_a_boolean(value: object) -> None:
    with pytest.raises(NotABoolean):
        parse_bool(value)


def test_a_bad_value_is_described_without_its_payload() -> None:
    assert describe_value("abc") == "'abc'"
    assert describe_value("x" * 41) == "a string of 41 characters"
    assert describe_value({"audio": "..."}) == "a value of type dict"
