"""SQLite FTS5 index of `message`: created on request, kept in step with inserts, retention
deletes and updates, built from old rows when turned on later."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, LogEntry, LogError, LogManager, SQLiteConfig
from asynclog.backends import sqlite as sqlite_backend
from asynclog.backends.sqlite import SQLiteBackend


def _timeout_message(i: int) -> str:
    return f"request {i} failed: upstream timeout" if i % 100 == 7 else f"request {i} ok"


async def _log(db_path: Path, messages: list[str], **options: Any) -> None:
    config = Config(
        backend="sqlite",
        async_mode=True,
        overflow="block",
        batch_size=100,
        backend_config=SQLiteConfig(db_path=db_path, **options),
    )
    async with LogManager(config) as lm:
        for message in messages:
            await lm.info(message)


def _match(db_path: Path, query: str, table: str = "logs") -> list[int]:
    with sqlite3.connect(db_path) as db:
        ids = db.execute(
            f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ? ORDER BY rowid", (query,)
        ).fetchall()
    db.close()
    return [row[0] for row in ids]


def _assert_in_step(db_path: Path, table: str = "logs") -> None:
    """The index holds exactly the table's rows (integrity-check with rank 1 compares the
    index with the content table)."""
    with sqlite3.connect(db_path) as db:
        db.execute(f"INSERT INTO {table}_fts({table}_fts, rank) VALUES('integrity-check', 1)")
        (indexed,) = db.execute(f"SELECT count(*) FROM {table}_fts_docsize").fetchone()
        (rows,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    db.close()
    assert indexed == rows


async def test_match_returns_exactly_the_matching_ids(db_path: Path) -> None:
    await _log(db_path, [_timeout_message(i) for i in range(1000)], fts=True)
    assert _match(db_path, "timeout") == [i + 1 for i in range(1000) if i % 100 == 7]
    assert _match(db_path, '"upstream timeout" AND 407') == [408]
    assert len(_match(db_path, "ok")) == 990
    _assert_in_step(db_path)


async def test_the_fts_table_is_external_content_on_message(db_path: Path) -> None:
    await _log(db_path, ["x"], fts=True, table="app_logs")
    with sqlite3.connect(db_path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'app_logs_fts'").fetchone()
        triggers = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        ).fetchall()
    db.close()
    assert sql == (
        'CREATE VIRTUAL TABLE "app_logs_fts" '
        'USING fts5(message, content="app_logs", content_rowid="id")'
    )
    assert [t[0] for t in triggers] == [
        "app_logs_fts_delete",
        "app_logs_fts_insert",
        "app_logs_fts_update",
    ]
    assert _match(db_path, "x", table="app_logs") == [1]


async def test_retention_deletes_leave_the_index_in_step(db_path: Path) -> None:
    messages = [_timeout_message(i) for i in range(1000)]
    await _log(db_path, messages, fts=True, max_rows=300, retention_interval=0)
    assert _match(db_path, "timeout") == [i + 1 for i in range(700, 1000) if i % 100 == 7]
    assert _match(db_path, "407") == [], "a deleted message is no longer found"
    assert _match(db_path, "707") == [708]
    _assert_in_step(db_path)


async def test_max_age_deletes_leave_the_index_in_step(db_path: Path) -> None:
    now = time.time()
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, fts=True, max_age="1h"))
    await backend.open()
    await backend.write_batch(
        [
            LogEntry(now - 7200, 40, "disk full on old host", "svc"),
            LogEntry(now, 40, "disk full on new host", "svc"),
        ]
    )
    await backend.close()
    assert _match(db_path, "disk full") == [2]
    assert _match(db_path, "old") == []
    _assert_in_step(db_path)


async def test_turning_fts_on_indexes_the_rows_already_there(db_path: Path) -> None:
    await _log(db_path, [_timeout_message(i) for i in range(200)])
    await _log(db_path, ["late timeout", "late ok"], fts=True)
    assert _match(db_path, "timeout") == [8, 108, 201]
    await _log(db_path, ["later timeout"], fts=True)  # reopening does not index twice
    assert _match(db_path, "timeout") == [8, 108, 201, 203]
    _assert_in_step(db_path)


async def test_missing_triggers_are_recreated_and_the_index_rebuilt(db_path: Path) -> None:
    await _log(db_path, ["one timeout"], fts=True)
    with sqlite3.connect(db_path) as db:
        db.execute("DROP TRIGGER logs_fts_insert")
        db.execute(
            "INSERT INTO logs (ts, level, logger, message) VALUES (0, 20, 'x', 'two timeout')"
        )
    db.close()
    await _log(db_path, ["three timeout"], fts=True)
    assert _match(db_path, "timeout") == [1, 2, 3]
    _assert_in_step(db_path)


async def test_with_fts_off_the_triggers_in_the_database_keep_the_index_in_step(
    db_path: Path,
) -> None:
    await _log(db_path, ["first timeout"] * 5, fts=True)
    await _log(db_path, ["second timeout", "fine"], fts=False, max_rows=4, retention_interval=0)
    assert _match(db_path, "timeout") == [4, 5, 6]
    assert _match(db_path, "first") == [4, 5]
    _assert_in_step(db_path)


async def test_updates_and_manual_deletes_stay_in_step(db_path: Path) -> None:
    await _log(db_path, ["alpha", "beta", "gamma"], fts=True)
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE logs SET message = 'delta' WHERE id = 2")
        db.execute("DELETE FROM logs WHERE id = 3")
    db.close()
    assert (_match(db_path, "beta"), _match(db_path, "delta"), _match(db_path, "gamma")) == (
        [],
        [2],
        [],
    )
    _assert_in_step(db_path)


async def test_flush_at_exit_keeps_the_index_in_step(db_path: Path) -> None:
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path, fts=True, max_rows=3))
    await backend.open()
    await backend.write_batch([LogEntry(time.time(), 20, f"early {i}", "svc") for i in range(3)])
    backend.flush_at_exit([LogEntry(time.time(), 20, f"exit {i}", "svc") for i in range(2)])
    assert _match(db_path, "exit") == [4, 5]
    assert _match(db_path, "early") == [3]
    _assert_in_step(db_path)


async def test_unicode_and_quotes_are_indexed(db_path: Path) -> None:
    await _log(db_path, ["café déjà vu", 'it\'s "quoted"', "bad \udc80 byte"], fts=True)
    assert _match(db_path, "café") == [1]
    assert _match(db_path, '"quoted"') == [2]
    assert _match(db_path, "byte") == [3]
    _assert_in_step(db_path)


async def test_without_fts5_open_raises_log_error_naming_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_fts5(db: object) -> bool:
        return False

    monkeypatch.setattr(sqlite_backend, "_has_fts5", no_fts5)
    lm = LogManager(
        Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path, fts=True))
    )
    with pytest.raises(LogError, match="needs SQLite's FTS5 extension"):
        await lm.start()
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name LIKE '%fts%'").fetchall() == []
    db.close()


FORGETFUL = """
    import asyncio, sys
    from asynclog import Config, LogManager, SQLiteConfig
    managers = []

    async def main():
        config = SQLiteConfig(db_path=sys.argv[1], fts=True, max_rows=100, retention_interval=60)
        lm = LogManager(Config(backend="sqlite", backend_config=config, async_mode=True))
        managers.append(lm)  # kept alive, never closed
        await lm.start()
        for index in range(3000):
            await lm.info(f"m{index} done")

    asyncio.run(main())
"""


def test_a_program_that_forgets_close_still_prunes_and_indexes(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORGETFUL), str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db_path) as db:
        messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    db.close()
    assert len(messages) == 100
    assert messages[-1] == "m2999 done"
    assert len(_match(db_path, "m2999")) == 1
    assert _match(db_path, "m0") == []
    _assert_in_step(db_path)
