"""Review of asynclog under trio (issue 16): cancellation at each await, runs that end, threads,
and the loop adapter's state between runs. Plain functions, as tests/portable.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
import trio

from asynclog import (
    Config,
    FileConfig,
    LogError,
    LogManager,
    ManagerClosedError,
    OTLPConfig,
    PostgresConfig,
    SQLiteConfig,
    SyslogConfig,
    UnsupportedLoopError,
)

from .conftest import assert_settled, message_of, read_lines
from .portable import RecordingGate, loops, run_on, wait_until


@loops
def test_many_blocked_producers_are_served_in_arrival_order(loop: str) -> None:
    async def body() -> list[str]:
        backend = RecordingGate()
        config = Config(backend=backend, async_mode=True, queue_size=5, batch_size=3,
                        overflow="block")
        async with LogManager(config) as lm, anyio.create_task_group() as group:
            await lm.info("in hand")
            await backend.writing.wait()
            for index in range(5):
                await lm.info(f"q{index}")
            for index in range(50):
                group.start_soon(lm.info, f"w{index}")
                await wait_until(lambda n=index: lm.get_stats().pending == 7 + n)
            backend.release()
        assert_settled(lm.get_stats())
        return backend.messages

    expected = ["in hand"] + [f"q{i}" for i in range(5)] + [f"w{i}" for i in range(50)]
    assert run_on(loop, body) == expected


@loops
def test_put_timeout_with_many_producers_drops_each_late_one_once(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate()
        config = Config(backend=backend, async_mode=True, queue_size=4, batch_size=1,
                        overflow="timeout", put_timeout=0.05)
        results: list[bool] = []
        async with LogManager(config) as lm:
            await lm.info("in hand")
            await backend.writing.wait()
            for index in range(4):
                await lm.info(f"q{index}")

            async def late(index: int) -> None:
                results.append(await lm.info(f"late{index}"))

            async with anyio.create_task_group() as group:
                for index in range(30):
                    group.start_soon(late, index)
            assert results == [False] * 30
            assert lm.get_stats().dropped == 30
            backend.release()
        stats = lm.get_stats()
        assert_settled(stats)
        assert (stats.accepted, stats.dropped) == (36, 30)

    run_on(loop, body)


@loops
def test_a_deadline_around_a_blocked_write_log_drops_it_once(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate()
        config = Config(backend=backend, async_mode=True, queue_size=1, batch_size=1,
                        overflow="block")
        async with LogManager(config) as lm:
            await lm.info("in hand")
            await backend.writing.wait()
            await lm.info("queued")
            for index in range(10):
                with anyio.move_on_after(0.01) as scope:
                    await lm.write_log("INFO", f"cut{index}")
                assert scope.cancelled_caught
            assert lm.get_stats().dropped == 10
            backend.release()
        stats = lm.get_stats()
        assert_settled(stats)
        assert stats.dropped == 10

    run_on(loop, body)


@loops
def test_a_deadline_around_start_leaves_a_closed_manager(loop: str) -> None:
    class SlowOpen:
        closed = False

        async def open(self) -> None:
            await anyio.sleep(10)

        async def write_batch(self, entries: object) -> None:
            pass

        async def close(self) -> None:
            self.closed = True

    async def body() -> None:
        lm = LogManager(Config(backend=SlowOpen(), async_mode=True))
        with anyio.move_on_after(0.05) as scope:
            await lm.start()
        assert scope.cancelled_caught
        assert lm.closed
        with pytest.raises(ManagerClosedError):
            await lm.info("x")
        report = await lm.close()
        assert report.written == 0

    run_on(loop, body)


@loops
def test_a_cancelled_scope_around_close_then_close_again_settles(loop: str) -> None:
    async def body() -> None:
        backend = RecordingGate()
        lm = LogManager(Config(backend=backend, async_mode=True, batch_size=7))
        await lm.start()
        for index in range(100):
            await lm.info(f"m{index}")
        async with anyio.create_task_group() as group:
            group.start_soon(lm.close)
            await backend.writing.wait()
            group.cancel_scope.cancel()
        backend.release()
        report = await lm.close()
        assert (report.written, report.dropped, report.abandoned) == (100, 0, 0)
        assert backend.messages == [f"m{index}" for index in range(100)]
        assert_settled(lm.get_stats())

    run_on(loop, body)


def test_a_manager_whose_trio_run_ended_refuses_calls_and_closes_without_hanging(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    lm = LogManager(Config(backend_config=FileConfig(file_path=str(path)), async_mode=True))

    async def first() -> None:
        await lm.start()
        await lm.info("first run")
        await wait_until(lambda: lm.get_stats().written == 1)

    async def second() -> None:
        with pytest.raises(LogError, match=r"'asynclog' was started in a trio run that has ended"):
            await lm.info("second run")
        with pytest.raises(LogError, match=r"started in a trio run that has ended"):
            await lm.write_log("INFO", "second run")
        await trio.to_thread.run_sync(lambda: lm.write_log_threadsafe("INFO", "from a thread"))
        with trio.fail_after(5):
            report = await lm.close()
        assert (report.written, report.dropped, report.abandoned) == (2, 0, 0)
        assert lm.closed
        assert await lm.close() == report

    trio.run(first)
    trio.run(second)
    assert_settled(lm.get_stats())
    assert [message_of(line) for line in read_lines(path)] == ["first run", "from a thread"]


def test_sequential_trio_runs_then_asyncio_and_aiosqlite_work(tmp_path: Path) -> None:
    db = tmp_path / "app.db"

    async def on_trio(tag: str) -> None:
        config = Config(backend_config=SQLiteConfig(db_path=str(db)), async_mode=True)
        async with LogManager(config) as lm:
            for index in range(10):
                await lm.info(f"{tag}{index}")

    trio.run(on_trio, "a")
    trio.run(on_trio, "b")

    async def on_asyncio() -> list[str]:
        import aiosqlite

        async with aiosqlite.connect(db) as conn:
            cursor = await conn.execute("SELECT message FROM logs ORDER BY id")
            return [row[0] for row in await cursor.fetchall()]

    messages = asyncio.run(on_asyncio())
    assert messages == [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_trio_in_a_thread_while_asyncio_runs_in_the_main_thread(tmp_path: Path) -> None:
    db_trio = tmp_path / "trio.db"
    db_aio = tmp_path / "aio.db"
    errors: list[BaseException] = []

    async def on_trio() -> None:
        config = Config(backend_config=SQLiteConfig(db_path=str(db_trio)), async_mode=True)
        async with LogManager(config) as lm:
            for index in range(200):
                await lm.info(f"t{index}")
                if index % 20 == 0:
                    await trio.sleep(0.001)

    def thread_main() -> None:
        try:
            trio.run(on_trio)
        except BaseException as exc:
            errors.append(exc)

    async def on_asyncio() -> None:
        config = Config(backend_config=SQLiteConfig(db_path=str(db_aio)), async_mode=True)
        async with LogManager(config) as lm:
            thread = threading.Thread(target=thread_main)
            thread.start()
            for index in range(200):
                await lm.info(f"a{index}")
                if index % 20 == 0:
                    await asyncio.sleep(0.001)
            await asyncio.to_thread(thread.join)

    asyncio.run(on_asyncio())
    assert errors == []
    import sqlite3

    for path, tag in ((db_trio, "t"), (db_aio, "a")):
        with sqlite3.connect(path) as conn:
            rows = [r[0] for r in conn.execute("SELECT message FROM logs ORDER BY id")]
        conn.close()
        assert rows == [f"{tag}{i}" for i in range(200)]


def test_write_log_threadsafe_after_close_under_trio(tmp_path: Path) -> None:
    path = tmp_path / "app.log"

    async def body() -> None:
        lm = LogManager(Config(backend_config=FileConfig(file_path=str(path)), async_mode=True))
        await lm.start()
        await trio.to_thread.run_sync(lambda: lm.write_log_threadsafe("INFO", "before"))
        await lm.close()
        with pytest.raises(ManagerClosedError, match=r"'asynclog' is closed"):
            await trio.to_thread.run_sync(lambda: lm.write_log_threadsafe("INFO", "after"))
        assert_settled(lm.get_stats())

    trio.run(body)
    assert [message_of(line) for line in read_lines(path)] == ["before"]


def test_sync_mode_rotation_under_trio(tmp_path: Path) -> None:
    path = tmp_path / "app.log"

    async def body() -> None:
        config = Config(backend_config=FileConfig(file_path=str(path), max_file_size_mb=0.01,
                                                  max_backups=50))
        async with LogManager(config) as lm:
            for index in range(500):
                await lm.info(f"m{index:04d} " + "x" * 60)
        assert_settled(lm.get_stats())

    trio.run(body)
    files = sorted(tmp_path.glob("app.log*"))
    assert len(files) > 2
    lines = []
    for f in files:
        lines.extend(message_of(line) for line in f.read_text().splitlines())
    assert sorted(lines) == [f"m{index:04d} " + "x" * 60 for index in range(500)]


HANGING = """
import time, trio
from asynclog import Config, LogManager

class Hang:
    async def open(self): pass
    async def write_batch(self, entries):
        await trio.sleep_forever()
    async def close(self): pass

async def main():
    lm = LogManager(Config(backend=Hang(), async_mode=True))
    await lm.start()
    await lm.info("x")
    await trio.sleep(0.05)
    report = await lm.close(timeout=0.2)
    print(report)

start = time.monotonic()
trio.run(main)
print("took", round(time.monotonic() - start))
"""


def test_close_timeout_with_a_hanging_backend_ends_the_run_quickly() -> None:
    done = subprocess.run([sys.executable, "-c", HANGING], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    print(done.stdout, done.stderr)
    assert done.stdout.splitlines()[-1] == "took 0"


def test_importing_asynclog_imports_neither_trio_nor_anyio() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import asynclog"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    modules = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert "trio" not in modules and "anyio" not in modules


NEVER_CLOSED_HANGING = """
import asyncio, trio
from asynclog import Config, LogManager

class Hang:
    async def open(self): pass
    async def write_batch(self, entries):
        await trio.sleep_forever()
    async def close(self): pass

kept = []

async def main():
    lm = LogManager(Config(backend=Hang(), async_mode=True))
    kept.append(lm)  # never closed
    await lm.start()
    await lm.info("x")
    await trio.sleep(0.05)  # the worker holds it

trio.run(main)
print("run ended", kept[0].get_stats().accepted)
print(asyncio.run(asyncio.sleep(0, "asyncio after")))
"""


def test_the_end_of_a_trio_run_with_an_unclosed_manager_and_a_hanging_backend_is_bounded() -> None:
    done = subprocess.run([sys.executable, "-c", NEVER_CLOSED_HANGING], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["run ended 1", "asyncio after"]
    assert "the queue could not be drained in time" in done.stderr


AFTER_TRIO = """
import asyncio, warnings, trio
from asynclog import Config, ConsoleConfig, LogManager

async def main():
    async with LogManager(Config(backend_config=ConsoleConfig())) as lm:
        await lm.info("on trio")

trio.run(main)
warnings.simplefilter("ignore", DeprecationWarning)
loop = asyncio.get_event_loop()  # legacy code: a new loop, as before any trio run
print(type(loop).__name__, loop.run_until_complete(asyncio.sleep(0, "ran")))
"""


def test_after_a_trio_run_asyncio_get_event_loop_behaves_as_before_it() -> None:
    done = subprocess.run([sys.executable, "-c", AFTER_TRIO], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "_UnixSelectorEventLoop ran"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (SyslogConfig(), "the syslog backend"),
        (OTLPConfig(endpoint="http://127.0.0.1:4318"), "the OTLP backend"),
        (PostgresConfig(dsn="postgresql://u:p@127.0.0.1:1/db"), "the PostgreSQL backend"),
    ],
)
def test_an_asyncio_only_backend_under_trio_says_which_and_what_to_use_instead(
    settings: object, named: str
) -> None:
    async def body() -> None:
        lm = LogManager(Config(backend_config=settings))  # type: ignore[arg-type]
        with pytest.raises(UnsupportedLoopError) as raised:
            await lm.start()
        message = str(raised.value)
        assert message.startswith(named)
        assert "cannot run under trio" in message
        assert "use the file, SQLite or console backend" in message
        assert "or run the program under asyncio" in message

    trio.run(body)
