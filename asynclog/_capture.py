"""The registry behind `asynclog.testing.capture_logs`: lists that receive every new entry."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ._entry import LogEntry

if TYPE_CHECKING:
    from ._manager import LogManager

ACTIVE: list[list[LogEntry]] = []
"""The open captures. Mutated in place only: managers hold a reference to this list."""

MANAGERS: weakref.WeakSet[LogManager] = weakref.WeakSet()
"""Every manager alive: told to take the capturing path when a capture opens or closes."""


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
    for manager in list(MANAGERS):
        manager._refresh_fast_path()
