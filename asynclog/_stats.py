"""Counters (each incremented in exactly one place) and the `LogStats` snapshot."""

from __future__ import annotations

from dataclasses import dataclass


class Counters:
    """The manager's running totals; `LogStats` is a read-only snapshot of them."""

    __slots__ = ("dropped", "handler_errors", "write_errors", "written")

    def __init__(self) -> None:
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        self.handler_errors = 0


@dataclass(frozen=True, slots=True)
class LogStats:
    """A snapshot of the manager's state, from `LogManager.get_stats()`."""

    queue_size: int
    """Entries waiting in the queue (0 in sync mode)."""
    queue_capacity: int
    """The queue's bound (`Config.queue_size`); 0 in sync mode."""
    is_async: bool
    handler_count: int
    written: int
    """Entries the backend has written."""
    dropped: int
    """Entries accepted or offered but not written: queue full, or their batch failed."""
    write_errors: int
    """Backend calls that raised (one per failed batch)."""
    handler_errors: int
    """Handler calls that raised."""
