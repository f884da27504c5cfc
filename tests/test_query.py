"""`asynclog.query`: the async API, its filters, time parsing, and the blocking `LogDB`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, Level, LogEntry, LogManager, SQLiteConfig
from asynclog.backends.sqlite import schema_statements
from asynclog.query import LogDB, QueryError, build_select, make_filters, parse_time, query

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp()
TRACEBACK = 'Traceback (most recent call last):\n  File "app.py", line 3\nValueError: boom'

# (ts, level, logger, message, fields, exception): the documented schema, fixed times.
ROWS: list[tuple[float, int, str, str, dict[str, Any], str | None]] = [
    (T0, 10, "api", "cache warm", {}, None),
    (T0 + 60, 20, "api.http", "GET /users 200", {"user_id": 42, "ms": 12.5}, None),
    (T0 + 120, 30, "api", "slow query took 1200ms", {"user_id": "42"}, None),
    (T0 + 3600, 40, "worker", "connection timeout to db1", {"user_id": 7, "retry": True}, None),
    (T0 + 3660, 20, "api", "100% done_ok", {}, None),
    (T0 + 7200, 50, "worker", "crash: timeout exceeded", {"user_id": 42}, TRACEBACK),
    (T0 + 7260, 25, "apix", "custom level", {"note": None}, None),
]


def make_db(path: Path, rows: Sequence[tuple[Any, ...]] = ROWS, fts: bool = False) -> Path:
    """A database with the documented schema (and optionally the FTS5 index) holding `rows`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        for statement in schema_statements("logs"):
            db.execute(statement)
        db.executemany(
            "INSERT INTO logs (ts, level, logger, message, fields, exception) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(ts, lv, lg, msg, json.dumps(f), exc) for ts, lv, lg, msg, f, exc in rows],
        )
        if fts:
            db.execute(
                'CREATE VIRTUAL TABLE logs_fts USING fts5(message, content="logs", '
                'content_rowid="id")'
            )
            db.execute("INSERT INTO logs_fts(logs_fts) VALUES ('rebuild')")
    db.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "app.db")


@pytest.fixture
def fts_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "fts.db", fts=True)


async def messages(path: Path, **filters: Any) -> list[str]:
    return [entry.message async for entry in query(path, **filters)]


async def test_all_entries_oldest_first_as_log_entries(db: Path) -> None:
    entries = [entry async for entry in query(db)]
    assert [entry.message for entry in entries] == [row[3] for row in ROWS]
    crash = entries[5]
    assert isinstance(crash, LogEntry)
    assert crash == LogEntry(
        T0 + 7200, Level.CRITICAL, "crash: timeout exceeded", "worker", {"user_id": 42}, TRACEBACK
    )
    assert crash.level is Level.CRITICAL
    assert entries[0].fields == {}
    assert entries[6].level == 25
    assert entries[6].fields == {"note": None}


async def test_level_means_that_level_and_above(db: Path) -> None:
    assert await messages(db, level="error") == [
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]
    assert await messages(db, level=Level.WARNING) == [
        "slow query took 1200ms",
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]
    assert await messages(db, level="info") == [row[3] for row in ROWS if row[1] >= 20]


def _plan(path: Path, **filters: Any) -> str:
    """SQLite's plan for the query `query(path, **filters)` runs."""
    sql, params = build_select("logs", make_filters(**filters), fts=False)
    with sqlite3.connect(path) as connection:
        plan = connection.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    connection.close()
    return " / ".join(str(row[-1]) for row in plan)


def test_a_level_of_warning_or_above_reads_the_partial_level_index(tmp_path: Path) -> None:
    """Once SQLite knows the table (ANALYZE), a query for the few errors among many INFO rows
    searches the level index; a query for INFO and above reads the table in time order."""
    rows = [(T0 + i, 40 if i % 100 == 0 else 20, "api", f"m{i}", {}, None) for i in range(2_000)]
    path = make_db(tmp_path / "many.db", rows)
    with sqlite3.connect(path) as connection:
        connection.execute("ANALYZE")
    connection.close()
    assert "SEARCH logs USING INDEX logs_level_ts" in _plan(path, level="error")
    assert "SEARCH logs USING INDEX logs_level_ts" in _plan(path, level=Level.WARNING)
    assert "logs_level_ts" not in _plan(path, level="info")
    assert "logs_level_ts" not in _plan(path, level=25)


async def test_a_table_with_the_older_full_level_index_answers_the_same(tmp_path: Path) -> None:
    """Tables created before the level index became partial keep their full index."""
    path = make_db(tmp_path / "old.db")
    with sqlite3.connect(path) as connection:
        connection.execute("DROP INDEX logs_level_ts")
        connection.execute("CREATE INDEX logs_level_ts ON logs (level, ts)")
    connection.close()
    for level in ("debug", "info", 25, "warning", "error", "critical"):
        assert await messages(path, level=level) == [
            row[3]
            for row in ROWS
            if row[1] >= int(Level[level.upper()] if isinstance(level, str) else level)
        ]


async def test_level_custom_number(db: Path) -> None:
    assert await messages(db, level=25) == [
        "slow query took 1200ms",
        "connection timeout to db1",
        "crash: timeout exceeded",
        "custom level",
    ]


async def test_since_inclusive_until_exclusive(db: Path) -> None:
    assert await messages(db, since=T0 + 3600, until=T0 + 7200) == [
        "connection timeout to db1",
        "100% done_ok",
    ]
    assert await messages(db, since="2026-11-27T12:00:00Z") == [
        "crash: timeout exceeded",
        "custom level",
    ]
    naive = datetime(2026, 11, 27, 10, 1)  # naive means UTC
    assert await messages(db, until=naive) == ["cache warm"]
    plus_two = datetime(2026, 11, 27, 12, 1, tzinfo=timezone(timedelta(hours=2)))
    assert await messages(db, until=plus_two) == ["cache warm"]
    assert await messages(db, since=timedelta(hours=1)) == []  # an hour ago: long after 2026-11


async def test_text_like_path(db: Path) -> None:
    assert await messages(db, text="TIMEOUT") == [
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]
    assert await messages(db, text="out") == [
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]
    assert await messages(db, text="0%") == ["100% done_ok"]  # % is literal
    assert await messages(db, text="_") == ["100% done_ok"]  # so is _


async def test_text_fts_path(fts_db: Path) -> None:
    assert await messages(fts_db, text="timeout") == [
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]
    assert await messages(fts_db, text="time") == [  # the last word may be a prefix
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]
    assert await messages(fts_db, text="out") == []  # words, not substrings: FTS is used
    assert await messages(fts_db, text="took 1200ms") == ["slow query took 1200ms"]
    # A quote in the text is plain punctuation, not FTS5 syntax.
    assert await messages(fts_db, text='GET "/users') == ["GET /users 200"]
    assert await messages(fts_db, text="%") == ["100% done_ok"]  # no word: LIKE


async def test_logger_and_its_children(db: Path) -> None:
    assert await messages(db, logger="api") == [
        "cache warm",
        "GET /users 200",
        "slow query took 1200ms",
        "100% done_ok",
    ]
    assert await messages(db, logger="api.http") == ["GET /users 200"]
    assert await messages(db, logger="apix") == ["custom level"]


async def test_fields_as_text_and_number(db: Path) -> None:
    assert await messages(db, fields={"user_id": 42}) == [
        "GET /users 200",
        "slow query took 1200ms",  # "42" the string matches too
        "crash: timeout exceeded",
    ]
    assert await messages(db, fields={"user_id": "42", "ms": "12.5"}) == ["GET /users 200"]
    assert await messages(db, fields={"retry": True}) == ["connection timeout to db1"]
    assert await messages(db, fields={"note": None}) == ["custom level"]
    assert await messages(db, fields={"user_id": "4"}) == []


async def test_limit_gives_the_newest_in_time_order(db: Path) -> None:
    assert await messages(db, limit=2) == ["crash: timeout exceeded", "custom level"]
    assert await messages(db, level="warning", limit=2) == [
        "connection timeout to db1",
        "crash: timeout exceeded",
    ]


async def test_combined_filters(fts_db: Path) -> None:
    found = await messages(
        fts_db,
        level="error",
        since="2026-11-27T10:30:00",
        text="timeout",
        logger="worker",
        fields={"user_id": 42},
        limit=5,
    )
    assert found == ["crash: timeout exceeded"]


async def test_entries_written_by_asynclog_itself(tmp_path: Path) -> None:
    path = tmp_path / "written.db"
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=path), name="svc")
    async with LogManager(config) as lm:
        await lm.write_log(Level.INFO, "started", port=8080)
        await lm.write_log(Level.ERROR, "request failed", user_id=42)
        # The writer is still open (WAL): a read-only reader sees the committed rows.
        entries = [entry async for entry in query(path, fields={"user_id": "42"})]
    assert [(e.level, e.logger, e.message, dict(e.fields)) for e in entries] == [
        (Level.ERROR, "svc", "request failed", {"user_id": 42})
    ]
    assert await messages(path, level="info") == ["started", "request failed"]


async def test_reader_does_not_modify_the_database(db: Path) -> None:
    before = db.read_bytes()
    assert len(await messages(db)) == len(ROWS)
    assert db.read_bytes() == before


async def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match=r"nope\.db: no such file"):
        await messages(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


async def test_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_text("just some text, long enough to not be a database header\n" * 4)
    with pytest.raises(QueryError, match="not an asynclog database: not an SQLite file"):
        await messages(path)


async def test_sqlite_without_the_table(tmp_path: Path, db: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    conn.close()
    with pytest.raises(QueryError, match=r"has no table 'logs' \(tables in it: events\)"):
        await messages(other)
    with pytest.raises(QueryError, match="table 'events' lacks the column"):
        await messages(other, table="events")
    with pytest.raises(QueryError, match="has no table 'audit'"):
        await messages(db, table="audit")


def test_bad_arguments_raise_at_the_call(db: Path) -> None:
    with pytest.raises(ValueError, match="unknown level name"):
        query(db, level="loud")
    with pytest.raises(ValueError, match="not a time"):
        query(db, since="yesterday-ish")
    with pytest.raises(ValueError, match="limit must be a positive int"):
        query(db, limit=0)
    with pytest.raises(ValueError, match="table must be a plain identifier"):
        query(db, table='logs"; DROP TABLE logs; --')
    with pytest.raises(ValueError, match="field name"):
        query(db, fields={'a"b': 1})
    with pytest.raises(ValueError, match="fields must be a mapping"):
        query(db, fields="user_id=42")  # type: ignore[arg-type]


async def test_breaking_out_early_closes_cleanly(db: Path) -> None:
    stream = query(db)
    async for _ in stream:
        break
    await stream.aclose()


def test_parse_time() -> None:
    now = 1_000_000.0
    assert parse_time("30s", now) == now - 30
    assert parse_time("15m", now) == now - 900
    assert parse_time("1h", now) == now - 3600
    assert parse_time("2d", now) == now - 2 * 86400
    assert parse_time("1w", now) == now - 7 * 86400
    assert parse_time("1.5h", now) == now - 5400
    assert parse_time("now", now) == now
    assert parse_time("2026-11-27") == datetime(2026, 11, 27, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-27T10:00:00") == T0
    assert parse_time("2026-11-27T10:00:00Z") == T0
    assert parse_time("2026-11-27T12:00:00+02:00") == T0
    assert parse_time(T0) == T0
    assert parse_time(timedelta(minutes=1), now) == now - 60
    for bad in ("42", "1 hour", "", "2026-13-01", float("nan"), True):
        with pytest.raises(ValueError, match="not a time"):
            parse_time(bad, now)


def test_make_filters_normalises_field_values() -> None:
    filters = make_filters(fields={"a": 1, "b": True, "c": None, "d": 2.5, "e": "x"})
    assert filters.fields == (("a", "1"), ("b", "true"), ("c", "null"), ("d", "2.5"), ("e", "x"))


def test_logdb_blocking_reader(db: Path) -> None:
    with LogDB(db) as reader:
        assert not reader.has_fts
        assert [e.message for e in reader.entries(make_filters(level="critical"))] == [
            "crash: timeout exceeded"
        ]
        assert [row_id for row_id, _ in reader.last(2)] == [6, 7]
        assert [row_id for row_id, _ in reader.after(5)] == [6, 7]
        assert reader.max_id() == 7
        assert reader.count_by_level(make_filters()) == {10: 1, 20: 2, 25: 1, 30: 1, 40: 1, 50: 1}
        assert reader.count_by_hour(make_filters()) == {T0: 3, T0 + 3600: 2, T0 + 7200: 2}
        assert reader.summary(make_filters(logger="worker")) == (2, T0 + 3600, T0 + 7200)


def test_fts_missing_from_sqlite_falls_back_to_like(fts_db: Path) -> None:
    # A broken index (here: its shadow tables are gone) must not break the query.
    with sqlite3.connect(fts_db) as conn:
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("DELETE FROM sqlite_master WHERE name = 'logs_fts_data'")
    conn.close()
    with LogDB(fts_db) as reader:
        assert reader.has_fts
        found = [e.message for e in reader.entries(make_filters(text="out"))]
    assert found == ["connection timeout to db1", "crash: timeout exceeded"]


@pytest.mark.skipif(
    "fts" not in SQLiteConfig.__dataclass_fields__, reason="SQLiteConfig(fts=...) not present"
)
async def test_fts_index_kept_by_the_sqlite_backend(tmp_path: Path) -> None:
    path = tmp_path / "fts_written.db"
    sqlite_config = SQLiteConfig(db_path=path, fts=True)  # type: ignore[call-arg, unused-ignore]
    async with LogManager(Config(backend="sqlite", backend_config=sqlite_config)) as lm:
        await lm.write_log(Level.ERROR, "connection timeout", user_id=42)
        await lm.write_log(Level.INFO, "checkout done")
    with LogDB(path) as reader:
        assert reader.has_fts
    assert await messages(path, text="time") == ["connection timeout"]  # a word prefix
    assert await messages(path, text="out") == []  # not a substring: the index answered
