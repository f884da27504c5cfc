"""File backend: time rotation, retention (`max_age`, `max_total_mb`), gzip of rotated files."""

from __future__ import annotations

import asyncio
import gzip
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asynclog._intake as intake_module
from asynclog import Config, ConfigError, FileBackend, FileConfig, LogEntry, LogManager
from asynclog.backends._retention import Backups
from asynclog.backends._rotation import Run, next_local_midnight, period_end_function, plan_batch

from .conftest import message_of, read_lines

HOUR = 3600.0
BASE = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a whole day since the epoch


def _entry(stamp: float, message: str) -> LogEntry:
    return LogEntry(stamp, 20, message, "test")


def _messages(path: Path) -> list[str]:
    """The messages of a log file, plain or gzip."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            data = handle.read()
        assert data.endswith(b"\n")
        return [message_of(line.decode()) for line in data.split(b"\n")[:-1]]
    return [message_of(line) for line in read_lines(path)]


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _gzip_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "asynclog-file-gzip"]


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({"rotate_every": "3x"}, "rotate_every", 'FileConfig.rotate_every must be "midnight" or'),
        ({"rotate_every": "0h"}, "rotate_every", "got '0h'"),
        ({"rotate_every": 3600}, "rotate_every", "got 3600"),
        ({"rotate_every": ""}, "rotate_every", "got ''"),
        ({"rotate_every": "Midnight"}, "rotate_every", "got 'Midnight'"),
        ({"max_age": "7x"}, "max_age", "FileConfig.max_age must be seconds > 0 or a duration"),
        ({"max_age": 0}, "max_age", "got 0"),
        ({"max_age": -5.0}, "max_age", "got -5.0"),
        ({"max_age": True}, "max_age", "got True"),
        ({"max_total_mb": 0}, "max_total_mb", "FileConfig.max_total_mb must be > 0, got 0"),
        ({"max_total_mb": "1"}, "max_total_mb", "must be a number"),
        ({"compress": "yes"}, "compress", "FileConfig.compress must be a bool"),
        ({"reopen_check_interval": -1}, "reopen_check_interval", "must be >= 0, got -1"),
    ],
)
def test_invalid_options_raise_config_error_naming_the_field(
    options: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        FileConfig(**options)
    assert caught.value.key == key


def test_valid_options_are_parsed() -> None:
    config = FileConfig(rotate_every="30m", max_age="7d", max_total_mb=1.5, compress=True)
    assert (config.rotation_period, config.max_age_seconds) == (1800.0, 7 * 86400.0)
    assert config.max_total_bytes == 1_572_864
    assert FileConfig(rotate_every="midnight", max_age=90).rotation_period == "midnight"
    assert FileConfig(max_age=90).max_age_seconds == 90.0
    defaults = FileConfig()
    assert (defaults.rotate_every, defaults.max_age, defaults.max_total_mb) == (None, None, None)
    assert (defaults.compress, defaults.reopen_check_interval) == (False, 0.1)


# ---- periods and the plan --------------------------------------------------------------------


def test_fixed_periods_are_aligned_to_the_epoch() -> None:
    hourly = period_end_function(HOUR)
    assert hourly(BASE) == BASE + HOUR, "a stamp on the boundary starts the period"
    assert hourly(BASE + HOUR - 0.001) == BASE + HOUR
    assert hourly(BASE + 5400) == BASE + 2 * HOUR
    daily = period_end_function(86400.0)
    assert daily(BASE + 13 * HOUR) == BASE + 86400, "1d turns at 00:00 UTC"
    assert period_end_function(1800.0)(BASE + 1799) == BASE + 1800


@pytest.fixture
def new_york() -> Iterator[None]:
    """Local time: US Eastern with its daylight-saving rules (a POSIX TZ, no tzdata needed)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "EST+5EDT,M3.2.0/2,M11.1.0/2"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_midnight_is_local_midnight_across_daylight_saving() -> None:
    noon_utc = BASE + 12 * HOUR  # 2026-01-01 07:00 in New York
    assert next_local_midnight(noon_utc) == BASE + 86400 + 5 * HOUR  # 2026-01-02 00:00 EST
    assert next_local_midnight(BASE + 3 * HOUR) == BASE + 5 * HOUR  # 2025-12-31 22:00 EST
    before_spring = time.mktime((2026, 3, 8, 0, 30, 0, 0, 0, -1))  # a 23-hour day
    assert next_local_midnight(before_spring) - (before_spring - 1800) == 23 * HOUR
    assert period_end_function("midnight") is next_local_midnight


def test_the_plan_splits_a_batch_at_period_ends_and_the_size_limit() -> None:
    hourly = period_end_function(HOUR)
    stamps = [BASE + 10, BASE + 20, BASE + HOUR + 5, BASE + 2 * HOUR + 1]
    plan = plan_batch([10] * 4, 50, 1000, stamps, BASE + HOUR, hourly)
    assert plan == [
        (Run(0, 2, False), BASE + HOUR),
        (Run(2, 3, True), BASE + 2 * HOUR),
        (Run(3, 4, True), BASE + 3 * HOUR),
    ]
    late = [BASE + HOUR + 1, BASE + 30, BASE + HOUR + 2]  # a late entry stays in the file
    assert plan_batch([10] * 3, 0, 1000, late, BASE + HOUR, hourly) == [
        (Run(0, 3, False), BASE + 2 * HOUR)
    ], "an empty file is not rotated: its period simply moves on"
    both = plan_batch([40, 40, 40], 0, 100, [BASE, BASE + 1, BASE + HOUR], BASE + HOUR, hourly)
    assert both == [(Run(0, 2, False), BASE + HOUR), (Run(2, 3, True), BASE + 2 * HOUR)]


# ---- time rotation ---------------------------------------------------------------------------


@pytest.mark.parametrize("blocking", [True, False])
async def test_a_batch_spanning_three_hours_is_split_into_three_files(
    log_path: Path, blocking: bool
) -> None:
    backend = FileBackend(FileConfig(file_path=log_path, rotate_every="1h", max_backups=5))
    await backend.open()
    hours = [[f"h{hour} e{index}" for index in range(4)] for hour in range(3)]
    entries = [
        _entry(BASE + hour * HOUR + index * 60, message)
        for hour, messages in enumerate(hours)
        for index, message in enumerate(messages)
    ]
    if blocking:
        backend.write_batch_blocking(entries)
    else:
        await backend.write_batch(entries)
    await backend.write_batch([_entry(BASE + 2 * HOUR + 3000, "late in hour 2")])
    await backend.close()
    assert _names(log_path.parent) == ["app.log", "app.log.1", "app.log.2"]
    assert _messages(Path(f"{log_path}.2")) == hours[0]
    assert _messages(Path(f"{log_path}.1")) == hours[1]
    assert _messages(log_path) == [*hours[2], "late in hour 2"]


class FakeClock:
    """Replaces the manager's `time()`: every call moves the clock on by `step` seconds."""

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step = start, step

    def __call__(self) -> float:
        now, self.now = self.now, self.now + self.step
        return now


@pytest.mark.parametrize("async_mode", [True, False])
async def test_hourly_rotation_through_the_manager_keeps_every_entry_in_its_hour(
    log_path: Path, monkeypatch: pytest.MonkeyPatch, async_mode: bool
) -> None:
    monkeypatch.setattr(intake_module, "time", FakeClock(BASE, step=36.0))  # 100 per hour
    config = Config(
        backend="file",
        async_mode=async_mode,
        batch_size=64,
        backend_config=FileConfig(file_path=log_path, rotate_every="1h", max_backups=2),
    )
    async with LogManager(config) as lm:
        for index in range(400):
            await lm.info(f"entry {index:03d}")
    assert _names(log_path.parent) == ["app.log", "app.log.1", "app.log.2"]
    for number, hour in [(2, 1), (1, 2), (0, 3)]:  # hour 0 went past max_backups
        path = Path(f"{log_path}.{number}") if number else log_path
        assert _messages(path) == [
            f"entry {index:03d}" for index in range(hour * 100, hour * 100 + 100)
        ]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_file_from_yesterday_is_rotated_by_todays_first_entry(
    log_path: Path, async_mode: bool
) -> None:
    log_path.parent.mkdir()
    log_path.write_text("2026-01-01T10:00:00.000000Z INFO test yesterday\n")
    yesterday = time.time() - 86400
    os.utime(log_path, (yesterday, yesterday))
    config = Config(
        backend="file",
        async_mode=async_mode,
        backend_config=FileConfig(file_path=log_path, rotate_every="midnight"),
    )
    async with LogManager(config) as lm:
        await lm.info("today")
        await lm.info("still today")
    assert _messages(Path(f"{log_path}.1")) == ["yesterday"]
    assert _messages(log_path) == ["today", "still today"]


async def test_a_restart_within_the_period_keeps_appending(log_path: Path) -> None:
    config = Config(
        backend="file", backend_config=FileConfig(file_path=log_path, rotate_every="1d")
    )
    for message in ["first run", "second run"]:
        async with LogManager(config) as lm:
            await lm.info(message)
    assert _names(log_path.parent) == ["app.log"]
    assert _messages(log_path) == ["first run", "second run"]


# ---- gzip ------------------------------------------------------------------------------------


def _ordered_files(log_path: Path) -> list[Path]:
    """Every rotated file, oldest first, then the live one."""
    rotated = [p for p in log_path.parent.iterdir() if p.name.startswith("app.log.")]
    rotated.sort(key=lambda p: int(p.name.split(".")[2]), reverse=True)
    return [*rotated, log_path]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_rotated_files_are_compressed_and_nothing_is_lost(
    log_path: Path, async_mode: bool
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        batch_size=37,
        backend_config=FileConfig(
            file_path=log_path, max_file_size_mb=0.01, max_backups=5, compress=True
        ),
    )
    async with LogManager(config) as lm:
        for index in range(350):
            await lm.info(f"entry {index:05d} " + "x" * 40)
    assert _names(log_path.parent) == ["app.log", "app.log.1.gz", "app.log.2.gz", "app.log.3.gz"]
    messages = [m for path in _ordered_files(log_path) for m in _messages(path)]
    assert messages == [f"entry {index:05d} " + "x" * 40 for index in range(350)]
    for path in log_path.parent.glob("*.gz"):
        assert path.stat().st_mode & 0o777 == log_path.stat().st_mode & 0o777
    assert _gzip_threads() == []


async def test_sync_mode_hands_gzip_to_the_backend_thread_and_close_waits_for_it(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_gzip = Backups._gzip

    def slow_gzip(self: Backups, *args: Any) -> bool:
        threads.append(threading.current_thread().name)
        time.sleep(0.2)
        return real_gzip(self, *args)

    monkeypatch.setattr(Backups, "_gzip", slow_gzip)
    config = Config(
        backend="file",
        backend_config=FileConfig(file_path=log_path, max_file_size_mb=0.001, compress=True),
    )
    lm = LogManager(config)
    await lm.start()
    slowest = 0.0
    for index in range(20):  # 1,860 bytes: one rotation
        started = time.perf_counter()
        await lm.info(f"entry {index:03d} " + "y" * 40)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.1, "the write that rotated did not wait for gzip"
    assert _gzip_threads() == ["asynclog-file-gzip"]
    await lm.close()
    assert threads == ["asynclog-file-gzip"]
    assert _gzip_threads() == []
    assert _names(log_path.parent) == ["app.log", "app.log.1.gz"]


class BlockedGzip:
    """Holds the first compression until `release` is set, as a slow gzip of a big file."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        real = Backups._gzip
        calls = 0

        def gzip_blocked(backups: Backups, *args: Any) -> bool:
            nonlocal calls
            calls += 1
            if calls == 1:
                self.started.set()
                assert self.release.wait(5)
            return real(backups, *args)

        monkeypatch.setattr(Backups, "_gzip", gzip_blocked)


def _rotating_backend(log_path: Path, **options: Any) -> FileBackend:
    return FileBackend(FileConfig(file_path=log_path, rotate_every="1h", **options))


async def test_rotations_while_a_file_is_being_compressed_move_it_along(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedGzip(monkeypatch)
    backend = _rotating_backend(log_path, max_backups=3, compress=True)
    await backend.open()
    backend.write_batch_blocking([_entry(BASE, "hour 0")])
    backend.write_batch_blocking([_entry(BASE + HOUR, "hour 1")])  # hour 0 -> .1, compressing
    assert blocked.started.wait(5)
    backend.write_batch_blocking([_entry(BASE + 2 * HOUR, "hour 2")])  # .1 -> .2 meanwhile
    backend.write_batch_blocking([_entry(BASE + 3 * HOUR, "hour 3")])  # .2 -> .3
    assert sorted(os.listdir(log_path.parent)) == [
        "app.log",
        "app.log.1",
        "app.log.2",
        "app.log.3",
        "app.log.3.gz.tmp",
    ]
    blocked.release.set()
    await backend.close()
    assert _names(log_path.parent) == ["app.log", "app.log.1.gz", "app.log.2.gz", "app.log.3.gz"]
    assert [_messages(p)[0] for p in _ordered_files(log_path)] == [f"hour {h}" for h in range(4)]


async def test_a_file_deleted_by_rotation_while_compressed_leaves_nothing_behind(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedGzip(monkeypatch)
    backend = _rotating_backend(log_path, max_backups=1, compress=True)
    await backend.open()
    for hour in range(2):
        backend.write_batch_blocking([_entry(BASE + hour * HOUR, f"hour {hour}")])
    assert blocked.started.wait(5)
    backend.write_batch_blocking([_entry(BASE + 2 * HOUR, "hour 2")])  # hour 0 is dropped
    blocked.release.set()
    await backend.close()
    assert _names(log_path.parent) == ["app.log", "app.log.1.gz"]
    assert _messages(Path(f"{log_path}.1.gz")) == ["hour 1"]


async def test_leftovers_of_a_crash_are_compressed_at_start(log_path: Path) -> None:
    log_path.parent.mkdir()
    line = "2026-01-01T00:00:00.000000Z INFO test {}\n"
    Path(f"{log_path}.1").write_text(line.format("one"))
    Path(f"{log_path}.1.gz.tmp").write_bytes(b"\x1f\x8b half a gzip")  # killed mid-compression
    Path(f"{log_path}.2").write_text(line.format("two"))
    Path(f"{log_path}.2.gz").write_bytes(gzip.compress(line.format("two").encode()))  # renamed
    backend = FileBackend(FileConfig(file_path=log_path, compress=True))
    await backend.open()
    await backend.close()
    assert _names(log_path.parent) == ["app.log", "app.log.1.gz", "app.log.2.gz"]
    assert (_messages(Path(f"{log_path}.1.gz")), _messages(Path(f"{log_path}.2.gz"))) == (
        ["one"],
        ["two"],
    )


async def test_a_failed_compression_keeps_the_original(
    log_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(self: Backups, *args: Any) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Backups, "_gzip", disk_full)
    backend = _rotating_backend(log_path, compress=True)
    await backend.open()
    for hour in range(2):
        backend.write_batch_blocking([_entry(BASE + hour * HOUR, f"hour {hour}")])
    await backend.close()
    assert _names(log_path.parent) == ["app.log", "app.log.1"]
    assert _messages(Path(f"{log_path}.1")) == ["hour 0"]
    assert "No space left on device" in capsys.readouterr().err


async def test_a_cancelled_close_stops_the_compression_and_keeps_the_original(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedGzip(monkeypatch)
    backend = _rotating_backend(log_path, compress=True)
    await backend.open()
    for hour in range(2):
        backend.write_batch_blocking([_entry(BASE + hour * HOUR, f"hour {hour}")])
    assert blocked.started.wait(5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(backend.close(), 0.05)
    blocked.release.set()
    for _ in range(100):
        if not _gzip_threads():
            break
        await asyncio.sleep(0.01)
    assert _gzip_threads() == []
    assert _names(log_path.parent) == ["app.log", "app.log.1"]
    assert _messages(Path(f"{log_path}.1")) == ["hour 0"]


# ---- retention -------------------------------------------------------------------------------


def _backups(log_path: Path, ages_hours: list[float], size: int = 100) -> None:
    """`app.log.1`... last written `ages_hours` ago (in that order), `size` bytes each."""
    log_path.parent.mkdir(exist_ok=True)
    for number, age in enumerate(ages_hours, start=1):
        path = Path(f"{log_path}.{number}")
        path.write_bytes(b"x" * (size - 1) + b"\n")
        stamp = time.time() - age * HOUR
        os.utime(path, (stamp, stamp))


async def test_max_age_deletes_exactly_the_files_older_than_it_at_start(log_path: Path) -> None:
    _backups(log_path, [1, 2, 3, 4, 5])
    backend = FileBackend(FileConfig(file_path=log_path, max_age="150m"))
    await backend.open()
    await backend.close()
    assert _names(log_path.parent) == ["app.log", "app.log.1", "app.log.2"]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_max_age_is_applied_after_each_rotation(log_path: Path, async_mode: bool) -> None:
    _backups(log_path, [0, 0.5, 1.5])
    config = Config(
        backend="file",
        async_mode=async_mode,
        backend_config=FileConfig(file_path=log_path, max_file_size_mb=0.001, max_age="1h"),
    )
    async with LogManager(config) as lm:
        os.utime(f"{log_path}.1", (time.time() - 3 * HOUR,) * 2)  # ages while we run
        for index in range(11):  # 93-byte lines: 1,023 bytes, within the 1,048-byte limit
            await lm.info(f"entry {index:03d} " + "z" * 40)
        assert _names(log_path.parent) == ["app.log", "app.log.1", "app.log.2"]
        for index in range(11, 22):  # one rotation: .1 -> .2 (3 h old), .2 -> .3 (30 min)
            await lm.info(f"entry {index:03d} " + "z" * 40)
    assert _names(log_path.parent) == ["app.log", "app.log.1", "app.log.3"]
    assert _messages(Path(f"{log_path}.1"))[0] == "entry 000 " + "z" * 40


def test_max_total_deletes_the_oldest_until_the_rest_fit(log_path: Path) -> None:
    _backups(log_path, [1, 2, 3, 4, 5], size=300_000)
    backups = Backups(str(log_path), 5, max_total_bytes=1_048_576)
    deleted = backups.apply_retention()
    assert sorted(Path(p).name for p in deleted) == ["app.log.4", "app.log.5"]
    assert _names(log_path.parent) == ["app.log.1", "app.log.2", "app.log.3"]
    assert Backups(str(log_path), 5, max_total_bytes=899_999).apply_retention() == [
        f"{log_path}.3"
    ], "900,000 bytes do not fit in 899,999"


def test_max_age_uses_the_clock_it_is_given(log_path: Path) -> None:
    _backups(log_path, [0, 0, 0])
    os.utime(f"{log_path}.3", (BASE, BASE))
    os.utime(f"{log_path}.2", (BASE + 10, BASE + 10))
    os.utime(f"{log_path}.1", (BASE + 20, BASE + 20))
    clock: Callable[[], float] = lambda: BASE + 110  # noqa: E731
    backups = Backups(str(log_path), 5, max_age=100, clock=clock)
    assert backups.apply_retention() == [f"{log_path}.3"], "110 s old goes, exactly 100 s stays"
    assert _names(log_path.parent) == ["app.log.1", "app.log.2"]


async def test_compressed_files_keep_their_age_and_count_their_compressed_size(
    log_path: Path,
) -> None:
    log_path.parent.mkdir()
    contents = {1: os.urandom(300_000), 2: os.urandom(300_000), 3: b"a" * 2_000_000 + b"\n"}
    for number, data in contents.items():  # random bytes do not compress; 2 MB of "a" do
        Path(f"{log_path}.{number}").write_bytes(data)
    for number, age in [(1, 2), (2, 4), (3, 3)]:
        os.utime(f"{log_path}.{number}", (time.time() - age * HOUR,) * 2)
    config = FileConfig(file_path=log_path, compress=True, max_age="3.5h", max_total_mb=0.5)
    backend = FileBackend(config)
    await backend.open()
    await backend.close()
    # .2.gz is 4 h old by its original's time; .1.gz and .3.gz together are about 302 KB,
    # within the 524,288-byte cap, though .3 was 2 MB before compression.
    assert _names(log_path.parent) == ["app.log", "app.log.1.gz", "app.log.3.gz"]
    age = time.time() - Path(f"{log_path}.1.gz").stat().st_mtime
    assert 2 * HOUR - 60 < age < 2 * HOUR + 60, "the gzip keeps the original's time"
    with gzip.open(f"{log_path}.3.gz") as handle:
        assert handle.read() == contents[3]
