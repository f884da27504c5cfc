from __future__ import annotations

import logging

import pytest

from asynclog import Level
from asynclog._levels import level_name, parse_level


def test_levels_use_the_standard_library_numbers() -> None:
    for level in Level:
        assert int(level) == getattr(logging, level.name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Level.ERROR, Level.ERROR),
        (20, Level.INFO),
        (25, 25),
        ("warning", Level.WARNING),
        ("Critical", Level.CRITICAL),
        (" debug ", Level.DEBUG),
        ("fatal", Level.CRITICAL),
    ],
)
def test_parse_level_accepts_levels_ints_and_names(value: object, expected: int) -> None:
    parsed = parse_level(value)
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "between 1 and 100, got 0"),
        (101, "got 101"),
        ("verbose", "unknown level name 'verbose'"),
        (None, "got None"),
        (True, "got True"),
        (2.5, "got 2.5"),
    ],
)
def test_parse_level_rejects_anything_else_naming_it(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_level(value)


def test_level_name_matches_the_standard_library() -> None:
    assert level_name(Level.WARNING) == "WARNING"
    assert level_name(25) == logging.getLevelName(25) == "Level 25"
