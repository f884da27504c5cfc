"""The SQLite backend uses private primitives of aiosqlite: `Connection._execute(fn)` (run a
function on the connection's thread and return its result), `Connection._tx` and `_running`
(its queue of calls, a call without a future; whether the thread takes calls) and
`Connection._conn` (the `sqlite3.Connection` itself). pyproject.toml pins aiosqlite below the
next minor release; this file is what a version bump must pass."""

from __future__ import annotations

import asyncio
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


async def test_tx_queue_runs_a_call_without_a_future_after_the_calls_queued_before(
    tmp_path: Path,
) -> None:
    """`Connection._tx.put_nowait((None, fn))`: aiosqlite's thread runs `fn` in queue order and
    sends nothing back; `_running` says whether the thread still takes calls."""
    async with aiosqlite.connect(tmp_path / "c.db") as db:
        assert db._running is True
        order: list[tuple[str, int]] = []
        ran = threading.Event()

        def first() -> None:
            order.append(("first", threading.get_ident()))

        def second() -> None:
            order.append(("second", threading.get_ident()))
            ran.set()

        earlier = asyncio.ensure_future(db._execute(first))
        await asyncio.sleep(0)  # `first` is queued
        db._tx.put_nowait((None, second))
        assert await asyncio.get_running_loop().run_in_executor(None, ran.wait, 5.0)
        await earlier
        assert [name for name, _ in order] == ["first", "second"]
        assert order[0][1] == order[1][1] != threading.get_ident()
    assert db._running is False
