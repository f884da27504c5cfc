"""The JSON format's fields through orjson (the `fastjson` extra): the same text as the
standard library's encoder, or None when orjson would write anything else.

orjson writes compact separators, floats below 1e-4 in another notation, `null` for NaN and
infinities, and enum members, UUIDs and its own Fragments as their values, where the standard
path writes the `repr()`. So only exact str, int, bool, None, finite floats of 1e-4 and more
(or zero), lists, tuples and dicts are handed to it, at most `MAX_DEPTH` deep; it refuses the
rest itself (ints beyond 64 bits, keys that are not str, lone surrogates), and the caller
takes the standard path. Its output gets the standard separators by a plain replace, which is
only right when no string holds a comma or a colon: the structural ones are counted while the
values are checked, and a count that differs sends the entry to the standard path too.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import Any

try:
    import orjson

    AVAILABLE = True
except ImportError:  # the fastjson extra is not installed
    AVAILABLE = False

MAX_DEPTH = 32
"""Containers nested deeper than this take the standard path (so does a cycle)."""

_SCALARS = frozenset((str, int, bool, type(None)))
_ACCEPTED = frozenset((str, int, bool, type(None), float, list, tuple, dict))
_SMALLEST_FLOAT = 1e-4  # below it, repr() writes `1e-05` and orjson `0.00001`
_LARGEST_FLOAT = sys.float_info.max


def _refuse(value: object) -> object:
    raise TypeError(type(value).__name__)


if AVAILABLE:
    # Subclasses, datetimes and dataclasses go to `default` (which refuses them) instead of
    # being written as orjson writes them; the checks below keep them away anyway.
    _OPTIONS = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )


def _separators(values: Collection[Any], depth: int) -> int:
    """The commas and colons orjson writes inside the containers among `values`, or -1 when
    one of them (at any depth) is not for orjson."""
    kinds = set(map(type, values))
    if kinds <= _SCALARS:
        return 0
    if not kinds <= _ACCEPTED or depth > MAX_DEPTH:
        return -1
    total = 0
    for value in values:
        kind = type(value)
        if kind is float:
            # NaN fails both comparisons.
            if not (value == 0.0 or _SMALLEST_FLOAT <= abs(value) <= _LARGEST_FLOAT):
                return -1
        elif kind is dict and value:
            inner = _separators(value.values(), depth + 1)
            if inner < 0:
                return -1
            total += 2 * len(value) - 1 + inner
        elif (kind is list or kind is tuple) and value:
            inner = _separators(value, depth + 1)
            if inner < 0:
                return -1
            total += len(value) - 1 + inner
    return total


def encode_fields(fields: dict[str, Any]) -> str | None:
    """`fields` (not empty) as the standard encoder writes them (`", "` and `": "`), or None
    when orjson cannot give the same text."""
    inner = _separators(fields.values(), 1)
    if inner < 0:
        return None
    try:
        data = orjson.dumps(fields, default=_refuse, option=_OPTIONS)
    except Exception:  # a key that is not str, an int beyond 64 bits, a lone surrogate
        return None
    if data.count(b",") + data.count(b":") != 2 * len(fields) - 1 + inner:
        return None  # a string holds a comma or a colon
    return data.replace(b",", b", ").replace(b":", b": ").decode()
