"""Failing backends: retries with backoff, the fallback, faults injected at the OS boundary."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import asynclog.backends.file as file_module
from asynclog import (
    Config,
    FileBackend,
    FileConfig,
    LogEntry,
    LogError,
    LogManager,
    SQLiteConfig,
)

from .conftest import (
    FailingBackend,
    RecordingBackend,
    assert_settled,
    message_of,
    read_lines,
    skip_real,
)


class AlwaysFailing(RecordingBackend):
    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        raise OSError(errno.EIO, "I/O error")


async def test_a_failed_batch_is_retried_with_backoff_and_keeps_its_order() -> None:
    backend = FailingBackend(fail_on={0, 1})
    config = Config(backend=backend, async_mode=True, retry_attempts=3, retry_backoff=0.01)
    async with LogManager(config) as lm:
        for index in range(50):
            await lm.info(f"m{index}")
    assert backend.messages == [f"m{index}" for index in range(50)]
    stats = lm.get_stats()
    assert (stats.write_errors, stats.retries, stats.written, stats.dead_lettered) == (2, 2, 50, 0)
    assert_settled(stats)


async def test_after_the_retries_the_batch_goes_to_the_fallback() -> None:
    fallback = RecordingBackend()
    config = Config(
        backend=AlwaysFailing(),
        async_mode=True,
        retry_attempts=2,
        retry_backoff=0.001,
        fallback=fallback,
        batch_size=10,
    )
    async with LogManager(config) as lm:
        for index in range(35):
            await lm.info(f"m{index}")
    assert fallback.messages == [f"m{index}" for index in range(35)]
    assert fallback.opened and fallback.closed
    stats = lm.get_stats()
    assert (stats.written, stats.dead_lettered, stats.dropped) == (0, 35, 0)
    assert stats.write_errors == 3 * len(fallback.batches) and stats.retries == 2 * len(
        fallback.batches
    )
    assert_settled(stats)


class BreakableFile(FileBackend):
    """The file backend, with a switch that makes every later batch fail with EIO."""

    broken = False

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if self.broken:
            raise OSError(errno.EIO, "I/O error")
        await super().write_batch(entries)


async def test_the_default_fallback_is_a_json_dead_letter_file_beside_the_primary(
    log_path: Path,
) -> None:
    backend = BreakableFile(FileConfig(file_path=log_path))
    config = Config(backend=backend, async_mode=True, retry_attempts=1, retry_backoff=0.001)
    lm = LogManager(config)
    await lm.start()
    await lm.info("written")
    await asyncio.sleep(0.05)
    backend.broken = True
    await lm.error("dead letter", order=7)
    await lm.close()
    dead = Path(f"{log_path}.deadletter")
    (line,) = read_lines(dead)
    assert json.loads(line)["message"] == "dead letter"
    assert json.loads(line)["fields"] == {"order": 7}
    assert [message_of(line) for line in read_lines(log_path)] == ["written"]
    assert_settled(lm.get_stats())


async def test_when_the_fallback_fails_too_the_entries_are_dropped_and_said_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Config(
        backend=AlwaysFailing(), async_mode=True, retry_attempts=0, fallback=AlwaysFailing()
    )
    async with LogManager(config) as lm:
        await lm.info("lost")
    stats = lm.get_stats()
    # The in-band report of that drop could not be written either: it is dropped too.
    assert (stats.accepted, stats.dropped, stats.dead_lettered, stats.written) == (2, 2, 0, 0)
    assert_settled(stats)
    err = capsys.readouterr().err
    assert (
        "delivery failed: dropped 1 entries: OSError(5, 'I/O error'); the fallback "
        "AlwaysFailing failed too" in err
    )


async def test_sync_mode_dead_letters_without_raising_and_raises_only_when_lost() -> None:
    fallback = RecordingBackend()
    config = Config(
        backend=AlwaysFailing(), retry_attempts=1, retry_backoff=0.001, fallback=fallback
    )
    async with LogManager(config) as lm:
        await lm.info("kept in the fallback")
    assert fallback.messages == ["kept in the fallback"]
    assert_settled(lm.get_stats())


class FaultyFileIO(io.FileIO):
    """A real file whose writes fail with `errno_code` while `failures` is positive."""

    failures = 0
    errno_code = errno.EACCES

    def write(self, data: Any) -> int:
        if FaultyFileIO.failures > 0:
            FaultyFileIO.failures -= 1
            raise OSError(FaultyFileIO.errno_code, "injected")
        return super().write(data)


@pytest.fixture
def faulty_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FaultyFileIO]]:
    def faulty_open(path: str, mode: str, buffering: int = -1, opener: Any = None) -> Any:
        if "b" in mode and buffering == 0:
            return FaultyFileIO(path, mode.replace("b", ""), opener=opener)
        return open(path, mode, buffering, opener=opener)

    monkeypatch.setattr(file_module, "open", faulty_open, raising=False)
    FaultyFileIO.failures = 0
    yield FaultyFileIO
    FaultyFileIO.failures = 0


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC])
@pytest.mark.parametrize("async_mode", [True, False])
async def test_file_write_errors_are_retried_until_the_disk_recovers(
    log_path: Path, faulty_files: type[FaultyFileIO], code: int, async_mode: bool
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        retry_attempts=4,
        retry_backoff=0.005,
        backend_config=FileConfig(file_path=log_path),
    )
    async with LogManager(config) as lm:
        await lm.info("before")
        faulty_files.errno_code = code
        faulty_files.failures = 3  # three failed writes, then the disk recovers
        for index in range(20):
            await lm.info(f"m{index}")
    assert [message_of(line) for line in read_lines(log_path)] == ["before"] + [
        f"m{index}" for index in range(20)
    ]
    stats = lm.get_stats()
    assert (stats.write_errors, stats.retries) == (3, 3)
    assert_settled(stats)


def _mount_tiny_tmpfs(target: Path) -> bool:
    target.mkdir()
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


async def test_a_really_full_disk_goes_to_the_dead_letter_file_then_recovers(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    disk = tmp_path / "disk"
    if not _mount_tiny_tmpfs(disk):  # (the injected ENOSPC test covers the logic)
        skip_real(
            request.config,
            "a really full disk (a 256 KiB tmpfs)",
            "mounting a tmpfs failed (it needs root)",
            "run the tests as root",
        )
    try:
        ballast = disk / "ballast"
        log_path = disk / "app.log"
        fallback = RecordingBackend()
        config = Config(
            backend="file",
            async_mode=True,
            retry_attempts=2,
            retry_backoff=0.001,
            fallback=fallback,
            batch_size=50,
            backend_config=FileConfig(file_path=log_path),
        )
        async with LogManager(config) as lm:
            # Fill the disk, leaving nearly nothing.
            with ballast.open("wb") as handle, pytest.raises(OSError):
                handle.write(b"\0" * 400_000)
                handle.flush()
            for index in range(200):
                await lm.info(f"m{index:04d} " + "x" * 100)
            await asyncio.sleep(0.1)
            ballast.unlink()
            for index in range(200, 300):
                await lm.info(f"m{index:04d} " + "x" * 100)
        on_disk = [message_of(line)[:5] for line in read_lines(log_path)]
        dead = [message[:5] for message in fallback.messages]
        assert sorted(on_disk + dead) == [f"m{index:04d}" for index in range(300)]
        assert dead, "some batches must have met the full disk"
        stats = lm.get_stats()
        assert stats.dead_lettered == len(dead) and stats.written == len(on_disk)
        assert_settled(stats)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


async def test_a_locked_database_is_retried_until_the_lock_is_released(db_path: Path) -> None:
    config = Config(
        backend="sqlite",
        async_mode=True,
        retry_attempts=5,
        retry_backoff=0.02,
        backend_config=SQLiteConfig(db_path=db_path, busy_timeout=0.01),
    )
    async with LogManager(config) as lm:
        await lm.info("before the lock")
        await asyncio.sleep(0.05)
        locker = sqlite3.connect(db_path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # a second connection holds the write lock
        for index in range(20):
            await lm.info(f"m{index}")
        await asyncio.sleep(0.15)
        assert lm.get_stats().write_errors >= 1
        locker.execute("COMMIT")
        locker.close()
    with sqlite3.connect(db_path) as db:
        messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    db.close()
    assert messages == ["before the lock"] + [f"m{index}" for index in range(20)]
    stats = lm.get_stats()
    assert stats.dead_lettered == 0 and stats.retries >= 1
    assert_settled(stats)


async def test_a_dead_worker_makes_write_log_raise_instead_of_hanging() -> None:
    class WorkerBug(BaseException):
        """Escapes every `except Exception`, as a bug in asynclog itself might."""

    class Poison(RecordingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            raise WorkerBug("boom")

    lm = LogManager(Config(backend=Poison(), raise_errors=True, async_mode=True, queue_size=5))
    await lm.start()
    await lm.info("kills the worker")
    await asyncio.sleep(0.01)
    with pytest.raises(LogError, match="the asynclog worker stopped unexpectedly"):
        await lm.info("next")
    report = await asyncio.wait_for(lm.close(), 5)
    assert report.abandoned == 1
    assert_settled(lm.get_stats())


@pytest.mark.slow
async def test_ten_percent_random_failures_over_a_million_entries_keep_the_invariant() -> None:
    rng = random.Random(20261127)

    class Flaky(RecordingBackend):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            if rng.random() < 0.10:
                raise OSError(errno.EIO, "flaky")
            self.count += len(entries)

    backend, fallback = Flaky(), RecordingBackend()
    config = Config(
        backend=backend,
        async_mode=True,
        retry_attempts=1,
        retry_backoff=0,
        fallback=fallback,
        overflow="block",
    )

    async def producer(lm: LogManager, number: int) -> None:
        for index in range(10_000):
            await lm.write_log(20, "x", p=number, i=index)

    async with LogManager(config) as lm:
        await asyncio.gather(*(producer(lm, n) for n in range(100)))
    stats = lm.get_stats()
    assert stats.accepted == 1_000_000
    assert stats.written == backend.count
    assert stats.dead_lettered == len(fallback.entries)
    assert stats.written + stats.dead_lettered == 1_000_000
    assert stats.dead_lettered > 0 and stats.dropped == 0
    assert_settled(stats)
