"""`write_on_loop=True` (file and SQLite backends): batches written on the event loop's thread
until one write holds the loop too long; then, for good, on the backend's thread."""

from __future__ import annotations

import time
from collections.abc import Callable

from .._report import warn


class LoopWrites:
    """Whether the backend still writes on the loop (`on`), and `run`, which times each write
    there and turns `on` off after one that took longer than `limit` seconds (wall time)."""

    def __init__(self, enabled: bool, limit: float, backend: str, path: str) -> None:
        self.on = enabled
        self.limit = limit
        self._backend = backend
        self._path = path

    def run(self, write: Callable[[], None]) -> None:
        """Call `write` here and now; a slow one sends the later writes to the thread."""
        started = time.monotonic()
        try:
            write()
        finally:
            took = time.monotonic() - started
            if took > self.limit and self.on:
                self.on = False
                warn(
                    f"a write to {self._path!r} held the event loop for {took * 1000:.0f} ms; "
                    "later writes go to the backend's thread (write_on_loop=True is for a fast "
                    "local disk)",
                    self._backend,
                )
