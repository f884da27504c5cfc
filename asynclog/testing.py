"""Helpers for testing code that logs through asynclog, without files.

    from asynclog.testing import capture_logs

    with capture_logs() as logs:
        await handle_request(...)
    assert [(e.level, e.message) for e in logs] == [(Level.INFO, "request done")]

The pytest fixture `asynclog_capture` (registered as a pytest plugin when asynclog is
installed) gives the same list for the duration of a test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import _registry
from ._entry import LogEntry

__all__ = ["capture_logs"]


@contextlib.contextmanager
def capture_logs() -> Iterator[list[LogEntry]]:
    """Collect every entry that any `LogManager` accepts inside the block, in call order.

    Entries are captured at the call (before the queue), with their fields, context and
    traceback; below-level entries are not. The managers still write to their backends as
    usual. Captures nest: each open capture receives every entry.
    """
    entries: list[LogEntry] = []
    _registry.open_capture(entries)
    try:
        yield entries
    finally:
        _registry.close_capture(entries)
