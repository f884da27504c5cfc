"""Defects an adversarial review of the consolidated core found, each reproduced first:
handlers that log, cancel or close from inside the pipeline, the backlog's settler at loop
teardown, and what stays pending across a nested write."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, LogEntry, LogManager, LogStats, Sink, SQLiteConfig

from .conftest import RecordingBackend

ROOT = Path(__file__).resolve().parent.parent


def balanced(stats: LogStats) -> bool:
    return stats.accepted == stats.written + stats.dropped + stats.dead_lettered + stats.pending


@pytest.mark.parametrize("overflow", ["block", "timeout"])
async def test_a_handler_that_logs_while_the_queue_is_full_does_not_stall_the_worker(
    overflow: str,
) -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=True, queue_size=2, batch_size=1, overflow=overflow)
    lm = LogManager(config)

    async def handler(entry: LogEntry) -> None:
        if entry.message == "trigger":
            assert await lm.info("nested") is True

    lm.register_handler(handler)
    await lm.start()

    async def produce() -> None:
        await lm.info("trigger")
        for index in range(10):
            await lm.info(f"m{index}")

    await asyncio.wait_for(produce(), 2)  # before: stuck for good with "block"
    report = await lm.close()
    assert sorted(backend.messages) == sorted(["trigger", "nested", *(f"m{i}" for i in range(10))])
    assert (report.written, report.dropped) == (12, 0)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_cancelled_future_in_a_handler_is_a_handler_error_not_a_cancellation(
    async_mode: bool,
) -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=async_mode, fallback="none"))

    async def handler(entry: LogEntry) -> None:
        if entry.message == "bad":
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future

    lm.register_handler(handler)
    await lm.start()
    assert await lm.info("bad") is True  # before (sync): CancelledError in the producer
    await asyncio.sleep(0.05)
    assert await lm.info("after") is True  # before (async): the worker was dead
    report = await asyncio.wait_for(lm.close(), 2)
    assert backend.messages == ["bad", "after"]
    assert lm.get_stats().handler_errors == 1
    assert (report.written, report.dropped) == (2, 0)


async def test_a_nested_write_does_not_hide_the_outer_one_from_pending() -> None:
    backend = RecordingBackend(delay=0.3)
    lm = LogManager(Config(backend=backend, fallback="none", retry_attempts=0))

    async def handler(entry: LogEntry) -> None:
        if entry.message == "outer":
            await lm.info("nested")

    lm.register_handler(handler)
    await lm.start()
    outer = asyncio.create_task(lm.info("outer"))
    await asyncio.sleep(0.45)  # nested written; the outer write under way
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.pending) == (2, 1, 1)  # before: pending 0
    outer.cancel()
    await asyncio.gather(outer, return_exceptions=True)
    report = await lm.close()
    assert (report.written, report.dropped) == (1, 1)  # before: dropped 0, one entry vanished
    assert balanced(lm.get_stats())


async def test_a_task_started_by_a_handler_of_the_settler_counts_its_cancelled_entry() -> None:
    backend = RecordingBackend(delay=0.3)
    lm = LogManager(Config(backend=backend))  # sync mode
    spawned: list[asyncio.Task[bool]] = []

    async def later() -> bool:
        await asyncio.sleep(0.5)
        return await lm.info("from the spawned task")

    def handler(entry: LogEntry) -> None:
        if entry.message == "spawn":
            spawned.append(asyncio.get_running_loop().create_task(later()))

    lm.register_handler(handler)
    await lm.start()
    lm.write_log_threadsafe("INFO", "spawn")  # settled by the backlog's settler
    await asyncio.sleep(0.4)
    blocker = asyncio.create_task(lm.info("blocker"))  # holds the lock past 0.5 s
    await asyncio.sleep(0.2)
    spawned[0].cancel()  # while its entry waits for the lock
    await asyncio.gather(spawned[0], blocker, return_exceptions=True)
    report = await lm.close()
    assert (report.written, report.dropped) == (2, 1)  # before: dropped 0, uncounted
    assert balanced(lm.get_stats())


def test_a_handed_in_entry_mid_write_at_loop_teardown_is_written_at_exit() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys, threading
        from collections.abc import Sequence
        from asynclog import Config, LogManager

        class Slow:
            def __init__(self):
                self.rows, self.exit_rows = [], []
            async def open(self): pass
            async def write_batch(self, entries):
                await asyncio.sleep(0.05)
                self.rows.extend(e.message for e in entries)
            def flush_at_exit(self, entries):
                self.exit_rows.extend(e.message for e in entries)
                print("written", len(self.rows), "at exit", len(self.exit_rows),
                      "missing", sorted(set(f"t{i}" for i in range(20))
                                        - set(self.rows) - set(self.exit_rows)), flush=True)
            async def close(self): pass

        backend = Slow()
        lm = LogManager(Config(backend=backend))  # sync mode, never closed

        async def main():
            await lm.start()
            def hand_in():
                for i in range(20):
                    lm.write_log_threadsafe("INFO", f"t{i}")
            threading.Thread(target=hand_in).start()
            await asyncio.sleep(0.12)  # a write is under way when asyncio.run tears down

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.endswith("missing []"), done.stdout  # before: one entry dropped mid-write


@pytest.mark.parametrize("async_mode", [True, False])
@pytest.mark.parametrize("wrap", ["wait_for", "gather"])
async def test_close_from_a_handler_through_wait_for_or_gather_returns(
    async_mode: bool, wrap: str
) -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=async_mode))
    returned = asyncio.Event()

    async def handler(entry: LogEntry) -> None:
        if entry.message == "stop":
            if wrap == "wait_for":
                await asyncio.wait_for(lm.close(), 1.0)  # a task of its own on 3.11
            else:
                await asyncio.gather(lm.close())
            returned.set()

    lm.register_handler(handler)
    await lm.start()
    await lm.info("stop")
    await asyncio.wait_for(returned.wait(), 2)  # before: TimeoutError / a hang
    report = await asyncio.wait_for(lm.close(), 2)
    assert backend.messages == ["stop"] and report.written == 1


class ClosingWatch(RecordingBackend):
    """Records whether `close()` came while a write was under way."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.writing_now = False
        self.closed_mid_write = False

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.writing_now = True
        try:
            await super().write_batch(entries)
        finally:
            self.writing_now = False

    async def close(self) -> None:
        self.closed_mid_write = self.closed_mid_write or self.writing_now
        await super().close()


async def test_sync_close_waits_for_a_write_to_a_later_backend() -> None:
    first, second = ClosingWatch(0.3), ClosingWatch(0.5)
    config = Config(backends=[Sink(first, name="A"), Sink(second, name="B")])
    lm = LogManager(config)
    await lm.start()
    caller = asyncio.create_task(lm.info("m0"))
    await asyncio.sleep(0.05)
    report = await lm.close()
    await caller
    assert not second.closed_mid_write  # before: B was closed under the write
    assert (report.written, report.dropped) == (2, 0)  # before: written=1, then 2 later
    assert first.messages == second.messages == ["m0"]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_second_close_with_a_timeout_keeps_its_own_deadline(async_mode: bool) -> None:
    lm = LogManager(Config(backend=RecordingBackend(delay=3.0), async_mode=async_mode))
    await lm.start()
    producer = asyncio.create_task(lm.info("slow"))
    await asyncio.sleep(0.05)
    first = asyncio.create_task(lm.close())
    await asyncio.sleep(0)
    began = asyncio.get_running_loop().time()
    await lm.close(timeout=0.2)
    assert asyncio.get_running_loop().time() - began < 1.5  # before: 2.9 s
    await asyncio.gather(first, producer)


async def test_close_with_a_timeout_does_not_wait_for_a_locked_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    config = Config(
        backend="sqlite", async_mode=True, backend_config=SQLiteConfig(db_path=path, busy_timeout=5)
    )
    lm = LogManager(config)
    await lm.start()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        await lm.info("waits for the lock")
        await asyncio.sleep(0.1)
        began = asyncio.get_running_loop().time()
        await lm.close(timeout=0.3)
        assert asyncio.get_running_loop().time() - began < 2.0  # before: busy_timeout, 4.8 s
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_an_entry_still_owed_to_a_later_backend_is_pending_there() -> None:
    first, second = RecordingBackend(delay=0.5), RecordingBackend(delay=0.5)
    config = Config(
        backends=[Sink(first, name="A"), Sink(second, name="B")],
        async_mode=True,
        queue_size=1,
        batch_size=1,
        overflow="block",
    )
    lm = LogManager(config)
    await lm.start()
    await lm.info("m0")
    await asyncio.sleep(0.01)
    await lm.info("m1")
    waiting = asyncio.create_task(lm.info("m2"))  # waits for room in A; B not reached yet
    await asyncio.sleep(0.2)
    stats = lm.get_stats()
    for name in ("A", "B"):
        assert balanced(stats.backends[name]), stats.backends[name]  # before: B short by one
    assert balanced(stats)
    await waiting
    await lm.close()
    assert balanced(lm.get_stats())


class ExitRecording(RecordingBackend):
    """Also writes at interpreter exit (or once the loop has closed)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay)
        self.at_exit: list[str] = []

    def flush_at_exit(self, entries: Sequence[LogEntry]) -> None:
        self.at_exit.extend(entry.message for entry in entries)


def test_the_settlers_entry_in_hand_is_written_once_per_backend_when_the_loop_closes() -> None:
    fast, slow = ExitRecording(), ExitRecording(delay=1.0)
    config = Config(backends=[Sink(fast, name="fast"), Sink(slow, name="slow")], fallback="none")
    lm = LogManager(config)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(lm.start())
        lm.write_log_threadsafe("INFO", "from a thread")
        loop.run_until_complete(asyncio.sleep(0.1))  # written to fast; slow is mid-write
    finally:
        loop.close()
    lm.write_log_threadsafe("INFO", "after the loop closed")  # writes what is left, now
    assert fast.messages + fast.at_exit == ["from a thread", "after the loop closed"]
    assert slow.at_exit[-1] == "after the loop closed"  # before: fast got "from a thread" twice
    stats = lm.get_stats()
    for name in ("fast", "slow"):
        assert balanced(stats.backends[name]) and stats.backends[name].pending == 0


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_task_a_handler_started_earlier_gets_the_final_close_report(
    async_mode: bool,
) -> None:
    backend = RecordingBackend(delay=0.01)
    lm = LogManager(Config(backend=backend, async_mode=async_mode))
    started: list[asyncio.Task[Any]] = []
    go = asyncio.Event()

    async def supervisor() -> Any:
        await go.wait()
        return await lm.close()

    def handler(entry: LogEntry) -> None:
        if not started:  # a handler lazily starting the app's background task
            started.append(asyncio.get_running_loop().create_task(supervisor()))

    lm.register_handler(handler)
    await lm.start()
    await lm.info("first")
    await asyncio.sleep(0.05)
    for index in range(20):
        await lm.info(f"m{index}")
    go.set()
    report = await asyncio.wait_for(started[0], 5)
    assert lm.closed and report.written == 21  # before (async): written=1, still closing
    assert len(backend.messages) == 21
