"""Log levels: the standard library's numbers, and parsing of names and numbers."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Level(enum.IntEnum):
    """Severity levels, with the same numbers as the standard library's `logging`."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50


_BY_NAME: dict[str, Level] = {level.name: level for level in Level}
_BY_NAME["WARN"] = Level.WARNING
_BY_NAME["FATAL"] = Level.CRITICAL

LEVEL_NAMES: dict[int, str] = {int(level): level.name for level in Level}
"""The standard level numbers and their names."""


def level_name(level: int) -> str:
    """Return the name of a level number: `"INFO"` for 20, `"Level 25"` for 25 (as stdlib)."""
    name = LEVEL_NAMES.get(level)
    return name if name is not None else f"Level {level}"


def parse_level(value: object) -> int:
    """Turn a `Level`, an int from 1 to 100 or a level name (any case) into a level number.

    Raises `ValueError` naming the value for anything else.
    """
    if isinstance(value, Level):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= 100:
            return _BY_NAME.get(LEVEL_NAMES.get(value, ""), value)
        raise ValueError(f"level must be between 1 and 100, got {value!r}")
    if isinstance(value, str):
        found = _BY_NAME.get(value.strip().upper())
        if found is not None:
            return found
        raise ValueError(
            f"unknown level name {value!r}; expected one of "
            + ", ".join(level.name.lower() for level in Level)
        )
    raise ValueError(f"level must be a Level, an int or a level name, got {value!r}")


def level_of_name(name: str, levels: Mapping[str, int], default: int) -> int:
    """The level `levels` gives the logger `name`: that of its longest dotted prefix by whole
    components (`"app"` covers `"app"` and `"app.db"`, not `"apple"`), else `default`."""
    while True:
        found = levels.get(name)
        if found is not None:
            return found
        dot = name.rfind(".")
        if dot < 0:
            return default
        name = name[:dot]


class Gate:
    """The level below which the entries of one logger name are discarded at the call. Every
    view of that name reads the same gate, so `LogManager.set_level` changes them all."""

    __slots__ = ("level",)

    def __init__(self, level: int) -> None:
        self.level = level

    def __repr__(self) -> str:
        return f"<Gate {level_name(self.level)}>"


def severity_number(level: int) -> int:
    """The OTLP `SeverityNumber` of a level number: each stdlib band of ten (below DEBUG,
    DEBUG, INFO, WARNING, ERROR, CRITICAL) maps to one OTLP range of four (TRACE..TRACE4,
    DEBUG..DEBUG4, INFO..INFO4, WARN..WARN4, ERROR..ERROR4, FATAL..FATAL4), the standard levels
    to its first value: 10 -> 5, 20 -> 9, 25 -> 11, 30 -> 13, 40 -> 17, 50 -> 21. Levels of
    60 and above are FATAL4 (24), levels of 0 and below UNSPECIFIED (0)."""
    if level <= 0:
        return 0
    if level >= 60:
        return 24
    band, step = divmod(level, 10)
    return 1 + 4 * band + step * 4 // 10
