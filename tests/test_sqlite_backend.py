"""SQLite backend: the documented schema, WAL, fields as JSON, values bound as parameters."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from asynclog import Config, LogError, LogManager, SQLiteConfig


async def _log(db_path: Path, table: str = "logs", async_mode: bool = True) -> LogManager:
    config = Config(
        backend="sqlite",
        async_mode=async_mode,
        name="svc",
        backend_config=SQLiteConfig(db_path=db_path, table=table),
    )
    async with LogManager(config) as lm:
        await lm.info("plain")
        await lm.warning(
            "with fields",
            user_id=42,
            tags=["a", "b"],
            nested={"k": None},
            obj=complex(1, 2),
            when=1.5,
        )
        await lm.error("quote ' and \" and ); DROP TABLE logs; --")
        await lm.info("multi\nline\r\nmessage")
    return lm


def _rows(db_path: Path, table: str = "logs") -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            f"SELECT level, logger, message, fields, exception FROM {table} ORDER BY id"
        )
        result = rows.fetchall()
    db.close()
    return result


async def test_rows_hold_level_logger_message_and_json_fields(db_path: Path) -> None:
    await _log(db_path)
    rows = _rows(db_path)
    assert [row[:3] for row in rows] == [
        (20, "svc", "plain"),
        (30, "svc", "with fields"),
        (40, "svc", "quote ' and \" and ); DROP TABLE logs; --"),
        (20, "svc", "multi\nline\r\nmessage"),
    ]
    assert rows[0][3] == "{}"
    fields = json.loads(str(rows[1][3]))
    assert (
        fields["user_id"] == 42 and fields["tags"] == ["a", "b"] and fields["nested"] == {"k": None}
    )
    assert fields["when"] == 1.5
    assert fields["obj"] == "(1+2j)", "values JSON cannot hold are stored as their repr"
    assert all(row[4] is None for row in rows)


async def test_fields_are_queryable_with_json_extract(db_path: Path) -> None:
    await _log(db_path)
    with sqlite3.connect(db_path) as db:
        found = db.execute(
            "SELECT message FROM logs WHERE json_extract(fields, '$.user_id') = 42"
        ).fetchall()
    db.close()
    assert found == [("with fields",)]


async def test_schema_indexes_and_wal_are_as_documented(db_path: Path) -> None:
    await _log(db_path, table="app_logs")
    with sqlite3.connect(db_path) as db:
        columns = [(r[1], r[2], r[3], r[5]) for r in db.execute("PRAGMA table_info(app_logs)")]
        indexes = {
            r[1]: [c[2] for c in db.execute(f"PRAGMA index_info({r[1]})")]
            for r in db.execute("PRAGMA index_list(app_logs)")
        }
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert columns == [
        ("id", "INTEGER", 0, 1),
        ("ts", "REAL", 1, 0),
        ("level", "INTEGER", 1, 0),
        ("logger", "TEXT", 1, 0),
        ("message", "TEXT", 1, 0),
        ("fields", "TEXT", 0, 0),
        ("exception", "TEXT", 0, 0),
        ("host", "TEXT", 0, 0),
        ("pid", "INTEGER", 0, 0),
        ("module", "TEXT", 0, 0),
        ("function", "TEXT", 0, 0),
        ("line", "INTEGER", 0, 0),
        ("trace_id", "TEXT", 0, 0),
        ("span_id", "TEXT", 0, 0),
        ("trace_flags", "INTEGER", 0, 0),
    ]
    assert indexes == {
        "app_logs_ts": ["ts"],
        "app_logs_level_ts": ["level", "ts"],
        "app_logs_trace": ["trace_id"],
    }
    assert mode == "wal"
    with sqlite3.connect(db_path) as db:
        (level_index,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'app_logs_level_ts'"
        ).fetchone()
        # Only WARNING and above are in the level index (LEVEL_INDEX_FLOOR): 2 of the 4 rows.
        (indexed,) = db.execute(
            "SELECT count(*) FROM app_logs INDEXED BY app_logs_level_ts WHERE level >= 30"
        ).fetchone()
    db.close()
    assert level_index.endswith("(level, ts) WHERE level >= 30")
    assert indexed == 2


async def test_reopening_appends_to_the_same_table(db_path: Path) -> None:
    await _log(db_path, async_mode=False)
    await _log(db_path)
    assert len(_rows(db_path)) == 8


async def test_lone_surrogates_are_escaped_instead_of_failing(db_path: Path) -> None:
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path))
    async with LogManager(config) as lm:
        await lm.info("bad \udc80 text", field="x\ud800y")
    ((_, _, message, fields, _),) = _rows(db_path)
    assert message == "bad \\udc80 text"
    assert json.loads(str(fields)) == {"field": "x\ud800y"}, "JSON escapes round-trip exactly"
    assert lm.get_stats().write_errors == 0


async def test_a_database_that_cannot_be_opened_raises_log_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = blocker / "app.db"
    lm = LogManager(Config(backend="sqlite", backend_config=SQLiteConfig(db_path=path)))
    with pytest.raises(LogError, match=f"cannot open SQLite database '{path}'"):
        await lm.start()


async def test_a_file_that_is_not_a_database_raises_log_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    lm = LogManager(Config(backend="sqlite", backend_config=SQLiteConfig(db_path=path)))
    with pytest.raises(LogError, match=f"SQLite database '{path}'"):
        await lm.start()


@pytest.mark.parametrize(
    "logger", ["svc", "o'brien", "x'); DROP TABLE logs; --", "nul\x00inside", "caf\u00e9 \udc80"]
)
async def test_plain_and_mixed_batches_store_every_column_whatever_the_logger_name(
    tmp_path: Path, logger: str
) -> None:
    """A batch of plain entries binds (ts, level, message) and writes the logger, host and pid
    as literals; any other batch binds every column. Both must store the same row."""
    import os
    import socket

    from asynclog._entry import LogEntry
    from asynclog.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(SQLiteConfig(db_path=tmp_path / "p.db"))
    await backend.open()
    plain = [LogEntry(1000.0 + i, 20, f"plain {i} ' \"", logger) for i in range(300)]
    mixed = [
        LogEntry(2000.0, 30, "first plain", logger),
        LogEntry(2001.0, 40, "with fields", logger, {"k": "v"}),
        LogEntry(2002.0, 50, "with traceback", logger, exception="Traceback ...\n"),
        LogEntry(2003.0, 20, "another logger", "other"),
    ]
    try:
        await backend.write_batch(plain)
        await backend.write_batch(mixed)
    finally:
        await backend.close()
    stored_logger = logger.encode("utf-8", "backslashreplace").decode("utf-8")
    with sqlite3.connect(tmp_path / "p.db") as db:
        rows = db.execute(
            "SELECT ts, level, logger, message, fields, exception, host, pid FROM logs ORDER BY id"
        ).fetchall()
    host, pid = socket.gethostname(), os.getpid()
    assert rows[:300] == [
        (1000.0 + i, 20, stored_logger, f"plain {i} ' \"", "{}", None, host, pid)
        for i in range(300)
    ]
    assert rows[300:] == [
        (2000.0, 30, stored_logger, "first plain", "{}", None, host, pid),
        (2001.0, 40, stored_logger, "with fields", '{"k": "v"}', None, host, pid),
        (2002.0, 50, stored_logger, "with traceback", "{}", "Traceback ...\n", host, pid),
        (2003.0, 20, "other", "another logger", "{}", None, host, pid),
    ]
    with sqlite3.connect(tmp_path / "p.db") as db:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'logs'")
        assert tables.fetchone() == (1,)


@pytest.mark.parametrize("with_fields", [False, True])
@pytest.mark.parametrize("count", [1, 1024, 2100])
async def test_big_batches_are_inserted_whole_and_in_order(
    tmp_path: Path, count: int, with_fields: bool
) -> None:
    """Rows go in as a few multi-row INSERTs (sizes 1024, 512, ..., 1): every row lands once,
    ids follow the batch order."""
    from asynclog._entry import LogEntry
    from asynclog.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(SQLiteConfig(db_path=tmp_path / "big.db"))
    await backend.open()
    fields = {"n": 1} if with_fields else {}
    try:
        await backend.write_batch(
            [LogEntry(float(i), 20, f"m{i}", "svc", fields) for i in range(count)]
        )
    finally:
        await backend.close()
    with sqlite3.connect(tmp_path / "big.db") as db:
        rows = db.execute("SELECT id, ts, message, fields FROM logs ORDER BY id").fetchall()
    expected_fields = '{"n": 1}' if with_fields else "{}"
    assert rows == [(i + 1, float(i), f"m{i}", expected_fields) for i in range(count)]


@pytest.mark.parametrize(("first", "second"), [("a", "A_level"), ("a_level", "a")])
async def test_a_table_whose_index_name_another_table_has_is_refused(
    tmp_path: Path, first: str, second: str
) -> None:
    """`a_level_ts` is table `a`'s level index and the `ts` index a table `a_level` needs:
    the second table is refused with a LogError naming both (and left uncreated), instead of
    going without its index."""
    path = tmp_path / "two.db"
    async with LogManager(Config(backend_config=SQLiteConfig(db_path=path, table=first))) as lm:
        await lm.info("first")
    second_config = Config(backend_config=SQLiteConfig(db_path=path, table=second))
    with pytest.raises(LogError) as raised:
        async with LogManager(second_config):
            pass
    assert str(raised.value) == (
        f"SQLite table {second!r} in {str(path)!r} needs an index named 'a_level_ts', which "
        f"table {first!r} already has: choose another SQLiteConfig.table"
    )
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    db.close()
    assert tables == [first]
    async with LogManager(Config(backend_config=SQLiteConfig(db_path=path, table=first))) as lm:
        await lm.info("first, again")
    assert [row[2] for row in _rows(path, first)] == ["first", "first, again"]
