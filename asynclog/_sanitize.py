"""Bounding what a caller hands in: truncation of huge text, the fields of an entry measured
as they will be written, and the memory an entry holds. The rules are in docs/reliability.md,
"Bounds"."""

from __future__ import annotations

import datetime
import json
import sys
import uuid
from collections.abc import Iterable, Mapping
from types import NoneType
from typing import Any, cast

from ._entry import EXCEPTION, FIELDS, MESSAGE, Entry
from .formatters import safe_repr, safe_str

MARKER_ROOM = 48
"""Bytes `truncate` keeps free for its `...[truncated N bytes]` marker."""

KEY_LIMIT = 256
"""A field key longer than this, in UTF-8 bytes, is cut."""

FIELD_SEPARATORS = 8
"""Bytes a field writes beyond its key and value, at most: `"k": "v", ` in JSON."""

LEAST_CUT = 128
"""A value is never cut below this many bytes: fields that cannot all get it are dropped."""

DROP_NOTE_ROOM = 64
"""Room kept for the field that says how many fields were dropped."""

ENTRY_OVERHEAD = 128
"""Bytes an entry holds beyond its text: the tuple (88) and its float (24), rounded up."""

FIELDS_OVERHEAD = 104
"""Bytes a non-empty fields mapping holds: the read-only proxy (40) and an empty dict (64)."""

FIELD_SLOT = 32
"""Bytes one field takes in its dict's tables, about (measured: 23 to 37)."""

_SMALL_INT = 1 << 64
"""An int between -_SMALL_INT and _SMALL_INT writes at most 20 characters."""

_SCALAR_ROOM = 24
"""Characters a float (the longest repr), bool, None or small int writes at most."""

_QUICK_KEY_CHARS = KEY_LIMIT // 4

_FIXED_ROOM = frozenset({float, bool, NoneType})
"""Kinds whose values write at most `_SCALAR_ROOM` characters."""

_NESTING = 3
"""How deep `_container_size` follows containers inside containers."""

_ITEM_CHAR = 12
"""Bytes a character of a str inside a container writes at most: repr writes `\\U000e0001`
for some, and JSON may escape that repr again."""

_SHORT_TEXT = frozenset({uuid.UUID, datetime.date, datetime.timedelta})
"""Kinds (exactly these) whose str() and repr() are at most `_SHORT_TEXT_ROOM` bytes."""

_TIMES = frozenset({datetime.datetime, datetime.time})
"""Kinds (exactly these) whose str() and repr() are as short when their tzinfo is None or
UTC (another tzinfo's repr could be anything)."""

_SHORT_TEXT_ROOM = 96
"""Bytes a `_SHORT_TEXT` or `_TIMES` value writes at most, quoted: the longest is a
timedelta's repr, 71 characters, or a datetime's with `tzinfo=datetime.timezone.utc`, 89."""

_FLAT = frozenset({str, int, float, bool, NoneType, bytes, bytearray, complex})
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def utf8_size(text: str) -> int:
    """How many bytes `text` (an exact `str`) takes in UTF-8; a lone surrogate counts 3."""
    if text.isascii():  # O(1): CPython keeps the flag
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def truncate(text: str, max_bytes: int) -> str:
    """Cut `text` to about `max_bytes` UTF-8 bytes, ending with a marker of what was cut.
    The result is at most `max_bytes` bytes when `max_bytes >= MARKER_ROOM`."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    kept = data[: max(0, max_bytes - MARKER_ROOM)].decode("utf-8", "ignore")
    cut = len(data) - len(kept.encode("utf-8", "surrogatepass"))
    return f"{kept}...[truncated {cut} bytes]"


def exact_str(value: object) -> str:
    """`str(value)` (`repr` or a placeholder when that raises) as an exact `str`: `__str__`
    may return a str subclass, whose `len` or `isascii` could lie."""
    text = safe_str(value)
    return text if type(text) is str else str.__str__(text)


def bound_fields(fields: Mapping[str, Any], max_bytes: int) -> Mapping[str, Any] | None:
    """`fields` bounded by what they will write, or None when they are within the bounds as
    they are. Each value is at most `max_bytes` once written, each key `KEY_LIMIT`, and all of
    them together `2 * max_bytes` (see `_fit`). Keys and str values come out as exact
    `str`; a value too long is replaced by its `str()`, cut."""
    # The common case, in one pass and without rendering anything: an upper bound of what
    # the fields write. Anything it cannot bound cheaply goes to _bounded, which measures.
    chars = 0  # at most 4 UTF-8 bytes each
    extra = FIELD_SEPARATORS * len(fields)  # bytes
    for key, value in fields.items():
        if type(key) is not str or len(key) > _QUICK_KEY_CHARS:
            return _bounded(fields, max_bytes)
        kind = type(value)
        if kind is str:
            chars += len(key) + len(value)
            continue
        chars += len(key)
        if kind in _FIXED_ROOM or (kind is int and -_SMALL_INT < value < _SMALL_INT):
            extra += _SCALAR_ROOM
        elif kind is list or kind is tuple or kind is dict:
            size = _container_size(value, max_bytes)
            if size is None:
                return _bounded(fields, max_bytes)
            extra += size
        elif kind in _SHORT_TEXT or (
            kind in _TIMES and (value.tzinfo is None or value.tzinfo is datetime.UTC)
        ):
            extra += _SHORT_TEXT_ROOM
        else:
            return _bounded(fields, max_bytes)
    if chars * 4 + extra <= max_bytes:  # then every bound holds
        return None
    return _bounded(fields, max_bytes)


_STDLIB_KEYWORDS = frozenset(("exc_info", "stack_info", "stacklevel", "extra"))


def quick_fields(fields: dict[str, Any], max_bytes: int) -> Mapping[str, Any] | None:
    """The level shortcuts' fields: `fields` itself when they hold only str, small int,
    float, bool and None values within `bound_fields`' bounds, and none of the stdlib
    keywords; None when `Intake.accept` must do the full job (freeze, keywords, bounds)."""
    chars = 0  # at most 4 UTF-8 bytes each
    scalars = 0
    for key, value in fields.items():  # keyword names: always exact str
        kind = type(value)
        if kind is str:
            chars += len(value)
        elif kind is int:
            if not -_SMALL_INT < value < _SMALL_INT:
                return None
            scalars += 1
        elif kind is float or kind is bool or value is None:
            scalars += 1
        else:
            return None
        chars += len(key)
    if (
        chars * 4 + FIELD_SEPARATORS * len(fields) + _SCALAR_ROOM * scalars > max_bytes
        or not _STDLIB_KEYWORDS.isdisjoint(fields)
    ):
        return None
    return fields


def _container_size(value: Any, max_bytes: int, depth: int = 0) -> int | None:
    """An upper bound of what a list, tuple or dict (str keys) of scalars and of such
    containers, nested at most `_NESTING` deep, writes as str() or JSON; None for anything
    else, or when the bound passes `max_bytes`."""
    size = 2  # the brackets
    if type(value) is dict:
        for key in value:
            if type(key) is not str:
                return None
            size += _ITEM_CHAR * len(key) + 6  # quotes and ": "
            if size > max_bytes:
                return None
        value = value.values()
    for item in value:
        kind = type(item)
        if kind is str:
            size += _ITEM_CHAR * len(item) + 4  # quotes and ", "
        elif kind in _FIXED_ROOM or (kind is int and -_SMALL_INT < item < _SMALL_INT):
            size += _SCALAR_ROOM + 2
        elif (kind is list or kind is tuple or kind is dict) and depth < _NESTING:
            inner = _container_size(item, max_bytes - size, depth + 1)
            if inner is None:
                return None
            size += inner + 2  # ", "
        else:
            return None
        if size > max_bytes:
            return None
    return size


def _key_text(key: object) -> str:
    """The key as the formatters write it, as an exact `str`, cut to `KEY_LIMIT`."""
    if type(key) is str:
        text = key
    elif issubclass(type(key), str):
        text = str.__str__(key)  # the formatters write a str subclass's own characters
    else:
        text = exact_str(key)
    return truncate(text, KEY_LIMIT) if utf8_size(text) > KEY_LIMIT else text


_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=safe_repr)
"""As `formatters.fields_to_json` encodes (built once: json.dumps would build one a call)."""

_JSON_KINDS = (str, int, float, list, tuple, dict)
"""What the JSON encoder writes as such (subclasses too); anything else becomes its repr."""


def _json_size(value: object) -> int:
    """Bytes `value` takes in the JSON of the fields (the json format, SQLite, PostgreSQL)."""
    if value is not None and not issubclass(type(value), _JSON_KINDS):
        return utf8_size(_json_string(safe_repr(value)))  # what the encoder would do, cheaper
    try:
        text = _JSON.encode(value)
    except Exception:  # what fields_to_json falls back to
        text = _json_string(safe_repr(value))
    return utf8_size(text)


def _json_string(text: str) -> str:
    return json.encoder.encode_basestring(text)


_Measure = tuple[object, str | None, int]
"""A value measured: what is stored when it is kept whole, what is cut when it is not (None:
never more than `_SCALAR_ROOM` bytes, never cut), and the bytes it writes."""


def _measured(value: object, max_bytes: int) -> _Measure:
    if issubclass(type(value), str):  # not isinstance: __class__ can pretend
        # The formatters write a str subclass's own characters: store just those.
        plain = value if type(value) is str else str.__str__(value)
        return plain, plain, utf8_size(plain)
    kind = type(value)
    small_int = kind is int and -_SMALL_INT < value < _SMALL_INT  # type: ignore[operator]
    if small_int or kind in _FIXED_ROOM:
        return value, None, len(repr(value))
    # Anything else (containers, bytes, big ints, objects): render it as the text formats
    # do (str) and, unless that is already too long, as the JSON ones do.
    text = exact_str(value)
    size = utf8_size(text)
    if size <= max_bytes:
        size = max(size, _json_size(value))
    return value, text, size


def _bounded(fields: Mapping[str, Any], max_bytes: int) -> Mapping[str, Any] | None:
    """The slow path of `bound_fields`: measure every value; None when every field is within
    the bounds as it is (the usual case), else what `_fit` makes of them."""
    measures: list[_Measure] = []
    total = 0
    for key, value in fields.items():
        measure = _measured(value, max_bytes)
        measures.append(measure)
        if type(key) is not str or measure[0] is not value or measure[2] > max_bytes:
            return _fit(fields, max_bytes, measures)
        key_bytes = utf8_size(key)
        if key_bytes > KEY_LIMIT:
            return _fit(fields, max_bytes, measures)
        total += key_bytes + FIELD_SEPARATORS + measure[2]
    if total <= 2 * max_bytes:
        return None
    return _fit(fields, max_bytes, measures)


def _fit(fields: Mapping[str, Any], max_bytes: int, measures: list[_Measure]) -> dict[str, Any]:
    """`fields` fitted in the bounds (`measures`: those of the first values, already taken).

    Each value gets at most `max_bytes`; all fields together (keys, values and
    `FIELD_SEPARATORS` each) get `2 * max_bytes`. When that is too little, the values that
    are small stay whole and the large ones share what is left equally (none below
    `LEAST_CUT`); when even that cannot be, the fields that come last are dropped and a
    field `...` says how many and how many bytes."""
    names: list[str] = []
    seen: set[str] = set()
    name_bytes: list[int] = []
    kept: list[_Measure] = []
    dropped = dropped_bytes = 0
    for index, (key, value) in enumerate(fields.items()):
        name = _key_text(key)
        measure = measures[index] if index < len(measures) else _measured(value, max_bytes)
        if name in seen:  # two keys alike once converted or cut: the first one stays
            dropped += 1
            dropped_bytes += utf8_size(name) + measure[2]
            continue
        seen.add(name)
        names.append(name)
        name_bytes.append(utf8_size(name))
        kept.append(measure)

    room = 2 * max_bytes - (DROP_NOTE_ROOM if dropped else 0)
    least = [
        key_bytes + FIELD_SEPARATORS + min(measure[2], LEAST_CUT)
        for key_bytes, measure in zip(name_bytes, kept, strict=True)
    ]
    if sum(least) > room:
        if not dropped:
            room -= DROP_NOTE_ROOM
        used = count = 0
        while count < len(kept) and used + least[count] <= room:
            used += least[count]
            count += 1
        dropped += len(kept) - count
        dropped_bytes += sum(name_bytes[count:]) + sum(measure[2] for measure in kept[count:])
        del names[count:], name_bytes[count:], kept[count:]

    wanted = [min(measure[2], max_bytes) for measure in kept]
    left = room - sum(name_bytes) - FIELD_SEPARATORS * len(kept)
    cap = max_bytes if sum(wanted) <= left else _equal_share(wanted, left)

    bounded: dict[str, Any] = {}
    for name, (whole, text, size) in zip(names, kept, strict=True):
        if size <= cap:
            bounded[name] = whole
        else:
            assert text is not None  # only values over _SCALAR_ROOM are ever cut
            bounded[name] = truncate(text, cap)
    if dropped:
        note = "..."
        while note in bounded:
            note += "."
        bounded[note] = f"[dropped {dropped} fields, {dropped_bytes} bytes]"
    return bounded


def _equal_share(sizes: list[int], room: int) -> int:
    """The largest cap such that the sizes, each cut to it, fit in `room` (water-filling):
    the smaller ones stay whole, the larger ones get the same share of the rest."""
    ordered = sorted(sizes)
    for index, size in enumerate(ordered):
        share = room // (len(ordered) - index)
        if size > share:
            return share
        room -= size
    return ordered[-1] if ordered else 0


_getsizeof = sys.getsizeof
_STR_HEAD = sys.getsizeof("")
"""Bytes an empty str takes: an ASCII str takes this plus one a character."""
_ONE_DIGIT = 1 << 30
_INT_SIZE = sys.getsizeof(1)
"""Bytes an int between -_ONE_DIGIT and _ONE_DIGIT takes."""
_FLOAT_SIZE = sys.getsizeof(0.0)


def approximate_size(entry: Entry) -> int:
    """The bytes an entry holds in memory, measured (`sys.getsizeof`; containers walked):
    used to bound the queue by bytes. The same for the same entry every time."""
    # Runs for every entry of a queue bounded by bytes (and again when it is taken): the
    # common kinds are sized inline, exactly as sys.getsizeof would.
    message = entry[MESSAGE]
    size = ENTRY_OVERHEAD + (
        _STR_HEAD + len(message) if type(message) is str and message.isascii() else _held(message)
    )
    exception = entry[EXCEPTION]
    if exception is not None:
        size += _held(exception)
    fields = entry[FIELDS]
    if fields:
        size += FIELDS_OVERHEAD + FIELD_SLOT * len(fields)
        for key, value in fields.items():
            size += _STR_HEAD + len(key) if type(key) is str and key.isascii() else _held(key)
            kind = type(value)
            if kind is str and value.isascii():
                size += _STR_HEAD + len(value)
            elif kind is int and -_ONE_DIGIT < value < _ONE_DIGIT:
                size += _INT_SIZE
            elif kind is float:
                size += _FLOAT_SIZE
            elif value is not None and kind is not bool:  # None, True, False: shared
                size += _held(value)
    return size


def _held(value: object) -> int:
    """What `value` holds: built-in containers are walked (each one once), anything else
    counts its own `sys.getsizeof` (an object reports what it owns, not what it refers to)."""
    size = 0
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _FLAT:
            size += _getsizeof(item)
        elif kind in _CONTAINERS:
            if id(item) in seen:
                continue
            seen.add(id(item))
            size += _getsizeof(item)
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            else:
                stack.extend(cast(Iterable[object], item))
        else:
            try:
                size += _getsizeof(item)
            except Exception:  # a __sizeof__ that raises or returns nonsense
                size += object.__sizeof__(item)
    return size
