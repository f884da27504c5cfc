"""Reading logs back from an asynclog SQLite database.

`query()` is the async API; `LogDB` is the blocking reader the CLI uses. Both open the database
read-only (`mode=ro`), so a reader never modifies the writer's database, and with WAL it never
blocks the writer either.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import aiosqlite

from . import _runtime
from ._entry import EMPTY_FIELDS, Location, LogEntry
from ._filelog_read import DB_SUFFIXES, LogFiles, field_text, kind_of, not_a_log
from ._levels import Level, parse_level
from ._otel import TRACE_KEYS, TraceValues, id_hex, joined_trace
from ._read_filters import NO_FILTERS, Filters, QueryError
from .backends.sqlite import LEVEL_INDEX_FLOOR

__all__ = [
    "Filters",
    "LogDB",
    "QueryError",
    "TimeSpec",
    "make_filters",
    "parse_time",
    "query",
]

TimeSpec = float | int | datetime | timedelta | str
"""A point in time: unix seconds, a `datetime` (naive means UTC), a `timedelta` (that long
ago), or a string: relative (`"30s"`, `"15m"`, `"1h"`, `"2d"`, `"1w"`: that long ago), `"now"`,
or ISO 8601 (`"2026-11-27"`, `"2026-11-27T10:00:00"`, with an optional `Z` or offset; naive
means UTC)."""

COLUMNS = ("id", "ts", "level", "logger", "message", "fields", "exception")
"""The columns a table must have to be read as an asynclog table."""

BUSY_TIMEOUT = 5.0
LOCATION_COLUMNS = ("module", "function", "line")
"""The columns of a captured location (schema version 2): read when the table has them."""
TRACE_COLUMNS = TRACE_KEYS
"""The columns of the trace context (schema version 3): read when the table has them, and
given back as the entry's `trace_id`, `span_id` and `trace_flags` fields."""

_SELECT_COLUMNS = ", ".join(COLUMNS)


def select_columns(columns: Sequence[str]) -> str:
    """What to select from a table that has `columns`: the location and the trace context
    too when it has them (location NULLs stand in for a table that has only the trace)."""
    located = all(name in columns for name in LOCATION_COLUMNS)
    traced = has_trace_columns(columns)
    if not located and not traced:
        return _SELECT_COLUMNS
    location = LOCATION_COLUMNS if located else ("NULL", "NULL", "NULL")
    return ", ".join((*COLUMNS, *location, *(TRACE_COLUMNS if traced else ())))


def has_trace_columns(columns: Sequence[str]) -> bool:
    """Whether a table with `columns` has the trace columns (schema version 3)."""
    return all(name in columns for name in TRACE_COLUMNS)
_LEVELS: dict[int, Level] = {int(level): level for level in Level}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)", re.IGNORECASE)
_YEAR_1 = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_INT64 = 2**63


# --- filters ---------------------------------------------------------------------------------


def parse_time(value: TimeSpec, now: float | None = None) -> float:
    """Turn a `TimeSpec` into unix seconds. Raises `ValueError` naming the value."""
    now = time.time() if now is None else now
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a time: {value!r}")
        return float(value)
    if isinstance(value, timedelta):
        return now - value.total_seconds()
    if isinstance(value, datetime):
        return _aware(value).timestamp()
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if text.lower() == "now":
        return now
    relative = _RELATIVE.fullmatch(text)
    if relative:
        moment = now - float(relative.group(1)) * _UNIT_SECONDS[relative.group(2).lower()]
        if not moment >= _YEAR_1:  # (-inf for a number too big for a float)
            raise ValueError(f"not a time: {value!r}: that long ago is before the year 1")
        return moment
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {value!r}; use a relative time (30s, 15m, 1h, 2d, 1w) or an ISO "
            "date/time (2026-11-27, 2026-11-27T10:00:00, optional Z or +02:00)"
        ) from None
    return _aware(parsed).timestamp()


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def make_filters(
    *,
    level: Level | int | str | None = None,
    since: TimeSpec | None = None,
    until: TimeSpec | None = None,
    text: str | None = None,
    logger: str | None = None,
    fields: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
    limit: int | None = None,
    now: float | None = None,
) -> Filters:
    """Validate the arguments of `query()`; raises `ValueError` naming the bad one."""
    min_level = None if level is None else parse_level(level)
    pairs: list[tuple[str, str]] = []
    if isinstance(fields, str | bytes):
        raise ValueError(f"fields must be a mapping, got {fields!r}")
    items = fields.items() if isinstance(fields, Mapping) else (fields or ())
    for key, value in items:
        if not isinstance(key, str) or not key or '"' in key:
            raise ValueError(f"field name must be a non-empty str without '\"', got {key!r}")
        pairs.append((key, field_text(value)))
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text must be a str, got {text!r}")
    if logger is not None and not isinstance(logger, str):
        raise ValueError(f"logger must be a str, got {logger!r}")
    return Filters(
        min_level=min_level,
        since=None if since is None else parse_time(since, now),
        until=None if until is None else parse_time(until, now),
        text=text or None,
        logger=logger,
        fields=tuple(pairs),
        limit=limit,
    )


def check_table(table: str) -> str:
    """`table`, if it is a plain identifier (it is put into the SQL text, quoted)."""
    if not isinstance(table, str) or not table.isidentifier() or not table.isascii():
        raise ValueError(f"table must be a plain identifier, got {table!r}")
    return table


# --- SQL -------------------------------------------------------------------------------------


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _fts_query(text: str) -> str:
    """`text` as one FTS5 phrase whose last word may be a prefix: `"user-42"*`."""
    return '"' + text.replace('"', '""') + '"*'


def uses_fts(filters: Filters, has_fts: bool) -> bool:
    """Whether the text condition goes through the FTS5 index (it needs a word to look up)."""
    return has_fts and filters.text is not None and any(c.isalnum() for c in filters.text)


def _field_condition(key: str, value: str, params: list[object], traced: bool = False) -> str:
    if traced and key in TRACE_COLUMNS:
        return _trace_condition(key, value, params)
    path = f'$."{key}"'
    tests = ["json_extract(fields, ?) = ?"]
    params.extend([path, value])
    if _JSON_NUMBER.fullmatch(value):
        number: float = float(value)
        if re.fullmatch(r"-?\d+", value) and -_INT64 <= int(value) < _INT64:
            number = int(value)
        if number == number and abs(number) != float("inf"):
            tests.append("json_extract(fields, ?) = ?")
            params.extend([path, number])
    if value in ("true", "false", "null"):
        tests.append("json_type(fields, ?) = ?")
        params.extend([path, value])
    return f"(CASE WHEN json_valid(fields) THEN ({' OR '.join(tests)}) END)"


def _trace_condition(key: str, value: str, params: list[object]) -> str:
    """A trace field's condition: its column (where a valid value is stored, canonical: ids
    in lowercase hex), or the fields' JSON (where an invalid one stays)."""
    columns: list[object]
    if key == "trace_flags":
        columns = [int(value)] if value.isdigit() and len(value) <= 3 else []
    else:
        size = 16 if key == "trace_id" else 8
        columns = [id_hex(value, size)]
        if value.isascii() and value.isdigit():  # an id logged as an int: stored as its hex
            columns.append(id_hex(int(value), size))
        columns = [column for column in dict.fromkeys(columns) if column is not None]
    if not columns:
        return _field_condition(key, value, params)
    params.extend(columns)
    marks = ", ".join("?" * len(columns))
    return f"({key} IN ({marks}) OR {_field_condition(key, value, params)})"


def build_where(
    table: str, filters: Filters, fts: bool, traced: bool = False, level_index: bool = True
) -> tuple[str, list[object]]:
    """The `WHERE ...` clause (or `""`) of `filters` and its parameters; `traced`: the table
    has the trace columns (a field condition on `trace_id`, `span_id` or `trace_flags` looks
    there too); `level_index`: say `level >= 30` for a level of WARNING or above, which lets
    SQLite search the partial level index. A query that reads in id or time order until it
    has enough rows leaves it out: with statistics, SQLite would read and sort every row of
    the index instead."""
    conditions: list[str] = []
    params: list[object] = []
    if filters.min_level is not None:
        conditions.append("level >= ?")
        params.append(filters.min_level)
        if level_index and filters.min_level >= LEVEL_INDEX_FLOOR:
            conditions.append(f"level >= {LEVEL_INDEX_FLOOR}")  # lets SQLite use the index
    if filters.since is not None:
        conditions.append("ts >= ?")
        params.append(filters.since)
    if filters.until is not None:
        conditions.append("ts < ?")
        params.append(filters.until)
    if filters.logger is not None:
        # The logger itself and its dotted children, as in the standard library: api, api.db.
        conditions.append("(logger = ? OR substr(logger, 1, ?) = ?)")
        params.extend([filters.logger, len(filters.logger) + 1, filters.logger + "."])
    if filters.text is not None:
        if fts:
            fts_table = f'"{table}_fts"'
            conditions.append(f"id IN (SELECT rowid FROM {fts_table} WHERE {fts_table} MATCH ?)")
            params.append(_fts_query(filters.text))
        else:
            conditions.append("message LIKE ? ESCAPE '\\'")
            params.append(_like_pattern(filters.text))
    for key, value in filters.fields:
        conditions.append(_field_condition(key, value, params, traced))
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def build_select(
    table: str, filters: Filters, fts: bool, columns: str = _SELECT_COLUMNS, traced: bool = False
) -> tuple[str, list[object]]:
    """The SELECT of `filters` (`columns`: see `select_columns`; `traced`: see `build_where`):
    oldest first; with a limit, the newest `limit` rows, oldest first."""
    where, params = build_where(table, filters, fts, traced, level_index=filters.limit is None)
    select = f'SELECT {columns} FROM "{table}"{where}'
    if filters.limit is None:
        return f"{select} ORDER BY ts, id", params
    newest = f"{select} ORDER BY ts DESC, id DESC LIMIT ?"
    return f"SELECT * FROM ({newest}) ORDER BY ts, id", [*params, filters.limit]


def build_last(
    table: str, filters: Filters, fts: bool, *, columns: str, count: int, traced: bool = False
) -> tuple[str, list[object]]:
    """The SELECT of `LogDB.last`: the last `count` rows by id matching `filters`, newest
    first (`traced`: see `build_where`)."""
    where, params = build_where(table, filters, fts, traced, level_index=False)
    return f'SELECT {columns} FROM "{table}"{where} ORDER BY id DESC LIMIT ?', [*params, count]


def build_after(
    table: str, filters: Filters, fts: bool, *, columns: str, last_id: int, traced: bool = False
) -> tuple[str, list[object]]:
    """The SELECT of `LogDB.after`: the rows matching `filters` whose id is above `last_id`,
    in id order (`traced`: see `build_where`)."""
    where, params = build_where(table, filters, fts, traced, level_index=False)
    where = f"{where} AND id > ?" if where else " WHERE id > ?"
    return f'SELECT {columns} FROM "{table}"{where} ORDER BY id', [*params, last_id]


def _fields_of(raw: object) -> Mapping[str, Any]:
    if raw is None or raw == "{}":
        return EMPTY_FIELDS
    try:
        value = json.loads(raw) if isinstance(raw, str | bytes) else None
    except ValueError:
        value = None
    if isinstance(value, dict):
        return MappingProxyType(value) if value else EMPTY_FIELDS
    return MappingProxyType({"fields": raw})


def row_entry(row: Sequence[Any]) -> LogEntry:
    """A `LogEntry` from a row of `COLUMNS`, maybe followed by `LOCATION_COLUMNS`, then maybe
    `TRACE_COLUMNS` (the id is dropped; the trace columns become fields again)."""
    _, ts, level, logger, message, fields, exception = row[:7]
    level = int(level)
    read_fields = _fields_of(fields)
    if len(row) >= 13:
        read_fields = joined_trace(read_fields, _trace_of(row[10:13]))
    return LogEntry(
        float(ts),
        _LEVELS.get(level, level),
        message if isinstance(message, str) else str(message),
        logger if isinstance(logger, str) else str(logger),
        read_fields,
        None if exception is None else str(exception),
        None,
        _location_of(row[7:10]),
    )


def _trace_of(values: Sequence[Any]) -> TraceValues:
    trace_id, span_id, flags = values
    return (
        None if trace_id is None else str(trace_id),
        None if span_id is None else str(span_id),
        flags if isinstance(flags, int) else None,
    )


def _location_of(values: Sequence[Any]) -> Location | None:
    if len(values) != 3 or values[0] is None or values[1] is None:
        return None
    module, function, line = values
    return Location(str(module), str(function), line if isinstance(line, int) else 0)


# --- opening ---------------------------------------------------------------------------------


def _uri(path: str) -> str:
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"


def _open_problem(path: str, exc: BaseException) -> str:
    """Why `path` could not be opened, in words (blocking: it looks at the file)."""
    if not os.path.lexists(path):
        return f"{path}: no such file"
    if os.path.isdir(path):
        return f"{path}: is a directory, not an asynclog database"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    return f"{path}: cannot open: {exc}"


_Builder = Callable[[str, Filters, bool], tuple[str, list[object]]]
_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"


def _schema_problem(path: str, table: str, tables: list[str], columns: list[str]) -> str | None:
    if table not in tables:
        others = [n for n in tables if not n.startswith("sqlite_") and "_fts" not in n]
        found = f" (tables in it: {', '.join(others)})" if others else ""
        return f"{path}: not an asynclog database: it has no table {table!r}{found}"
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        return (
            f"{path}: not an asynclog database: table {table!r} lacks the column(s) "
            + ", ".join(missing)
        )
    return None


def _not_sqlite(path: str, exc: sqlite3.DatabaseError) -> str:
    if "not a database" in str(exc):
        return f"{path}: not an asynclog database: not an SQLite file"
    return f"{path}: cannot read: {exc}"


class LogDB:
    """A blocking, read-only reader of one asynclog table (for the CLI, or a thread)."""

    def __init__(self, path: str | os.PathLike[str], table: str = "logs") -> None:
        self.path = os.fspath(path)
        self.table = check_table(table)
        try:
            self._db = sqlite3.connect(_uri(self.path), uri=True, timeout=BUSY_TIMEOUT)
        except sqlite3.Error as exc:
            raise QueryError(_open_problem(self.path, exc)) from None
        try:
            tables = [name for (name,) in self._db.execute(_TABLES_SQL)]
            columns = [row[1] for row in self._db.execute(f'PRAGMA table_info("{table}")')]
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise QueryError(_not_sqlite(self.path, exc)) from None
        problem = _schema_problem(self.path, table, tables, columns)
        if problem is not None:
            self._db.close()
            raise QueryError(problem)
        self.has_fts = f"{table}_fts" in tables
        self.columns = select_columns(columns)
        """What is selected: the location and the trace context too when the table has them."""
        self.traced = has_trace_columns(columns)

    def __enter__(self) -> LogDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _execute(self, build: _Builder, filters: Filters) -> sqlite3.Cursor:
        fts = uses_fts(filters, self.has_fts)
        sql, params = build(self.table, filters, fts)
        try:
            return self._db.execute(sql, params)
        except sqlite3.DatabaseError:
            if not fts:  # FTS5 missing from this SQLite build, or a broken index: use LIKE
                raise
            sql, params = build(self.table, filters, False)
            return self._db.execute(sql, params)

    def entries(self, filters: Filters) -> Iterator[LogEntry]:
        """The entries matching `filters`, oldest first."""
        build = functools.partial(build_select, columns=self.columns, traced=self.traced)
        for row in self._execute(build, filters):
            yield row_entry(row)

    def last(self, count: int, filters: Filters = NO_FILTERS) -> list[tuple[int, LogEntry]]:
        """The last `count` rows by id (of those matching `filters`), oldest first, with
        their ids."""
        build = functools.partial(
            build_last, columns=self.columns, count=count, traced=self.traced
        )
        rows = self._execute(build, filters).fetchall()
        return [(row[0], row_entry(row)) for row in reversed(rows)]

    def after(self, last_id: int, filters: Filters = NO_FILTERS) -> list[tuple[int, LogEntry]]:
        """The rows whose id is above `last_id` (and that match `filters`), in id order."""
        build = functools.partial(
            build_after, columns=self.columns, last_id=last_id, traced=self.traced
        )
        return [(row[0], row_entry(row)) for row in self._execute(build, filters)]

    def max_id(self) -> int:
        """The highest id (0 when the table is empty)."""
        (value,) = self._db.execute(f'SELECT max(id) FROM "{self.table}"').fetchone()
        return int(value or 0)

    def summary(self, filters: Filters) -> tuple[int, float | None, float | None]:
        """(count, first ts, last ts) of the entries matching `filters`."""
        where, params = self._where(filters)
        count, first, last = self._db.execute(
            f'SELECT count(*), min(ts), max(ts) FROM "{self.table}"{where}', params
        ).fetchone()
        return int(count), first, last

    def count_by_level(self, filters: Filters) -> dict[int, int]:
        """Entry counts by level number."""
        where = self._where(filters)
        rows = self._db.execute(
            f'SELECT level, count(*) FROM "{self.table}"{where[0]} GROUP BY level', where[1]
        )
        return {int(level): int(count) for level, count in rows}

    def count_by_hour(self, filters: Filters) -> dict[int, int]:
        """Entry counts by hour, keyed by the hour's start in unix seconds (UTC hours)."""
        where = self._where(filters)
        rows = self._db.execute(
            f'SELECT CAST(ts / 3600 AS INTEGER) AS hour, count(*) FROM "{self.table}"{where[0]} '
            "GROUP BY hour",
            where[1],
        )
        return {int(hour) * 3600: int(count) for hour, count in rows}

    def count_by_minute(self, filters: Filters) -> dict[int, dict[int, int]]:
        """Entry counts by minute (its start in unix seconds), then by level number."""
        where = self._where(filters)
        rows = self._db.execute(
            f'SELECT CAST(ts / 60 AS INTEGER) AS minute, level, count(*) FROM "{self.table}"'
            f"{where[0]} GROUP BY minute, level",
            where[1],
        )
        minutes: dict[int, dict[int, int]] = {}
        for minute, level, count in rows:
            minutes.setdefault(int(minute) * 60, {})[int(level)] = int(count)
        return minutes

    def _where(self, filters: Filters) -> tuple[str, list[object]]:
        return build_where(self.table, filters, uses_fts(filters, self.has_fts), self.traced)


# --- the async API ---------------------------------------------------------------------------


def query(
    db_path: str | os.PathLike[str],
    *,
    level: Level | int | str | None = None,
    since: TimeSpec | None = None,
    until: TimeSpec | None = None,
    text: str | None = None,
    logger: str | None = None,
    fields: Mapping[str, object] | None = None,
    limit: int | None = None,
    table: str = "logs",
    rotated: bool = False,
) -> AsyncGenerator[LogEntry, None]:
    """Entries of an asynclog SQLite database, oldest first: `async for entry in query(...)`.
    A log file of the file backend (text or JSON lines, gzipped too; told apart by its content)
    is read the same way, in the order it was written; with `rotated`, its rotated siblings
    first (`app.log.N(.gz)` ... `app.log.1`, as `asynclog query --all`). Malformed lines of a
    file are skipped.

    - `level`: that level and above (`"error"`, `Level.ERROR`, `40`).
    - `since` (inclusive) / `until` (exclusive): a `TimeSpec`; naive times are UTC.
    - `text`: in the message; through the `{table}_fts` FTS5 index when there is one (words,
      the last one may be a prefix), else a case-insensitive substring (`LIKE`).
    - `logger`: that logger and its dotted children (`"api"` also matches `"api.db"`).
    - `fields`: `{key: value}`, each compared as text, and as a number when it is one.
    - `limit`: the newest `limit` matching entries, still yielded oldest first.

    Bad arguments raise `ValueError` here; a missing or foreign file raises `QueryError`
    from the first iteration. The database is opened read-only on aiosqlite's thread; a file
    is read on a worker thread (the running loop's `run_in_executor`, asyncio or trio), a
    chunk of entries at a time.
    """
    filters = make_filters(
        level=level,
        since=since,
        until=until,
        text=text,
        logger=logger,
        fields=fields,
        limit=limit,
    )
    if not isinstance(rotated, bool):
        raise ValueError(f"rotated must be a bool, got {rotated!r}")
    return _query(os.fspath(db_path), check_table(table), filters, rotated)


FILE_CHUNK = 1000
"""Entries read from a log file per hop to the worker thread."""


def _kind(path: str) -> str:
    try:
        return kind_of(path)
    except (OSError, EOFError):
        return "unreadable"  # the SQLite path says why, in the same words as for a database


async def _query_file(
    path: str, filters: Filters, rotated: bool
) -> AsyncGenerator[LogEntry, None]:
    entries = LogFiles(path, rotated).entries(filters)
    while True:
        chunk = await _runtime.current_loop().run_in_executor(
            None, lambda: list(itertools.islice(entries, FILE_CHUNK))
        )
        for entry in chunk:
            yield entry
        if len(chunk) < FILE_CHUNK:
            return


async def _query(
    path: str, table: str, filters: Filters, rotated: bool = False
) -> AsyncGenerator[LogEntry, None]:
    loop = _runtime.current_loop()  # under trio: the adapter aiosqlite takes its futures from
    kind = await loop.run_in_executor(None, _kind, path)
    if kind == "log":
        async for entry in _query_file(path, filters, rotated):
            yield entry
        return
    if kind == "other" and not path.lower().endswith(DB_SUFFIXES):
        raise QueryError(not_a_log(path))
    if rotated and kind == "sqlite":
        raise QueryError(f"{path}: rotated applies to log files; this is a database")
    try:
        db = await aiosqlite.connect(_uri(path), uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as exc:
        reason = await loop.run_in_executor(None, _open_problem, path, exc)
        raise QueryError(reason) from None
    try:
        try:
            tables = [row[0] for row in await db.execute_fetchall(_TABLES_SQL)]
            info = await db.execute_fetchall(f'PRAGMA table_info("{table}")')
        except sqlite3.DatabaseError as exc:
            raise QueryError(_not_sqlite(path, exc)) from None
        present = [row[1] for row in info]
        problem = _schema_problem(path, table, tables, present)
        if problem is not None:
            raise QueryError(problem)
        fts = uses_fts(filters, f"{table}_fts" in tables)
        columns = select_columns(present)
        traced = has_trace_columns(present)
        sql, params = build_select(table, filters, fts, columns, traced)
        try:
            cursor = await db.execute(sql, params)
        except sqlite3.DatabaseError:
            if not fts:
                raise
            cursor = await db.execute(*build_select(table, filters, False, columns, traced))
        async for row in cursor:
            yield row_entry(row)
    finally:
        await db.close()
