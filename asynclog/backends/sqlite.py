"""The SQLite backend: aiosqlite, WAL, one `executemany` transaction per batch."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Sequence

import aiosqlite

from .._config import SQLiteConfig
from .._entry import LogEntry
from .._errors import LogError
from ..formatters import fields_to_json
from ._slices import map_in_slices


def schema_statements(table: str) -> list[str]:
    """The DDL for `table` (a validated identifier) and its indexes."""
    return [
        f'CREATE TABLE IF NOT EXISTS "{table}" ('
        "id INTEGER PRIMARY KEY, ts REAL NOT NULL, level INTEGER NOT NULL, "
        "logger TEXT NOT NULL, message TEXT NOT NULL, fields TEXT, exception TEXT)",
        f'CREATE INDEX IF NOT EXISTS "{table}_ts" ON "{table}" (ts)',
        f'CREATE INDEX IF NOT EXISTS "{table}_level_ts" ON "{table}" (level, ts)',
    ]


def sqlite_text(text: str) -> str:
    """SQLite stores UTF-8: lone surrogates are escaped (`\\udc80`) instead of failing."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


Row = tuple[float, int, str, str, str, str | None]


def entry_row(entry: LogEntry) -> Row:
    """The column values of one entry, in `INSERT` order."""
    ts, level, message, logger, fields, exception = entry
    return (
        ts,
        int(level),
        sqlite_text(logger),
        sqlite_text(message),
        sqlite_text(fields_to_json(fields)) if fields else "{}",
        None if exception is None else sqlite_text(exception),
    )


class SQLiteBackend:
    """Inserts each batch in one transaction. The schema is in docs/sqlite-schema.md."""

    def __init__(self, config: SQLiteConfig | None = None) -> None:
        self.config = config or SQLiteConfig()
        self.path = os.fspath(self.config.db_path)
        self._db: aiosqlite.Connection | None = None
        self._insert = (
            f'INSERT INTO "{self.config.table}" (ts, level, logger, message, fields, exception) '
            "VALUES (?, ?, ?, ?, ?, ?)"
        )

    async def open(self) -> None:
        try:
            _create_file(self.path, self.config.mode)
            db = await aiosqlite.connect(self.path, timeout=self.config.busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            raise LogError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        try:
            for statement in self._setup_statements():
                await db.execute(statement)
            await db.commit()
        except sqlite3.Error as exc:
            await db.close()
            raise LogError(f"cannot set up SQLite database {self.path!r}: {exc}") from exc
        self._db = db

    def _setup_statements(self) -> list[str]:
        return [
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={self.config.synchronous}",
            *schema_statements(self.config.table),
        ]

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if self._db is None:
            raise LogError(f"SQLite backend for {self.path!r} is not open")
        rows = await map_in_slices(entry_row, entries)
        run_in_thread = getattr(self._db, "_execute", None)
        if run_in_thread is not None:
            # One hop to aiosqlite's thread for the whole transaction instead of two (insert,
            # commit). `_execute` is aiosqlite's own primitive; the public path is the fallback.
            await run_in_thread(self._insert_on_thread, rows)
            return
        try:
            await self._db.executemany(self._insert, rows)
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise

    def _insert_on_thread(self, rows: list[Row]) -> None:
        connection: sqlite3.Connection = self._db._conn  # type: ignore[union-attr]
        _insert_transaction(connection, self._insert, rows)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
            _join_connection_thread(db)

    def flush_at_exit(self, entries: Sequence[LogEntry]) -> None:
        """Interpreter exit, no event loop: insert `entries` on a plain connection, then stop
        aiosqlite's thread (it would otherwise keep the interpreter from exiting)."""
        db, self._db = self._db, None
        if db is not None:
            db.stop()
            _join_connection_thread(db)
        if not entries:
            return
        with contextlib.closing(
            sqlite3.connect(self.path, timeout=self.config.busy_timeout)
        ) as conn:
            _insert_transaction(conn, self._insert, [entry_row(entry) for entry in entries])


def _insert_transaction(connection: sqlite3.Connection, insert: str, rows: list[Row]) -> None:
    """Insert `rows` in one transaction: all of them, or none."""
    try:
        connection.executemany(insert, rows)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


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
