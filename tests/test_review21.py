"""Review 21: `SQLiteConfig(write_on_loop=True)` attacked (the loop and aiosqlite's thread
sharing one connection, the busy fallback, failures on the loop, the docs)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from asynclog import Config, LogManager, SQLiteConfig

from . import test_sqlite_multiprocess as multiprocess

spawn = multiprocess.spawn  # the fixture: child processes, stderr to a file


def _messages(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    db.close()
    return messages


def test_under_trio_a_cancelled_callers_transaction_is_not_joined_on_the_loop(
    tmp_path: Path,
) -> None:
    """Under trio a batch that goes to aiosqlite's thread is written through aiosqlite's own
    calls. A caller cancelled while the thread waits for the lock leaves those calls (and the
    rollback) queued there; the next batch must not use the connection on the loop meanwhile:
    it waited there for the thread's busy wait (the connection's mutex), holding the loop, and
    could start its transaction inside the thread's (or roll the thread's back)."""
    path = tmp_path / "app.db"
    gaps: list[float] = []

    async def main() -> tuple[int, int, int, int]:
        config = SQLiteConfig(
            db_path=path, busy_timeout=2.0, write_on_loop=True, loop_write_limit=10
        )
        async with LogManager(Config(backends=[config], retry_backoff=0)) as lm:
            await lm.info("before")
            other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")  # the write lock, for 0.5 s (a thread lets go)
            release = threading.Timer(0.5, other.execute, ("COMMIT",))
            release.start()

            async def tick() -> None:
                last = time.monotonic()
                while True:
                    await trio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            async with trio.open_nursery() as nursery:
                nursery.start_soon(tick)
                with trio.move_on_after(0.1):
                    await lm.info("a")  # to the thread (locked), then cancelled
                await lm.info("b")
                await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            release.join()
            other.close()
        stats = lm.get_stats()
        return stats.written, stats.dropped, stats.write_errors, stats.retries

    written, dropped, write_errors, retries = trio.run(main)
    assert max(gaps) < 0.25  # the loop was never held while the thread waited for the lock
    messages = _messages(path)
    assert messages[0] == "before" and messages[2] == "b" and len(messages) == 3
    assert messages[1].startswith("asynclog dropped 1 entries")  # "a": its caller went away
    assert (written, dropped, write_errors, retries) == (3, 1, 0, 0)


def test_under_trio_the_batch_after_a_locked_one_is_on_the_loop_again(tmp_path: Path) -> None:
    """The thread's batch, ended, gives the connection back to the loop at once."""
    path = tmp_path / "app.db"
    threads: list[int] = []

    def adapt(value: float) -> float:  # sqlite3 binds the `ts` column in the writing thread
        threads.append(threading.get_ident())
        return value

    async def main() -> None:
        config = SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=10)
        async with LogManager(Config(backends=[config])) as lm:
            await lm.info("before")
            other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")
            release = threading.Timer(0.2, other.execute, ("COMMIT",))
            release.start()
            await lm.info("locked")
            for index in range(3):
                await lm.info(f"after {index}")
            release.join()
            other.close()

    sqlite3.register_adapter(float, adapt)
    try:
        trio.run(main)
    finally:
        del sqlite3.adapters[(float, sqlite3.PrepareProtocol)]
    loop_thread = threading.get_ident()
    assert [thread == loop_thread for thread in threads] == [True, False, True, True, True]
    assert _messages(path) == ["before", "locked", "after 0", "after 1", "after 2"]


async def test_after_a_failure_on_the_loop_the_thread_still_waits_for_a_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loop's transaction runs with busy timeout 0; a failure there (the table renamed by
    another process) must leave the connection's own timeout in place. Here that failure is
    also slow (every write is, with a limit of a nanosecond): the later batches go to
    aiosqlite's thread, and the one that finds the database locked waits for the lock there
    instead of failing at once."""
    path = tmp_path / "app.db"
    config = SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=1e-9)
    manager_config = Config(backends=[config], fallback="none", retry_attempts=0)
    async with LogManager(manager_config) as lm:
        with sqlite3.connect(path) as other:
            other.execute("ALTER TABLE logs RENAME TO moved")
        other.close()
        await lm.info("lost")  # failed on the loop: dropped (no retry, no fallback)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("ALTER TABLE moved RENAME TO logs")
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        started = time.monotonic()
        await lm.info("locked")
        assert time.monotonic() - started >= 0.25  # waited for the lock, on the thread
        other.close()
    stats = lm.get_stats()
    assert (stats.written, stats.write_errors, stats.dropped) == (2, 1, 1)
    messages = _messages(path)
    assert messages[0].startswith("asynclog dropped 1 entries") and messages[1] == "locked"
    assert len(messages) == 2
    assert capsys.readouterr().err.count("asynclog[sqlite]: a write to") == 1


def test_four_processes_write_one_database_on_their_loops(spawn: Any, tmp_path: Path) -> None:
    """Each process's loop never waits for the others' lock (a busy batch goes to its thread):
    every entry once, in each process's order; FTS and retention on the loop as well."""
    db = tmp_path / "shared.db"
    sqlite = {
        "write_on_loop": True,
        "loop_write_limit": 10,
        "fts": True,
        "max_rows": 10**6,
        "retention_interval": 0,
    }
    stats = multiprocess._run_writers(spawn, tmp_path, db, processes=4, count=5_000, sqlite=sqlite)
    for one in stats:
        assert (one["written"], one["dropped"], one["dead_lettered"]) == (5_000, 0, 0), one
    multiprocess._check_shared_table(db, stats, 5_000)
    with sqlite3.connect(db) as conn:
        (found,) = conn.execute(
            "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'p3'"
        ).fetchone()
    conn.close()
    assert found == 5_000
