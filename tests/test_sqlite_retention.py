"""SQLite retention: `max_rows` keeps exactly the newest rows after close, `max_age` deletes
old rows, passes are bounded, and invalid settings are refused."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, ConfigError, LogEntry, LogManager, SQLiteConfig
from asynclog.backends import sqlite as sqlite_backend
from asynclog.backends.sqlite import SQLiteBackend


def _rows(db_path: Path) -> list[tuple[int, float, str]]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT id, ts, message FROM logs ORDER BY id").fetchall()
    db.close()
    return rows


def _count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        (count,) = db.execute("SELECT count(*) FROM logs").fetchone()
    db.close()
    return int(count)


def _entries(start: int, stop: int, ts: float | None = None) -> list[LogEntry]:
    now = time.time() if ts is None else ts
    return [LogEntry(now, 20, f"m {i}", "svc") for i in range(start, stop)]


async def _log_many(db_path: Path, count: int, **options: Any) -> LogManager:
    config = Config(
        backend="sqlite",
        async_mode=True,
        overflow="block",
        batch_size=100,
        backend_config=SQLiteConfig(db_path=db_path, **options),
    )
    async with LogManager(config) as lm:
        for i in range(count):
            await lm.info(f"m {i}")
    return lm


@pytest.mark.parametrize("interval", [0, 60.0])
async def test_max_rows_keeps_exactly_the_newest_rows_after_close(
    db_path: Path, interval: float
) -> None:
    lm = await _log_many(db_path, 5000, max_rows=1000, retention_interval=interval)
    rows = _rows(db_path)
    assert [row[0] for row in rows] == list(range(4001, 5001))
    assert [row[2] for row in rows] == [f"m {i}" for i in range(4000, 5000)]
    assert lm.get_stats().written == 5000


async def test_max_rows_holds_after_every_batch_with_interval_zero(db_path: Path) -> None:
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_rows=1000, retention_interval=0))
    await backend.open()
    try:
        for batch in range(10):
            await backend.write_batch(_entries(batch * 300, (batch + 1) * 300))
            assert _count(db_path) == min((batch + 1) * 300, 1000)
    finally:
        await backend.close()
    assert [row[2] for row in _rows(db_path)] == [f"m {i}" for i in range(2000, 3000)]


async def test_between_passes_rows_may_overshoot_until_the_next_pass(db_path: Path) -> None:
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_rows=100, retention_interval=60))
    await backend.open()
    await backend.write_batch(_entries(0, 50))  # the first batch runs a pass: nothing over
    await backend.write_batch(_entries(50, 300))  # no pass due for 60 s
    assert _count(db_path) == 300
    await backend.close()
    assert [row[2] for row in _rows(db_path)] == [f"m {i}" for i in range(200, 300)]


async def test_a_large_backlog_is_deleted_in_bounded_chunks(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _log_many(db_path, 1000)
    monkeypatch.setattr(sqlite_backend, "RETENTION_CHUNK", 50)
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_rows=100, retention_interval=60))
    await backend.open()
    await backend.write_batch(_entries(1000, 1010))
    assert _count(db_path) == 1010 - 50, "one pass deletes at most a chunk"
    await backend.write_batch(_entries(1010, 1020))
    assert _count(db_path) == 1020 - 100, "a pass that was cut short runs again next batch"
    await backend.write_batch(_entries(1020, 1100))
    assert _count(db_path) == 1100 - 100 - 160, "twice the batch when that is more"
    await backend.close()
    assert [row[2] for row in _rows(db_path)] == [f"m {i}" for i in range(1000, 1100)]


async def test_retention_applies_to_rows_already_in_the_database(db_path: Path) -> None:
    await _log_many(db_path, 500)
    await _log_many(db_path, 10, max_rows=200)
    rows = _rows(db_path)
    assert len(rows) == 200
    assert [row[2] for row in rows] == [f"m {i}" for i in range(310, 500)] + [
        f"m {i}" for i in range(10)
    ]


async def test_close_without_writes_still_applies_max_rows(db_path: Path) -> None:
    await _log_many(db_path, 300)
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_rows=10))
    await backend.open()
    await backend.close()
    assert [row[0] for row in _rows(db_path)] == list(range(291, 301))


@pytest.mark.parametrize("max_age", ["1d", "24h", "1440m", "86400s", 86400, 86400.0])
async def test_max_age_deletes_rows_older_than_now_minus_max_age(
    db_path: Path, max_age: float | str
) -> None:
    now = time.time()
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_age=max_age, retention_interval=0))
    await backend.open()
    try:
        await backend.write_batch(
            [
                LogEntry(now - 3 * 86400, 20, "three days", "svc"),
                LogEntry(now - 86400 - 60, 20, "a day and a minute", "svc"),
                LogEntry(now - 86400 + 60, 20, "a minute short of a day", "svc"),
                LogEntry(now - 5, 20, "recent", "svc"),
            ]
        )
        assert [row[2] for row in _rows(db_path)] == ["a minute short of a day", "recent"]
        await backend.write_batch([LogEntry(now - 7 * 86400, 40, "a week late", "svc")])
        assert [row[2] for row in _rows(db_path)] == ["a minute short of a day", "recent"]
    finally:
        await backend.close()


async def test_max_age_and_max_rows_together(db_path: Path) -> None:
    now = time.time()
    backend = SQLiteBackend(
        SQLiteConfig(db_path=db_path, max_age="1h", max_rows=3, retention_interval=0)
    )
    await backend.open()
    old = [LogEntry(now - 7200, 20, f"old {i}", "svc") for i in range(5)]
    new = [LogEntry(now, 20, f"new {i}", "svc") for i in range(5)]
    await backend.write_batch(old + new)
    await backend.close()
    assert [row[2] for row in _rows(db_path)] == ["new 2", "new 3", "new 4"]


async def test_flush_at_exit_applies_retention(db_path: Path) -> None:
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_rows=50, retention_interval=60))
    await backend.open()
    await backend.write_batch(_entries(0, 100))
    backend.flush_at_exit(_entries(100, 120))
    assert [row[2] for row in _rows(db_path)] == [f"m {i}" for i in range(70, 120)]


async def test_flush_at_exit_prunes_an_open_backend_even_with_nothing_to_write(
    db_path: Path,
) -> None:
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, max_rows=10, retention_interval=60))
    await backend.open()
    await backend.write_batch(_entries(0, 30))
    backend.flush_at_exit([])
    assert [row[2] for row in _rows(db_path)] == [f"m {i}" for i in range(20, 30)]
    backend.flush_at_exit([])  # closed now: nothing to do


class _PublicOnly:
    """An aiosqlite connection without its private `_execute`: the backend's public path."""

    def __init__(self, db: object) -> None:
        self._inner = db

    def __getattr__(self, name: str) -> Any:
        if name == "_execute":
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_the_public_aiosqlite_path_prunes_and_indexes_too(db_path: Path) -> None:
    config = SQLiteConfig(db_path=db_path, max_rows=100, retention_interval=0, fts=True)
    backend = SQLiteBackend(config)
    await backend.open()
    backend._db = _PublicOnly(backend._db)  # type: ignore[assignment]
    backend.retention.interval = 60
    await backend.write_batch(_entries(0, 150))
    assert _count(db_path) == 100
    await backend.write_batch(_entries(150, 200))
    assert _count(db_path) == 150
    await backend.close()
    assert [row[2] for row in _rows(db_path)] == [f"m {i}" for i in range(100, 200)]
    with sqlite3.connect(db_path) as db:
        found = db.execute("SELECT rowid FROM logs_fts WHERE logs_fts MATCH '199'").fetchall()
        db.execute("INSERT INTO logs_fts(logs_fts, rank) VALUES('integrity-check', 1)")
    db.close()
    assert found == [(200,)]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7d", 7 * 86400.0),
        ("12h", 12 * 3600.0),
        ("30m", 1800.0),
        ("45s", 45.0),
        ("1.5h", 5400.0),
        (10, 10.0),
        (0.5, 0.5),
        (None, None),
    ],
)
def test_max_age_accepts_seconds_and_durations(value: float | str | None, seconds: float) -> None:
    assert SQLiteConfig(max_age=value).max_age_seconds == seconds


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({"max_rows": 0}, "max_rows", "SQLiteConfig.max_rows must be an int >= 1 or None, got 0"),
        ({"max_rows": -5}, "max_rows", "got -5"),
        ({"max_rows": 1.5}, "max_rows", "got 1.5"),
        ({"max_rows": True}, "max_rows", "got True"),
        ({"max_rows": "10"}, "max_rows", "got '10'"),
        ({"max_age": 0}, "max_age", "SQLiteConfig.max_age must be seconds > 0 or a duration"),
        ({"max_age": -1.0}, "max_age", "got -1.0"),
        ({"max_age": math.inf}, "max_age", "got inf"),
        ({"max_age": math.nan}, "max_age", "got nan"),
        ({"max_age": True}, "max_age", "got True"),
        ({"max_age": "7"}, "max_age", "got '7'"),
        ({"max_age": "7w"}, "max_age", "got '7w'"),
        ({"max_age": "d"}, "max_age", "got 'd'"),
        ({"max_age": "0s"}, "max_age", "got '0s'"),
        ({"max_age": "-1h"}, "max_age", "got '-1h'"),
        ({"max_age": " 7d"}, "max_age", "got ' 7d'"),
        ({"max_age": "1.2.3h"}, "max_age", "got '1.2.3h'"),
        ({"max_age": ""}, "max_age", "got ''"),
        ({"retention_interval": -1}, "retention_interval", "retention_interval must be >= 0"),
        ({"retention_interval": "1s"}, "retention_interval", "must be a number"),
        ({"fts": "yes"}, "fts", "SQLiteConfig.fts must be a bool, got 'yes'"),
        ({"fts": 1}, "fts", "SQLiteConfig.fts must be a bool, got 1"),
    ],
)
def test_invalid_retention_and_fts_settings_raise_config_error(
    options: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
        SQLiteConfig(**options)
    assert caught.value.key == key
