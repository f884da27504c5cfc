"""The `Backend` protocol every sink implements, built-in or user-supplied."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast, runtime_checkable

from .._entry import Entry, LogEntry, as_log_entries


class WouldBlock(Exception):
    """Raised by a backend's `write_batch_blocking` when it cannot write without waiting (a
    lock another connection holds): nothing was written; the manager awaits `write_batch`."""


class WriteContinues(asyncio.CancelledError):
    """Raised by a backend's `write_batch` when the task was cancelled while the batch was
    already handed to a thread that finishes it anyway (aiosqlite's, for example). `outcome`
    resolves to True once the batch is written, False if it failed: the manager counts the
    entries written or dropped then, and holds them as pending until it does.

    `ended`, optional, says the same without the event loop (True, False; None while the thread
    still writes). Once the loop has closed, `outcome` can no longer resolve: with `ended`, the
    manager counts the batch by it when it next works without a loop (`get_stats()`, the exit
    write); without it (None), the entries stay pending."""

    def __init__(
        self, outcome: asyncio.Future[bool], ended: Callable[[], bool | None] | None = None
    ) -> None:
        super().__init__("the write goes on after the cancellation")
        self.outcome = outcome
        self.ended = ended


@runtime_checkable
class Backend(Protocol):
    """Where entries end up.

    The manager calls `open()` once from `start()`, then `write_batch()` never concurrently
    (one worker in async mode, a lock in sync mode; see `concurrency` below), then `close()`
    once. `write_batch` should write the whole batch or raise; the manager counts a raising
    batch as failed (retried, then the fallback).

    Optional hooks, found by name (none is required; the built-in backends show each one):

    - `write_batch_blocking(entries) -> None`, a plain method: a backend whose write takes
      microseconds (the file backend) offers it; sync mode then calls it on the loop's thread
      instead of awaiting `write_batch`, as the standard library's handlers do. It may raise
      `WouldBlock` to have this one batch written through `write_batch` instead. It is not
      used when a subclass overrides `write_batch` below it.
    - `flush_at_exit(entries) -> None`, a plain method: at interpreter exit, or when the loop
      has closed, for a manager nobody closed; it must write `entries` without an event loop,
      within a few seconds. Without it, such entries are counted dropped.
    - `WriteContinues(outcome)`: raise it from `write_batch` when cancelled while a thread
      still finishes the batch, so that the entries are counted as what happened to them.
    - `concurrency: int`, an attribute read once at `start()`: in async mode, how many
      `write_batch` calls the backend takes at once (default 1). With N > 1 the worker keeps
      up to N batches in flight, each retried, dead-lettered and counted on its own; batches
      may then complete (and land) out of order. Each call runs in a task of its own, and a
      retry of a batch comes from the same task (the very same sequence), except after a
      cancellation: then another task writes it again, while the first is still referenced.
    - `rotated_files_deleted: int`, an attribute (or property) read by `get_stats()`: the
      files the backend deleted to keep its history bounded (`LogStats.rotated_files_deleted`).
    - `takes_entry_tuples = True`, a class attribute: the methods this class defines get each
      entry as the plain tuple of its six fields (index it with `asynclog._entry.TIME` ...
      `EXCEPTION`) instead of a `LogEntry`; a subclass that overrides a method gets `LogEntry`
      objects there unless it says so again.
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


def concurrency_of(backend: object) -> int:
    """The backend's `concurrency`: a positive int, else 1."""
    value = getattr(backend, "concurrency", 1)
    if isinstance(value, int) and not isinstance(value, bool) and value > 1:
        return value
    return 1


def takes_entry_tuples(backend: object, method: str) -> bool:
    """Whether `backend.<method>` takes the pipeline's plain entry tuples: the class that
    defines the method says so with `takes_entry_tuples = True`. A subclass that overrides the
    method gets `LogEntry` objects unless it says so again; a function set on the instance
    always gets them."""
    if method in getattr(backend, "__dict__", {}):
        return False
    definer = _defined_by(backend, method)
    return definer is not None and vars(definer).get("takes_entry_tuples", False) is True


def _defined_by(backend: object, method: str) -> type | None:
    """The class in `backend`'s MRO that defines `method`."""
    for cls in type(backend).__mro__:
        if method in vars(cls):
            return cls
    return None


def blocking_write(backend: object) -> Callable[[Sequence[LogEntry]], None] | None:
    """`backend.write_batch_blocking`, if it has one that writes what `write_batch` would: not
    when a subclass (or the instance) overrides `write_batch` below the blocking method."""
    method = getattr(backend, "write_batch_blocking", None)
    if method is None or "write_batch" in getattr(backend, "__dict__", {}):
        return None
    if "write_batch_blocking" in getattr(backend, "__dict__", {}):
        return cast(Callable[[Sequence[LogEntry]], None], method)
    blocking, batch = (
        _defined_by(backend, "write_batch_blocking"),
        _defined_by(backend, "write_batch"),
    )
    if blocking is None or batch is None or not issubclass(blocking, batch):
        return None
    return cast(Callable[[Sequence[LogEntry]], None], method)


def taking_entry_tuples(backend: object, method: str) -> Callable[[Sequence[Entry]], Any]:
    """`backend.<method>` (`write_batch`, `write_batch_blocking`, `flush_at_exit`), called with
    what the pipeline carries: the entries as they are if it `takes_entry_tuples`, else each
    batch as `LogEntry` objects."""
    bound = getattr(backend, method)
    if takes_entry_tuples(backend, method):
        return cast(Callable[[Sequence[Entry]], Any], bound)
    return lambda entries: bound(as_log_entries(entries))
