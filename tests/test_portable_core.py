"""The core of asynclog on every event loop it supports: asyncio, uvloop and trio.

The calls, the overflow policies, close and its deadline, the thread hand-off, the stdlib
bridge, sync mode, the file and SQLite backends, and a program that never closes its manager.
"""

from __future__ import annotations

import gzip
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import asynclog
from asynclog import (
    Config,
    ConsoleConfig,
    FileBackend,
    FileConfig,
    Level,
    LogManager,
    PostgresConfig,
    SQLiteConfig,
    UnsupportedLoopError,
)
from asynclog.stdlib import install

from .conftest import assert_settled, message_of, read_lines
from .portable import LOOPS, RecordingGate, loops, run_on, wait_until

ROOT = Path(__file__).resolve().parent.parent


@loops
def test_calls_views_and_context_reach_the_file_in_order(loop: str, tmp_path: Path) -> None:
    path = tmp_path / "app.log"

    async def body() -> None:
        config = Config(backend_config=FileConfig(file_path=str(path)), async_mode=True)
        async with LogManager(config) as lm:
            assert await lm.info("one %s", "arg", user=1) is True
            await lm.warning("two")
            await lm.get_logger("app.db").error("three")
            with asynclog.contextualize(request="r1"):
                await lm.bind(order=7).debug("four")
            await lm.write_log(Level.CRITICAL, "five")
        assert_settled(lm.get_stats())

    run_on(loop, body)
    tails = [line.split(" ", 1)[1] for line in read_lines(path)]
    assert tails == [
        "INFO asynclog one arg user=1",
        "WARNING asynclog two",
        "ERROR app.db three",
        "DEBUG asynclog four order=7 request=r1",
        "CRITICAL asynclog five",
    ]


@loops
def test_sync_mode_has_the_line_on_disk_when_the_call_returns(loop: str, tmp_path: Path) -> None:
    path = tmp_path / "app.log"

    async def body() -> None:
        config = Config(backend_config=FileConfig(file_path=str(path)), async_mode=False)
        async with LogManager(config) as lm:
            for index in range(50):
                assert await lm.info(f"m{index}") is True
                assert message_of(read_lines(path)[-1]) == f"m{index}"
        assert_settled(lm.get_stats())

    run_on(loop, body)
    assert len(read_lines(path)) == 50


@loops
@pytest.mark.parametrize("async_mode", [True, False])
def test_sqlite_takes_every_entry(loop: str, async_mode: bool, tmp_path: Path) -> None:
    path = tmp_path / "app.db"

    async def body() -> None:
        config = Config(
            backend_config=SQLiteConfig(db_path=str(path)), async_mode=async_mode, overflow="block"
        )
        async with LogManager(config) as lm:
            for index in range(2000):
                await lm.info("m%d", index, index=index)
        assert_settled(lm.get_stats())
        assert lm.get_stats().written == 2000

    run_on(loop, body)
    with sqlite3.connect(path) as db:
        messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    db.close()
    assert messages == [f"m{index}" for index in range(2000)]


@loops
def test_blocked_producers_are_served_first_come_first_served(loop: str) -> None:
    async def body() -> list[str]:
        backend = RecordingGate()
        config = Config(backend=backend, async_mode=True, queue_size=2, batch_size=1,
                        overflow="block")
        async with LogManager(config) as lm, anyio.create_task_group() as group:
            await lm.info("in hand")
            await backend.writing.wait()  # the worker holds "in hand"
            await lm.info("q1")
            await lm.info("q2")  # the queue is full
            for index in range(5):
                group.start_soon(lm.info, f"w{index}")
                await wait_until(lambda n=index: lm.get_stats().pending == 4 + n)
            assert lm.get_stats().queue_size == 2
            backend.release()
        assert_settled(lm.get_stats())
        return backend.messages

    assert run_on(loop, body) == ["in hand", "q1", "q2", "w0", "w1", "w2", "w3", "w4"]


@loops
def test_put_timeout_refuses_after_its_time_and_counts_the_drop(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate()
        config = Config(backend=backend, async_mode=True, queue_size=1, batch_size=1,
                        overflow="timeout", put_timeout=0.05)
        async with LogManager(config) as lm:
            await lm.info("in hand")
            await backend.writing.wait()
            await lm.info("queued")
            started = anyio.current_time()
            assert await lm.info("late") is False
            assert anyio.current_time() - started >= 0.04
            assert lm.get_stats().dropped == 1
            backend.release()
        stats = lm.get_stats()
        assert_settled(stats)
        assert (stats.written, stats.dropped) == (3, 1)  # and the drop report
        first, report, queued = backend.messages
        assert (first, queued) == ("in hand", "queued")
        assert report.startswith("asynclog dropped 1 entries between ")

    run_on(loop, body)


@loops
def test_close_with_a_timeout_abandons_a_stuck_backend_and_counts_it(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate()
        lm = LogManager(Config(backend=backend, async_mode=True, batch_size=10))
        await lm.start()
        for index in range(25):
            await lm.info(f"m{index}")
        await backend.writing.wait()
        with anyio.fail_after(5):
            report = await lm.close(timeout=0.1)
        assert report.abandoned == 25
        assert report.written == 0 and report.dropped == 25
        assert_settled(lm.get_stats())

    run_on(loop, body)


@loops
def test_close_without_a_timeout_drains_everything(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate()
        lm = LogManager(Config(backend=backend, async_mode=True, queue_size=10_000))
        await lm.start()
        for index in range(3000):
            await lm.info(f"m{index}")
        backend.release()
        report = await lm.close()
        assert (report.written, report.dropped, report.abandoned) == (3000, 0, 0)
        assert backend.messages == [f"m{index}" for index in range(3000)]

    run_on(loop, body)


@loops
def test_write_log_threadsafe_from_threads_keeps_each_threads_order(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate(released=True)
        async with LogManager(Config(backend=backend, async_mode=True, overflow="block")) as lm:

            def from_thread(name: str) -> None:
                for index in range(500):
                    lm.write_log_threadsafe(Level.INFO, f"{name} {index}")

            async with anyio.create_task_group() as group:
                for name in ("a", "b", "c"):
                    group.start_soon(anyio.to_thread.run_sync, from_thread, name)
            plain = threading.Thread(target=from_thread, args=("d",))
            plain.start()
            await anyio.to_thread.run_sync(plain.join)
        assert_settled(lm.get_stats())
        assert lm.get_stats().written == 2000
        for name in "abcd":
            mine = [m for m in backend.messages if m.startswith(f"{name} ")]
            assert mine == [f"{name} {index}" for index in range(500)]

    run_on(loop, body)


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


@loops
def test_the_stdlib_bridge_forwards_records_from_the_loop_and_from_threads(
    loop: str, clean_logging: None
) -> None:
    async def body() -> None:
        backend = RecordingGate(released=True)
        async with LogManager(Config(backend=backend, async_mode=True)) as lm:
            install(lm, level="DEBUG")
            log = logging.getLogger("app.bridge")
            log.info("on the loop %s", 1, extra={"user_id": 42})
            await anyio.to_thread.run_sync(log.warning, "from a thread")
            try:
                raise KeyError("missing")
            except KeyError:
                log.exception("failed")
        assert_settled(lm.get_stats())
        first, second, third = backend.entries
        assert (first.level, first.logger, first.message) == (20, "app.bridge", "on the loop 1")
        assert dict(first.fields) == {"user_id": 42}
        assert (second.level, second.message) == (30, "from a thread")
        assert third.exception is not None and third.exception.endswith("KeyError: 'missing'")

    run_on(loop, body)


@loops
def test_a_failing_backend_falls_back_and_the_counts_stay_exact(
    loop: str, tmp_path: Path
) -> None:
    class Broken:
        async def open(self) -> None:
            pass

        async def write_batch(self, entries: object) -> None:
            raise OSError("disk on fire")

        async def close(self) -> None:
            pass

    fallback = tmp_path / "fallback.log"

    async def body() -> None:
        config = Config(backend=Broken(), async_mode=True, retry_attempts=1, retry_backoff=0.001,
                        fallback=FileBackend(FileConfig(file_path=str(fallback))))
        async with LogManager(config) as lm:
            for index in range(20):
                await lm.info(f"m{index}")
        stats = lm.get_stats()
        assert_settled(stats)
        assert stats.dead_lettered == 20

    run_on(loop, body)
    assert [message_of(line) for line in read_lines(fallback)] == [f"m{i}" for i in range(20)]


def test_an_asyncio_only_backend_under_trio_is_a_typed_error_at_start() -> None:
    async def body() -> None:
        config = Config(backend_config=PostgresConfig(dsn="postgresql://u:p@127.0.0.1:1/db"))
        lm = LogManager(config)
        with pytest.raises(UnsupportedLoopError, match=r"PostgreSQL backend .* needs asyncio"):
            await lm.start()
        assert lm.closed

    run_on("trio", body)


FORGETFUL = """
    import sys, anyio
    from asynclog import Config, FileConfig, LogManager, SQLiteConfig
    loop, kind, path = sys.argv[1], sys.argv[2], sys.argv[3]
    options = FileConfig(file_path=path) if kind == "file" else SQLiteConfig(db_path=path)
    managers = []

    async def main():
        lm = LogManager(Config(backend_config=options, async_mode=True, overflow="block"))
        managers.append(lm)  # kept alive, never closed
        await lm.start()
        for index in range(5000):
            await lm.info(f"m{index}")
        print("accepted", lm.get_stats().accepted, flush=True)

    if loop == "trio":
        anyio.run(main, backend="trio")
    else:
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": loop == "uvloop"})
"""


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_program_that_forgets_close_loses_nothing(loop: str, kind: str, tmp_path: Path) -> None:
    path = tmp_path / ("app.log" if kind == "file" else "app.db")
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", textwrap.dedent(FORGETFUL),
         loop, kind, str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "accepted 5000" in done.stdout
    assert "was not closed" in done.stderr
    assert "went to the fallback" not in done.stderr, done.stderr  # all in the backend itself
    if kind == "file":
        messages = [message_of(line) for line in read_lines(path)]
    else:
        with sqlite3.connect(path) as db:
            messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
        db.close()
    # At least once: a batch in the worker's hands at the end of the run may be written again.
    assert list(dict.fromkeys(messages)) == [f"m{index}" for index in range(5000)], done.stderr


@loops
@pytest.mark.parametrize("shared", [False, True])
def test_the_file_rotates_by_size_and_compresses_the_backups(
    loop: str, shared: bool, tmp_path: Path
) -> None:
    path = tmp_path / "app.log"

    async def body() -> None:
        options = FileConfig(file_path=str(path), max_file_size_mb=0.01, max_backups=100,
                             compress=True, shared=shared)
        config = Config(backend_config=options, async_mode=True, batch_size=20, overflow="block")
        async with LogManager(config) as lm:
            for index in range(2000):
                await lm.info(f"m{index:04d} " + "x" * 40)
        assert_settled(lm.get_stats())

    run_on(loop, body)
    backups = sorted(tmp_path.glob("app.log.*.gz"))
    assert len(backups) >= 5
    lines: list[str] = []
    for backup in backups:
        lines += gzip.decompress(backup.read_bytes()).decode().splitlines()
    lines += read_lines(path)
    messages = sorted(message_of(line).split()[0] for line in lines)
    assert messages == [f"m{index:04d}" for index in range(2000)]


@loops
def test_the_console_backend_writes_to_stdout(loop: str, capfd: pytest.CaptureFixture[str]) -> None:
    async def body() -> None:
        config = Config(backend_config=ConsoleConfig(stream="stdout"), async_mode=True)
        async with LogManager(config) as lm:
            await lm.info("to the console", n=1)

    run_on(loop, body)
    assert capfd.readouterr().out.endswith(" INFO asynclog to the console n=1\n")


@loops
def test_query_reads_the_database_back_in_a_run_without_a_manager(
    loop: str, tmp_path: Path
) -> None:
    path = tmp_path / "app.db"

    async def write() -> None:
        async with LogManager(Config(backend_config=SQLiteConfig(db_path=str(path)))) as lm:
            for index in range(30):
                await lm.write_log(Level.WARNING if index % 3 == 0 else Level.INFO, f"m{index}")

    async def read() -> list[str]:
        with pytest.raises(asynclog.QueryError, match="no such file"):
            [entry async for entry in asynclog.query(tmp_path / "missing.db")]
        return [entry.message async for entry in asynclog.query(path, level="WARNING")]

    run_on(loop, write)
    assert run_on(loop, read) == [f"m{index}" for index in range(0, 30, 3)]


@loops
def test_cancelling_the_caller_of_close_does_not_interrupt_the_close(loop: str) -> None:
    class Slow:
        def __init__(self) -> None:
            self.written = 0

        async def open(self) -> None:
            pass

        async def write_batch(self, entries: list[object]) -> None:
            await anyio.sleep(0.02)
            self.written += len(entries)

        async def close(self) -> None:
            pass

    async def body() -> None:
        backend = Slow()
        lm = LogManager(Config(backend=backend, async_mode=True, batch_size=10))
        await lm.start()
        for index in range(100):
            await lm.info(f"m{index}")
        with anyio.move_on_after(0.01) as scope:
            await lm.close()
        assert scope.cancelled_caught
        report = await lm.close()  # joins the close under way
        assert (report.written, report.dropped, report.abandoned) == (100, 0, 0)
        assert backend.written == 100

    run_on(loop, body)
