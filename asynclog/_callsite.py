"""The call site, found by walking the stack past asynclog's own frames (as `logging` does
with its `_srcfile` check): the caller's `Location` and `stack_info`'s stack text."""

from __future__ import annotations

import os
import sys
import traceback
from types import CodeType, FrameType

from ._entry import Location

_PACKAGE_DIR = os.path.dirname(__file__) + os.sep
"""Frames whose code lives under this directory are asynclog's: never the caller."""

STACK_HEADER = "Stack (most recent call last):"
"""What heads the stack `stack_info=True` adds, as in `logging`."""


def _is_internal(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def caller_frame(stacklevel: int = 1) -> FrameType | None:
    """The frame of the code that called asynclog (`stacklevel=1`), or of its caller (2) and
    so on, skipping asynclog's own frames at every step; the outermost frame when the stack
    is shorter. None only when every frame is asynclog's."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _is_internal(frame):
        frame = frame.f_back
    while frame is not None and stacklevel > 1:
        outer = frame.f_back
        if outer is None:
            break
        frame = outer
        if not _is_internal(frame):
            stacklevel -= 1
    return frame


_LOCATIONS: dict[tuple[int, int], tuple[CodeType, Location]] = {}
"""The `Location` of each line logged from, built once (and shared by its entries). Keyed by
the code's id, which is cheap to hash (a code object's own hash reads all of it); the code
is kept beside it, so that the id cannot be reused while the key is there."""

_LOCATIONS_LIMIT = 4096
"""Beyond this many call sites (code made at run time, say) the cache starts afresh."""


def location_of(frame: FrameType | None) -> Location | None:
    """The `Location` of `frame`: its module's `__name__`, its function and its line."""
    if frame is None:
        return None
    code = frame.f_code
    key = (id(code), frame.f_lineno)
    known = _LOCATIONS.get(key)
    if known is not None:
        return known[1]
    if len(_LOCATIONS) >= _LOCATIONS_LIMIT:
        _LOCATIONS.clear()
    module = frame.f_globals.get("__name__")
    location = Location(module if isinstance(module, str) else "?", code.co_name, key[1] or 0)
    _LOCATIONS[key] = (code, location)
    return location


def stack_text(frame: FrameType | None) -> str | None:
    """The stack down to `frame`, headed as `logging` heads `stack_info`, no final newline."""
    if frame is None:
        return None
    lines = "".join(traceback.format_stack(frame)).rstrip("\n")
    return f"{STACK_HEADER}\n{lines}"


def checked_stacklevel(value: object) -> int:
    """`stacklevel=` as given to a call: an int (values below 1 count as 1, as in logging)."""
    if type(value) is not int:
        raise TypeError(f"stacklevel must be an int, got {type(value).__name__} {value!r}")
    return max(value, 1)
