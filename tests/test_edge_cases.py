"""Edge cases found in review: every one of them once lost, duplicated or hung something."""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import asynclog.backends.file as file_module
from asynclog import (
    Config,
    FileBackend,
    FileConfig,
    Level,
    LogEntry,
    LogError,
    LogManager,
    SQLiteConfig,
)
from asynclog._entry import Entry
from asynclog.formatters import json_format

from .conftest import (
    GateBackend,
    RecordingBackend,
    assert_settled,
    heartbeat,
    message_of,
    read_lines,
)


class DiskFillsOnce:
    """FileIO.write on a nearly full disk: a short write, then ENOSPC, then room again."""

    def __init__(self, real: Any, short: int) -> None:
        self.real, self.short, self.calls = real, short, 0

    def write(self, view: memoryview) -> int:
        self.calls += 1
        if self.calls == 1:
            written: int = self.real.write(view[: self.short])
            return written
        if self.calls == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = self.real.write(view)
        return written

    def fileno(self) -> int:
        fileno: int = self.real.fileno()
        return fileno

    def close(self) -> None:
        self.real.close()


async def test_entries_logged_after_an_app_cancels_every_task_are_still_written(
    log_path: Path,
) -> None:
    config = Config(backend="file", async_mode=True, backend_config=FileConfig(file_path=log_path))
    lm = LogManager(config)
    await lm.start()
    await lm.info("before")
    await asyncio.sleep(0.05)
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:  # a common "graceful shutdown": cancel every other task
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    for index in range(5):
        await lm.info(f"after {index}")
    report = await lm.close()
    assert [message_of(line) for line in read_lines(log_path)] == ["before"] + [
        f"after {index}" for index in range(5)
    ]
    assert (report.written, report.dropped, report.abandoned) == (6, 0, 0)
    assert_settled(lm.get_stats())


async def test_a_worker_cancelled_before_its_first_step_loses_nothing() -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=True))
    await lm.start()
    for task in asyncio.all_tasks():
        if task.get_name() == "asynclog-worker":
            task.cancel()
    for index in range(6):
        await lm.info(f"m{index}")
    await asyncio.sleep(0.01)
    await lm.info("after the worker is gone")
    report = await lm.close()
    assert backend.messages == [f"m{index}" for index in range(6)] + ["after the worker is gone"]
    assert (report.written, report.abandoned) == (7, 0)
    assert_settled(lm.get_stats())


async def test_close_with_a_timeout_returns_even_when_the_io_thread_is_stuck(
    tmp_path: Path,
) -> None:
    unstuck = threading.Event()

    class StuckDisk(FileBackend):
        def write_lines(self, entries: Sequence[Entry], lines: list[str]) -> None:
            unstuck.wait(5)  # on the backend's thread, in async mode
            super().write_lines(entries, lines)

    path = tmp_path / "a.log"
    backend = StuckDisk(FileConfig(file_path=path))
    lm = LogManager(Config(backend=backend, async_mode=True, fallback="none"))
    await lm.start()
    await lm.info("stuck")
    await asyncio.sleep(0.05)
    async with heartbeat(0.05) as beats:
        began = time.monotonic()
        report = await lm.close(timeout=0.2)
        took = time.monotonic() - began
    assert took < 1.5, "close(timeout) waits at most the deadline plus the backend's grace"
    assert beats[0] >= 5, "the event loop kept running while close waited"
    assert report.abandoned == 1
    assert_settled(lm.get_stats())
    unstuck.set()  # the thread ends its write later: counted once, abandoned, already
    for thread in threading.enumerate():
        if thread.name.startswith("asynclog-file"):
            await asyncio.to_thread(thread.join, 5)
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.pending) == (1, 0, 1, 0)


async def test_a_field_value_that_breaks_json_loses_nothing(db_path: Path) -> None:
    class Hostile(dict[str, int]):
        def items(self) -> Any:
            raise RuntimeError("items exploded")

    config = Config(backend="sqlite", async_mode=True, backend_config=SQLiteConfig(db_path=db_path))
    async with LogManager(config) as lm:
        for index in range(9):
            await lm.info(f"good {index}")
        await lm.info("bad", ctx=Hostile(a=1))
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT message, fields FROM logs ORDER BY id").fetchall()
    db.close()
    assert [row[0] for row in rows] == [f"good {index}" for index in range(9)] + ["bad"]
    assert json.loads(rows[-1][1])["ctx"].startswith("{")  # stored as its repr
    stats = lm.get_stats()
    assert (stats.written, stats.dropped) == (10, 0)


async def test_a_short_write_then_enospc_leaves_no_half_line_and_no_duplicate(
    log_path: Path,
) -> None:
    backend = FileBackend(FileConfig(file_path=log_path))
    lm = LogManager(Config(backend=backend, async_mode=True, retry_backoff=0.01))
    await lm.start()
    backend._raw = DiskFillsOnce(backend._raw, short=30)  # type: ignore[assignment]
    await lm.info("first entry")
    await lm.info("second entry")
    await lm.close()
    assert [message_of(line) for line in read_lines(log_path)] == ["first entry", "second entry"]
    assert_settled(lm.get_stats())


async def test_a_failed_reopen_during_rotation_recovers_on_the_next_batch(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = file_module._prepare_file
    calls = 0

    def flaky_prepare(path: str, mode: int, follow: bool = True) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # the reopen after the first rotation
            raise OSError(errno.EMFILE, "Too many open files")
        return real_prepare(path, mode, follow)

    monkeypatch.setattr(file_module, "_prepare_file", flaky_prepare)
    config = Config(
        backend="file",
        async_mode=True,
        retry_backoff=0.01,
        backend_config=FileConfig(file_path=log_path, max_file_size_mb=0.001, max_backups=5),
    )
    async with LogManager(config) as lm:
        for index in range(40):
            await lm.info(f"entry {index:03d} " + "x" * 40)
            await asyncio.sleep(0.005)
    stats = lm.get_stats()
    assert (stats.written, stats.dead_lettered) == (40, 0)
    assert not Path(f"{log_path}.deadletter").exists()


async def test_a_sync_caller_cancelled_during_a_retry_counts_its_entry_dropped() -> None:
    class Failing(RecordingBackend):
        fail = True

        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            if self.fail:
                raise OSError("boom")
            await super().write_batch(entries)

    backend = Failing()
    lm = LogManager(Config(backend=backend, fallback="none", retry_backoff=0.05))
    await lm.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(lm.info("cancelled in the backoff"), 0.01)
    assert_settled(lm.get_stats())
    backend.fail = False
    await lm.info("next")
    await lm.close()
    stats = lm.get_stats()
    assert backend.messages[1] == "next"
    assert backend.messages[0].startswith("asynclog dropped 1 entries between ")
    assert (stats.accepted, stats.written, stats.dropped) == (3, 2, 1)  # the report counts
    assert_settled(stats)


async def test_a_lost_sync_entry_is_dropped_not_pending() -> None:
    class Down(RecordingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            raise OSError("down")

    async with LogManager(
        Config(backend=Down(), raise_errors=True, retry_attempts=0, fallback="none")
    ) as lm:
        with pytest.raises(LogError, match="log entry not written: down"):
            await lm.info("lost")
        assert_settled(lm.get_stats())


async def test_sync_callers_waiting_for_the_lock_are_not_overtaken(log_path: Path) -> None:
    class FailsOnce(FileBackend):
        failed = False

        def write_batch_blocking(self, entries: Sequence[LogEntry]) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("transient")
            super().write_batch_blocking(entries)

    lm = LogManager(Config(backend=FailsOnce(FileConfig(file_path=log_path)), retry_backoff=0.05))
    await lm.start()

    async def first() -> None:
        await lm.info("A1")  # fails, then is retried under the lock
        await lm.info("A2")  # called after B1 started waiting

    async def second() -> None:
        await asyncio.sleep(0.01)
        await lm.info("B1")

    await asyncio.gather(first(), second())
    await lm.close()
    assert [message_of(line) for line in read_lines(log_path)] == ["A1", "B1", "A2"]


async def test_producers_waiting_for_room_are_woken_when_the_worker_dies() -> None:
    class WorkerBug(BaseException):
        pass

    class Poison(GateBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            self.writing.set()
            await self.gate.wait()
            raise WorkerBug("boom")

    backend = Poison()
    lm = LogManager(
        Config(backend=backend, raise_errors=True, async_mode=True, queue_size=1, overflow="block")
    )
    await lm.start()
    await lm.info("in the worker's hands")
    await backend.writing.wait()
    await lm.info("fills the queue")
    blocked = asyncio.create_task(lm.info("waits for room"))
    await asyncio.sleep(0.01)
    backend.release()
    with pytest.raises(LogError, match="the asynclog worker stopped unexpectedly"):
        await asyncio.wait_for(blocked, 2)
    await lm.close()
    assert_settled(lm.get_stats())


async def test_drop_oldest_keeps_the_byte_bound() -> None:
    backend = GateBackend()
    config = Config(
        backend=backend, async_mode=True, overflow="drop_oldest", max_queue_bytes=100_000
    )
    lm = LogManager(config)
    await lm.start()
    await lm.info("in the worker's hands")
    await backend.writing.wait()
    for index in range(50):
        await lm.info(f"small {index}")
    for _ in range(50):
        await lm.info("x" * 60_000)
    assert lm.get_stats().queue_bytes <= 100_000 + 60_000 + 200
    backend.release()
    await lm.close()
    assert_settled(lm.get_stats())


async def test_sql_keywords_are_valid_table_names(tmp_path: Path) -> None:
    config = Config(
        backend="sqlite", backend_config=SQLiteConfig(db_path=tmp_path / "a.db", table="order")
    )
    async with LogManager(config) as lm:
        await lm.info("kept")
    with sqlite3.connect(tmp_path / "a.db") as db:
        assert db.execute('SELECT message FROM "order"').fetchall() == [("kept",)]
    db.close()


def test_the_json_format_escapes_del_and_c1_controls() -> None:
    entry = LogEntry(
        0.0, Level.INFO, "csi \x9b2J del \x7f nel \x85", "app", MappingProxyType({"k": "\x9b"})
    )
    line = json_format(entry)
    assert all(ch.isprintable() for ch in line)
    decoded = json.loads(line)
    assert decoded["message"] == "csi \x9b2J del \x7f nel \x85"
    assert decoded["fields"] == {"k": "\x9b"}


async def test_huge_bytes_fields_are_truncated_too() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True, max_entry_bytes=1024)) as lm:
        await lm.info("m", blob=b"a" * 100_000)
    (entry,) = backend.entries
    assert entry.fields["blob"].startswith("b'aaaa")
    assert entry.fields["blob"].endswith("bytes]")
    assert len(entry.fields["blob"]) <= 1024


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_batch_cancelled_on_its_way_to_the_fallback_is_counted(async_mode: bool) -> None:
    class Down(RecordingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    stuck_fallback = GateBackend()  # the fallback never answers
    config = Config(
        backend=Down(), async_mode=async_mode, retry_attempts=0, fallback=stuck_fallback
    )
    lm = LogManager(config)
    await lm.start()
    if async_mode:
        for index in range(10):
            await lm.info(f"m{index}")
        await stuck_fallback.writing.wait()
        report = await lm.close(timeout=0.2)
        assert report.abandoned == 10
    else:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lm.info("cancelled at the fallback"), 0.1)
        await lm.close(timeout=0.2)
    assert_settled(lm.get_stats())


@pytest.mark.parametrize("mode", ["worker", "worker gone", "sync"])
async def test_a_handler_that_logs_through_the_same_manager_does_not_deadlock(mode: str) -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=mode != "sync"))

    async def alerting(entry: LogEntry) -> None:
        if entry.level >= Level.ERROR:
            await lm.info(f"alert sent for {entry.message}")

    lm.register_handler(alerting)
    await lm.start()
    if mode == "worker gone":
        for task in asyncio.all_tasks():
            if task.get_name() == "asynclog-worker":
                task.cancel()
        await asyncio.sleep(0.01)
    await asyncio.wait_for(lm.error("disk on fire"), 2)
    await asyncio.wait_for(lm.close(), 2)
    assert sorted(backend.messages) == ["alert sent for disk on fire", "disk on fire"]
    assert_settled(lm.get_stats())


async def test_producers_blocked_when_the_worker_is_cancelled_write_directly() -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=True, queue_size=10, overflow="block"))
    await lm.start()
    for task in asyncio.all_tasks():
        if task.get_name() == "asynclog-worker":
            task.cancel()  # before its first step: it never drains anything
    for index in range(30):  # the 11th blocks on the full queue, then is handed over
        await asyncio.wait_for(lm.info(f"m{index}"), 2)
    await lm.close()
    assert backend.messages == [f"m{index}" for index in range(30)]
    assert_settled(lm.get_stats())


async def test_close_during_start_wins(tmp_path: Path) -> None:
    class SlowOpen(RecordingBackend):
        async def open(self) -> None:
            await asyncio.sleep(0.05)
            await super().open()

    backend = SlowOpen()
    lm = LogManager(Config(backend=backend, async_mode=True))
    starting = asyncio.create_task(lm.start())
    await asyncio.sleep(0.01)
    await lm.close()
    with pytest.raises(LogError, match="was closed while starting"):
        await starting
    assert backend.opened and backend.closed
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "asynclog-worker"]
    with pytest.raises(LogError):
        await lm.info("after")


async def test_undoing_a_partial_write_after_copytruncate_adds_no_nul_bytes(
    log_path: Path,
) -> None:
    backend = FileBackend(FileConfig(file_path=log_path))
    lm = LogManager(Config(backend=backend, async_mode=True, retry_backoff=0.01))
    await lm.start()
    for index in range(100):
        await lm.info(f"before {index}")
    await asyncio.sleep(0.05)
    with log_path.open("r+b") as handle:  # logrotate's copytruncate
        handle.truncate(0)
    backend._raw = DiskFillsOnce(backend._raw, short=20)  # type: ignore[assignment]
    await lm.info("after the truncation")
    await lm.close()
    data = log_path.read_bytes()
    assert b"\0" not in data
    assert [message_of(line) for line in read_lines(log_path)] == ["after the truncation"]
