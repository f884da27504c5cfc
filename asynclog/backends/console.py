"""The console backend: the text format (or another) on stderr or stdout."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._backend_registry import register_backend
from .._config import ConsoleConfig
from .._entry import Entry
from .._json_shapes import configured_format
from ..formatters import Formatter, lines_of, text_format
from ._thread import IOThread


class ConsoleBackend:
    """Writes each batch to `sys.stderr` or `sys.stdout` (looked up at write time) from a thread
    of its own."""

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(self, formatter: Formatter | None = None, stream: str = "stderr") -> None:
        self._formatter = formatter or text_format
        self._lines = lines_of(self._formatter)
        self._stream = stream
        self._thread = IOThread("asynclog-console")

    async def open(self) -> None:
        return None

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        text = "".join(line + "\n" for line in self._lines(entries))
        await self._thread.run(lambda: _write(self._stream, text))

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit, no event loop: write `entries` to stderr directly."""
        _write(self._stream, "".join(line + "\n" for line in self._lines(entries)))

    async def close(self) -> None:
        await self._thread.aclose()


def _write(name: str, text: str) -> None:
    stream = sys.stdout if name == "stdout" else sys.stderr
    stream.write(text)
    stream.flush()


def console_backend(config: ConsoleConfig) -> ConsoleBackend:
    """The console backend a `ConsoleConfig` asks for."""
    formatter, _ = configured_format(config.format, config.json_fields, config.json_style)
    return ConsoleBackend(formatter, config.stream)


register_backend("console", ConsoleConfig, console_backend)
