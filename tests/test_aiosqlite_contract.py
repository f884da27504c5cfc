"""The SQLite backend uses two private primitives of aiosqlite: `Connection._execute(fn)` (run a
function on the connection's thread and return its result) and `Connection._conn` (the
`sqlite3.Connection` itself). pyproject.toml pins aiosqlite below the next minor release; this
file is what a version bump must pass."""

from __future__ import annotations

import sqlite3
import threading
from importlib import metadata
from pathlib import Path

import aiosqlite


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def test_the_installed_aiosqlite_is_inside_the_pinned_range() -> None:
    version = _version_tuple(metadata.version("aiosqlite"))
    assert (0, 19) <= version < (0, 23), version


async def test_execute_runs_a_function_on_the_connection_thread(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "c.db") as db:
        caller = threading.get_ident()

        def on_thread() -> tuple[int, int]:
            return threading.get_ident(), 41 + 1

        thread, answer = await db._execute(on_thread)
        assert answer == 42
        assert thread != caller


async def test_conn_is_the_sqlite3_connection_used_by_the_thread(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "c.db") as db:
        connection = db._conn
        assert isinstance(connection, sqlite3.Connection)

        def write() -> int:
            connection.execute("CREATE TABLE t (x)")
            connection.execute("INSERT INTO t VALUES (7)")
            connection.commit()
            return int(connection.execute("SELECT x FROM t").fetchone()[0])

        assert await db._execute(write) == 7
        async with db.execute("SELECT x FROM t") as cursor:
            assert await cursor.fetchall() == [(7,)]
