"""Bounding what a caller hands in: truncation of huge text, and the size of an entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._entry import FIELDS, MESSAGE, Entry

ENTRY_OVERHEAD = 128
"""Approximate bytes of an entry beyond its text: the tuple, the float, the references."""


def truncate(text: str, max_bytes: int) -> str:
    """Cut `text` to about `max_bytes` UTF-8 bytes, ending with a marker of what was cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    kept = data[: max(0, max_bytes - 48)].decode("utf-8", "ignore")
    cut = len(data) - len(kept.encode("utf-8", "surrogatepass"))
    return f"{kept}...[truncated {cut} bytes]"


_SIZED = (str, bytes, bytearray)


def bound_fields(fields: Mapping[str, Any], max_bytes: int) -> Mapping[str, Any] | None:
    """A copy of `fields` with over-long text values truncated (bytes become their truncated
    repr), or None when nothing is too long. Other values are bounded where they are
    formatted (their repr), not here: measuring them would cost every call."""
    too_long = [
        key
        for key, value in fields.items()
        if value.__class__ in _SIZED and len(value) * 4 > max_bytes
    ]
    if not too_long:
        return None
    bounded = dict(fields)
    for key in too_long:
        value = bounded[key]
        bounded[key] = truncate(value if isinstance(value, str) else repr(value), max_bytes)
    return bounded


def approximate_size(entry: Entry) -> int:
    """What an entry costs in memory, roughly: used to bound the queue by bytes."""
    size = ENTRY_OVERHEAD + len(entry[MESSAGE])  # the message
    for key, value in entry[FIELDS].items():  # the fields
        size += 64 + len(key) + (len(value) if value.__class__ in _SIZED else 0)
    return size
