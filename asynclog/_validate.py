"""Validation helpers shared by the config classes. Each raises `ConfigError` naming the field.

Every error carries the field's name in `ConfigError.key`, so that `Config.from_dict` can
report the whole key path (`backends[1].max_file_size_mb`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable

from ._errors import ConfigError
from ._levels import parse_level

StrPath = str | os.PathLike[str]


def require_number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{owner}.{name} must be a number, got {value!r}", key=name)
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{owner}.{name} must be a finite number, got {value!r}", key=name)
    return float(value)


def require_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name} must be an int, got {value!r}", key=name)
    return value


def require_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name} must be a bool, got {value!r}", key=name)


def require_mode(owner: str, value: object) -> None:
    if not 0 <= require_int(owner, "mode", value) <= 0o777:
        raise ConfigError(
            f"{owner}.mode must be a permission mode like 0o640, got {value!r}", key="mode"
        )


def int_at_least(owner: str, name: str, value: object, minimum: int) -> None:
    if require_int(owner, name, value) < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}", key=name)


def number_at_least(owner: str, name: str, value: object, minimum: float) -> None:
    if require_number(owner, name, value) < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}", key=name)


def require_path(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(f"{owner}.{name} must be a non-empty path, got {value!r}", key=name)


def require_choice(owner: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{owner}.{name} must be one of {', '.join(choices)}, got {value!r}", key=name
        )


def optional_level(owner: str, name: str, value: object) -> int | None:
    """A level number, or None when `value` is None."""
    if value is None:
        return None
    try:
        return parse_level(value)
    except ValueError as exc:
        raise ConfigError(f"{owner}.{name}: {exc}", key=name) from None


def require_format(owner: str, value: object, names: tuple[str, ...]) -> None:
    """A formatter: one of the built-in names, or a callable `(LogEntry) -> str`."""
    if isinstance(value, str):
        require_choice(owner, "format", value, names)
    elif not callable(value):
        raise ConfigError(
            f"{owner}.format must be one of {', '.join(names)} or a callable "
            f"(LogEntry) -> str, got {value!r}",
            key="format",
        )


FormatSpec = str | Callable[..., str]


def optional_int_at_least(owner: str, name: str, value: object, minimum: int) -> int | None:
    """An int >= `minimum`, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{owner}.{name} must be an int >= {minimum} or None, got {value!r}", key=name
        )
    return value


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def optional_duration(owner: str, name: str, value: object) -> float | None:
    """Seconds > 0 from a number or a string like `"45s"`, `"30m"`, `"12h"`, `"7d"`; or None."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value[-1:] in DURATION_UNITS:
        number = value[:-1]
        if number.isascii() and number.replace(".", "", 1).isdigit():
            with contextlib.suppress(ValueError):
                seconds = float(number) * DURATION_UNITS[value[-1]]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f"{owner}.{name} must be seconds > 0 or a duration like '45s', '30m', '12h', '7d', "
            f"got {value!r}",
            key=name,
        )
    return seconds


def optional_positive_number(owner: str, name: str, value: object) -> float | None:
    """A finite number > 0, or None."""
    if value is None:
        return None
    number = require_number(owner, name, value)
    if number <= 0:
        raise ConfigError(f"{owner}.{name} must be > 0, got {value!r}", key=name)
    return number


def optional_rotation_period(owner: str, name: str, value: object) -> float | str | None:
    """`"midnight"`, or a duration string like `"1h"` (returned in seconds); or None."""
    if value is None:
        return None
    if value == "midnight":
        return "midnight"
    seconds = None
    if isinstance(value, str):
        with contextlib.suppress(ConfigError):
            seconds = optional_duration(owner, name, value)
    if seconds is None:
        raise ConfigError(
            f'{owner}.{name} must be "midnight" or a period like "1h", "30m", "1d" '
            f"(<N>s|m|h|d), got {value!r}",
            key=name,
        )
    return seconds


def require_identifier(owner: str, name: str, value: object, max_length: int = 63) -> str:
    """A plain SQL identifier: ASCII letters, digits and underscores, not starting with a
    digit, at most `max_length` characters (PostgreSQL keeps 63), so it is safe to quote."""
    if (
        not isinstance(value, str)
        or not value.isidentifier()
        or not value.isascii()
        or len(value) > max_length
    ):
        raise ConfigError(
            f"{owner}.{name} must be a plain identifier (ASCII letters, digits, underscore; "
            f"at most {max_length} characters), got {value!r}",
            key=name,
        )
    return value


def require_positive_number(owner: str, name: str, value: object) -> float:
    """A finite number > 0."""
    number = require_number(owner, name, value)
    if number <= 0:
        raise ConfigError(f"{owner}.{name} must be > 0, got {value!r}", key=name)
    return number
