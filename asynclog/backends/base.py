"""The `Backend` protocol every sink implements, built-in or user-supplied."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, cast, runtime_checkable

from .._entry import Entry, LogEntry, as_log_entries


class WouldBlock(Exception):
    """Raised by a backend's `write_batch_blocking` when it cannot write without waiting (a
    lock another connection holds): nothing was written; the manager awaits `write_batch`."""


@runtime_checkable
class Backend(Protocol):
    """Where entries end up.

    The manager calls `open()` once from `start()`, then `write_batch()` never concurrently
    (one worker in async mode, a lock in sync mode), then `close()` once. `write_batch` should
    write the whole batch or raise; the manager counts a raising batch as failed.

    Optional: a backend whose write takes microseconds (like the file backend) may also offer
    `write_batch_blocking(entries) -> None`; sync mode then calls it directly on the loop's
    thread instead of awaiting `write_batch`, as the standard library's handlers do. It may
    raise `WouldBlock` to have this one batch written through `write_batch` instead.

    Optional too: a class attribute `takes_entry_tuples = True` makes asynclog pass each entry
    as the plain tuple of its six fields instead of a `LogEntry` (the built-in backends do; see
    docs/backends-and-formats.md).
    """

    async def open(self) -> None:
        """Acquire the resources (file, connection); raise `LogError` naming what failed."""
        ...

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        """Write the entries, in order."""
        ...

    async def close(self) -> None:
        """Flush and release everything `open()` acquired."""
        ...


T = TypeVar("T")


def taking_entry_tuples(
    method: Callable[[Sequence[LogEntry]], T], backend: object
) -> Callable[[Sequence[Entry]], T]:
    """`method` of `backend` (`write_batch`, `write_batch_blocking`, `flush_at_exit`), called
    with what the pipeline carries. Built-in backends set `takes_entry_tuples = True` and get
    the entries as they are; any other backend gets each batch as `LogEntry` objects."""
    if getattr(backend, "takes_entry_tuples", False) is True:
        return cast(Callable[[Sequence[Entry]], T], method)
    return lambda entries: method(as_log_entries(entries))
