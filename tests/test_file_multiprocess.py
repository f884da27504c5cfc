"""File backend shared by several processes (`FileConfig(shared=True)`): every batch is one
O_APPEND write under an exclusive flock of `app.log.lock`, so lines never interleave, rotation
(size or time) happens once and the others follow to the new file, a partial write is undone
without touching another process's lines, and two processes never gzip the same file."""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asynclog import ConfigError, FileBackend, FileConfig, LogEntry
from asynclog.backends._retention import Backups

from .conftest import message_of

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0
BASE = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PROCESS_FIELDS = re.compile(r" host=\S+ pid=\d+$")
"""What a shared file's text lines end with (`FileConfig.process_fields`, on with `shared`)."""
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z INFO asynclog p\d+ \d+ host=\S+ pid=\d+"
)


def shared_message(line: str) -> str:
    """The message of a shared file's text line, without its process fields."""
    return message_of(PROCESS_FIELDS.sub("", line))


CHILD = """
    import asyncio, json, sys
    from asynclog import Config, FileBackend, FileConfig, LogEntry, LogManager

    def stamped(entry):
        return f"{entry.timestamp!r} {entry.message}"

    async def main():
        spec = json.loads(sys.argv[1])
        proc, count = spec["proc"], spec["count"]
        options = dict(spec["file"], shared=True)
        if spec["kind"] == "manager":  # LogManager, the time of the call as the stamp
            config = Config(
                async_mode=spec["async"],
                overflow="block",
                backend_config=FileConfig(**options),
            )
            async with LogManager(config) as lm:
                print("ready", flush=True)
                await asyncio.to_thread(sys.stdin.readline)
                for index in range(count):
                    await lm.info(f"p{proc} {index}")
            report = await lm.close()
            print(json.dumps({"written": report.written, "dropped": report.dropped}))
            return
        # "stamps": the backend alone, batches stamped by the test (crossing periods)
        backend = FileBackend(FileConfig(format=stamped, **options))
        await backend.open()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        batch, step, base = spec["batch"], spec["step"], spec["base"]
        index = 0
        while index < count:
            entries = []
            for _ in range(min(batch, count - index)):
                entries.append(LogEntry(base + index * step, 20, f"p{proc} {index}", "t"))
                index += 1
            if spec["async"]:
                await backend.write_batch(entries)
            else:
                backend.write_batch_blocking(entries)
        await backend.close()
        print(json.dumps({"written": count, "dropped": 0}))

    asyncio.run(main())
"""


def _run_processes(specs: list[dict[str, Any]], timeout: float = 300) -> float:
    """Start one child per spec, release them together once all are ready; return the
    seconds from the release to the last exit."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CHILD), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for spec in specs
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            if line != "ready\n":
                _, err = child.communicate(timeout=timeout)
                raise AssertionError(f"child did not start: {line!r} {err}")
        began = time.monotonic()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child, spec in zip(children, specs, strict=True):
            out, err = child.communicate(timeout=timeout)
            assert child.returncode == 0, err
            report = json.loads(out.strip().splitlines()[-1])
            assert report == {"written": spec["count"], "dropped": 0}, (report, err)
            assert "asynclog" not in err, err  # no warnings (gzip, fallback) on stderr
        return time.monotonic() - began
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _files_oldest_first(log_path: Path) -> list[Path]:
    """app.log.N ... app.log.1, app.log (each plain or .gz); nothing else but the lock."""
    pattern = re.compile(re.escape(log_path.name) + r"\.([1-9][0-9]*)(\.gz)?")
    numbered = []
    for path in log_path.parent.iterdir():
        if path.name in (log_path.name, log_path.name + ".lock"):
            continue
        match = pattern.fullmatch(path.name)
        assert match, f"unexpected file {path.name}"
        numbered.append((int(match[1]), path))
    numbers = [number for number, _ in numbered]
    assert len(numbers) == len(set(numbers)), "one form per number"
    return [path for _, path in sorted(numbered, reverse=True)] + [log_path]


def _read(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def _lines_by_file(log_path: Path) -> list[tuple[Path, list[str]]]:
    found = []
    for path in _files_oldest_first(log_path):
        data = _read(path)
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends inside a line"
        found.append((path, [line.decode() for line in data.split(b"\n")[:-1]]))
    return found


def _check_every_entry_once_in_order(
    lines: list[str], procs: int, count: int, message: Callable[[str], str] = shared_message
) -> None:
    """Exactly procs * count lines; each process's 0..count-1 once each, in order."""
    assert len(lines) == procs * count
    seen: dict[int, list[int]] = {proc: [] for proc in range(procs)}
    for line in lines:
        proc, index = message(line).split()
        seen[int(proc[1:])].append(int(index))
    for proc, indexes in seen.items():
        assert indexes == list(range(count)), f"process {proc}: lost, doubled or reordered"


def _check_size_rotation(log_path: Path, procs: int, count: int, limit_mb: float) -> int:
    by_file = _lines_by_file(log_path)
    limit = FileConfig(max_file_size_mb=limit_mb).max_bytes
    for path, lines in by_file:
        assert all(TEXT_LINE.fullmatch(line) for line in lines), f"a torn line in {path.name}"
        size = len(_read(path))
        assert size <= limit, f"{path.name}: {size} bytes > {limit}"
    for path, _ in by_file[:-1]:  # rotated when the next line did not fit, whoever wrote it
        assert len(_read(path)) > limit - 100, path.name  # lines are about 51 bytes
    _check_every_entry_once_in_order([ln for _, lines in by_file for ln in lines], procs, count)
    return len(by_file)


# ---- several processes -----------------------------------------------------------------------


def test_four_async_processes_share_one_rotating_file(log_path: Path) -> None:
    procs, count = 4, 50_000
    options = {"file_path": str(log_path), "max_file_size_mb": 1, "max_backups": 50}
    specs = [
        {"kind": "manager", "async": True, "proc": p, "count": count, "file": options}
        for p in range(procs)
    ]
    took = _run_processes(specs)
    files = _check_size_rotation(log_path, procs, count, 1)
    assert files >= 10  # about 10 MB of lines
    print(f"4 x 50,000 async, {files} files: {took:.2f} s")


def test_four_sync_processes_share_one_rotating_file(log_path: Path) -> None:
    procs, count = 4, 5_000
    options = {"file_path": str(log_path), "max_file_size_mb": 0.1, "max_backups": 50}
    specs = [
        {"kind": "manager", "async": False, "proc": p, "count": count, "file": options}
        for p in range(procs)
    ]
    _run_processes(specs)
    assert _check_size_rotation(log_path, procs, count, 0.1) >= 10


def test_four_processes_compress_each_rotated_file_once(log_path: Path) -> None:
    procs, count = 4, 5_000
    options = {
        "file_path": str(log_path),
        "max_file_size_mb": 0.1,
        "max_backups": 50,
        "compress": True,
    }
    specs = [
        {"kind": "manager", "async": p % 2 == 0, "proc": p, "count": count, "file": options}
        for p in range(procs)
    ]
    _run_processes(specs)
    files = _files_oldest_first(log_path)
    assert all(path.suffix == ".gz" for path in files[:-1]), [p.name for p in files]
    assert _check_size_rotation(log_path, procs, count, 0.1) >= 10


@pytest.mark.parametrize("async_mode", [False, True])
def test_time_rotation_happens_once_per_period_across_processes(
    log_path: Path, async_mode: bool
) -> None:
    """Entries stamped across five periods of one second: each boundary rotates once (two
    files never hold the last entries of the same period), late entries stay in the file of
    the current period, nothing is lost or reordered."""
    procs, count, step = 4, 3_000, 1 / 600  # 5 s of stamps, 50 batches of 12 per period
    options = {"file_path": str(log_path), "rotate_every": "1s", "max_backups": 50}
    specs = [
        {
            "kind": "stamps",
            "async": async_mode,
            "proc": p,
            "count": count,
            "batch": 12,
            "step": step,
            "base": BASE,
            "file": options,
        }
        for p in range(procs)
    ]
    _run_processes(specs)
    by_file = _lines_by_file(log_path)
    periods = []
    for path, lines in by_file:
        assert lines, f"{path.name} is empty"
        stamps = [float(line.split()[0]) for line in lines]
        periods.append(int(max(stamps)))  # the period ("1s") of its newest entry
    assert periods == list(range(int(BASE), int(BASE) + 5)), "one file per period, in order"
    messages = [line.split(" ", 1)[1] for _, lines in by_file for line in lines]
    _check_every_entry_once_in_order(messages, procs, count, message=lambda m: m)


# ---- two backends in one process (each its own flock): the protocol step by step --------------


def _entry(message: str, stamp: float | None = None) -> LogEntry:
    return LogEntry(time.time() if stamp is None else stamp, 20, message, "test")


async def _shared(log_path: Path, **options: Any) -> FileBackend:
    backend = FileBackend(FileConfig(file_path=log_path, shared=True, **options))
    await backend.open()
    for _ in range(5000):  # the tidy at start is over: it takes no later rotation's file
        if backend._housekeeper is None or not backend._housekeeper.busy:
            break
        await asyncio.sleep(0.001)
    return backend


def _messages(path: Path) -> list[str]:
    return [shared_message(line) for line in _read(path).decode().splitlines()]


def test_shared_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match=r"FileConfig\.shared must be a bool") as caught:
        FileConfig(shared="yes")  # type: ignore[arg-type]
    assert caught.value.key == "shared"
    assert FileConfig().shared is False


async def test_the_lock_file_is_created_beside_the_log_with_its_mode(log_path: Path) -> None:
    backend = await _shared(log_path, mode=0o600)
    await backend.close()
    lock = Path(f"{log_path}.lock")
    assert lock.exists()
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.lock"]


async def test_one_process_rotates_by_size_and_the_other_follows(log_path: Path) -> None:
    first = await _shared(log_path, max_file_size_mb=0.001)  # 1,048 bytes
    second = await _shared(log_path, max_file_size_mb=0.001)
    padding = "x" * 200
    for index in range(4):  # 4 x 247 bytes, alternating: no rotation yet
        (first if index % 2 else second).write_batch_blocking([_entry(f"a{index} {padding}")])
    size = log_path.stat().st_size
    assert 800 < size < 1048
    second.write_batch_blocking([_entry(f"b {padding}")])  # does not fit: second rotates
    first.write_batch_blocking([_entry(f"c {padding}")])  # fits the new file: no rotation
    await first.close()
    await second.close()
    assert [m.split()[0] for m in _messages(Path(f"{log_path}.1"))] == ["a0", "a1", "a2", "a3"]
    assert [m.split()[0] for m in _messages(log_path)] == ["b", "c"]
    assert not Path(f"{log_path}.2").exists(), "the first did not rotate again"


async def test_one_process_rotates_by_time_and_the_other_follows(log_path: Path) -> None:
    first = await _shared(log_path, rotate_every="1h")
    second = await _shared(log_path, rotate_every="1h")  # opened the file empty
    first.write_batch_blocking([_entry("first h0", BASE + 10)])
    second.write_batch_blocking([_entry("second h0", BASE + 20)])  # the period is noted
    second.write_batch_blocking([_entry("second h1", BASE + HOUR + 1)])  # rotates
    first.write_batch_blocking([_entry("first h1", BASE + HOUR + 2)])  # follows, no rotation
    first.write_batch_blocking([_entry("first late h0", BASE + 30)])  # stays in the new file
    third = await _shared(log_path, rotate_every="1h")  # a process started now
    third.write_batch_blocking([_entry("third h1", BASE + HOUR + 3)])
    second.write_batch_blocking([_entry("second h2", BASE + 2 * HOUR)])
    first.write_batch_blocking([_entry("first h2", BASE + 2 * HOUR + 1)])
    for backend in (first, second, third):
        await backend.close()
    assert _messages(Path(f"{log_path}.2")) == ["first h0", "second h0"]
    assert _messages(Path(f"{log_path}.1")) == [
        "second h1",
        "first h1",
        "first late h0",
        "third h1",
    ]
    assert _messages(log_path) == ["second h2", "first h2"]


async def test_async_writes_follow_another_process_s_rotation(log_path: Path) -> None:
    first = await _shared(log_path, max_backups=0)  # rotation deletes the full file
    second = await _shared(log_path, max_backups=0, max_file_size_mb=0.0005)
    await first.write_batch([_entry("a " + "x" * 400)])
    await second.write_batch([_entry("b " + "x" * 400)])  # 2 x 430 > 524: deletes, new file
    await first.write_batch([_entry("c")])  # not into the deleted file
    await first.close()
    await second.close()
    assert [m.split()[0] for m in _messages(log_path)] == ["b", "c"]


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


async def test_a_partial_write_is_undone_without_cutting_another_process_s_lines(
    log_path: Path,
) -> None:
    first = await _shared(log_path)
    second = await _shared(log_path)
    first.write_batch_blocking([_entry("first 1")])
    second.write_batch_blocking([_entry("second 1")])
    first._raw = DiskFillsOnce(first._raw, short=20)  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        first.write_batch_blocking([_entry("first 2"), _entry("first 3")])
    second.write_batch_blocking([_entry("second 2")])
    first.write_batch_blocking([_entry("first 2"), _entry("first 3")])  # the retry
    await first.close()
    await second.close()
    assert _messages(log_path) == ["first 1", "second 1", "second 2", "first 2", "first 3"]


async def test_the_torn_line_of_a_process_killed_mid_write_is_ended_before_ours(
    log_path: Path,
) -> None:
    first = await _shared(log_path)
    second = await _shared(log_path)
    first.write_batch_blocking([_entry("first 1")])
    with log_path.open("ab") as dying:  # what a writer killed inside write(2) leaves
        dying.write(b"2026-01-01T00:00:00.000000Z INFO test half a li")
    second.write_batch_blocking([_entry("second 1")])
    first.write_batch_blocking([_entry("first 2")])  # nothing to mend: second ended its line
    await first.close()
    await second.close()
    assert _messages(log_path) == ["first 1", "half a li", "second 1", "first 2"]


class Gate:
    """Holds one backend's compression until released (a slow gzip of a big file)."""

    def __init__(self, backups: Backups) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        real = backups._gzip

        def gated(*args: Any) -> bool:
            self.started.set()
            self.release.wait(10)
            return real(*args)

        backups._gzip = gated  # type: ignore[method-assign]


async def test_two_processes_never_compress_the_same_file(log_path: Path) -> None:
    """A compresses .1 slowly; B rotates (A's file becomes .2, its .gz.tmp along with it),
    compresses the new .1 and leaves .2 to A; C starting meanwhile does not take A's
    .gz.tmp for a crash's leftover. A finishes under the file's new number."""
    options: dict[str, Any] = {"rotate_every": "1h", "compress": True, "max_backups": 5}
    first = await _shared(log_path, **options)
    second = await _shared(log_path, **options)
    gate = Gate(first._backups)
    first.write_batch_blocking([_entry("h0", BASE)])
    first.write_batch_blocking([_entry("h1", BASE + HOUR)])  # rotates: h0 -> .1, compressing
    assert await asyncio.to_thread(gate.started.wait, 5)
    assert Path(f"{log_path}.1.gz.tmp").exists()
    second.write_batch_blocking([_entry("h2", BASE + 2 * HOUR)])  # rotates: h1 -> .1, h0 -> .2
    assert Path(f"{log_path}.2.gz.tmp").exists()
    await asyncio.to_thread(second._housekeeper.finish)  # type: ignore[union-attr]
    assert Path(f"{log_path}.1.gz").exists() and Path(f"{log_path}.2").exists()
    third = await _shared(log_path, **options)  # its start tidies: .2 is not its to take
    await asyncio.to_thread(third._housekeeper.finish)  # type: ignore[union-attr]
    assert Path(f"{log_path}.2.gz.tmp").exists() and Path(f"{log_path}.2").exists()
    gate.release.set()
    for backend in (first, second, third):
        await backend.close()
    assert sorted(os.listdir(log_path.parent)) == [
        "app.log",
        "app.log.1.gz",
        "app.log.2.gz",
        "app.log.lock",
    ]
    assert _messages(Path(f"{log_path}.2.gz")) == ["h0"]
    assert _messages(Path(f"{log_path}.1.gz")) == ["h1"]
    assert _messages(log_path) == ["h2"]


async def test_a_crash_s_gz_tmp_is_still_removed_and_the_file_compressed(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    Path(f"{log_path}.1").write_text("2026-01-01T00:00:00.000000Z INFO x one\n")
    Path(f"{log_path}.1.gz.tmp").write_bytes(b"\x1f\x8b half a gzip")  # nobody holds it
    backend = await _shared(log_path, compress=True)
    await backend.close()
    assert sorted(os.listdir(log_path.parent)) == ["app.log", "app.log.1.gz", "app.log.lock"]
    assert _messages(Path(f"{log_path}.1.gz")) == ["one"]


async def test_logrotate_create_is_seen_before_the_next_batch(log_path: Path) -> None:
    """Shared, the path is compared with the open file before every batch (under the lock),
    whatever `reopen_check_interval` says."""
    backend = await _shared(log_path, reopen_check_interval=None)
    backend.write_batch_blocking([_entry("before")])
    os.rename(log_path, f"{log_path}.1")
    log_path.write_bytes(b"")  # logrotate's `create`
    backend.write_batch_blocking([_entry("after")])
    await backend.close()
    assert (_messages(Path(f"{log_path}.1")), _messages(log_path)) == (["before"], ["after"])


async def test_a_file_without_a_noted_period_takes_it_from_its_last_write(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text("2026-01-01T00:00:00.000000Z INFO x old\n")  # written without shared
    os.utime(log_path, (BASE + 60, BASE + 60))
    first = await _shared(log_path, rotate_every="1h")
    first.write_batch_blocking([_entry("h0", BASE + 120)])
    second = await _shared(log_path, rotate_every="1h")
    second.write_batch_blocking([_entry("h1", BASE + HOUR)])  # rotates once
    first.write_batch_blocking([_entry("h1 too", BASE + HOUR + 1)])
    await first.close()
    await second.close()
    assert _messages(Path(f"{log_path}.1")) == ["old", "h0"]
    assert _messages(log_path) == ["h1", "h1 too"]


async def test_single_process_mode_makes_no_lock_file(log_path: Path) -> None:
    backend = FileBackend(FileConfig(file_path=log_path, max_file_size_mb=0.001))
    await backend.open()
    for index in range(20):
        backend.write_batch_blocking([_entry(f"m{index} " + "x" * 100)])
    await backend.close()
    assert not Path(f"{log_path}.lock").exists()
    assert Path(f"{log_path}.1").exists()
