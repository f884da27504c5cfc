"""The SQLite backend: aiosqlite, WAL, one `BEGIN IMMEDIATE` transaction per batch (so several
processes can share a database); each row records its `host` and `pid`; optional retention
(`max_rows`, `max_age`) and FTS5 index of `message`. The schema, its migration and the
concurrency design are in docs/sqlite-schema.md."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import aiosqlite

from .. import _runtime
from .._backend_registry import register_backend
from .._config import SQLiteConfig
from .._entry import EXCEPTION, FIELDS, LEVEL, LOCATION, LOGGER, MESSAGE, TIME, Entry
from .._errors import LogError
from .._otel import TraceValues, has_trace, split_trace
from ..formatters import fields_to_json, utf8_safe
from ._on_loop import LoopWrites
from ._slices import convert_in_slices
from ._wakeup import write_on_thread

SCHEMA_VERSION = 3
"""`PRAGMA user_version` of a database whose asynclog tables have `host` and `pid` (1), the
call's location, `module`, `function` and `line` (2), and the trace context, `trace_id`,
`span_id` and `trace_flags` (3): 0 (or a database asynclog has not set up yet) is the
original schema."""

ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("host", "TEXT"),
    ("pid", "INTEGER"),
    ("module", "TEXT"),
    ("function", "TEXT"),
    ("line", "INTEGER"),
    ("trace_id", "TEXT"),
    ("span_id", "TEXT"),
    ("trace_flags", "INTEGER"),
)
"""Columns added since the original schema (host and pid: version 1; module, function and
line: version 2; trace_id, span_id and trace_flags: version 3), with their types: nullable,
so the rows written before (or by an older asynclog, or without `Config(capture_location=True)`,
or outside any span) hold NULL."""


LEVEL_INDEX_FLOOR = 30
"""The level index holds the rows at this level (WARNING) and above only: most entries are
INFO or DEBUG, and an insert that skips the index costs less (about 15% of an INFO entry's
CPU end to end: docs/sqlite-schema.md). A query by level uses the index when its `WHERE`
also says `level >= 30`, word for word: `asynclog.query` adds it for a level of WARNING or
above (except where it reads in order up to a limit: `query.build_where`)."""


def index_names(table: str) -> tuple[str, str, str]:
    """The names of `table`'s indexes: on `ts`, on `(level, ts)`, and on `trace_id`."""
    return (f"{table}_ts", f"{table}_level_ts", f"{table}_trace")


def schema_statements(table: str) -> list[str]:
    """The DDL for `table` (a validated identifier) and its indexes."""
    ts_index, level_index, _ = index_names(table)
    return [
        f'CREATE TABLE IF NOT EXISTS "{table}" ('
        "id INTEGER PRIMARY KEY, ts REAL NOT NULL, level INTEGER NOT NULL, "
        "logger TEXT NOT NULL, message TEXT NOT NULL, fields TEXT, exception TEXT, "
        "host TEXT, pid INTEGER, module TEXT, function TEXT, line INTEGER, "
        "trace_id TEXT, span_id TEXT, trace_flags INTEGER)",
        f'CREATE INDEX IF NOT EXISTS "{ts_index}" ON "{table}" (ts)',
        f'CREATE INDEX IF NOT EXISTS "{level_index}" ON "{table}" (level, ts) '
        f"WHERE level >= {LEVEL_INDEX_FLOOR}",
    ]


def trace_index_statement(table: str) -> str:
    """The index of the rows of one trace (run after the migration: it needs the column).
    Partial: a row outside any span costs the index nothing."""
    return (
        f'CREATE INDEX IF NOT EXISTS "{index_names(table)[2]}" ON "{table}" (trace_id) '
        "WHERE trace_id IS NOT NULL"
    )


def fts_statements(table: str) -> list[str]:
    """The external-content FTS5 table `"{table}_fts"` on `message`, and the triggers that keep
    it in step with every insert, delete and update of `table`."""
    fts = f'"{table}_fts"'
    delete = f"INSERT INTO {fts}({fts}, rowid, message) VALUES ('delete', old.id, old.message);"
    insert = f"INSERT INTO {fts}(rowid, message) VALUES (new.id, new.message);"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} "
        f'USING fts5(message, content="{table}", content_rowid="id")',
        f'CREATE TRIGGER IF NOT EXISTS "{table}_fts_insert" AFTER INSERT ON "{table}" '
        f"BEGIN {insert} END",
        f'CREATE TRIGGER IF NOT EXISTS "{table}_fts_delete" AFTER DELETE ON "{table}" '
        f"BEGIN {delete} END",
        f'CREATE TRIGGER IF NOT EXISTS "{table}_fts_update" AFTER UPDATE ON "{table}" '
        f"BEGIN {delete} {insert} END",
    ]


def migration_statements(table: str, columns: Sequence[str]) -> list[str]:
    """The `ALTER TABLE`s that bring `table`, which has `columns`, to `SCHEMA_VERSION`."""
    return [
        f'ALTER TABLE "{table}" ADD COLUMN {name} {kind}'
        for name, kind in ADDED_COLUMNS
        if name not in columns
    ]


COLUMNS = (
    "ts, level, logger, message, fields, exception, host, pid, module, function, line, "
    "trace_id, span_id, trace_flags"
)
PLACEHOLDERS = ", ".join("?" * 14)


def staging_statements(table: str) -> tuple[str, str, str, str]:
    """Create, fill, move and clear a temp table, to insert a batch in one `INSERT ... SELECT`.
    Used when the FTS triggers exist: a per-row `executemany` runs the trigger as a statement
    per row and FTS5 writes out its pending index data at each (measured ~4x slower)."""
    stage = 'temp."asynclog_batch"'
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS asynclog_batch ({COLUMNS})",
        f"INSERT INTO {stage} ({COLUMNS}) VALUES ({PLACEHOLDERS})",
        f'INSERT INTO main."{table}" ({COLUMNS}) SELECT {COLUMNS} FROM {stage} ORDER BY rowid',
        f"DELETE FROM {stage}",
    )


def fts_object_names(table: str) -> tuple[str, ...]:
    """The names of the FTS table and its triggers, as `sqlite_master` lists them."""
    return (f"{table}_fts", f"{table}_fts_insert", f"{table}_fts_delete", f"{table}_fts_update")


sqlite_text = utf8_safe
"""SQLite stores UTF-8: lone surrogates are escaped (`\\udc80`) instead of failing."""


Row = tuple[
    float,
    int,
    str,
    str,
    str,
    str | None,
    str | None,
    int,
    str | None,
    str | None,
    int | None,
    str | None,
    str | None,
    int | None,
]

_NO_TRACE: TraceValues = (None, None, None)


def fields_and_trace(fields: Mapping[str, Any]) -> tuple[str, TraceValues]:
    """The fields column (JSON) and the trace columns: valid trace fields go to their columns
    only (an invalid one stays in the JSON, as any field)."""
    trace = _NO_TRACE
    if fields and has_trace(fields):
        fields, trace = split_trace(fields)
    return (sqlite_text(fields_to_json(fields)) if fields else "{}"), trace


def entry_row(host: str | None, pid: int, entry: Entry) -> Row:
    """The column values of one entry, in `INSERT` order (`COLUMNS`)."""
    ts, level, message, logger, fields, exception = entry[:6]
    location = entry[LOCATION]
    fields_json, trace = fields_and_trace(fields)
    return (
        ts,
        int(level),
        sqlite_text(logger),
        sqlite_text(message),
        fields_json,
        None if exception is None else sqlite_text(exception),
        host,
        pid,
        *(
            (None, None, None)
            if location is None
            else (sqlite_text(location[0]), sqlite_text(location[1]), int(location[2]))
        ),
        *trace,
    )


PlainRow = tuple[float, int, str]


class _NotPlain(Exception):
    """A batch holds an entry with fields, a traceback, a location or another logger."""


def plain_rows(logger: str, entries: Sequence[Entry]) -> list[PlainRow]:
    """`(ts, level, message)` of entries without fields or traceback, all from `logger`; raises
    `_NotPlain` at the first other entry."""
    rows: list[PlainRow] = []
    append = rows.append
    # Indexing instead of unpacking a slice, and the ASCII check inline: this runs on the
    # loop for every entry, while the writer thread waits for the rows.
    for entry in entries:
        if (
            entry[FIELDS]
            or entry[EXCEPTION] is not None
            or entry[LOGGER] != logger
            or entry[LOCATION]
        ):
            raise _NotPlain
        message = entry[MESSAGE]
        if not message.isascii():
            message = sqlite_text(message)
        append((entry[TIME], int(entry[LEVEL]), message))
    return rows


def lean_rows(
    entries: Sequence[Entry], exceptions: bool, locations: bool, traces: bool = False
) -> list[tuple[Any, ...]]:
    """The rows of `lean_insert`: (ts, level, logger, message, fields), then the exception
    when `exceptions`, then module, function and line when `locations`, then trace_id,
    span_id and trace_flags when `traces`."""
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for entry in entries:
        fields = entry[FIELDS]
        trace = _NO_TRACE
        if traces and fields and has_trace(fields):
            fields, trace = split_trace(fields)
        row: tuple[Any, ...] = (
            entry[TIME],
            int(entry[LEVEL]),
            sqlite_text(entry[LOGGER]),
            sqlite_text(entry[MESSAGE]),
            sqlite_text(fields_to_json(fields)) if fields else "{}",
        )
        if exceptions:
            exception = entry[EXCEPTION]
            row += (None if exception is None else sqlite_text(exception),)
        if locations:
            location = entry[LOCATION]
            row += (
                (None, None, None)
                if location is None
                else (sqlite_text(location[0]), sqlite_text(location[1]), int(location[2]))
            )
        if traces:
            row += trace
        append(row)
    return rows


def lean_insert(
    table: str, host: str | None, pid: int, exceptions: bool, locations: bool, traces: bool = False
) -> str | None:
    """The insert of `lean_rows`: host and pid as literals, and NULL for the exception, the
    location or the trace context when no entry of the batch has one. Binding None costs
    sqlite3 a failed adapter lookup (two attribute errors) per value, more than the rest of
    the row. None when the host name cannot be a literal."""
    host_literal = sql_text_literal(host)
    if host_literal is None:
        return None
    exception = "?" if exceptions else "NULL"
    location = "?, ?, ?" if locations else "NULL, NULL, NULL"
    trace = "?, ?, ?" if traces else "NULL, NULL, NULL"
    return (
        f'INSERT INTO "{table}" ({COLUMNS}) '
        f"VALUES (?, ?, ?, ?, ?, {exception}, {host_literal}, {pid}, {location}, {trace})"
    )


def sql_text_literal(text: str | None) -> str | None:
    """`text` as an SQL literal (NULL for None); None when SQL text cannot hold it (NUL)."""
    if text is None:
        return "NULL"
    if "\x00" in text:
        return None
    return "'" + text.replace("'", "''") + "'"


def plain_insert(table: str, logger: str, host: str | None, pid: int) -> str | None:
    """The insert of `plain_rows`: logger, fields, exception, host, pid and the (absent)
    location as literals; None when a name cannot be one."""
    logger_literal, host_literal = sql_text_literal(logger), sql_text_literal(host)
    if logger_literal is None or host_literal is None:
        return None
    return (
        f'INSERT INTO "{table}" ({COLUMNS}) '
        f"VALUES (?, ?, {logger_literal}, ?, '{{}}', NULL, {host_literal}, {pid}, "
        "NULL, NULL, NULL, NULL, NULL, NULL)"
    )


def origin() -> tuple[str | None, int]:
    """This host's name and this process's id, read at each batch (so a forked child writes
    its own pid); the name is None if the system will not tell it."""
    try:
        host: str | None = sqlite_text(socket.gethostname())
    except OSError:
        host = None
    return host, os.getpid()


def batch_rows(entries: Sequence[Entry]) -> list[Row]:
    """`entry_row` of each entry, with this host and pid (blocking: for the exit path)."""
    host, pid = origin()
    return [entry_row(host, pid, entry) for entry in entries]


Insert = str | tuple[str, str, str, str]
"""One insert statement, or the four `staging_statements`."""
Plan = tuple[Insert, Callable[[Sequence[Entry]], list[Any]]]
"""An insert and the conversion of a batch to its parameters."""

Step = tuple[str, tuple[float, ...]]
"""One statement of a retention pass and its parameters."""
StepResult = tuple[Any, int]
"""What the driver sends back: the statement's first row (or None) and its rowcount."""

OPEN_ATTEMPTS = 10
"""Tries of `open()`'s set-up when the database stays locked beyond the busy timeout; the
waits between them double from `OPEN_BACKOFF` up to 0.5 s. (A batch that finds it locked
raises, and the manager retries it: `Config.retry_attempts`.)"""
OPEN_BACKOFF = 0.01

RETENTION_CHUNK = 2_000
"""The fewest rows a retention pass may delete; a pass deletes at most this or twice the
batch, whichever is more, so it keeps one transaction short yet outpaces the inserts."""


class Retention:
    """When to prune and the statements that do it: the rows older than `max_age`, then all
    but the newest `max_rows` (by id). The statements are yielded so that one plan serves the
    connection on aiosqlite's thread, a plain one and an async one.

    The `max_rows` cutoff costs a walk over `max_rows` ids, so it is found once per round and
    then deleted up to in chunks, one per batch, until the round is done."""

    def __init__(self, config: SQLiteConfig) -> None:
        self.max_rows = config.max_rows
        self.max_age = config.max_age_seconds
        self.interval = config.retention_interval
        self.enabled = self.max_rows is not None or self.max_age is not None
        self._next_pass = 0.0
        self._behind = False
        self._cutoff: int | None = None
        """The id up to which rows are over `max_rows`, while a round is under way."""
        table = f'"{config.table}"'
        self._oldest = f"SELECT min(id) FROM {table}"
        self._newest = f"SELECT max(id) FROM {table}"
        self._find_cutoff = f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?"
        self._delete_upto = (
            f"DELETE FROM {table} WHERE id IN "
            f"(SELECT id FROM {table} WHERE id <= ? ORDER BY id LIMIT ?)"
        )
        self._delete_older = (
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE ts < ? LIMIT ?)"
        )

    def due(self) -> bool:
        """Whether the next batch should run a pass."""
        return self.enabled and (self._behind or time.monotonic() >= self._next_pass)

    def steps(self, budget: int | None = None) -> Generator[Step, StepResult, int]:
        """One pass, deleting at most `budget` rows (default `RETENTION_CHUNK`); returns how
        many it deleted."""
        budget = RETENTION_CHUNK if budget is None else budget
        left = budget
        if self.max_age is not None:
            _, count = yield self._delete_older, (time.time() - self.max_age, left)
            left -= max(count, 0)
        while self.max_rows is not None and left > 0:
            cutoff = self._cutoff
            fresh = cutoff is None
            if cutoff is None:
                (oldest,), _ = yield self._oldest, ()
                (newest,), _ = yield self._newest, ()
                # The id span bounds the row count: when it fits, nothing is over the limit
                # and the walk to the cutoff is skipped.
                if oldest is None or newest - oldest < self.max_rows:
                    break
                row, _ = yield self._find_cutoff, (self.max_rows,)
                if row is None:
                    break
                cutoff = self._cutoff = int(row[0])
            _, count = yield self._delete_upto, (cutoff, left)
            left -= max(count, 0)
            if left > 0:
                self._cutoff = None  # nothing at or below it is left: this round is done
                if fresh:
                    break  # else rows came since the round began: look again
        self._behind = left <= 0 or self._cutoff is not None
        self._next_pass = time.monotonic() + self.interval
        return budget - left


def run_steps(connection: sqlite3.Connection, steps: Generator[Step, StepResult, int]) -> int:
    """Run a retention pass on a plain connection (inside the caller's transaction)."""
    try:
        statement, params = next(steps)
        while True:
            cursor = connection.execute(statement, params)
            statement, params = steps.send((cursor.fetchone(), cursor.rowcount))
    except StopIteration as done:
        return int(done.value)


async def run_steps_async(db: aiosqlite.Connection, steps: Generator[Step, StepResult, int]) -> int:
    """`run_steps` through aiosqlite's public API."""
    try:
        statement, params = next(steps)
        while True:
            cursor = await db.execute(statement, params)
            row = await cursor.fetchone()
            statement, params = steps.send((row, cursor.rowcount))
    except StopIteration as done:
        return int(done.value)


class SQLiteBackend:
    """Inserts each batch in one transaction. The schema is in docs/sqlite-schema.md."""

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(self, config: SQLiteConfig | None = None) -> None:
        self.config = config or SQLiteConfig()
        self.path = os.fspath(self.config.db_path)
        self._db: aiosqlite.Connection | None = None
        self._insert = f'INSERT INTO "{self.config.table}" ({COLUMNS}) VALUES ({PLACEHOLDERS})'
        self._staging: tuple[str, str, str, str] | None = None
        """Set at open when the table has the FTS insert trigger (fts, or an earlier fts)."""
        self._plain_insert: tuple[tuple[str, str | None, int], str | None] = (("", None, 0), None)
        """The last (logger, host, pid) and its `plain_insert` statement."""
        self.retention = Retention(self.config)
        self.added_columns: tuple[str, ...] = ()
        """The columns this backend's `open()` added to an older table (the migration)."""
        self._loop_writes = LoopWrites(
            self.config.write_on_loop, self.config.loop_write_limit, "sqlite", self.path
        )
        self._handed = self._ended = 0
        """Batches handed to aiosqlite's thread, and those ended there (each counter has one
        writing thread at a time). Until they are equal (a cancelled caller leaves its batch to
        the thread, whole or as aiosqlite calls under trio) the loop must not use the
        connection."""

    async def open(self) -> None:
        try:
            _create_file(self.path, self.config.mode)
            # write_on_loop: the loop's thread runs transactions on aiosqlite's connection
            # too, never at the same time as aiosqlite's thread (one worker, one batch).
            db = await aiosqlite.connect(
                self.path,
                timeout=self.config.busy_timeout,
                check_same_thread=not self.config.write_on_loop,
            )
        except (OSError, sqlite3.Error) as exc:
            raise LogError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        try:
            for attempt in range(OPEN_ATTEMPTS):
                try:
                    await self._set_up(db)
                    break
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or attempt + 1 == OPEN_ATTEMPTS:
                        raise
                await _runtime.sleep(min(OPEN_BACKOFF * 2**attempt, 0.5))
        except BaseException as exc:
            await db.close()
            _join_connection_thread(db)
            if isinstance(exc, sqlite3.Error):
                raise LogError(f"cannot set up SQLite database {self.path!r}: {exc}") from exc
            raise
        self.retention = Retention(self.config)
        self._db = db

    async def _set_up(self, db: aiosqlite.Connection) -> None:
        """WAL, the table (migrated), the FTS index if asked for, the temp table if the FTS
        trigger is there. Each step is idempotent: a step that found the database locked
        for longer than the busy timeout (another process's long transaction) is retried."""
        for statement in self._setup_statements():
            await db.execute(statement)
        added = await self._set_up_table(db)
        if added:  # (kept when a later step is retried and finds nothing to add)
            self.added_columns = added
        if self.config.fts:
            await self._set_up_fts(db)
        trigger = fts_object_names(self.config.table)[1]
        cursor = await db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (trigger,))
        has_trigger = await cursor.fetchone() is not None
        self._staging = staging_statements(self.config.table) if has_trigger else None
        if self._staging is not None:
            await db.execute(self._staging[0])

    async def _set_up_table(self, db: aiosqlite.Connection) -> tuple[str, ...]:
        """Create the table and its indexes if missing, add the columns an older table lacks,
        and raise `user_version` to `SCHEMA_VERSION`: one `BEGIN IMMEDIATE` transaction, so
        that of several processes opening at once one migrates and the others, which look at
        the columns again once they hold the lock, find nothing to do. Returns the columns
        added."""
        table = self.config.table
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in schema_statements(table):
                await db.execute(statement)
            info = await db.execute_fetchall(f'PRAGMA table_info("{table}")')
            present = [row[1] for row in info]
            for statement in migration_statements(table, present):
                await db.execute(statement)
            await db.execute(trace_index_statement(table))
            await self._check_index_owners(db)
            cursor = await db.execute("PRAGMA user_version")
            row = await cursor.fetchone()
            if row is None or row[0] < SCHEMA_VERSION:  # a higher (newer) version stays
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        return tuple(name for name, _ in ADDED_COLUMNS if name not in present)

    async def _check_index_owners(self, db: aiosqlite.Connection) -> None:
        """Raise `LogError` when an index name this table needs belongs to another table
        (`a_level_ts` is table `a`'s level index and the `ts` index of a table `a_level`):
        `CREATE INDEX IF NOT EXISTS` would have left this table without it, silently."""
        table = self.config.table
        names = [name.lower() for name in index_names(table)]  # SQLite ignores case in names
        rows = await db.execute_fetchall(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
            f"AND lower(name) IN ({', '.join('?' * len(names))})",
            names,
        )
        for name, owner in rows:
            if str(owner).lower() != table.lower():
                raise LogError(
                    f"SQLite table {table!r} in {self.path!r} needs an index named {name!r}, "
                    f"which table {owner!r} already has: choose another SQLiteConfig.table"
                )

    async def _set_up_fts(self, db: aiosqlite.Connection) -> None:
        """Create the FTS table and its triggers if missing; when any was missing, rebuild the
        index from the table once, so that rows written before (or without triggers) count."""
        if not await _has_fts5(db):
            raise LogError(
                f"SQLiteConfig(fts=True) needs SQLite's FTS5 extension, which this sqlite3 "
                f"module lacks (SQLite {sqlite3.sqlite_version}); database {self.path!r}"
            )
        names = fts_object_names(self.config.table)
        await db.execute("BEGIN IMMEDIATE")  # two processes opening at once: one creates
        try:
            cursor = await db.execute(
                f"SELECT count(*) FROM sqlite_master WHERE name IN ({', '.join('?' * len(names))})",
                names,
            )
            present = await cursor.fetchone()
            for statement in fts_statements(self.config.table):
                await db.execute(statement)
            if present is None or present[0] < len(names):
                await db.execute(f'INSERT INTO "{names[0]}"("{names[0]}") VALUES (\'rebuild\')')
            await db.commit()
        except BaseException:
            await db.rollback()
            raise

    def _setup_statements(self) -> list[str]:
        return ["PRAGMA journal_mode=WAL", f"PRAGMA synchronous={self.config.synchronous}"]

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        db = self._db
        if db is None:
            raise LogError(f"SQLite backend for {self.path!r} is not open")
        prune = self.retention.due()
        if self._loop_writes.on and self._wrote_on_loop(db, entries, prune):
            return
        # Under trio the public path: ThreadDone is asyncio's (trio resumes through the adapter).
        submit = None if _runtime.on_trio() else _thread_submit(db)
        if submit is not None:
            # One hop to aiosqlite's thread for the whole batch: the rows are made there too,
            # so the worker does not yield between slices of conversion (each yield waits for a
            # whole loop turn when the loop is saturated), and `ThreadDone` resumes the worker
            # one turn after the thread ends instead of two. Cancelled, the thread runs the
            # transaction anyway (it may be waiting for a lock): the entries are counted when
            # it ends (`WriteContinues`).
            write = functools.partial(self._write_on_thread, db, entries, prune)
            self._handed += 1
            await write_on_thread(lambda call: submit((None, call)), write)
        else:
            insert, rows = await self._statement_and_rows(entries)
            self._handed += 1
            try:
                await self._insert_async(db, insert, rows, prune)
            except BaseException:
                # Cancelled, its calls (the rollback last) may still be queued on aiosqlite's
                # thread: the batch ends there, after them.
                self._end_on_thread(db)
                raise
            self._ended += 1  # (every call it queued has run)

    def _plans(self, entries: Sequence[Entry]) -> Generator[Plan, None, None]:
        """The inserts that can take this batch, best first, each with the conversion of the
        batch to its parameters (which raises `_NotPlain` when the batch does not fit it). A
        batch of plain entries from one logger binds three values a row, the rest are literals
        in the statement: binding costs more than SQLite's own work for the other columns."""
        host, pid = origin()
        if self._staging is None:
            logger = entries[0][LOGGER] if entries else ""  # the first entry's logger
            insert = self._plain_insert_for(logger, host, pid)
            if insert is not None:
                yield insert, functools.partial(plain_rows, logger)
            exceptions = any(entry[EXCEPTION] is not None for entry in entries)
            locations = any(entry[LOCATION] is not None for entry in entries)
            traces = any(has_trace(entry[FIELDS]) for entry in entries if entry[FIELDS])
            lean = lean_insert(self.config.table, host, pid, exceptions, locations, traces)
            if lean is not None:
                yield (
                    lean,
                    functools.partial(
                        lean_rows, exceptions=exceptions, locations=locations, traces=traces
                    ),
                )
        row = functools.partial(entry_row, host, pid)
        yield self._staging or self._insert, lambda chunk: [row(entry) for entry in chunk]

    def _statement_and_rows_now(self, entries: Sequence[Entry]) -> tuple[Insert, Sequence[Any]]:
        """The insert for this batch and its parameters (on the writing thread)."""
        for insert, convert in self._plans(entries):
            with contextlib.suppress(_NotPlain):
                return insert, convert(entries)
        raise AssertionError("the last plan takes every batch")

    async def _statement_and_rows(self, entries: Sequence[Entry]) -> tuple[Insert, Sequence[Any]]:
        """`_statement_and_rows_now` on the loop, in slices (`convert_in_slices`)."""
        for insert, convert in self._plans(entries):
            with contextlib.suppress(_NotPlain):
                return insert, await convert_in_slices(convert, entries)
        raise AssertionError("the last plan takes every batch")

    def _wrote_on_loop(
        self, db: aiosqlite.Connection, entries: Sequence[Entry], prune: bool
    ) -> bool:
        """`SQLiteConfig(write_on_loop=True)`: the batch's transaction here and now, without
        waiting for another connection's lock (busy timeout 0 meanwhile). False, with nothing
        written, when another connection holds it: then the thread writes the batch."""
        connection = db._conn
        if self._handed != self._ended or connection.in_transaction:
            return False  # the thread is writing a batch: this one goes after it
        insert, rows = self._statement_and_rows_now(entries)
        retention = self.retention if prune else None
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            self._loop_writes.run(lambda: _insert_transaction(connection, insert, rows, retention))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return False
            raise
        finally:
            connection.execute(f"PRAGMA busy_timeout = {round(self.config.busy_timeout * 1000)}")
        return True

    def _write_on_thread(
        self, db: aiosqlite.Connection, entries: Sequence[Entry], prune: bool
    ) -> None:
        try:
            insert, rows = self._statement_and_rows_now(entries)
            retention = self.retention if prune else None
            _insert_transaction(db._conn, insert, rows, retention)
        finally:
            self._ended += 1

    def _end_on_thread(self, db: aiosqlite.Connection) -> None:
        """Count the batch of `_insert_async` ended once aiosqlite's thread has run the calls
        queued before this one (at once if that thread has stopped)."""
        submit = _thread_submit(db)
        if submit is None:
            self._ended += 1
        else:
            submit((None, self._one_ended))

    def _one_ended(self) -> None:
        self._ended += 1

    def _plain_insert_for(self, logger: str, host: str | None, pid: int) -> str | None:
        key = (logger, host, pid)
        cached_key, insert = self._plain_insert
        if key != cached_key:
            insert = plain_insert(self.config.table, sqlite_text(logger), host, pid)
            self._plain_insert = (key, insert)
        return insert

    async def _insert_async(
        self,
        db: aiosqlite.Connection,
        insert: Insert,
        rows: Sequence[tuple[Any, ...]],
        prune: bool,
    ) -> None:
        try:
            await db.execute("BEGIN IMMEDIATE")
            if isinstance(insert, str):
                await db.executemany(insert, rows)
            else:
                _, fill, move, clear = insert
                await db.executemany(fill, rows)
                await db.execute(move)
                await db.execute(clear)
            if prune:
                await run_steps_async(db, self.retention.steps(_budget(len(rows))))
            await db.commit()
        except BaseException:
            await db.rollback()
            raise

    async def close(self) -> None:
        """Run retention passes until nothing is over the limits (so `max_rows` holds exactly
        after close), then close the connection."""
        if self._db is not None:
            db, self._db = self._db, None
            try:
                if self.retention.enabled:
                    run_in_thread = getattr(db, "_execute", None)
                    if run_in_thread is not None:
                        await run_in_thread(self._prune_on_thread, db)
                    else:
                        await self._prune_async(db)
            finally:
                await db.close()
                _join_connection_thread(db)

    def _prune_on_thread(self, db: aiosqlite.Connection) -> None:
        _prune_until_done(db._conn, self.retention)

    async def _prune_async(self, db: aiosqlite.Connection) -> None:
        while True:
            try:
                await db.execute("BEGIN IMMEDIATE")
                deleted = await run_steps_async(db, self.retention.steps())
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
            if deleted == 0:
                return

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit, no event loop: insert `entries` on a plain connection and, if the
        backend was still open, prune as close does; first stop aiosqlite's thread (it would
        otherwise keep the interpreter from exiting)."""
        db, self._db = self._db, None
        if db is not None:
            db.stop()
            _join_connection_thread(db)
        prune = db is not None and self.retention.enabled
        if not entries and not prune:
            return
        with contextlib.closing(
            sqlite3.connect(self.path, timeout=self.config.busy_timeout)
        ) as conn:
            # The FTS triggers in the database keep the index in step (a per-row insert is
            # slower than the staged one, but this is at most a queue's worth).
            if entries:
                _insert_transaction(conn, self._insert, batch_rows(entries))
            if prune:
                _prune_until_done(conn, self.retention)


MAX_CHUNK_ROWS = 1024
"""The most rows one `INSERT` takes (fewer when SQLite's variable limit is lower)."""


@functools.lru_cache(maxsize=64)
def _multi_row(insert: str, rows: int) -> str:
    """`insert` (one row: `... VALUES (...)`) made to insert `rows` rows at once."""
    head, values = insert.split(" VALUES ", 1)
    return f"{head} VALUES {', '.join([values] * rows)}"


def _chunk_limit(connection: sqlite3.Connection, columns: int) -> int:
    limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    chunk = 1
    while chunk * 2 <= min(MAX_CHUNK_ROWS, limit // columns):
        chunk *= 2
    return chunk


def insert_rows(
    connection: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """`connection.executemany(insert, rows)`, in order, as a few multi-row INSERTs whose
    sizes are powers of two (so that few distinct statements are ever prepared): less than
    half the time, and the GIL is released for each statement's whole insert instead of
    between rows (the event loop's thread is not kept waiting for it)."""
    if not rows:
        return
    chunk = _chunk_limit(connection, len(rows[0]))
    start, count = 0, len(rows)
    while start < count:
        while chunk > count - start:
            chunk //= 2
        values = rows[start : start + chunk]
        if chunk == 1:
            connection.execute(insert, values[0])
        else:
            connection.execute(_multi_row(insert, chunk), [*itertools.chain.from_iterable(values)])
        start += chunk


def _insert_transaction(
    connection: sqlite3.Connection,
    insert: str | tuple[str, str, str, str],
    rows: Sequence[tuple[Any, ...]],
    retention: Retention | None = None,
) -> None:
    """Insert `rows` (one `executemany`, or through the temp table of `staging_statements`)
    and run one retention pass (if given) in one transaction: all of it, or none. The
    transaction takes the write lock at `BEGIN IMMEDIATE`, waiting up to the busy timeout for
    another writer; if that runs out it raises ("database is locked") having written nothing,
    and the manager retries the batch whole."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        if isinstance(insert, str):
            insert_rows(connection, insert, rows)
        else:
            _, fill, move, clear = insert
            insert_rows(connection, fill, rows)
            connection.execute(move)
            connection.execute(clear)
        if retention is not None:
            run_steps(connection, retention.steps(_budget(len(rows))))
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


def _prune_until_done(connection: sqlite3.Connection, retention: Retention) -> None:
    """Retention passes, each its own transaction, until one deletes nothing: then no row is
    over `max_rows` or older than `max_age`."""
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            deleted = run_steps(connection, retention.steps())
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        if deleted == 0:
            return


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether `exc` is SQLITE_BUSY ("database is locked"): another connection held the
    lock for longer than the busy timeout."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(exc)


def _budget(batch: int) -> int:
    return max(RETENTION_CHUNK, 2 * batch)


async def _has_fts5(db: aiosqlite.Connection) -> bool:
    """Whether the connection can create FTS5 tables (compiled in or loaded)."""
    try:
        await db.execute('CREATE VIRTUAL TABLE temp."asynclog_fts5_probe" USING fts5(x)')
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc):  # "no such module: fts5"
            return False
        raise
    await db.execute('DROP TABLE temp."asynclog_fts5_probe"')
    return True


def _create_file(path: str, mode: int) -> None:
    """Create the database file (and its directories) with `mode` if it does not exist."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def _join_connection_thread(db: aiosqlite.Connection) -> None:
    # aiosqlite's thread ends right after it answers close(); wait for it so that nothing the
    # manager started outlives it (a join of microseconds).
    thread = getattr(db, "_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        thread.join(timeout=1.0)


def _thread_submit(db: aiosqlite.Connection) -> Callable[[Any], None] | None:
    """How to queue a call on aiosqlite's thread without a future of its own (aiosqlite's
    queue of `(future, function)`, future None); None when this aiosqlite has no such queue
    or its thread has stopped (then the public API is used)."""
    queue = getattr(db, "_tx", None)
    if getattr(db, "_running", False) and getattr(queue, "put_nowait", None) is not None:
        return queue.put_nowait  # type: ignore[no-any-return, union-attr]
    return None


register_backend("sqlite", SQLiteConfig, SQLiteBackend)
