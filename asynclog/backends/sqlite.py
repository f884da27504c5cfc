"""The SQLite backend: aiosqlite, WAL, one `executemany` transaction per batch."""

from __future__ import annotations

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
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "id INTEGER PRIMARY KEY, ts REAL NOT NULL, level INTEGER NOT NULL, "
        "logger TEXT NOT NULL, message TEXT NOT NULL, fields TEXT, exception TEXT)",
        f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts)",
        f"CREATE INDEX IF NOT EXISTS {table}_level_ts ON {table} (level, ts)",
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
            f"INSERT INTO {self.config.table} (ts, level, logger, message, fields, exception) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )

    async def open(self) -> None:
        parent = os.path.dirname(self.path)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
            db = await aiosqlite.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise LogError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            for statement in schema_statements(self.config.table):
                await db.execute(statement)
            await db.commit()
        except sqlite3.Error as exc:
            await db.close()
            raise LogError(f"cannot set up SQLite database {self.path!r}: {exc}") from exc
        self._db = db

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if self._db is None:
            raise LogError(f"SQLite backend for {self.path!r} is not open")
        rows = await map_in_slices(entry_row, entries)
        try:
            await self._db.executemany(self._insert, rows)
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
            # aiosqlite's thread ends right after it answers close(); wait for it so that
            # nothing the manager started outlives it (a join of microseconds).
            thread = getattr(db, "_thread", None)
            if isinstance(thread, threading.Thread) and thread.is_alive():
                thread.join(timeout=1.0)
