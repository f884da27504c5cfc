"""Validation helpers shared by the config classes. Each raises `ConfigError` naming the field.

Every error carries the field's name in `ConfigError.key`, so that `Config.from_dict` can
report the whole key path (`backends[1].max_file_size_mb`).
"""

from __future__ import annotations

import contextlib
import math
import os
import reprlib
from collections.abc import Callable

from ._errors import ConfigError
from ._levels import parse_level

StrPath = str | os.PathLike[str]

MAX_SECONDS = 86400.0
"""The most any timeout or interval may be: one day. (SQLite keeps its busy timeout in
milliseconds in a C int; PostgreSQL its idle timeout; a wait longer than a day is a typo.)"""
MAX_ATTEMPTS = 100
MAX_CONCURRENCY = 64
"""The most batches a network backend may have in flight at once (`concurrency`)."""
"""The most retries (or reconnections) a setting may ask for."""
MAX_BACKOFF = 30.0
"""The most seconds a first retry (or reconnection) may wait."""
MAX_COUNT = 10**9
"""The most entries a queue or a batch may be sized for."""
MAX_BYTES = 2**40
"""The most bytes a size in bytes may be: 1 TiB."""
MAX_MIB = 2**30
"""The most MiB a size in MiB may be: 1 PiB."""

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 120
_REPR.maxother = 120
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 10


def shown(value: object) -> str:
    """`repr(value)` for an error message: bounded in length and depth, and never raising
    (a value nested a million deep, a huge int, a `__repr__` that raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<int of {value.bit_length()} bits>"
    try:
        return _REPR.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def require_number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{owner}.{name} must be a number, got {shown(value)}", key=name)
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{owner}.{name} must be a finite number, got {shown(value)}", key=name)
    return number


def require_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name} must be an int, got {shown(value)}", key=name)
    return value


def _check_maximum(owner: str, name: str, value: object, number: float, maximum: float) -> None:
    if number > maximum:
        limit = int(maximum) if maximum == int(maximum) else maximum
        raise ConfigError(f"{owner}.{name} must be <= {limit}, got {shown(value)}", key=name)


def require_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name} must be a bool, got {shown(value)}", key=name)


def require_mode(owner: str, value: object) -> None:
    if not 0 <= require_int(owner, "mode", value) <= 0o777:
        raise ConfigError(
            f"{owner}.mode must be a permission mode like 0o640, got {shown(value)}", key="mode"
        )


def int_at_least(
    owner: str, name: str, value: object, minimum: int, maximum: int | None = None
) -> None:
    number = require_int(owner, name, value)
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {shown(value)}", key=name)
    if maximum is not None:
        _check_maximum(owner, name, value, number, maximum)


def number_at_least(
    owner: str, name: str, value: object, minimum: float, maximum: float | None = None
) -> None:
    number = require_number(owner, name, value)
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {shown(value)}", key=name)
    if maximum is not None:
        _check_maximum(owner, name, value, number, maximum)


def require_path(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(f"{owner}.{name} must be a non-empty path, got {shown(value)}", key=name)


def require_choice(owner: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(
            f"{owner}.{name} must be one of {', '.join(choices)}, got {shown(value)}", key=name
        )


def level_number(value: object) -> int:
    """`parse_level`, but its `ValueError` never holds more than a bounded repr of `value`."""
    if isinstance(value, int) and not isinstance(value, bool) and not -1000 < value < 1000:
        raise ValueError(f"level must be between 1 and 100, got {shown(value)}")
    if isinstance(value, str) and len(value) > 100:
        raise ValueError(f"unknown level name {shown(value)}")
    if not isinstance(value, int | str):
        raise ValueError(f"level must be a Level, an int or a level name, got {shown(value)}")
    return parse_level(value)


def optional_level(owner: str, name: str, value: object) -> int | None:
    """A level number, or None when `value` is None."""
    if value is None:
        return None
    try:
        return level_number(value)
    except ValueError as exc:
        raise ConfigError(f"{owner}.{name}: {exc}", key=name) from None


def require_format(owner: str, value: object, names: tuple[str, ...]) -> None:
    """A formatter: one of the built-in names, or a callable `(LogEntry) -> str`."""
    if isinstance(value, str):
        require_choice(owner, "format", value, names)
    elif not callable(value):
        raise ConfigError(
            f"{owner}.format must be one of {', '.join(names)} or a callable "
            f"(LogEntry) -> str, got {shown(value)}",
            key="format",
        )


FormatSpec = str | Callable[..., str]


def optional_int_at_least(
    owner: str, name: str, value: object, minimum: int, maximum: int | None = None
) -> int | None:
    """An int >= `minimum` (and <= `maximum`), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{owner}.{name} must be an int >= {minimum} or None, got {shown(value)}", key=name
        )
    if maximum is not None:
        _check_maximum(owner, name, value, value, maximum)
    return value


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def optional_duration(owner: str, name: str, value: object) -> float | None:
    """Seconds > 0 from a number or a string like `"45s"`, `"30m"`, `"12h"`, `"7d"`; or None."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, float) or (
        isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 1000
    ):  # (a larger int is beyond any float: refused below)
        seconds = float(value)
    elif isinstance(value, str) and value[-1:] in DURATION_UNITS:
        number = value[:-1]
        if number.isascii() and number.replace(".", "", 1).isdigit():
            with contextlib.suppress(ValueError):
                seconds = float(number) * DURATION_UNITS[value[-1]]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f"{owner}.{name} must be seconds > 0 or a duration like '45s', '30m', '12h', '7d', "
            f"got {shown(value)}",
            key=name,
        )
    return seconds


def optional_positive_number(
    owner: str, name: str, value: object, maximum: float | None = None
) -> float | None:
    """A finite number > 0 (and <= `maximum`), or None."""
    if value is None:
        return None
    return require_positive_number(owner, name, value, maximum)


MIN_ROTATION_PERIOD = 1.0
"""The shortest `rotate_every`: periods are computed as `floor(t / period)`, which a tiny
period would overflow (and a file per entry is not rotation)."""


def optional_rotation_period(owner: str, name: str, value: object) -> float | str | None:
    """`"midnight"`, or a duration string like `"1h"` (returned in seconds), at least 1 s;
    or None."""
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
            f"(<N>s|m|h|d), got {shown(value)}",
            key=name,
        )
    if seconds < MIN_ROTATION_PERIOD:
        raise ConfigError(f"{owner}.{name} must be at least 1 s, got {shown(value)}", key=name)
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
            f"at most {max_length} characters), got {shown(value)}",
            key=name,
        )
    return value


def require_positive_number(
    owner: str, name: str, value: object, maximum: float | None = None
) -> float:
    """A finite number > 0 (and <= `maximum`)."""
    number = require_number(owner, name, value)
    if number <= 0:
        raise ConfigError(f"{owner}.{name} must be > 0, got {shown(value)}", key=name)
    if maximum is not None:
        _check_maximum(owner, name, value, number, maximum)
    return number


LOOP_WRITE_LIMIT = 0.1
"""The default `loop_write_limit` of `FileConfig` and `SQLiteConfig` (seconds)."""


def check_loop_writes(
    owner: str, write_on_loop: object, limit: object, stalls: dict[str, str]
) -> None:
    """`write_on_loop` (a bool) and `loop_write_limit` (seconds, set only with it); `stalls`
    maps each chosen setting that cannot go with it (`"fsync=True"`) to what would stall."""
    require_bool(owner, "write_on_loop", write_on_loop)
    require_positive_number(owner, "loop_write_limit", limit, 60)
    if limit != LOOP_WRITE_LIMIT and not write_on_loop:
        raise ConfigError(
            f"{owner}.loop_write_limit needs write_on_loop=True (without it every write "
            f"is on the backend's thread), got loop_write_limit={shown(limit)}",
            key="loop_write_limit",
        )
    if write_on_loop and stalls:
        setting, what = next(iter(stalls.items()))  # the first one named
        raise ConfigError(
            f"{owner}.write_on_loop=True cannot be combined with {setting}: {what} would "
            "stall the event loop",
            key="write_on_loop",
        )
