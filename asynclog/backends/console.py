"""The console backend: the text format (or another) on stderr or stdout; the pretty format
(`_pretty.py`) for a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Literal

from .._backend_registry import register_backend
from .._config import ConsoleConfig
from .._entry import Entry
from .._json_shapes import configured_format
from .._pretty import color_wanted, is_terminal, pretty_lines
from ..formatters import Formatter, lines_of, text_format
from ._thread import IOThread

Pretty = Literal["never", "tty", "always"]
"""When the console writes the pretty format: never (the formatter), when the stream is a
terminal (else the formatter), or always."""


class ConsoleBackend:
    """Writes each batch to `sys.stderr` or `sys.stdout` (looked up at write time) from a thread
    of its own. `pretty`: when to write the pretty format instead of `formatter`'s (whether
    the stream is a terminal, and whether to colour, are decided for each batch)."""

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(
        self, formatter: Formatter | None = None, stream: str = "stderr", pretty: Pretty = "never"
    ) -> None:
        self._formatter = formatter or text_format
        self._lines = lines_of(self._formatter)
        self._stream = stream
        self._pretty = pretty
        self._thread = IOThread("asynclog-console")

    async def open(self) -> None:
        return None

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        if self._pretty == "never":
            text = "".join(line + "\n" for line in self._lines(entries))
            await self._thread.run(lambda: _write(_stream(self._stream), text))
        else:  # the terminal checks and rich's rendering, off the loop
            await self._thread.run(lambda: self._write_now(entries))

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit, no event loop: write `entries` to the stream directly."""
        self._write_now(entries)

    def _write_now(self, entries: Sequence[Entry]) -> None:
        stream = _stream(self._stream)
        if self._pretty == "always" or (self._pretty == "tty" and is_terminal(stream)):
            lines = pretty_lines(entries, color=color_wanted(stream))
        else:
            lines = self._lines(entries)
        _write(stream, "".join(line + "\n" for line in lines))

    async def close(self) -> None:
        await self._thread.aclose()


def _stream(name: str) -> IO[str]:
    return sys.stdout if name == "stdout" else sys.stderr


def _write(stream: IO[str], text: str) -> None:
    stream.write(text)
    stream.flush()


def console_backend(config: ConsoleConfig) -> ConsoleBackend:
    """The console backend a `ConsoleConfig` asks for: `"auto"` is the pretty format on a
    terminal and the text format elsewhere."""
    if config.format == "pretty":
        return ConsoleBackend(stream=config.stream, pretty="always")
    if config.format == "auto":
        return ConsoleBackend(stream=config.stream, pretty="tty")
    formatter, _ = configured_format(config.format, config.json_fields, config.json_style)
    return ConsoleBackend(formatter, config.stream)


register_backend("console", ConsoleConfig, console_backend)
