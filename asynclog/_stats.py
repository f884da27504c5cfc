"""Counters (each changed in exactly one place) and the `LogStats` snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class Counters:
    """The manager's running totals; `LogStats` is a read-only snapshot of them.

    Every entry that passes the level filter is `accepted`, and ends `written`, `dropped` or
    `dead_lettered`; until then it is pending (queued, waiting for room, or being written).
    """

    __slots__ = (
        "accepted",
        "dead_lettered",
        "dropped",
        "filtered",
        "handler_errors",
        "on_first_drop",
        "retries",
        "unreported_drops",
        "unreported_since",
        "unreported_until",
        "write_errors",
        "written",
    )

    def __init__(self, on_first_drop: Callable[[int], None] | None = None) -> None:
        self.on_first_drop = on_first_drop
        """Called with the count when a burst of drops begins (the stderr report)."""
        self.accepted = 0
        self.filtered = 0
        self.written = 0
        self.dropped = 0
        self.dead_lettered = 0
        self.write_errors = 0
        self.handler_errors = 0
        self.retries = 0
        self.unreported_drops = 0
        self.unreported_since = 0.0
        self.unreported_until = 0.0

    def drop(self, count: int) -> None:
        """Count `count` entries as dropped; the worker reports them in the log itself."""
        if count <= 0:
            return
        self.dropped += count
        now = time.time()
        if not self.unreported_drops:
            self.unreported_since = now
            if self.on_first_drop is not None:
                self.on_first_drop(count)
        self.unreported_until = now
        self.unreported_drops += count

    def take_drop_report(self) -> tuple[int, float, float] | None:
        """`(count, first, last)` of the drops not yet reported in-band; marks them reported."""
        if not self.unreported_drops:
            return None
        report = (self.unreported_drops, self.unreported_since, self.unreported_until)
        self.unreported_drops = 0
        return report


@dataclass(frozen=True, slots=True)
class LogStats:
    """A snapshot of the manager's state, from `LogManager.get_stats()`.

    At any quiet moment `accepted == written + dropped + dead_lettered + pending`.
    """

    queue_size: int
    """Entries waiting in the queue (0 in sync mode)."""
    queue_capacity: int
    """The queue's bound (`Config.queue_size`); 0 in sync mode."""
    is_async: bool
    handler_count: int
    written: int
    """Entries the primary backend has written."""
    dropped: int
    """Entries lost on purpose or by failure: full queue (by the overflow policy), refused when
    close began, abandoned by `close(timeout)`, or failed on both the backend and the fallback."""
    write_errors: int
    """Backend calls that raised (each retry counts)."""
    handler_errors: int
    """Handler calls that raised."""
    accepted: int = 0
    """Entries that reached `write_log` at or above the level."""
    dead_lettered: int = 0
    """Entries written to the fallback after the primary backend kept failing."""
    filtered: int = 0
    """Entries discarded at the call and never accepted: below the level, or dropped by a
    processor (the sum of `filtered_by`)."""
    pending: int = 0
    """Entries accepted but not yet settled: queued, waiting for room, or being written."""
    retries: int = 0
    """Batch writes retried after a failure."""
    queue_bytes: int = 0
    """The approximate bytes of the queued entries (0 unless `Config.max_queue_bytes` is set)."""
    filtered_by: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """`filtered` by cause: `"level"` (the level filter) and each processor's name (`"sample"`,
    `"rate_limit"`, `"dedupe"`, `"redact"`, or a callable's `__name__`), with 0 for those that
    dropped nothing. A backend's own figures count its own processors only."""
    rotated_files_deleted: int = 0
    """Rotated files the backends deleted: the oldest pushed out past `max_backups` by a
    rotation, and those removed by retention (the file backend's; any backend with a
    `rotated_files_deleted` attribute reports it). A file deleted while the service still
    writes more than the rotation holds is history lost: see getting-started's sizing."""
    backends: Mapping[str, LogStats] = field(default_factory=lambda: MappingProxyType({}))
    """Each backend's own figures, by its name (`"file"`, `"sqlite"`, ...). With several
    backends the totals add them up: an entry sent to two backends counts twice in
    `accepted`, so `accepted == written + dropped + dead_lettered + pending` holds for the
    totals as for each backend."""


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What `close()` achieved."""

    written: int
    """Entries written to the primary backend over the manager's life."""
    dropped: int
    """Entries dropped over the manager's life (abandoned ones included)."""
    abandoned: int
    """Entries still unwritten when `close(timeout=...)` ran out of time."""
    dead_lettered: int = 0
