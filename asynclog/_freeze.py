"""Freezing the values of a call: what is written is what they were when the call returned.

Immutable scalars pass as they are (one type check each); the built-in containers are copied,
recursively, as the same type; values of known immutable types pass; any other object is
rendered at the call: a value of the fields becomes its `str()` (what the text and logfmt
formats write), an object inside a container its `repr()` (what both `str()` of a container
and the JSON formats write for it). The rules are in docs/context-and-exceptions.md.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import ipaddress
import pathlib
import uuid
from collections.abc import Mapping, Sized
from types import NoneType
from typing import Any, cast

from .formatters import safe_repr, safe_str

KEYWORDS = frozenset(("exc_info", "stack_info", "stacklevel"))
"""The stdlib keywords a call takes out of its fields (`extra` is expanded into them)."""

MAX_DEPTH = 32
"""Containers nested deeper than this are rendered as their `repr()`."""

MAX_ITEMS = 10_000
"""A container of more than this many items that are not all immutable scalars is rendered at
the call (as its `str()`): copying it item by item would stall the event loop, for a value
that `max_entry_bytes` cuts to its `str()` anyway."""

IMMUTABLE = frozenset(
    {
        str,
        int,
        float,
        bool,
        NoneType,
        bytes,
        complex,
        range,
        decimal.Decimal,
        fractions.Fraction,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        uuid.UUID,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        type(pathlib.Path()),
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Network,
        ipaddress.IPv6Network,
        ipaddress.IPv4Interface,
        ipaddress.IPv6Interface,
    }
)
"""Exactly these types pass untouched."""

_IMMUTABLE_KINDS = (enum.Enum, pathlib.PurePath)
"""Instances of these (subclasses too) pass untouched: enum members and paths."""

_PLAIN_KINDS = (str, int, float)
"""Subclasses of these become their plain value: what the JSON formats write for them (their
own `__str__` could read state that changes after the call)."""


class Rendered(str):
    """An object inside a container, rendered at the call: its `repr()`, which its own
    `repr()` returns as it is, so that `str()` of the container writes what it wrote before."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


def freeze_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` (a dict the caller owns: changed in place) with every value frozen; `extra`,
    when present, expanded into them first (the others win over its keys). The stdlib
    keywords (`exc_info` ...) are left as they are, for the call to take out."""
    if "extra" in fields:
        fields = _with_extra(fields)
    immutable = IMMUTABLE
    for value in fields.values():
        if type(value) not in immutable:
            break
    else:
        return fields  # the common case: scalars only
    for key, value in fields.items():
        if type(value) not in immutable and key not in KEYWORDS:
            fields[key] = _frozen_value(value)
    return fields


def frozen_mapping(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A frozen copy of `fields` (for `bind()` and `contextualize()`)."""
    return freeze_fields(dict(fields))


def _with_extra(fields: dict[str, Any]) -> dict[str, Any]:
    extra = fields.pop("extra")
    if extra is None:
        return fields
    if not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict, got {type(extra).__name__} {safe_repr(extra)}")
    return {**extra, **fields}


def _frozen_value(value: Any) -> object:
    """A value of the fields, frozen: a copy, itself, or its `str()`."""
    kind = type(value)
    immutable = IMMUTABLE
    # Only immutable items: a shallow copy is a deep one (inline for lists and dicts).
    if kind is list:
        for item in value:
            if type(item) not in immutable:
                return _frozen_item(value, 0, set())
        return value[:]
    if kind is dict:
        for key, item in value.items():
            if type(item) not in immutable or type(key) not in immutable:
                return _frozen_item(value, 0, set())
        return value.copy()
    if kind in _CONTAINERS:
        return _frozen_item(value, 0, set())
    if isinstance(value, _IMMUTABLE_KINDS):
        return value
    if isinstance(value, _PLAIN_KINDS):
        return _plain(value)
    if issubclass(kind, tuple):
        return _frozen_item(value, 0, set())
    return safe_str(value)


def _frozen_item(value: object, depth: int, path: set[int]) -> object:
    """`value` inside the fields (`path`: the ids of the containers around it)."""
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    if kind in _CONTAINERS:
        if _flat(value, kind):
            return _shallow_copy(value, kind)
    elif isinstance(value, _IMMUTABLE_KINDS):
        return value
    elif isinstance(value, _PLAIN_KINDS):
        return _plain(value)
    elif not issubclass(kind, tuple):
        return Rendered(safe_repr(value))
    if id(value) in path:  # a container inside itself: what repr() writes for it
        return Rendered("{...}" if kind is dict else "[...]")
    if depth >= MAX_DEPTH:
        return Rendered(safe_repr(value))
    if kind in _CONTAINERS and len(cast(Sized, value)) > MAX_ITEMS:  # exact types: len is true
        return Rendered(safe_repr(value)) if depth else safe_str(value)
    path.add(id(value))
    try:
        return _CONTAINERS.get(kind, _copy_tuple_subclass)(value, depth + 1, path)
    finally:
        path.discard(id(value))


def _plain(value: str | int | float) -> object:
    """A str, int or float subclass's value as the plain type."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    return float.__float__(value)


def _flat(value: Any, kind: type) -> bool:
    """A list, tuple, set, dict or bytearray (`kind`, exactly) of immutable scalars only."""
    immutable = IMMUTABLE
    if kind is dict:
        for key, item in value.items():
            if type(item) not in immutable or type(key) not in immutable:
                return False
        return True
    if kind is bytearray:
        return True  # of ints
    return all(type(item) in immutable for item in value)


def _shallow_copy(value: Any, kind: type) -> object:
    if kind is tuple or kind is frozenset:
        return value  # immutable, and so is everything in it
    return value.copy() if kind is not list else value[:]


def _copy_list(value: Any, depth: int, path: set[int]) -> object:
    return [_frozen_item(item, depth, path) for item in value]


def _copy_tuple(value: Any, depth: int, path: set[int]) -> object:
    return tuple([_frozen_item(item, depth, path) for item in value])


def _copy_dict(value: Any, depth: int, path: set[int]) -> object:
    return {
        _frozen_item(key, depth, path): _frozen_item(item, depth, path)
        for key, item in value.items()
    }


def _copy_set(value: Any, depth: int, path: set[int]) -> object:
    return {_frozen_item(item, depth, path) for item in value}


def _copy_frozenset(value: Any, depth: int, path: set[int]) -> object:
    return frozenset([_frozen_item(item, depth, path) for item in value])


def _copy_tuple_subclass(value: Any, depth: int, path: set[int]) -> object:
    """A named tuple stays itself when everything in it is frozen already, else its repr."""
    originals = tuple.__getitem__(value, slice(None))  # not through its own __iter__
    items = [_frozen_item(item, depth, path) for item in originals]
    if all(item is original for item, original in zip(items, originals, strict=True)):
        return value
    return Rendered(safe_repr(value))


_CONTAINERS: dict[type, Any] = {
    bytearray: _copy_list,  # (never called: `_flat`, then a shallow copy)
    list: _copy_list,
    tuple: _copy_tuple,
    dict: _copy_dict,
    set: _copy_set,
    frozenset: _copy_frozenset,
}
