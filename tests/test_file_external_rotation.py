"""File backend: another program rotates the file (logrotate `create` or `copytruncate`, or the
same rename / copy + truncate / delete done by a separate process); nothing is lost beyond
copytruncate's own window."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asynclog.backends.file as file_module
from asynclog import Config, FileBackend, FileConfig, LogEntry, LogManager

from .conftest import message_of, needs_real, read_lines

PADDING = "x" * 40

RENAME = "import os, sys; os.rename(sys.argv[1], sys.argv[1] + '.1')"
COPYTRUNCATE = (
    "import shutil, sys\n"
    "shutil.copyfile(sys.argv[1], sys.argv[1] + '.1')\n"
    "with open(sys.argv[1], 'r+b') as f:\n"
    "    f.truncate(0)\n"
)
DELETE = "import os, sys; os.remove(sys.argv[1])"


def _find_logrotate() -> str | None:
    found = shutil.which("logrotate")
    for candidate in (found, "/usr/sbin/logrotate", "/sbin/logrotate"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


LOGROTATE = _find_logrotate()


def _entry(message: str) -> LogEntry:
    return LogEntry(time.time(), 20, message, "test")


def _index(line: str) -> int:
    return int(message_of(line).split()[1])


# ---- backend level: the checks one by one ------------------------------------------------------


async def _backend(log_path: Path, **options: Any) -> FileBackend:
    options.setdefault("reopen_check_interval", 0)
    backend = FileBackend(FileConfig(file_path=log_path, **options))
    await backend.open()
    return backend


def _messages(path: Path) -> list[str]:
    return [message_of(line) for line in read_lines(path)]


async def test_a_renamed_file_takes_the_lines_until_the_grace_ends_then_a_new_one_is_made(
    log_path: Path,
) -> None:
    backend = await _backend(log_path)
    backend.write_batch_blocking([_entry("A")])
    os.rename(log_path, f"{log_path}.1")
    backend.write_batch_blocking([_entry("B")])  # the path is empty: logrotate may create it
    assert not log_path.exists()
    await asyncio.sleep(file_module.RENAME_GRACE + 0.01)
    backend.write_batch_blocking([_entry("C")])
    await backend.close()
    assert (_messages(Path(f"{log_path}.1")), _messages(log_path)) == (["A", "B"], ["C"])


async def test_the_file_another_program_created_in_its_place_is_adopted(log_path: Path) -> None:
    backend = await _backend(log_path)
    backend.write_batch_blocking([_entry("A")])
    os.rename(log_path, f"{log_path}.1")
    backend.write_batch_blocking([_entry("B")])
    log_path.write_bytes(b"")  # logrotate's `create`, within the grace
    log_path.chmod(0o600)
    backend.write_batch_blocking([_entry("C")])
    await backend.close()
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.1"]
    assert (_messages(Path(f"{log_path}.1")), _messages(log_path)) == (["A", "B"], ["C"])
    assert log_path.stat().st_mode & 0o777 == 0o600, "the creator's mode stays"


async def test_a_deleted_file_is_recreated_at_the_next_write(log_path: Path) -> None:
    backend = await _backend(log_path)
    backend.write_batch_blocking([_entry("A")])
    log_path.unlink()
    backend.write_batch_blocking([_entry("B")])
    await backend.write_batch([_entry("C")])
    await backend.close()
    assert _messages(log_path) == ["B", "C"]


@pytest.mark.parametrize("blocking", [True, False])
async def test_a_truncated_file_resets_the_size_so_rotation_stays_right(
    log_path: Path, blocking: bool
) -> None:
    backend = await _backend(log_path, max_file_size_mb=0.001)  # 1,048 bytes
    batch = [_entry(f"entry {index:03d} " + PADDING) for index in range(9)]  # 9 x 89 bytes
    backend.write_batch_blocking(batch)
    with log_path.open("r+b") as handle:
        handle.truncate(0)
    if blocking:
        backend.write_batch_blocking(batch)
    else:
        await backend.write_batch(batch)
    await backend.close()
    assert sorted(os.listdir(log_path.parent)) == ["app.log"], "no rotation: 801 bytes"
    data = log_path.read_bytes()
    assert b"\0" not in data
    assert len(read_lines(log_path)) == 9


async def test_checks_are_spaced_by_the_interval_or_turned_off(log_path: Path) -> None:
    for interval in (30.0, None):
        backend = await _backend(log_path, reopen_check_interval=interval)
        os.rename(log_path, f"{log_path}.1")
        await asyncio.sleep(0.06)
        backend.write_batch_blocking([_entry("to the renamed file")])
        await backend.write_batch([_entry("still there")])
        await backend.close()
        assert not log_path.exists()
        assert _messages(Path(f"{log_path}.1")) == ["to the renamed file", "still there"]
        Path(f"{log_path}.1").unlink()


async def test_a_failed_reopen_keeps_writing_to_the_renamed_file(
    log_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = await _backend(log_path)
    monkeypatch.setattr(file_module, "RENAME_GRACE", 0.0)
    os.rename(log_path, f"{log_path}.1")
    log_path.mkdir()  # the path cannot be opened as a file: the renamed one still has a name
    backend.write_batch_blocking([_entry("A")])
    await backend.write_batch([_entry("B")])
    log_path.rmdir()
    backend.write_batch_blocking([_entry("C")])
    await backend.close()
    assert (_messages(Path(f"{log_path}.1")), _messages(log_path)) == (["A", "B"], ["C"])
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1, warnings  # once per streak of failures, not per batch
    assert warnings[0].startswith(f"asynclog[file]: cannot open {str(log_path)!r} again (")
    assert warnings[0].endswith("lines keep going to the file it was renamed to")


# ---- a separate process rotates while a manager writes -----------------------------------------


class Producer:
    """Logs `entry 00000 xxx...`, `entry 00001 ...` in a task until stopped; can be paused at
    a point where everything it logged is written."""

    def __init__(self, lm: LogManager) -> None:
        self.lm = lm
        self.count = 0
        self._paused = False
        self._stopped = False
        self._parked = asyncio.Event()
        self._resume = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stopped:
            if self._paused:
                self._parked.set()
                await self._resume.wait()
                self._resume.clear()
                continue
            await self.lm.info(f"entry {self.count:05d} {PADDING}")
            self.count += 1
            if self.count % 10 == 0:
                await asyncio.sleep(0.0005)

    def logged_so_far(self) -> int:
        """An upper bound of the entries that can be in the file now. Not `written`: in async
        mode the worker counts a batch on the loop after its thread wrote it, so the count can
        trail the file by a batch. The `+ 1` is the entry of a call in progress."""
        return self.count + 1

    async def written_at_least(self, count: int) -> None:
        await _until(lambda: self.lm.get_stats().written >= count)

    async def pause(self) -> None:
        """Stop logging and wait until everything logged is in the file."""
        self._paused = True
        await self._parked.wait()
        await _until(lambda: self.lm.get_stats().pending == 0)

    def resume(self) -> None:
        self._paused = False
        self._parked.clear()
        self._resume.set()

    async def stop_after(self, more: int) -> int:
        """Log `more` entries more, stop, and return how many were logged in all."""
        target = self.count + more
        await _until(lambda: self.count >= target)
        self._stopped = True
        self.resume()
        await self.task
        return self.count


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def _python(code: str, log_path: Path) -> None:
    await _run(sys.executable, "-c", code, str(log_path))


def _manager(log_path: Path, async_mode: bool) -> LogManager:
    return LogManager(
        Config(
            backend="file",
            async_mode=async_mode,
            overflow="block",
            backend_config=FileConfig(
                file_path=log_path, max_file_size_mb=100, reopen_check_interval=0.01
            ),
        )
    )


def _indexes(path: Path, *, torn_tail: bool = False) -> list[int]:
    """The entry numbers in a file, in order. With `torn_tail`, a last line cut short (a copy
    taken while a write was in progress) is ignored."""
    data = path.read_bytes()
    assert b"\0" not in data
    if torn_tail and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return [_index(line.decode()) for line in data.split(b"\n")[:-1]]


def _assert_split(old: Path, live: Path, total: int) -> tuple[int, int]:
    """`old` holds entries 0..a-1 and `live` b..total-1, each once and in order; a <= b.
    Returns (a, b): the entries a..b-1 are missing."""
    first = _indexes(old, torn_tail=True)
    second = _indexes(live)
    a, b = len(first), total - len(second)
    assert first == list(range(a))
    assert second == list(range(b, total))
    assert a <= b
    assert sorted(os.listdir(live.parent)) == [live.name, old.name]
    return a, b


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_rename_by_another_process_loses_nothing(log_path: Path, async_mode: bool) -> None:
    lm = _manager(log_path, async_mode)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(200)
    await _python(RENAME, log_path)  # the producer keeps logging meanwhile
    await _until(log_path.exists)  # noticed: a new file at the path
    total = await producer.stop_after(200)
    await lm.close()
    a, b = _assert_split(Path(f"{log_path}.1"), log_path, total)
    assert a == b, "every entry exactly once"
    assert b < total, "the new file took the later entries"


@pytest.mark.parametrize("async_mode", [True, False])
async def test_copytruncate_by_another_process_with_the_writer_paused_loses_nothing(
    log_path: Path, async_mode: bool
) -> None:
    lm = _manager(log_path, async_mode)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(200)
    await producer.pause()
    paused_at = producer.count
    await _python(COPYTRUNCATE, log_path)
    producer.resume()
    total = await producer.stop_after(200)
    await lm.close()
    assert _assert_split(Path(f"{log_path}.1"), log_path, total) == (paused_at, paused_at)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_copytruncate_while_writing_loses_only_its_own_window(
    log_path: Path, async_mode: bool
) -> None:
    """copytruncate loses what is written between its copy and its truncate: never more, and
    never anything written before it started or after it ended."""
    lm = _manager(log_path, async_mode)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(200)
    before = lm.get_stats().written
    await _python(COPYTRUNCATE, log_path)
    after = producer.logged_so_far()
    total = await producer.stop_after(200)
    await lm.close()
    a, b = _assert_split(Path(f"{log_path}.1"), log_path, total)
    assert before <= a <= b <= after


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_delete_by_another_process_is_followed_by_a_new_file(
    log_path: Path, async_mode: bool
) -> None:
    lm = _manager(log_path, async_mode)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(100)
    await producer.pause()
    paused_at = producer.count
    await _python(DELETE, log_path)
    producer.resume()
    total = await producer.stop_after(100)
    await lm.close()
    assert _indexes(log_path) == list(range(paused_at, total))


# ---- the real logrotate ------------------------------------------------------------------------

# (The same rename and copy+truncate are tested above with a separate Python process.)
needs_logrotate = needs_real(
    "logrotate",
    None if LOGROTATE is not None else "the logrotate program is not installed",
    "apt-get install logrotate",
)


async def _logrotate(tmp_path: Path, log_path: Path, method: str) -> None:
    assert LOGROTATE is not None
    log_path.parent.chmod(0o755)  # logrotate skips a group- or world-writable directory
    config = tmp_path / "logrotate.conf"
    config.write_text(f'"{log_path}" {{\n    rotate 3\n    {method}\n    missingok\n}}\n')
    await _run(LOGROTATE, "-f", "-s", str(tmp_path / "logrotate.state"), str(config))


@needs_logrotate
@pytest.mark.parametrize("async_mode", [True, False])
async def test_logrotate_create_loses_nothing(
    tmp_path: Path, log_path: Path, async_mode: bool
) -> None:
    lm = _manager(log_path, async_mode)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(200)
    await _logrotate(tmp_path, log_path, "create 0640")  # while the producer logs
    await _until(lambda: log_path.stat().st_size > 0)  # our lines reach logrotate's new file
    total = await producer.stop_after(200)
    await lm.close()
    a, b = _assert_split(Path(f"{log_path}.1"), log_path, total)
    assert a == b, "every entry exactly once"
    assert log_path.stat().st_mode & 0o777 == 0o640


@needs_logrotate
@pytest.mark.parametrize("async_mode", [True, False])
async def test_logrotate_copytruncate_loses_only_its_own_window(
    tmp_path: Path, log_path: Path, async_mode: bool
) -> None:
    lm = _manager(log_path, async_mode)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(200)
    before = lm.get_stats().written
    await _logrotate(tmp_path, log_path, "copytruncate")  # while the producer logs
    after = producer.logged_so_far()
    total = await producer.stop_after(200)
    await lm.close()
    a, b = _assert_split(Path(f"{log_path}.1"), log_path, total)
    assert before <= a <= b <= after


@needs_logrotate
async def test_logrotate_copytruncate_with_the_writer_paused_loses_nothing(
    tmp_path: Path, log_path: Path
) -> None:
    lm = _manager(log_path, async_mode=False)
    await lm.start()
    producer = Producer(lm)
    await producer.written_at_least(200)
    await producer.pause()
    paused_at = producer.count
    await _logrotate(tmp_path, log_path, "copytruncate")
    producer.resume()
    total = await producer.stop_after(200)
    await lm.close()
    assert _assert_split(Path(f"{log_path}.1"), log_path, total) == (paused_at, paused_at)
