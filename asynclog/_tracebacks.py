"""Turning `exc_info=` into the formatted traceback an entry carries."""

from __future__ import annotations

import sys
import traceback

from .formatters import safe_repr


def format_exc_info(exc_info: object) -> str | None:
    """`exc_info` as given to a log call: True (the exception being handled), an exception
    instance, a `sys.exc_info()` tuple, or False/None (nothing). Returns the formatted
    traceback without its final newline, or None when there is no exception."""
    if exc_info is None or exc_info is False:
        return None
    if exc_info is True:
        exc = sys.exception()
    elif isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc = exc_info[1]
    else:
        raise TypeError(
            f"exc_info must be True, an exception or a sys.exc_info() tuple, got {exc_info!r}"
        )
    if exc is None:
        return None  # exc_info=True outside an except block, as in logging: nothing
    try:
        return "".join(traceback.format_exception(exc)).rstrip("\n")
    except Exception as error:  # a broken __str__ on the exception must not lose the entry
        return f"<unformattable {safe_repr(exc)}: {error!r}>"
