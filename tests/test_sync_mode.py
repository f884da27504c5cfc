"""Sync mode: the entry is in the file (or committed) when write_log returns."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from asynclog import BackendWriteError, Config, FileConfig, LogEntry, LogManager, SQLiteConfig

from .conftest import FailingBackend, RecordingBackend, heartbeat, message_of, read_lines


async def test_each_line_is_in_the_file_when_write_log_returns(log_path: Path) -> None:
    config = Config(backend="file", backend_config=FileConfig(file_path=log_path))
    async with LogManager(config) as lm:
        assert not lm.get_stats().is_async
        for index in range(50):
            await lm.info(f"line {index}")
            lines = read_lines(log_path)  # a fresh reader, as another process would be
            assert len(lines) == index + 1
            assert message_of(lines[-1]) == f"line {index}"


async def test_each_row_is_committed_when_write_log_returns(db_path: Path) -> None:
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path))
    async with LogManager(config) as lm:
        for index in range(20):
            await lm.info(f"row {index}", index=index)
            with sqlite3.connect(db_path) as db:
                rows = db.execute("SELECT message, fields FROM logs ORDER BY id").fetchall()
            db.close()
            assert len(rows) == index + 1
            assert rows[-1] == (f"row {index}", f'{{"index": {index}}}')


async def test_concurrent_sync_callers_are_serialised_in_call_order() -> None:
    backend = RecordingBackend(delay=0.001)
    async with LogManager(Config(backend=backend)) as lm:
        await asyncio.gather(*(lm.info(f"m{index}") for index in range(100)))
    assert backend.messages == [f"m{index}" for index in range(100)]
    assert backend.batches == [1] * 100
    stats = lm.get_stats()
    assert (stats.queue_size, stats.queue_capacity, stats.written) == (0, 0, 100)


async def test_a_failed_sync_write_raises_to_the_caller_and_is_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = FailingBackend(fail_on={1, 2})
    async with LogManager(
        Config(backend=backend, raise_errors=True, retry_attempts=0, fallback="none")
    ) as lm:
        await lm.info("a")
        for message in ("b", "c"):
            with pytest.raises(BackendWriteError, match=r"log entry not written: .*No space left"):
                await lm.info(message)
        await lm.info("d")
    # c's write carried the in-band report of b's drop and was lost with it: d's write says
    # so (the report and c), ahead of d.
    assert backend.messages[0] == "a" and backend.messages[2] == "d"
    assert backend.messages[1].startswith("asynclog dropped 2 entries between ")
    stats = lm.get_stats()
    assert (stats.written, stats.dropped, stats.write_errors) == (3, 3, 2)
    err = capsys.readouterr().err
    assert err.count("write failed") == 1, "one report per burst of failures"
    assert "write recovered; 1 more failures not shown" in err
    assert err.count("delivery failed: dropped 1 entries") == 1


async def test_close_waits_for_a_sync_write_under_way() -> None:
    backend = RecordingBackend(delay=0.05)
    lm = LogManager(Config(backend=backend))
    await lm.start()
    writing = asyncio.create_task(lm.info("slow"))
    await asyncio.sleep(0.01)
    await lm.close()
    await writing
    assert backend.messages == ["slow"]
    assert backend.closed


async def test_sync_file_writes_keep_call_order_with_an_async_handler(log_path: Path) -> None:
    seen: list[str] = []

    async def slow_handler(entry: LogEntry) -> None:
        await asyncio.sleep(0.001)
        seen.append(entry.message)

    config = Config(backend="file", backend_config=FileConfig(file_path=log_path))
    async with LogManager(config) as lm:
        await lm.info("before the handler")
        lm.register_handler(slow_handler)
        await asyncio.gather(*(lm.info(f"m{index}") for index in range(50)))
        lm.unregister_handler(slow_handler)
        await asyncio.gather(*(lm.info(f"n{index}") for index in range(50)))
    expected = [f"m{index}" for index in range(50)]
    assert seen == expected
    messages = [message_of(line) for line in read_lines(log_path)]
    assert messages == ["before the handler", *expected, *[f"n{index}" for index in range(50)]]
    assert lm.get_stats().written == 101


async def test_a_locked_database_is_waited_for_off_the_loop_then_written_in_order(
    db_path: Path,
) -> None:
    """A sync SQLite write waits for the lock on aiosqlite's thread: the loop runs on."""
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path))
    async with LogManager(config) as lm:
        await lm.info("before")
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, released 0.3 s from now
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, other.execute, "COMMIT")
        async with heartbeat(0.01) as ticks:
            began = loop.time()
            await lm.info("while locked")
            waited = loop.time() - began
        await lm.info("after")
        other.close()
        stats = lm.get_stats()
    assert waited >= 0.25
    assert ticks[0] >= 10, "the loop was blocked while the database was locked"
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT message FROM logs ORDER BY id").fetchall()
    assert rows == [("before",), ("while locked",), ("after",)]
    assert (stats.written, stats.write_errors, stats.dropped) == (3, 0, 0)


async def test_a_backend_that_would_block_is_awaited_instead() -> None:
    from asynclog.backends.base import WouldBlock

    class Sometimes(RecordingBackend):
        calls = 0

        def write_batch_blocking(self, entries: object) -> None:
            self.calls += 1
            if self.calls % 2:
                raise WouldBlock
            self.entries.extend(entries)  # type: ignore[arg-type]

    backend = Sometimes()
    async with LogManager(Config(backend=backend)) as lm:
        for index in range(6):
            await lm.info(f"m{index}")
        stats = lm.get_stats()
    assert backend.messages == [f"m{index}" for index in range(6)]
    assert (stats.written, stats.write_errors, stats.dropped) == (6, 0, 0)


async def test_close_after_every_other_task_was_cancelled(db_path: Path) -> None:
    """Shutdown code often cancels every other task before closing."""
    import threading

    lm = LogManager(Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path)))
    await lm.start()
    for index in range(300):
        await lm.info(f"m{index}")
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            task.cancel()
    await asyncio.sleep(0)
    report = await lm.close()
    assert (report.written, report.dropped) == (300, 0)
    assert [t for t in threading.enumerate() if t.name.startswith("Thread-")] == []
    assert not Path(f"{db_path}-wal").exists()


async def test_a_relative_database_path_survives_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path="logs/app.db"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with LogManager(config) as lm:
        monkeypatch.chdir(elsewhere)  # daemons do, after start
        await lm.info("hello")
        stats = lm.get_stats()
    assert (stats.written, stats.write_errors) == (1, 0)
    with sqlite3.connect(tmp_path / "logs" / "app.db") as db:
        assert db.execute("SELECT message FROM logs").fetchall() == [("hello",)]
    assert list(elsewhere.iterdir()) == []


async def test_a_subclass_overriding_write_batch_is_called_in_sync_mode(db_path: Path) -> None:
    from asynclog.backends.sqlite import SQLiteBackend

    class Redacting(SQLiteBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            await super().write_batch(
                [e._replace(message=e.message.replace("hunter2", "***")) for e in entries]
            )

    async with LogManager(Config(backend=Redacting(SQLiteConfig(db_path=db_path)))) as lm:
        for index in range(3):
            await lm.info(f"password is hunter2 ({index})")
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT message FROM logs ORDER BY id").fetchall()
    assert rows == [(f"password is *** ({index})",) for index in range(3)]
