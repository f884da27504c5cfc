"""`LogEntry`, the immutable record that travels from `write_log` to the backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NamedTuple, overload

EMPTY_FIELDS: Mapping[str, Any] = MappingProxyType({})
"""The read-only fields of a `LogEntry` without any."""

NO_FIELDS: Mapping[str, Any] = EMPTY_FIELDS
"""The fields of an `Entry` without any: shared by every such entry, so read-only.

Entries carry their fields as plain dicts that nothing changes after the call. A read-only
proxy (what a `LogEntry` shows) is one more object the garbage collector tracks: every entry
waiting in a queue was two objects that each collection traversed until it was written, and
that were promoted to the oldest generation on the way. `as_log_entry` gives code outside
asynclog the read-only view. What many entries share (this, a span's trace fields) stays a
read-only mapping: a backend that takes the plain tuples must not be able to change it.
"""


class Location(NamedTuple):
    """Where an entry was logged from (`Config(capture_location=True)`)."""

    module: str
    """The calling module's `__name__`."""
    function: str
    """The calling function's name (`<module>` at the top level of a module)."""
    line: int
    """The line number of the call."""


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
    template: str | None = None
    """The `%`-template when the call gave arguments (`message` is then `template % args`);
    None when it gave none (`message` is the template)."""
    location: Location | None = None
    """Where the call was made, with `Config(capture_location=True)`; else None."""


Entry = tuple[float, int, str, str, Mapping[str, Any], str | None, str | None, Location | None]
# Where each field sits in an `Entry` (and a `LogEntry`): index by these names, never by number
# (`Final` keeps each a literal, so mypy still knows the type of `entry[LEVEL]`).
TIME: Final = 0
LEVEL: Final = 1
MESSAGE: Final = 2
LOGGER: Final = 3
FIELDS: Final = 4
EXCEPTION: Final = 5
TEMPLATE: Final = 6
LOCATION: Final = 7
"""What the pipeline carries: a `LogEntry` or the plain tuple of its eight fields.

The calls build plain tuples: CPython recycles those, while every `LogEntry` instance counts
towards the next garbage collection, and at a few hundred thousand entries a second those
collections cost a fifth of the throughput and the longest stalls of the event loop. Code
outside asynclog (handlers, write observers, user backends and formatters, captures) only
ever sees `LogEntry`: `as_log_entries` converts at those borders.
"""

_new_tuple = tuple.__new__


def as_log_entry(entry: Entry) -> LogEntry:
    """`entry` as a `LogEntry` (itself when it already is one), its fields read-only."""
    if entry.__class__ is LogEntry:
        return entry
    fields = entry[FIELDS]
    if fields.__class__ is dict:
        read_only = MappingProxyType(fields) if fields else EMPTY_FIELDS
        return _new_tuple(LogEntry, (*entry[:FIELDS], read_only, *entry[FIELDS + 1 :]))
    return _new_tuple(LogEntry, entry)


def as_log_entries(entries: Sequence[Entry]) -> list[LogEntry]:
    """Every entry as a `LogEntry`, in order."""
    return [as_log_entry(entry) for entry in entries]


class LogEntries(Sequence[LogEntry]):
    """A batch as `LogEntry` objects, converted when first read: a write observer that only
    takes the batch's `len()` costs nothing per entry. Compares equal to a list or tuple of
    the same entries."""

    __slots__ = ("_converted", "_entries")

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._entries = entries
        self._converted: list[LogEntry] | None = None

    def _all(self) -> list[LogEntry]:
        converted = self._converted
        if converted is None:
            converted = self._converted = as_log_entries(self._entries)
        return converted

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> LogEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[LogEntry]: ...
    def __getitem__(self, index: int | slice) -> LogEntry | list[LogEntry]:
        return self._all()[index]

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LogEntries):
            other = other._all()
        if isinstance(other, list | tuple):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the list it stands for

    def __repr__(self) -> str:
        return f"LogEntries({self._all()!r})"
