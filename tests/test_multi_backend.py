"""Several backends at once: each with its own level, format, worker and queue."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from asynclog import (
    BackendWriteError,
    Config,
    ConfigError,
    ConsoleConfig,
    FileConfig,
    Level,
    LogManager,
    LogStats,
    QueueFullError,
    Sink,
    SQLiteConfig,
)

from .conftest import (
    FailingBackend,
    GateBackend,
    RecordingBackend,
    assert_settled,
    message_of,
    read_lines,
)

LEVELS = [Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL]


def _assert_balanced(stats: LogStats) -> None:
    """Each backend settled, and the totals are the sums of the backends' figures."""
    assert_settled(stats)
    parts = list(stats.backends.values())
    for part in parts:
        assert_settled(part)
    for name in ("accepted", "written", "dropped", "dead_lettered", "pending", "write_errors"):
        assert getattr(stats, name) == sum(getattr(part, name) for part in parts), name


def _counts(stats: LogStats) -> dict[str, tuple[int, int, int]]:
    """(accepted, written, dropped) of each backend."""
    return {
        name: (part.accepted, part.written, part.dropped) for name, part in stats.backends.items()
    }


async def _log_each_level(lm: LogManager) -> None:
    for level in LEVELS:
        await lm.write_log(level, f"at {level.name}", level_name=level.name)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_every_kind_of_backend_at_once_each_with_its_level_and_format(
    tmp_path: Path, async_mode: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts, everything = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[
            FileConfig(file_path=tmp_path / "app.jsonl", format="json"),
            SQLiteConfig(db_path=tmp_path / "app.db", level="INFO"),
            ConsoleConfig(format="logfmt", level=Level.WARNING),
            Sink(alerts, level="ERROR", name="alerts"),
            everything,
        ],
        async_mode=async_mode,
        name="svc",
    )
    async with LogManager(config) as lm:
        await _log_each_level(lm)
    names = [level.name for level in LEVELS]
    records = [json.loads(line) for line in read_lines(tmp_path / "app.jsonl")]
    assert [(r["level"], r["message"], r["logger"]) for r in records] == [
        (name, f"at {name}", "svc") for name in names
    ]
    with sqlite3.connect(tmp_path / "app.db") as db:
        rows = db.execute("SELECT level, message FROM logs ORDER BY id").fetchall()
    assert rows == [(int(level), f"at {level.name}") for level in LEVELS[1:]]
    err_lines = capsys.readouterr().err.splitlines()
    assert len(err_lines) == 3
    for line, name in zip(err_lines, names[2:], strict=True):
        assert line.startswith("ts=")
        assert line.endswith(f' level={name.lower()} logger=svc msg="at {name}" level_name={name}')
    assert alerts.messages == ["at ERROR", "at CRITICAL"]
    assert everything.messages == [f"at {name}" for name in names]
    assert alerts.closed and everything.closed
    stats = lm.get_stats()
    assert _counts(stats) == {
        "file": (5, 5, 0),
        "sqlite": (4, 4, 0),
        "console": (3, 3, 0),
        "alerts": (2, 2, 0),
        "RecordingBackend": (5, 5, 0),
    }
    assert (stats.accepted, stats.written, stats.dropped, stats.filtered) == (19, 19, 0, 0)
    assert stats.is_async is async_mode
    assert stats.queue_capacity == (5 * 1000 if async_mode else 0)
    _assert_balanced(stats)


async def test_a_backend_that_never_returns_does_not_stall_the_file(tmp_path: Path) -> None:
    gate = GateBackend()
    path = tmp_path / "app.log"
    config = Config(backends=[Sink(gate, name="gate"), FileConfig(file_path=path)], async_mode=True)
    async with LogManager(config) as lm:
        try:
            for index in range(300):
                await lm.info(f"m{index}")
                if index % 50 == 0:
                    await asyncio.sleep(0)
            await _until(lambda: path.exists() and len(read_lines(path)) == 300)
            # The gate is still closed: the file has everything, the gate nothing.
            assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(300)]
            assert gate.writing.is_set() and gate.entries == []
            stats = lm.get_stats()
            assert _counts(stats) == {"gate": (300, 0, 0), "file": (300, 300, 0)}
            assert (stats.backends["gate"].pending, stats.backends["file"].pending) == (300, 0)
            assert stats.pending == 300
        finally:
            gate.release()
    assert gate.messages == [f"m{i}" for i in range(300)]
    stats = lm.get_stats()
    assert _counts(stats) == {"gate": (300, 300, 0), "file": (300, 300, 0)}
    _assert_balanced(stats)


async def test_an_always_failing_backend_does_not_stop_the_others() -> None:
    failing, recorder = FailingBackend(fail_on=set(range(10_000))), RecordingBackend()
    config = Config(
        backends=[Sink(failing, name="failing"), Sink(recorder, name="recorder")],
        async_mode=True,
        retry_attempts=1,
        retry_backoff=0,
        fallback="none",
    )
    async with LogManager(config) as lm:
        for index in range(200):
            await lm.info(f"m{index}")
            if index % 20 == 0:
                await asyncio.sleep(0)
    assert recorder.messages == [f"m{i}" for i in range(200)]
    assert failing.entries == []
    stats = lm.get_stats()
    recorded, failed = stats.backends["recorder"], stats.backends["failing"]
    assert (recorded.accepted, recorded.written, recorded.dropped, recorded.write_errors) == (
        200,
        200,
        0,
        0,
    )
    assert failed.written == 0
    # Every batch: the first attempt and one retry, both failing.
    assert failed.write_errors == failing.calls and failing.calls % 2 == 0
    assert failed.retries == failing.calls // 2
    assert failed.dropped == failed.accepted >= 200  # plus its own in-band drop reports
    _assert_balanced(stats)


async def test_sync_mode_a_failing_backend_raises_after_the_others_wrote() -> None:
    failing, recorder = FailingBackend(fail_on=set(range(100))), RecordingBackend()
    config = Config(
        raise_errors=True,
        backends=[Sink(failing, name="failing"), Sink(recorder, name="recorder")],
        retry_attempts=0,
        fallback="none",
    )
    async with LogManager(config) as lm:
        for index in range(3):
            with pytest.raises(BackendWriteError):
                await lm.info(f"m{index}")
            assert recorder.messages == [f"m{i}" for i in range(index + 1)]
    stats = lm.get_stats()
    # Each later write to the failing sink carries the in-band report of its earlier drops
    # (lost with it): 3 entries and 2 reports.
    assert _counts(stats) == {"failing": (5, 0, 5), "recorder": (3, 3, 0)}
    _assert_balanced(stats)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_per_backend_levels(tmp_path: Path, async_mode: bool) -> None:
    errors, warnings_up = RecordingBackend(), RecordingBackend()
    path = tmp_path / "all.log"
    config = Config(
        backends=[
            Sink(errors, level=Level.ERROR, name="errors"),
            FileConfig(file_path=path, level="DEBUG"),
            Sink(warnings_up, level=30, name="warnings"),
        ],
        async_mode=async_mode,
    )
    async with LogManager(config) as lm:
        for index in range(10):
            await lm.write_log(LEVELS[index % 5], f"m{index}")
    assert errors.messages == ["m3", "m4", "m8", "m9"]
    assert warnings_up.messages == ["m2", "m3", "m4", "m7", "m8", "m9"]
    assert [line.split(" ", 3)[3] for line in read_lines(path)] == [f"m{i}" for i in range(10)]
    assert {level for entry in errors.entries for level in [entry.level]} == {
        Level.ERROR,
        Level.CRITICAL,
    }
    stats = lm.get_stats()
    assert _counts(stats) == {"errors": (4, 4, 0), "file": (10, 10, 0), "warnings": (6, 6, 0)}
    assert stats.filtered == 0
    _assert_balanced(stats)


async def test_a_manager_level_above_a_backend_level_wins(tmp_path: Path) -> None:
    low, high = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(low, level="DEBUG", name="low"), Sink(high, level="ERROR", name="high")],
        level="WARNING",
    )
    async with LogManager(config) as lm:
        await _log_each_level(lm)
    assert low.messages == ["at WARNING", "at ERROR", "at CRITICAL"]
    assert high.messages == ["at ERROR", "at CRITICAL"]
    stats = lm.get_stats()
    assert stats.filtered == 2
    assert _counts(stats) == {"low": (3, 3, 0), "high": (2, 2, 0)}


@pytest.mark.parametrize("async_mode", [True, False])
async def test_file_json_and_console_logfmt_at_once(
    tmp_path: Path, async_mode: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.jsonl"
    config = Config(
        backends=[FileConfig(file_path=path, format="json"), ConsoleConfig(format="logfmt")],
        async_mode=async_mode,
        name="api",
    )
    async with LogManager(config) as lm:
        await lm.info("hello world", user="ann")
        await lm.error("bad", code=500)
    records = [json.loads(line) for line in read_lines(path)]
    assert [(r["level"], r["message"], r["fields"]) for r in records] == [
        ("INFO", "hello world", {"user": "ann"}),
        ("ERROR", "bad", {"code": 500}),
    ]
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        'level=info logger=api msg="hello world" user=ann',
        "level=error logger=api msg=bad code=500",
    ]
    assert all(line.startswith("ts=") for line in lines)
    assert set(lm.get_stats().backends) == {"file", "console"}


async def test_default_and_given_backend_names(tmp_path: Path) -> None:
    config = Config(
        backends=[
            FileConfig(file_path=tmp_path / "a.log"),
            FileConfig(file_path=tmp_path / "b.log"),
            FileConfig(file_path=tmp_path / "c.log"),
            FileConfig(file_path=tmp_path / "d.log", name="audit"),
            SQLiteConfig(db_path=tmp_path / "a.db"),
            ConsoleConfig(name="terminal"),
            RecordingBackend(),
            RecordingBackend(),
            Sink(RecordingBackend(), name="memory"),
            Sink(GateBackend()),
        ]
    )
    expected = [
        "file",
        "file-2",
        "file-3",
        "audit",
        "sqlite",
        "terminal",
        "RecordingBackend",
        "RecordingBackend-2",
        "memory",
        "GateBackend",
    ]
    assert [sink.name for sink in config.sinks] == expected
    lm = LogManager(config)
    assert list(lm.get_stats().backends) == expected


async def test_backend_names_stay_unique_when_a_given_name_looks_like_a_default(
    tmp_path: Path,
) -> None:
    config = Config(
        backends=[
            Sink(RecordingBackend(), name="file-2"),
            FileConfig(file_path=tmp_path / "a.log"),
            FileConfig(file_path=tmp_path / "b.log"),
        ]
    )
    names = [sink.name for sink in config.sinks]
    assert len(set(names)) == 3, names
    assert len(LogManager(config).get_stats().backends) == 3


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def handle(self, entry: object) -> None:
        self.seen.append(entry.message)  # type: ignore[attr-defined]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_handlers_see_each_entry_exactly_once(tmp_path: Path, async_mode: bool) -> None:
    first, second = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[
            Sink(first, level="WARNING", name="first"),  # higher level first
            Sink(second, name="second"),
            FileConfig(file_path=tmp_path / "app.log"),
        ],
        async_mode=async_mode,
    )
    handler = Recorder()
    async with LogManager(config) as lm:
        lm.register_handler(handler)
        assert lm.get_stats().handler_count == 1
        for index in range(20):
            await lm.write_log(LEVELS[index % 5], f"m{index}")
    assert handler.seen == [f"m{i}" for i in range(20)]
    assert second.messages == handler.seen
    assert first.messages == [f"m{i}" for i in range(20) if i % 5 >= 2]
    assert lm.get_stats().handler_errors == 0


async def test_handlers_with_every_backend_at_a_higher_level_than_the_manager() -> None:
    first, second = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(first, level="ERROR", name="a"), Sink(second, level="INFO", name="b")],
        async_mode=True,
    )
    handler = Recorder()
    async with LogManager(config) as lm:
        lm.register_handler(handler)
        await _log_each_level(lm)
    assert handler.seen == ["at INFO", "at WARNING", "at ERROR", "at CRITICAL"]
    assert second.messages == handler.seen
    assert first.messages == ["at ERROR", "at CRITICAL"]
    assert lm.get_stats().filtered == 1


async def test_sync_mode_every_backend_writes_before_write_log_returns(tmp_path: Path) -> None:
    recorder, path = RecordingBackend(), tmp_path / "app.log"
    db = tmp_path / "app.db"
    config = Config(
        backends=[
            Sink(recorder, name="memory"),
            FileConfig(file_path=path),
            SQLiteConfig(db_path=db),
        ]
    )
    async with LogManager(config) as lm:
        for index in range(3):
            await lm.info(f"m{index}")
            assert recorder.messages == [f"m{i}" for i in range(index + 1)]
            assert [message_of(line) for line in read_lines(path)] == recorder.messages
            stats = lm.get_stats()
            assert _counts(stats) == {
                "memory": (index + 1, index + 1, 0),
                "file": (index + 1, index + 1, 0),
                "sqlite": (index + 1, index + 1, 0),
            }
            assert stats.pending == 0
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT message FROM logs ORDER BY id").fetchall()
    assert rows == [("m0",), ("m1",), ("m2",)]


def test_config_errors_with_several_backends() -> None:
    recorder = RecordingBackend()
    with pytest.raises(ConfigError, match="either backend/backend_config or backends") as info:
        Config(backend="console", backends=[recorder])
    assert info.value.key == "backends"
    with pytest.raises(ConfigError, match="either backend/backend_config or backends"):
        Config(backend_config=FileConfig(), backends=[recorder])
    with pytest.raises(ConfigError, match="at least one backend") as info:
        Config(backends=[])
    assert info.value.key == "backends"
    with pytest.raises(ConfigError, match=r"^backends\[1\]: .*object lacks open") as info:
        Config(backends=[recorder, object()])
    assert info.value.key == "backends[1]"
    with pytest.raises(ConfigError, match=r"backends\[0\]"):
        Config(backends=["file"])
    with pytest.raises(ConfigError, match="backends must be a list"):
        Config(backends="file")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Sink\.backend must implement Backend"):
        Sink(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Sink\.level: unknown level name 'LOUD'"):
        Sink(RecordingBackend(), level="LOUD")
    with pytest.raises(ConfigError, match=r"^backends\[2\]: .*int lacks open") as info:
        Config(backends=[recorder, FileConfig(), 42])  # type: ignore[list-item]
    assert info.value.key == "backends[2]"
    with pytest.raises(ConfigError) as info:
        Config(backends=[recorder, RecordingBackend()], fallback=RecordingBackend())
    assert info.value.key == "fallback"
    # One backend in the list: a Backend object may still be the fallback.
    assert len(Config(backends=[recorder], fallback=RecordingBackend()).sinks) == 1


def test_backend_file_given_explicitly_with_backends_is_an_error() -> None:
    # "file" is the default of `backend`, but here the caller gave it: both are given.
    with pytest.raises(ConfigError, match="either backend/backend_config or backends"):
        Config(backend="file", backends=[RecordingBackend()])


@pytest.mark.parametrize("async_mode", [True, False])
async def test_write_log_threadsafe_reaches_every_backend(async_mode: bool) -> None:
    first, second = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(first, name="first"), Sink(second, level="WARNING", name="second")],
        async_mode=async_mode,
    )

    def work(number: int) -> None:
        for index in range(50):
            level = Level.WARNING if index % 2 else Level.INFO
            lm.write_log_threadsafe(level, f"t{number} {index}")

    async with LogManager(config) as lm:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        for _ in range(3):
            await asyncio.sleep(0)
    for number in range(3):
        mine = [m for m in first.messages if m.startswith(f"t{number} ")]
        assert mine == [f"t{number} {index}" for index in range(50)]
        mine = [m for m in second.messages if m.startswith(f"t{number} ")]
        assert mine == [f"t{number} {index}" for index in range(1, 50, 2)]
    stats = lm.get_stats()
    assert _counts(stats) == {"first": (150, 150, 0), "second": (75, 75, 0)}
    _assert_balanced(stats)


async def test_a_full_queue_raises_only_after_the_other_backends_have_the_entry() -> None:
    gate, recorder = GateBackend(), RecordingBackend()
    config = Config(
        raise_errors=True,
        backends=[Sink(gate, name="gate"), Sink(recorder, name="recorder")],
        async_mode=True,
        queue_size=4,
        put_timeout=0.02,
        overflow="timeout",
    )
    async with LogManager(config) as lm:
        try:
            await lm.info("m0")
            await asyncio.wait_for(gate.writing.wait(), 1)  # the gate's worker holds m0
            for index in range(1, 5):
                await lm.info(f"m{index}")  # fills the gate's queue
            with pytest.raises(QueueFullError):
                await lm.info("m5")
            await _until(lambda: len(recorder.entries) == 6)
            assert recorder.messages == [f"m{i}" for i in range(6)]
            stats = lm.get_stats()
            assert _counts(stats) == {"gate": (6, 0, 1), "recorder": (6, 6, 0)}
            assert stats.dropped == 1
        finally:
            gate.release()
    assert recorder.messages == [f"m{i}" for i in range(6)]
    messages = gate.messages
    assert [m for m in messages if not m.startswith("asynclog dropped")] == [
        f"m{i}" for i in range(5)
    ]
    stats = lm.get_stats()
    assert stats.backends["gate"].dropped == 1
    assert stats.backends["recorder"].dropped == 0
    assert stats.backends["recorder"].written == 6
    _assert_balanced(stats)


async def test_each_backend_has_its_own_queue(tmp_path: Path) -> None:
    gate, path = GateBackend(), tmp_path / "app.log"
    config = Config(
        backends=[Sink(gate, name="gate"), FileConfig(file_path=path)],
        async_mode=True,
        queue_size=50,
        overflow="drop_newest",
    )
    async with LogManager(config) as lm:
        try:
            for chunk in range(10):
                for index in range(chunk * 40, chunk * 40 + 40):
                    await lm.info(f"m{index}")
                await _until(lambda: lm.get_stats().backends["file"].pending == 0)
            stats = lm.get_stats()
            # The gate's queue is full and drops; the file's own queue never was.
            # The gate's worker took the first 40 in one batch; 50 more fill its queue.
            assert _counts(stats) == {"gate": (400, 0, 310), "file": (400, 400, 0)}
            assert stats.backends["gate"].queue_size == 50
            assert stats.backends["gate"].pending == 90
        finally:
            gate.release()
    assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(400)]
    assert [m for m in gate.messages if not m.startswith("asynclog dropped")] == [
        f"m{i}" for i in range(90)
    ]
    stats = lm.get_stats()
    assert stats.backends["gate"].written == 91  # 90 entries and one drop report
    assert stats.backends["file"].written == 400
    _assert_balanced(stats)


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def test_one_backend_object_twice_an_empty_name_and_one_file_for_two_kinds_are_refused(
    tmp_path: Path,
) -> None:
    from asynclog import ConfigError

    backend = RecordingBackend()
    with pytest.raises(ConfigError, match=r"backends\[0\] and backends\[1\] both write to the "
                       r"same RecordingBackend object"):
        Config(backends=[Sink(backend, name="a"), backend])
    with pytest.raises(ConfigError, match="a backend's name must be a non-empty str, got ''"):
        Config(backends=[FileConfig(tmp_path / "a.log", name=""), FileConfig(tmp_path / "b")])
    shared = tmp_path / "same"
    with pytest.raises(ConfigError, match=r"backends\[0\] and backends\[1\] both write to the "
                       r"file"):
        Config(backends=[FileConfig(shared), SQLiteConfig(shared)])
