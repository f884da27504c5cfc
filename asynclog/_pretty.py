"""The console's pretty format, for a developer's terminal (`ConsoleConfig(format="pretty")`).

`HH:MM:SS.mmm LEVEL    logger [location] message key=value ...`, then the traceback on lines
of its own: the time dimmed, the level coloured, the logger in cyan, the fields dimmed. The
traceback is highlighted by rich when it is importable and colour is on, and is the plain
stdlib text otherwise.

Everything that comes from a caller is escaped with `formatters.escape` (the text format's
escaping) before any colour is added: no message, field, logger name or exception text can
put a control character on the terminal. A traceback keeps its newlines as real lines; each
of its lines is escaped on its own.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Sequence
from typing import IO

from ._entry import Entry
from ._levels import level_name
from .formatters import _text_key, _text_value, escape, location_text

RESET = "\x1b[0m"
DIM = "\x1b[2m"
LOGGER_COLOR = "\x1b[36m"

LEVEL_COLORS = (
    (50, "\x1b[1;37;41m"),  # CRITICAL and above: bold white on red
    (40, "\x1b[1;31m"),  # ERROR: bold red
    (30, "\x1b[1;33m"),  # WARNING: bold yellow
    (20, "\x1b[1;32m"),  # INFO: bold green
    (0, "\x1b[1;34m"),  # DEBUG and below: bold blue
)
"""The SGR sequence of a level: that of the highest standard level at or below it."""

LEVEL_WIDTH = 8
"""The level name is padded to this width (`CRITICAL`), so messages line up."""

RICH_VARIABLE = "ASYNCLOG_RICH_TRACEBACKS"
"""Set to `0` in the environment to keep tracebacks in the plain stdlib form with rich
installed (read at every traceback)."""


def color_wanted(stream: IO[str]) -> bool:
    """Whether to colour what goes to `stream`: never with `NO_COLOR` set (any non-empty value,
    no-color.org), always with `FORCE_COLOR` set (any non-empty value, force-color.org), else
    when the stream is a terminal and `TERM` is not `dumb`. `NO_COLOR` wins over both."""
    environ = os.environ
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    return is_terminal(stream) and environ.get("TERM") != "dumb"


def is_terminal(stream: IO[str]) -> bool:
    """`stream.isatty()`, False when the stream cannot say (closed, or no such method)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def level_color(level: int) -> str:
    """The SGR sequence that colours `level`'s name."""
    for floor, color in LEVEL_COLORS:
        if level >= floor:
            return color
    return LEVEL_COLORS[-1][1]


def clock(timestamp: float) -> str:
    """The local time of day with milliseconds: `14:03:07.251`."""
    millis = int(timestamp * 1000)
    return time.strftime("%H:%M:%S", time.localtime(millis // 1000)) + f".{millis % 1000:03d}"


def pretty_lines(
    entries: Sequence[Entry], *, color: bool, rich_tracebacks: bool | None = None
) -> list[str]:
    """Each entry in the pretty format, one string each (with the traceback's lines joined
    by newlines, no final newline). `color`: add SGR colours. `rich_tracebacks`: highlight
    tracebacks with rich (colour only); None: when rich is importable and
    `ASYNCLOG_RICH_TRACEBACKS` is not `0`."""
    return [pretty_line(entry, color=color, rich_tracebacks=rich_tracebacks) for entry in entries]


def pretty_line(entry: Entry, *, color: bool, rich_tracebacks: bool | None = None) -> str:
    """One entry in the pretty format (see `pretty_lines`)."""
    ts, level, message, logger, fields, exception, _, location = entry
    name = level_name(level).ljust(LEVEL_WIDTH)
    where = "" if location is None else location_text(location) + " "
    text = escape(message)
    shown = " ".join([f"{_text_key(k)}={_text_value(v)}" for k, v in fields.items()])
    if color:
        line = (
            f"{DIM}{clock(ts)}{RESET} {level_color(level)}{name}{RESET} "
            f"{LOGGER_COLOR}{escape(logger)}{RESET} "
            + (f"{DIM}{where}{RESET}" if where else "")
            + text
            + (f" {DIM}{shown}{RESET}" if shown else "")
        )
    else:
        line = f"{clock(ts)} {name} {escape(logger)} {where}{text}" + (f" {shown}" if shown else "")
    if exception:
        line += "\n" + traceback_text(exception, color=color, rich_tracebacks=rich_tracebacks)
    return line


def traceback_text(text: str, *, color: bool, rich_tracebacks: bool | None = None) -> str:
    """A traceback's lines, each escaped, joined by real newlines; highlighted by rich when
    `color` is on and rich is wanted and importable."""
    plain = "\n".join(escape(line) for line in text.rstrip("\n").split("\n"))
    if not color:
        return plain
    if rich_tracebacks is None:
        rich_tracebacks = os.environ.get(RICH_VARIABLE, "1") != "0"
    if rich_tracebacks:
        highlighted = _rich_highlighted(plain)
        if highlighted is not None:
            return highlighted
    return plain


def rich_available() -> bool:
    """Whether rich can be imported (the `pretty` extra)."""
    try:
        import rich.syntax  # noqa: F401
    except ImportError:
        return False
    return True


def _rich_highlighted(plain: str) -> str | None:
    """`plain` (escaped already: rich passes control characters through) highlighted as a
    Python traceback, in the 16 standard colours; None without rich."""
    try:
        from rich.console import Console
        from rich.syntax import Syntax
    except ImportError:
        return None
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=True,
        color_system="standard",
        width=max(80, len(plain)),
        highlight=False,
        _environ={},  # our colour decision, not rich's reading of NO_COLOR, TERM or COLUMNS
    )
    syntax = Syntax(plain, "pytb", theme="ansi_dark", background_color="default")
    console.print(syntax, end="", soft_wrap=True)
    return out.getvalue().rstrip("\n")
