"""`Config(capture_location=True)`: the module, function and line of each call, in every
format and backend (docs/configuration.md, docs/backends-and-formats.md)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from asynclog import (
    Config,
    ConfigError,
    FileConfig,
    Location,
    LogEntry,
    LogManager,
    SQLiteConfig,
    query,
)
from asynclog.backends.sqlite import SQLiteBackend
from asynclog.query import TRACE_COLUMNS
from asynclog.stdlib import AsyncLogHandler
from asynclog.testing import capture_logs

from .conftest import RecordingBackend, read_lines
from .pg_support import PG_DSN, drop_table, fetch, fresh_table_name, requires_pg

TIME = r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\d\d\d\dZ"


def _line_of(text: str) -> int:
    """The line number, in this file, of the line holding `text` (other than this one)."""
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line and "_line_of" not in line)


def _here(function: str, marker: str) -> Location:
    return Location(__name__, function, _line_of(marker))


def test_capture_location_is_off_by_default_and_must_be_a_bool() -> None:
    assert Config().capture_location is False
    with pytest.raises(ConfigError, match=r"^capture_location must be a bool, got 'yes'"):
        Config(capture_location="yes")  # type: ignore[arg-type]
    assert Config.from_dict({"capture_location": True}).capture_location is True
    with pytest.raises(ConfigError, match="capture_location"):
        Config.from_dict({"capture_location": 1})


async def test_without_it_entries_have_no_location() -> None:
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("plain")
            await lm.info("fields", a=1)
    assert [entry.location for entry in captured] == [None, None]


async def _helper(lm: LogManager, **keywords: Any) -> None:
    await lm.info("helper", **keywords)  # the helper's call


@pytest.mark.parametrize("async_mode", [True, False])
async def test_every_way_of_logging_records_its_callers_line(async_mode: bool) -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, capture_location=True, async_mode=async_mode)
    name = "test_every_way_of_logging_records_its_callers_line"
    async with LogManager(config) as lm:
        await lm.info("info")  # call 1
        await lm.write_log("warning", "write_log", k=1)  # call 2
        try:
            raise ValueError("x")
        except ValueError:
            await lm.exception("exception")  # call 3
        view = lm.bind(svc="api").bind(more=1)
        await view.error("bound")  # call 4
        await view.write_log("info", "bound write_log")  # call 5
        await _helper(lm)  # call 6
        await _helper(lm, stacklevel=2)  # call 7
        with capture_logs():
            await lm.debug("captured")  # call 8
    assert [entry.location for entry in backend.entries] == [
        _here(name, "# call 1"),
        _here(name, "# call 2"),
        _here(name, "# call 3"),
        _here(name, "# call 4"),
        _here(name, "# call 5"),
        _here("_helper", "# the helper's call"),
        _here(name, "# call 7"),
        _here(name, "# call 8"),
    ]


async def test_threadsafe_calls_record_the_threads_caller() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, capture_location=True)) as lm:

        def log_from_thread() -> None:
            lm.write_log_threadsafe("info", "thread")  # the thread's call
            lm.bind(v=1).write_log_threadsafe("info", "thread, bound")  # the bound one

        thread = threading.Thread(target=log_from_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0.05)
    assert [entry.location for entry in backend.entries] == [
        _here("log_from_thread", "# the thread's call"),
        _here("log_from_thread", "# the bound one"),
    ]


@pytest.mark.parametrize("capture", [True, False])
async def test_stdlib_records_keep_their_own_location(capture: bool) -> None:
    backend = RecordingBackend()
    logger = logging.getLogger("asynclog.test.location")
    logger.propagate = False
    async with LogManager(Config(backend=backend, capture_location=capture)) as lm:
        handler = AsyncLogHandler(lm)
        logger.addHandler(handler)
        try:
            logger.warning("stdlib")  # the stdlib call
            await asyncio.sleep(0.05)
        finally:
            logger.removeHandler(handler)
    (entry,) = backend.entries
    if not capture:
        assert entry.location is None
        return
    # logging's own `module` is the file's name without its extension.
    assert entry.location == Location(
        "test_location",
        "test_stdlib_records_keep_their_own_location",
        _line_of("# the stdlib call"),
    )


@pytest.mark.parametrize(
    ("format", "pattern"),
    [
        (
            "text",
            TIME + r" INFO asynclog tests\.test_location:{function}:{line} hello user=1",
        ),
        (
            "json",
            r'\{{"timestamp": "' + TIME + r'", "level": "INFO", "logger": "asynclog", '
            r'"message": "hello", "fields": \{{"user": 1\}}, "exception": null, '
            r'"module": "tests\.test_location", "function": "{function}", "line": {line}\}}',
        ),
        (
            "logfmt",
            r"ts=" + TIME + r" level=info logger=asynclog msg=hello "
            r"module=tests\.test_location function={function} line={line} user=1",
        ),
    ],
)
async def test_each_format_writes_the_location(tmp_path: Path, format: str, pattern: str) -> None:
    path = tmp_path / "app.log"
    config = Config(
        backend="file",
        backend_config=FileConfig(file_path=path, format=format),  # type: ignore[arg-type]
        capture_location=True,
    )
    async with LogManager(config) as lm:
        await lm.info("hello", user=1)  # the formatted call
    (line,) = read_lines(path)
    expected = pattern.format(
        function="test_each_format_writes_the_location", line=_line_of("# the formatted call")
    )
    assert re.fullmatch(expected, line), line


@pytest.mark.parametrize("format", ["text", "json", "logfmt"])
async def test_without_it_the_formats_are_as_before(tmp_path: Path, format: str) -> None:
    path = tmp_path / "app.log"
    config = Config(
        backend="file",
        backend_config=FileConfig(file_path=path, format=format),  # type: ignore[arg-type]
    )
    async with LogManager(config) as lm:
        await lm.info("hello", line=1)
    (line,) = read_lines(path)
    assert "test_location" not in line and "module" not in line
    if format == "json":
        assert line.endswith('"fields": {"line": 1}, "exception": null}')
    else:
        assert line.endswith("hello line=1")


async def test_logfmt_renames_a_field_named_like_a_location_key(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = Config(
        backend="file",
        backend_config=FileConfig(file_path=path, format="logfmt"),
        capture_location=True,
    )
    async with LogManager(config) as lm:
        await lm.info("m", line="field")
    (line,) = read_lines(path)
    assert line.endswith(" fields.line=field")


async def test_sqlite_stores_the_location_and_query_reads_it_back(db_path: Path) -> None:
    config = Config(
        backend="sqlite", backend_config=SQLiteConfig(db_path=db_path), capture_location=True
    )
    async with LogManager(config) as lm:
        await lm.info("located")  # the sqlite call
    async with LogManager(
        Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path))
    ) as lm:
        await lm.info("not located")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT message, module, function, line FROM logs ORDER BY id")
        found = rows.fetchall()
    conn.close()
    line = _line_of("# the sqlite call")
    function = "test_sqlite_stores_the_location_and_query_reads_it_back"
    assert found == [
        ("located", __name__, function, line),
        ("not located", None, None, None),
    ]
    assert [entry.location async for entry in query(db_path)] == [
        Location(__name__, function, line),
        None,
    ]


OLD_TABLE = (
    "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, level INTEGER NOT NULL, "
    "logger TEXT NOT NULL, message TEXT NOT NULL, fields TEXT, exception TEXT{more})"
)


@pytest.mark.parametrize(
    ("version", "more", "added"),
    [
        (0, "", ("host", "pid", "module", "function", "line", *TRACE_COLUMNS)),
        (1, ", host TEXT, pid INTEGER", ("module", "function", "line", *TRACE_COLUMNS)),
    ],
)
async def test_an_older_sqlite_database_is_migrated_in_place(
    db_path: Path, version: int, more: str, added: tuple[str, ...]
) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(OLD_TABLE.format(more=more))
        conn.execute(
            "INSERT INTO logs (ts, level, logger, message, fields) "
            "VALUES (1.0, 20, 'old', 'old', '{}')"
        )
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    # Reading back works before the migration too.
    assert [entry.location async for entry in query(db_path)] == [None]
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path))
    await backend.open()
    await backend.write_batch([LogEntry(2.0, 30, "new", "svc", location=Location("m", "f", 3))])
    await backend.close()
    assert backend.added_columns == added
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT message, module, function, line FROM logs ORDER BY id")
        found = rows.fetchall()
        (user_version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    assert found == [("old", None, None, None), ("new", "m", "f", 3)]
    assert user_version == 3
    assert [entry.location async for entry in query(db_path)] == [None, Location("m", "f", 3)]


def test_otlp_records_carry_the_code_attributes() -> None:
    pytest.importorskip("opentelemetry.proto")
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from asynclog.backends._otlp_encode import encode, key_values

    located = LogEntry(
        1.0,
        20,
        "m",
        "svc",
        {"code.line.number": "field", "k": 1},
        None,
        None,
        Location("app.views", "handle", 42),
    )
    plain = LogEntry(1.0, 20, "m", "svc", {"k": 1})
    data = encode([located, plain], key_values({"service.name": "x"}))
    records = ExportLogsServiceRequest.FromString(data).resource_logs[0].scope_logs[0].log_records
    got = [
        {item.key: getattr(item.value, str(item.value.WhichOneof("value"))) for item in attributes}
        for attributes in (record.attributes for record in records)
    ]
    assert got == [
        {"k": 1, "code.function.name": "app.views.handle", "code.line.number": 42},
        {"k": 1},
    ]


@pytest.fixture
async def pg_table() -> Any:
    name = fresh_table_name()
    yield name
    await drop_table(name)


@requires_pg
async def test_postgres_stores_the_location(pg_table: str) -> None:
    from asynclog import PostgresConfig

    config = Config(
        backend="postgres",
        backend_config=PostgresConfig(dsn=PG_DSN, table=pg_table),
        capture_location=True,
    )
    async with LogManager(config) as lm:
        await lm.info("located")  # the postgres call
        await lm.info("again")  # the second postgres call
    rows = await fetch(f'SELECT message, module, function, line FROM "{pg_table}" ORDER BY id')
    function = "test_postgres_stores_the_location"
    assert [tuple(row) for row in rows] == [
        ("located", __name__, function, _line_of("# the postgres call")),
        ("again", __name__, function, _line_of("# the second postgres call")),
    ]


@requires_pg
async def test_an_older_postgres_table_gets_the_location_columns(pg_table: str) -> None:
    from asynclog import PostgresConfig
    from asynclog.backends.postgres import PostgresBackend

    await fetch(
        f'CREATE TABLE "{pg_table}" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
        "ts timestamptz NOT NULL, level smallint NOT NULL, logger text NOT NULL, "
        "message text NOT NULL, fields jsonb NOT NULL DEFAULT '{}', exception text, "
        "host text, pid integer, batch_id uuid)"
    )
    await fetch(
        f"INSERT INTO \"{pg_table}\" (ts, level, logger, message) VALUES (now(), 20, 'old', 'old')"
    )
    backend = PostgresBackend(PostgresConfig(dsn=PG_DSN, table=pg_table))
    await backend.open()
    await backend.write_batch([LogEntry(2.0, 30, "new", "svc", location=Location("m", "f", 3))])
    await backend.close()
    rows = await fetch(f'SELECT message, module, function, line FROM "{pg_table}" ORDER BY id')
    assert [tuple(row) for row in rows] == [("old", None, None, None), ("new", "m", "f", 3)]


@requires_pg
async def test_a_table_the_backend_may_not_change_is_written_without_location(
    pg_table: str,
) -> None:
    from asynclog import PostgresConfig
    from asynclog.backends.postgres import PostgresBackend

    await fetch(
        f'CREATE TABLE "{pg_table}" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
        "ts timestamptz NOT NULL, level smallint NOT NULL, logger text NOT NULL, "
        "message text NOT NULL, fields jsonb NOT NULL DEFAULT '{}', exception text, "
        "host text, pid integer, batch_id uuid)"
    )
    backend = PostgresBackend(PostgresConfig(dsn=PG_DSN, table=pg_table, create_table=False))
    await backend.open()
    await backend.write_batch([LogEntry(2.0, 30, "new", "svc", location=Location("m", "f", 3))])
    await backend.close()
    rows = await fetch(f'SELECT message FROM "{pg_table}" ORDER BY id')
    columns = await fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", pg_table
    )
    assert [row["message"] for row in rows] == ["new"]
    assert "module" not in {row["column_name"] for row in columns}
