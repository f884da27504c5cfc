"""The JSON format's fields through orjson (the `fastjson` extra): the same text as the
standard library's encoder, or None when orjson would write anything else.

orjson writes compact separators, floats below 1e-4 in another notation, `null` for NaN and
infinities, and enum members, UUIDs and its own Fragments as their values, where the standard
path writes the `repr()`. So only exact str, int, bool, None, finite floats of 1e-4 and more
(or zero), lists, tuples and dicts are handed to it, at most `MAX_DEPTH` deep; it refuses the
rest itself (ints beyond 64 bits, keys that are not str, lone surrogates), and the caller
takes the standard path.

Separators: fields of scalars only are encoded indented (`": "` after each key, a newline and
two spaces after each comma and around the items); a string never holds a raw newline, so
taking those out gives the standard text. Fields holding containers are encoded compactly and
each `,` and `:` gets its space, which is only right when no string holds one: the structural
ones are counted while the values are checked, and a count that differs sends the fields to
the standard path. (Taking the indents of nested containers out cost more than the standard
encoder saves.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

try:
    import orjson

    AVAILABLE = True
except ImportError:  # the fastjson extra is not installed
    AVAILABLE = False

MAX_DEPTH = 32
"""Containers nested deeper than this take the standard path (so does a cycle)."""

_SCALARS = frozenset((str, int, bool, type(None)))
_SMALLEST_FLOAT = 1e-4  # below it, repr() writes `1e-05` and orjson `0.00001`
_LARGEST_FLOAT = sys.float_info.max


def _refuse(value: object) -> object:
    raise TypeError(type(value).__name__)


if AVAILABLE:
    # Subclasses, datetimes and dataclasses go to `default` (which refuses them) instead of
    # being written as orjson writes them; the checks below keep them away anyway.
    _COMPACT = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )
    _INDENTED = _COMPACT | orjson.OPT_INDENT_2


def _float_as_repr(value: float) -> bool:
    """Whether orjson writes `value` as `repr()` does (NaN fails both comparisons)."""
    return value == 0.0 or _SMALLEST_FLOAT <= abs(value) <= _LARGEST_FLOAT


def _separators(container: dict[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> int:
    """The commas and colons orjson writes compactly in `container` (at `depth`), or -1 when
    something in it is not for orjson."""
    if depth > MAX_DEPTH:
        return -1
    if type(container) is dict:
        items: Iterable[Any] = container.values()
        total = 2 * len(container) - 1 if container else 0
    else:
        items = container
        total = len(container) - 1 if container else 0
    for value in items:
        kind = type(value)
        if kind is float:
            if not _float_as_repr(value):
                return -1
        elif kind is dict or kind is list or kind is tuple:
            inner = _separators(value, depth + 1)
            if inner < 0:
                return -1
            total += inner
        elif kind not in _SCALARS:
            return -1
    return total


def encode_fields(fields: dict[str, Any]) -> str | None:
    """`fields` (not empty) as the standard encoder writes them (`", "` and `": "`), or None
    when orjson cannot give the same text."""
    nested = False
    separators = 2 * len(fields) - 1  # the commas and colons orjson writes compactly
    for value in fields.values():
        kind = type(value)
        if kind is float:
            if not (value == 0.0 or _SMALLEST_FLOAT <= abs(value) <= _LARGEST_FLOAT):
                return None
        elif kind is dict or kind is list or kind is tuple:
            inner = _separators(value, 1)
            if inner < 0:
                return None
            separators += inner
            nested = True
        elif kind not in _SCALARS:
            return None
    try:
        if not nested:
            data = orjson.dumps(fields, default=_refuse, option=_INDENTED)
            # `{\n  "key": value,\n  "key": value\n}`, and a string never holds a raw newline.
            return (b"{" + data[4:-2].replace(b",\n  ", b", ") + b"}").decode()
        data = orjson.dumps(fields, default=_refuse, option=_COMPACT)
    except Exception:  # a key that is not str, an int beyond 64 bits, a lone surrogate
        return None
    if data.count(b",") + data.count(b":") != separators:
        return None  # a string holds a comma or a colon: the replace would change it
    return data.replace(b",", b", ").replace(b":", b": ").decode()
