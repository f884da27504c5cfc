"""Registries of live managers: for `asynclog.testing.capture_logs` (lists that receive
every new entry) and for the stdlib bridge (managers by name, start hooks)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._entry import LogEntry

if TYPE_CHECKING:
    from ._manager import LogManager

ACTIVE: list[list[LogEntry]] = []
"""The open captures. Mutated in place only: managers hold a reference to this list."""

MANAGERS: weakref.WeakSet[LogManager] = weakref.WeakSet()
"""Every manager alive: told to take the capturing path when a capture opens or closes, and
found by name by `asynclog.stdlib.AsyncLogHandler`."""

ON_START: list[Callable[[LogManager], None]] = []
"""Called with each manager once it has started (the stdlib bridge writes the records it
held for that manager's name)."""


_MANAGERS_LOCK = threading.Lock()


def add_manager(manager: LogManager) -> None:
    """Register a new manager (any thread may be reading the registry meanwhile)."""
    with _MANAGERS_LOCK:
        MANAGERS.add(manager)


def live_managers() -> list[LogManager]:
    """A snapshot of the managers alive, safe to take from any thread."""
    with _MANAGERS_LOCK:
        return list(MANAGERS)


def open_capture(entries: list[LogEntry]) -> None:
    """Start appending every accepted entry of every manager to `entries`."""
    ACTIVE.append(entries)
    _refresh_all()


def close_capture(entries: list[LogEntry]) -> None:
    """Stop appending to `entries`."""
    for index, active in enumerate(ACTIVE):
        if active is entries:
            del ACTIVE[index]
            break
    _refresh_all()


def _refresh_all() -> None:
    for manager in live_managers():
        manager._refresh_fast_path()
