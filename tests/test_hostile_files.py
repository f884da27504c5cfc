"""File backend against a hostile directory: a log deleted where it cannot be created again, and
links, FIFOs and hard links planted at the names asynclog derives from the log's path (the
lock, `.N.gz.tmp`, `.N`, `.N.gz`, the live file after a deletion, the dead-letter file, SQLite's
`-wal` and `-shm`). docs/reliability.md, "Names that vanish" and "Symlinks", says what each
does."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynclog import (
    BackendWriteError,
    Config,
    FileBackend,
    FileConfig,
    LogEntry,
    LogError,
    LogManager,
    SQLiteBackend,
    SQLiteConfig,
)

from .conftest import message_of, read_lines

SECRET = b"precious data that must stay as it is\n" * 4


def _entry(message: str, stamp: float | None = None) -> LogEntry:
    return LogEntry(time.time() if stamp is None else stamp, 20, message, "test")


PROCESS_FIELDS = re.compile(r" host=\S+ pid=\d+$")
"""What a shared file's text lines end with (`FileConfig.process_fields`, on with `shared`)."""


def _messages(path: Path) -> list[str]:
    return [message_of(PROCESS_FIELDS.sub("", line)) for line in read_lines(path)]


def _gunzipped(path: Path) -> list[str]:
    with gzip.open(path, "rb") as handle:
        return [message_of(line) for line in handle.read().decode().splitlines()]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the process may write, which an attacker wants overwritten."""
    path = tmp_path / "victim.txt"
    path.write_bytes(SECRET)
    path.chmod(0o644)
    return path


async def _settled(lm: LogManager) -> None:
    """Until the worker has written (or given up on) every entry handed in."""
    while lm.get_stats().pending:  # noqa: ASYNC110 (polling the stats is the point)
        await asyncio.sleep(0.001)


def _untouched(victim: Path) -> bool:
    return victim.read_bytes() == SECRET and stat.S_IMODE(victim.stat().st_mode) == 0o644


# ---- a deleted log that cannot be created again ------------------------------------------------


@pytest.mark.parametrize("async_mode", [False, True])
async def test_a_deleted_log_that_cannot_be_created_again_is_a_write_failure(
    tmp_path: Path, async_mode: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "logs"
    log_path = directory / "app.log"
    dead_letters = tmp_path / "elsewhere" / "dead.log"
    lm = LogManager(
        Config(
            async_mode=async_mode,
            backend_config=FileConfig(file_path=log_path, reopen_check_interval=0),
            fallback=FileBackend(FileConfig(file_path=dead_letters)),
            retry_attempts=3,
            retry_backoff=0.001,
        )
    )
    await lm.start()
    for index in range(5):
        await lm.info(f"before {index}")
    await _settled(lm)
    # The log is deleted, and its directory cannot hold it again: root ignores permissions,
    # so the directory itself is replaced by a file (creating the log fails with ENOTDIR).
    shutil.rmtree(directory)
    directory.write_bytes(b"")
    for index in range(5):
        await lm.info(f"after {index}")
    await _settled(lm)
    stats = lm.get_stats()
    # The path can be created again: the next entry goes to a new file.
    directory.unlink()
    await lm.info("back")
    await lm.close()

    assert (stats.written, stats.dead_lettered, stats.dropped) == (5, 5, 0)
    assert stats.retries * 4 == stats.write_errors * 3  # each failed batch: 1 try + 3 retries
    if not async_mode:
        assert (stats.write_errors, stats.retries) == (20, 15)  # one batch per entry
    assert _messages(dead_letters) == [f"after {index}" for index in range(5)]
    assert _messages(log_path) == ["back"]
    report = capsys.readouterr().err
    assert "FileBackend failed on 1 entries" in report or async_mode
    assert f"{str(log_path)!r} was deleted and cannot be created again" in report
    assert "went to the fallback FileBackend" in report


NON_ROOT_SCENARIO = textwrap.dedent(
    """
    import asyncio, json, os, sys

    from asynclog import Config, FileBackend, FileConfig, LogManager

    directory, dead_letters = sys.argv[1], sys.argv[2]
    if os.geteuid() == 0:  # run as `nobody`: a read-only directory then stops the process
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    async def main() -> None:
        path = os.path.join(directory, "app.log")
        lm = LogManager(
            Config(
                backend_config=FileConfig(file_path=path, reopen_check_interval=0),
                fallback=FileBackend(FileConfig(file_path=dead_letters)),
                retry_backoff=0.001,
            )
        )
        await lm.start()
        await lm.info("before")
        os.remove(path)
        os.chmod(directory, 0o555)
        await lm.info("after")
        await lm.close()
        stats = lm.get_stats()
        print(json.dumps([os.geteuid(), stats.written, stats.write_errors, stats.dead_lettered]))

    asyncio.run(main())
    """
)


def test_a_deleted_log_in_a_read_only_directory_as_a_non_root_user_is_dead_lettered() -> None:
    """The scenario of the report, for real: a non-root process (root drops to `nobody`)."""
    base = Path(tempfile.mkdtemp())  # pytest's tmp_path is private to root: nobody cannot enter
    try:
        base.chmod(0o755)
        directory, spare = base / "logs", base / "spare"
        for path in (directory, spare):
            path.mkdir()
            if os.geteuid() == 0:
                os.chown(path, 65534, 65534)
        dead_letters = spare / "dead.log"
        result = subprocess.run(
            [sys.executable, "-c", NON_ROOT_SCENARIO, str(directory), str(dead_letters)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        uid, written, write_errors, dead_lettered = json.loads(result.stdout)
        assert uid != 0
        assert (written, write_errors, dead_lettered) == (1, 4, 1)
        assert _messages(dead_letters) == ["after"]
        assert "was deleted and cannot be created again: [Errno 13]" in result.stderr
    finally:
        directory.chmod(0o755)
        shutil.rmtree(base)


async def test_a_symlink_put_at_the_log_path_after_a_deletion_is_not_followed(
    log_path: Path, victim: Path
) -> None:
    backend = FileBackend(FileConfig(file_path=log_path, reopen_check_interval=0))
    await backend.open()
    backend.write_batch_blocking([_entry("A")])
    log_path.unlink()
    log_path.symlink_to(victim)
    with pytest.raises(OSError, match="is a symbolic link") as caught:
        backend.write_batch_blocking([_entry("B")])
    assert "was deleted and cannot be created again" in str(caught.value)
    with pytest.raises(OSError, match="is a symbolic link"):  # the retries too
        await backend.write_batch([_entry("B")])
    await backend.close()
    assert _untouched(victim)
    assert log_path.is_symlink()


async def test_a_symlink_given_as_the_log_path_is_followed_at_start(
    tmp_path: Path, log_path: Path
) -> None:
    """The user's own path: a link there is their choice, followed when the backend opens."""
    target = tmp_path / "real.log"
    log_path.parent.mkdir()
    log_path.symlink_to(target)
    backend = FileBackend(FileConfig(file_path=log_path))
    await backend.open()
    backend.write_batch_blocking([_entry("A")])
    await backend.close()
    assert _messages(target) == ["A"]


async def test_a_backend_for_a_derived_path_refuses_a_symlink_there(
    tmp_path: Path, victim: Path
) -> None:
    """The dead-letter file `<log>.deadletter` is a name asynclog derives: never followed."""
    dead_letters = tmp_path / "app.log.deadletter"
    missing = tmp_path / "not-there"
    for target in (victim, missing):
        dead_letters.unlink(missing_ok=True)
        dead_letters.symlink_to(target)
        backend = FileBackend(FileConfig(file_path=dead_letters), follow_symlink=False)
        with pytest.raises(LogError, match=r"app\.log\.deadletter' is a symbolic link"):
            await backend.open()
    assert _untouched(victim)
    assert not missing.exists()


# ---- the lock file of a shared log -------------------------------------------------------------


def _shared(log_path: Path) -> FileBackend:
    return FileBackend(FileConfig(file_path=log_path, shared=True, rotate_every="1h"))


@pytest.mark.parametrize("target_exists", [True, False])
async def test_a_symlink_at_the_lock_file_is_refused_and_its_target_untouched(
    log_path: Path, victim: Path, target_exists: bool
) -> None:
    log_path.parent.mkdir()
    target = victim if target_exists else log_path.parent / "created-by-asynclog"
    lock = Path(f"{log_path}.lock")
    lock.symlink_to(target)
    backend = _shared(log_path)
    with pytest.raises(LogError) as caught:
        await backend.open()
    assert str(caught.value) == (
        f"cannot open log file {str(log_path)!r}: {str(lock)!r} is a symbolic link: asynclog "
        "never follows a link at a name it derives from the log's path"
    )
    assert _untouched(victim)
    assert target_exists or not target.exists()


async def test_a_hard_link_at_the_lock_file_is_refused(log_path: Path, victim: Path) -> None:
    log_path.parent.mkdir()
    os.link(victim, f"{log_path}.lock")
    with pytest.raises(LogError, match="has 2 hard links; the lock file of a shared log"):
        await _shared(log_path).open()
    assert _untouched(victim)


async def test_a_fifo_at_the_lock_file_is_refused(log_path: Path) -> None:
    log_path.parent.mkdir()
    os.mkfifo(f"{log_path}.lock")
    with pytest.raises(LogError, match=r"\.lock' is not a regular file"):
        await asyncio.wait_for(_shared(log_path).open(), 10)


async def test_a_lock_file_deleted_while_running_is_created_again_and_locked(
    log_path: Path,
) -> None:
    backend = _shared(log_path)
    await backend.open()
    backend.write_batch_blocking([_entry("A")])
    lock = Path(f"{log_path}.lock")
    lock.unlink()  # a cleanup job
    backend.write_batch_blocking([_entry("B")])
    assert lock.exists()
    note = lock.read_text().split()
    assert [int(note[0]), int(note[1])] == [os.stat(log_path).st_dev, os.stat(log_path).st_ino]
    # Another process holding the new lock file makes the backend wait: it locks that file.
    with lock.open("rb") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        writer = threading.Thread(target=backend.write_batch_blocking, args=([_entry("C")],))
        writer.start()
        writer.join(0.3)
        waited = writer.is_alive()
        fcntl.flock(other, fcntl.LOCK_UN)
    writer.join(10)
    await backend.close()
    assert waited
    assert _messages(log_path) == ["A", "B", "C"]


async def test_a_deleted_directory_is_created_again_with_the_lock_file(log_path: Path) -> None:
    backend = _shared(log_path)
    await backend.open()
    backend.write_batch_blocking([_entry("A")])
    shutil.rmtree(log_path.parent)
    backend.write_batch_blocking([_entry("B")])
    await backend.close()
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.lock"]
    assert _messages(log_path) == ["B"]


async def test_a_symlink_put_at_the_lock_file_while_running_fails_the_write(
    log_path: Path, victim: Path
) -> None:
    backend = _shared(log_path)
    await backend.open()
    backend.write_batch_blocking([_entry("A")])
    lock = Path(f"{log_path}.lock")
    lock.unlink()
    lock.symlink_to(victim)
    with pytest.raises(OSError, match=r"\.lock' is a symbolic link"):
        backend.write_batch_blocking([_entry("B")])
    await backend.close()
    assert _untouched(victim)
    assert _messages(log_path) == ["A"]


# ---- rotated files and their compression -------------------------------------------------------


def _leftover(log_path: Path, number: int, messages: list[str]) -> Path:
    """A plain rotated file, as a crash or a run without `compress` leaves it."""
    path = Path(f"{log_path}.{number}")
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(f"2026-01-01T00:00:00Z INFO test {m}\n" for m in messages))
    return path


async def _start_and_close(log_path: Path, **options: object) -> None:
    backend = FileBackend(FileConfig(file_path=log_path, **options))  # type: ignore[arg-type]
    await backend.open()
    await asyncio.wait_for(backend.close(), 10)


@pytest.mark.parametrize("target_exists", [True, False])
async def test_a_symlink_at_a_gz_tmp_is_removed_and_never_followed(
    log_path: Path, victim: Path, target_exists: bool
) -> None:
    _leftover(log_path, 1, ["one", "two"])
    target = victim if target_exists else log_path.parent / "created-by-asynclog"
    tmp = Path(f"{log_path}.1.gz.tmp")
    tmp.symlink_to(target)
    await _start_and_close(log_path, compress=True)
    assert _untouched(victim)
    assert target_exists or not os.path.lexists(target)
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.1.gz"]
    assert not Path(f"{log_path}.1.gz").is_symlink()
    assert _gunzipped(Path(f"{log_path}.1.gz")) == ["one", "two"]


async def test_a_rotated_file_that_is_a_symlink_is_neither_followed_nor_compressed(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attackers = tmp_path / "attackers-file"
    attackers.write_bytes(b"#!/bin/sh\n")
    attackers.chmod(0o4777)
    log_path.parent.mkdir()
    Path(f"{log_path}.1").symlink_to(attackers)
    await _start_and_close(log_path, compress=True)
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.1"]
    assert Path(f"{log_path}.1").is_symlink()
    assert attackers.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(attackers.stat().st_mode) == 0o4777
    assert f"cannot compress '{log_path}.1'" in capsys.readouterr().err


async def test_a_gzip_never_gets_setuid_setgid_or_sticky_bits(log_path: Path) -> None:
    leftover = _leftover(log_path, 1, ["one"])
    leftover.chmod(0o7755)
    await _start_and_close(log_path, compress=True)
    packed = Path(f"{log_path}.1.gz")
    assert oct(stat.S_IMODE(packed.stat().st_mode)) == oct(0o755)
    assert _gunzipped(packed) == ["one"]


async def test_a_symlink_at_a_gz_name_is_replaced_not_followed(
    log_path: Path, victim: Path
) -> None:
    _leftover(log_path, 1, ["one"])
    Path(f"{log_path}.1.gz").symlink_to(victim)
    await _start_and_close(log_path, compress=True)
    assert _untouched(victim)
    assert not Path(f"{log_path}.1.gz").is_symlink()
    assert _gunzipped(Path(f"{log_path}.1.gz")) == ["one"]


@pytest.fixture
def fifos() -> Iterator[list[Path]]:
    """FIFOs a test plants; opened for writing at the end, which frees a reader stuck on one."""
    planted: list[Path] = []
    yield planted
    for path in planted:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_fifos_at_a_gz_tmp_and_a_rotated_name_do_not_hang_the_compression(
    log_path: Path, fifos: list[Path]
) -> None:
    _leftover(log_path, 1, ["one"])
    for name in (f"{log_path}.1.gz.tmp", f"{log_path}.2"):
        fifos.append(Path(name))
        os.mkfifo(name)
    await _start_and_close(log_path, compress=True)
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.1.gz", "app.log.2"]
    assert stat.S_ISFIFO(os.lstat(f"{log_path}.2").st_mode)  # not ours: left alone


async def test_rotation_moves_a_symlink_among_the_rotated_files_as_a_name(
    log_path: Path, victim: Path
) -> None:
    backend = FileBackend(FileConfig(file_path=log_path, max_file_size_mb=0.0001))  # 104 bytes
    await backend.open()
    Path(f"{log_path}.1").symlink_to(victim)
    backend.write_batch_blocking([_entry("A" * 60)])
    backend.write_batch_blocking([_entry("B" * 60)])  # rotates: .1 -> .2, app.log -> .1
    await backend.close()
    assert os.readlink(f"{log_path}.2") == str(victim)
    assert _messages(Path(f"{log_path}.1")) == ["A" * 60]
    assert _untouched(victim)


async def test_a_symlink_among_the_rotated_files_counts_as_a_link_for_max_total(
    log_path: Path, tmp_path: Path
) -> None:
    """Retention sizes a link as itself: a link to a large file must not make it delete the
    real rotated files."""
    large = tmp_path / "large"
    with large.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    for number in (1, 2, 3):
        _leftover(log_path, number, [f"file {number}"])
    Path(f"{log_path}.1.gz").symlink_to(large)
    await _start_and_close(log_path, max_total_mb=1)
    assert sorted(os.listdir(log_path.parent)) == [
        "app.log",
        "app.log.1",
        "app.log.1.gz",
        "app.log.2",
        "app.log.3",
    ]
    assert large.stat().st_size == 50 * 1024 * 1024


# ---- SQLite's own files ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
async def test_symlinks_at_the_sqlite_wal_and_shm_are_never_followed(
    db_path: Path, victim: Path, suffix: str
) -> None:
    """SQLite creates these itself, with O_NOFOLLOW: a link there is removed (-wal) or makes
    the open fail (-shm); its target is never written."""
    db_path.parent.mkdir()
    Path(f"{db_path}{suffix}").symlink_to(victim)
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path))
    try:
        await backend.open()
    except LogError as exc:
        assert suffix == "-shm", exc
        assert "unable to open database file" in str(exc)
    else:
        assert suffix == "-wal"
        await backend.write_batch([_entry("A")])
        await backend.close()
    assert _untouched(victim)


async def test_the_dead_letter_file_is_never_opened_through_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    log_path = tmp_path / "logs" / "app.log"
    log_path.parent.mkdir()
    Path(f"{log_path}.deadletter").symlink_to(victim)
    config = Config(
        raise_errors=True,
        backend_config=FileConfig(file_path=log_path, reopen_check_interval=0),
        retry_attempts=1,
        retry_backoff=0.001,
    )
    lm = LogManager(config)
    await lm.start()
    log_path.unlink()
    log_path.mkdir()  # the log cannot be written again: the fallback is tried
    with pytest.raises(BackendWriteError):
        await lm.info("lost")
    await lm.close()
    stats = lm.get_stats()
    assert (stats.dead_lettered, stats.dropped) == (0, 1)
    assert victim.read_bytes() == b"precious\n"
    assert "app.log.deadletter' is a symbolic link" in capsys.readouterr().err
