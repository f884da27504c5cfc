"""`SQLiteConfig(write_on_loop=True)`: each batch's transaction runs on the event loop's thread,
never waits there for another connection's lock, and a slow one sends the later ones to
aiosqlite's thread.

Which thread ran a transaction is seen through sqlite3's own public hook: an adapter registered
for `float` (the `ts` column's type) runs in the thread that binds the row."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynclog import (
    Config,
    LogEntry,
    LogManager,
    SQLiteBackend,
    SQLiteConfig,
    query,
)
from asynclog.backends.base import WriteContinues

from .portable import wait_until


@pytest.fixture
def binding_threads() -> Iterator[list[int]]:
    """The thread of every `float` sqlite3 binds while the test runs."""
    threads: list[int] = []

    def adapt(value: float) -> float:
        threads.append(threading.get_ident())
        return value

    sqlite3.register_adapter(float, adapt)
    try:
        yield threads
    finally:
        del sqlite3.adapters[(float, sqlite3.PrepareProtocol)]


async def _log(config: SQLiteConfig, count: int, batch: int = 50, **options: Any) -> LogManager:
    """`count` entries, `batch` at a time before waiting for them to be written."""
    manager_config = Config(backends=[config], async_mode=True, retry_backoff=0, **options)
    async with LogManager(manager_config) as lm:
        for index in range(count):
            await lm.info(f"m{index}")
            if index % batch == batch - 1:
                await wait_until(lambda: not lm.get_stats().pending)
    return lm


def _messages(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    db.close()
    return messages


def test_it_is_read_from_a_dict(tmp_path: Path) -> None:
    backend = {"type": "sqlite", "db_path": str(tmp_path / "a.db"), "write_on_loop": True}
    config = Config.from_dict({"backends": [backend]})
    assert config.backends is not None
    assert isinstance(config.backends[0], SQLiteConfig)
    assert config.backends[0].write_on_loop is True


async def test_every_batch_is_written_on_the_loops_thread(
    tmp_path: Path, binding_threads: list[int]
) -> None:
    path = tmp_path / "app.db"
    lm = await _log(SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=10), 500)
    assert binding_threads.count(threading.get_ident()) == 500
    assert set(binding_threads) == {threading.get_ident()}
    assert _messages(path) == [f"m{i}" for i in range(500)]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.write_errors) == (500, 500, 0, 0)


async def test_without_it_the_batches_go_to_aiosqlites_thread(
    tmp_path: Path, binding_threads: list[int]
) -> None:
    path = tmp_path / "app.db"
    await _log(SQLiteConfig(db_path=path), 200)
    assert len(binding_threads) == 200
    assert threading.get_ident() not in binding_threads
    assert len(set(binding_threads)) == 1
    assert _messages(path) == [f"m{i}" for i in range(200)]


async def test_a_locked_database_sends_the_batch_to_the_thread_and_the_loop_runs_on(
    tmp_path: Path, binding_threads: list[int]
) -> None:
    path = tmp_path / "app.db"
    config = SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=10)
    async with LogManager(Config(backends=[config], async_mode=True)) as lm:
        await lm.info("before")
        await wait_until(lambda: not lm.get_stats().pending)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, held for 0.3 s
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        await lm.info("while locked")
        ticks = 0
        while lm.get_stats().pending:
            await asyncio.sleep(0.01)
            ticks += 1
        await lm.info("after")
    other.close()
    loop_thread = threading.get_ident()
    assert binding_threads[0] == loop_thread
    assert binding_threads[1] != loop_thread  # the locked batch: written by the thread
    assert binding_threads[2] == loop_thread  # the next one on the loop again
    assert ticks >= 15  # the loop was free while the thread waited for the lock
    assert _messages(path) == ["before", "while locked", "after"]
    stats = lm.get_stats()
    assert (stats.written, stats.write_errors, stats.retries, stats.dropped) == (3, 0, 0, 0)


async def test_a_slow_transaction_sends_the_later_ones_to_the_thread(
    tmp_path: Path, binding_threads: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.db"
    # Every transaction takes longer than a nanosecond: the first one ends the loop's turn.
    config = SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=1e-9)
    lm = await _log(config, 150)
    loop_thread = threading.get_ident()
    assert binding_threads[:50] == [loop_thread] * 50
    assert loop_thread not in binding_threads[50:]
    assert len(binding_threads) == 150
    assert _messages(path) == [f"m{i}" for i in range(150)]
    assert lm.get_stats().written == 150
    err = capsys.readouterr().err
    assert err.count("asynclog[sqlite]: a write to") == 1
    assert f"asynclog[sqlite]: a write to {str(path)!r} held the event loop for " in err
    assert err.endswith(
        " ms; later writes go to the backend's thread (write_on_loop=True is for a fast local "
        "disk)\n"
    )


async def test_full_text_search_and_retention_work_on_the_loop(
    tmp_path: Path, binding_threads: list[int]
) -> None:
    path = tmp_path / "app.db"
    config = SQLiteConfig(
        db_path=path,
        write_on_loop=True,
        loop_write_limit=10,
        fts=True,
        max_rows=120,
        retention_interval=0,
    )
    await _log(config, 300, batch=30)
    assert set(binding_threads) == {threading.get_ident()}
    assert _messages(path) == [f"m{i}" for i in range(180, 300)]
    assert [entry.message async for entry in query(path, text="m299")] == ["m299"]
    # m10 and m100-m109 were deleted by retention, and from the index with them
    assert [entry.message async for entry in query(path, text="m10")] == []
    assert len([entry async for entry in query(path, text="m2")]) == 100  # m200-m299


async def test_sync_mode_writes_on_the_loop_too(
    tmp_path: Path, binding_threads: list[int]
) -> None:
    path = tmp_path / "app.db"
    config = Config(backends=[SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=10)])
    async with LogManager(config) as lm:
        for index in range(20):
            await lm.info(f"s{index}")
    assert binding_threads == [threading.get_ident()] * 20
    assert _messages(path) == [f"s{i}" for i in range(20)]


async def test_a_batch_left_to_the_thread_is_not_overtaken_on_the_loop(
    tmp_path: Path, binding_threads: list[int]
) -> None:
    """A cancelled caller leaves its batch to aiosqlite's thread (`WriteContinues`), which
    still waits for a lock; the next batch must not run on the loop meanwhile (the loop and
    the thread share one connection): it goes to the thread, after the first."""
    path = tmp_path / "app.db"
    backend = SQLiteBackend(SQLiteConfig(db_path=path, write_on_loop=True, loop_write_limit=10))
    await backend.open()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    first = asyncio.ensure_future(backend.write_batch([LogEntry(time.time(), 20, "a", "svc")]))
    await asyncio.sleep(0.1)  # the loop found the database locked: the thread waits for it
    first.cancel()
    with pytest.raises(WriteContinues) as caught:
        await first
    asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
    started = time.monotonic()
    await backend.write_batch([LogEntry(time.time(), 20, "b", "svc")])
    assert time.monotonic() - started >= 0.15  # it waited for the first, on the thread
    assert await caught.value.outcome is True
    await backend.write_batch([LogEntry(time.time(), 20, "c", "svc")])
    await backend.close()
    other.close()
    loop_thread = threading.get_ident()
    assert [thread == loop_thread for thread in binding_threads] == [False, False, True]
    assert _messages(path) == ["a", "b", "c"]
