"""The console backend: the text format on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._entry import LogEntry
from ..formatters import Formatter, text_format
from ._thread import IOThread


class ConsoleBackend:
    """Writes each batch to `sys.stderr` (looked up at write time) from a thread of its own."""

    def __init__(self, formatter: Formatter | None = None) -> None:
        self._formatter = formatter or text_format
        self._thread = IOThread("asynclog-console")

    async def open(self) -> None:
        return None

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        text = "".join(self._formatter(entry) + "\n" for entry in entries)
        await self._thread.run(lambda: _write_stderr(text))

    def flush_at_exit(self, entries: Sequence[LogEntry]) -> None:
        """Interpreter exit, no event loop: write `entries` to stderr directly."""
        _write_stderr("".join(self._formatter(entry) + "\n" for entry in entries))

    async def close(self) -> None:
        await self._thread.aclose()


def _write_stderr(text: str) -> None:
    stream = sys.stderr
    stream.write(text)
    stream.flush()
