"""`%`-style message arguments: `lm.info("user %s logged in", name)` formats at the call, as
the standard library's `LogRecord.getMessage` would, but a format error never loses the entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .formatters import safe_repr, safe_str

PLAIN_ARGS = frozenset({str, int, float, bool, type(None)})
"""Argument kinds that are no mapping: `Intake.accept_quickly` formats those itself."""

FORMAT_ERROR_MARKER = "<asynclog: format error"
"""The start of what a message says when its template and arguments did not format."""


def format_message(template: str, args: tuple[Any, ...]) -> str:
    """`template % args`; a single non-empty mapping argument formats `%(name)s` from it
    (as stdlib). When that raises (a wrong count, a bad directive, a raising `__str__`), the
    template, the marker and the arguments' reprs instead."""
    values: Any = args
    try:  # a mapping's __len__ may raise too
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            values = args[0]
        formatted = template % values
    except Exception as exc:
        return _unformatted(template, args, exc)
    return formatted if type(formatted) is str else str.__str__(formatted)


def _unformatted(template: str, args: tuple[Any, ...], error: Exception) -> str:
    shown = ", ".join(safe_repr(arg) for arg in args)
    reason = f"{type(error).__name__}: {safe_str(error)}"
    return f"{template} {FORMAT_ERROR_MARKER}: {reason}> args: ({shown})"
