"""`LogEntry`, the immutable record that travels from `write_log` to the backend."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

EMPTY_FIELDS: Mapping[str, Any] = MappingProxyType({})


class LogEntry(NamedTuple):
    """One log record.

    A `NamedTuple` because it is immutable, has no per-instance dict and is the cheapest
    record Python can build, which matters on the caller's hot path.
    """

    timestamp: float
    """`time.time()` taken when `write_log` was called, not when the entry was written."""
    level: int
    """The level number (a `Level` for the standard ones)."""
    message: str
    logger: str
    """The manager's name (`Config(name=...)`)."""
    fields: Mapping[str, Any] = EMPTY_FIELDS
    """Read-only mapping of the keyword fields given to `write_log`."""
    exception: str | None = None
    """A formatted traceback, when the call captured one."""
