"""What reading logs back shares, whatever the source (an SQLite database or log files):
the validated conditions `Filters`, and `QueryError`. (`query.py` re-exports both; they live
here so that `_filelog_read` and `query` need not import each other.)"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LogError


class QueryError(LogError):
    """The logs cannot be read: the file is missing, is neither an SQLite database nor a log
    file of asynclog's, or the database has no asynclog table."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Validated query conditions; `None` (or empty) means no condition."""

    min_level: int | None = None
    since: float | None = None
    """Unix seconds, inclusive."""
    until: float | None = None
    """Unix seconds, exclusive."""
    text: str | None = None
    logger: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    """(key, value as text) pairs; see `make_filters`."""
    limit: int | None = None


NO_FILTERS = Filters()
"""No condition at all."""
