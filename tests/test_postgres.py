"""The PostgreSQL backend: config validation (always), and against a real server (when
ASYNCLOG_TEST_PG_DSN is set; CI sets it with .ci/postgres.sh): the schema, jsonb fields, a
batch whose COMMIT acknowledgement is lost, a killed session, 4 processes into one table,
and a server restarted mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, ConfigError, Level, Location, LogEntry, LogError, LogManager
from asynclog._postgres_config import PostgresConfig, mask_dsn
from asynclog.backends.postgres import (
    COLUMNS,
    LOCATION_COLUMNS,
    TRACE_COLUMNS,
    PostgresBackend,
    RowMaker,
    is_transient,
    pg_json,
    pg_microseconds,
    pg_text,
)
from asynclog.formatters import fields_to_json

from .conftest import assert_settled
from .pg_support import (
    PG_DSN,
    asyncpg_module,
    drop_table,
    fetch,
    fetchval,
    fresh_table_name,
    requires_cluster,
    requires_pg,
    restart_cluster,
    wait_until_up,
)

SECRET_DSN = "postgresql://app:s3cr3t-pw@db.example:5432/logs"


# --- configuration (no server needed) ---------------------------------------------------


def test_config_defaults_and_masked_repr() -> None:
    config = PostgresConfig(dsn=SECRET_DSN)
    assert config.table == "logs" and config.schema is None and config.create_table
    assert config.qualified_table == '"logs"'
    assert PostgresConfig(dsn=SECRET_DSN, schema="audit").qualified_table == '"audit"."logs"'
    for text in (repr(config), str(config), config.masked_dsn):
        assert "s3cr3t-pw" not in text
    assert "postgresql://app:***@db.example:5432/logs" in repr(config)
    backend = PostgresBackend(config)  # constructing connects to nothing
    assert "s3cr3t-pw" not in repr(backend)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgres://u:p%40ss:w@h:1/db?sslmode=require", "postgres://u:***@h:1/db?sslmode=require"),
        (
            "postgresql://u@h/db?password=pw&sslmode=off",
            "postgresql://u@h/db?password=***&sslmode=off",
        ),
        ("postgresql://h/db?sslmode=off&PASSWORD=pw", "postgresql://h/db?sslmode=off&PASSWORD=***"),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("postgresql:///db?host=/var/run/postgresql", "postgresql:///db?host=/var/run/postgresql"),
    ],
)
def test_mask_dsn(dsn: str, shown: str) -> None:
    assert mask_dsn(dsn) == shown


def test_dsn_is_required_and_never_echoed() -> None:
    with pytest.raises(ConfigError, match="dsn is required") as missing:
        PostgresConfig()
    assert missing.value.key == "dsn"
    with pytest.raises(ConfigError, match="dsn is required") as wrong:
        PostgresConfig(dsn="mysql://root:hunter2@db/x")
    assert "hunter2" not in str(wrong.value)
    with pytest.raises(ConfigError, match="dsn"):
        PostgresConfig(dsn=b"postgresql://h/db")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("table", ""),
        ("table", "logs; DROP TABLE users"),
        ("table", 'lo"gs'),
        ("table", "1logs"),
        ("table", "tablé"),
        ("table", "x" * 55),
        ("schema", "public.logs"),
        ("schema", ""),
        ("create_table", "yes"),
        ("connect_timeout", 0),
        ("connect_timeout", float("nan")),
        ("command_timeout", -1),
        ("reconnect_attempts", -1),
        ("reconnect_attempts", 1.5),
        ("reconnect_backoff", -0.1),
        ("level", "loud"),
        ("name", ""),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        PostgresConfig(dsn=SECRET_DSN, **{field: value})
    assert info.value.key == field
    assert "s3cr3t-pw" not in str(info.value)


def test_valid_settings() -> None:
    config = PostgresConfig(
        dsn=SECRET_DSN,
        table="x" * 54,
        schema="audit",
        create_table=False,
        connect_timeout=0.5,
        command_timeout=None,
        reconnect_attempts=0,
        reconnect_backoff=0,
        level="warning",
        name="pg",
    )
    assert config.reconnect_attempts == 0


def test_text_postgres_cannot_hold_is_escaped() -> None:
    assert pg_text("plain") == "plain"
    assert pg_text("a\x00b") == "a\\x00b"
    assert pg_text("é\x00") == "é\\x00"
    assert pg_text("bad \udc80 surrogate") == "bad \\udc80 surrogate"
    assert pg_json({}) == "{}"
    assert pg_json({"k": "v"}) == '{"k": "v"}'
    assert (
        pg_json({"k\x00": ["a\x00", {"x": "\udc80"}]})
        == '{"k\\\\x00": ["a\\\\x00", {"x": "\\\\udc80"}]}'
    )
    # A literal backslash-u-0000 in a value is not a NUL: it survives as written.
    assert pg_json({"k": "\\u0000"}) == '{"k": "\\\\u0000"}'


def test_flat_fields_json_is_the_standard_encoders_text() -> None:
    """Fields of str, int, bool and None are written without the JSON encoder: the text must
    still be json.dumps(ensure_ascii=False)'s, and anything else goes through the encoder."""
    shapes: list[dict[Any, Any]] = [
        {"task": 5, "seq": -(10**30), "on": True, "off": False, "none": None},
        {'q"uote\\': 'a"b\\c\n\t\x7f é \u2028', "": ""},
        {"f": 1.5, "l": [1, "x"], "d": {"a": None}, "lvl": Level.ERROR},
        {5: "int key", "huge": 10**5000},
    ]
    for fields in shapes[:2]:
        assert pg_json(fields) == json.dumps(fields, ensure_ascii=False)
    assert pg_json(shapes[2]) == '{"f": 1.5, "l": [1, "x"], "d": {"a": null}, "lvl": 40}'
    assert pg_json({"n": "a\x00b", "s": "\udc80"}) == '{"n": "a\\\\x00b", "s": "\\\\udc80"}'
    assert json.loads(pg_json(shapes[3]))["5"] == "int key"
    assert pg_json({"huge": 10**5000}) == fields_to_json({"huge": 10**5000})


TRICKY_TIMES = [
    1_700_000_000.0000005,  # half a microsecond: to even
    1_700_000_000.0000015,
    1_700_000_000.9999996,  # rounds up into the next second
    946_684_800.0,  # PostgreSQL's epoch
    946_684_799.999999,
    0.5,
    -1.5,  # before 1970
    -0.0000005,
    4_102_444_800.123456,  # 2100
]


def micros_of_fromtimestamp(ts: float) -> int:
    since_2000 = datetime.fromtimestamp(ts, UTC) - datetime(2000, 1, 1, tzinfo=UTC)
    return since_2000 // timedelta(microseconds=1)


def test_timestamps_are_the_microseconds_fromtimestamp_gives() -> None:
    """The rows carry ints of microseconds since 2000 (asyncpg's datetime encoding cost
    more than the rest of the row): each must be the value the datetime gave."""
    sample = random.Random(12)
    spread = [sample.uniform(-4e9, 4e9) for _ in range(20_000)]
    now = [time.time() + sample.random() for _ in range(20_000)]
    for ts in TRICKY_TIMES + spread + now:
        assert pg_microseconds(ts) == micros_of_fromtimestamp(ts), ts
    assert pg_microseconds(946_684_800) == 0


def test_rows_are_narrow_unless_an_entry_has_a_location_or_a_trace() -> None:
    batch_id = uuid.uuid4()

    def narrow(ts: float, level: int, message: str, fields: str) -> tuple[Any, ...]:
        return (pg_microseconds(ts), level, "app", message, fields, None, "h", 7, batch_id)

    plain = LogEntry(1.5, 20, "m", "app", {"k": 1})
    maker = RowMaker("h", 7, batch_id, located=True, traced=True)
    assert maker.uniform(maker.rows([plain, plain])) == [narrow(1.5, 20, "m", '{"k": 1}')] * 2
    assert maker.columns == COLUMNS

    located = LogEntry(2.0, 30, "w", "app", {}, None, None, Location("mod", "fn", 9))
    trace = {"trace_id": "ab" * 16, "span_id": "cd" * 8, "trace_flags": 1}
    traced = LogEntry(3.0, 20, "t", "app", {**trace, "u": 2})
    invalid = LogEntry(4.0, 20, "i", "app", {"span_id": "xyz"})
    maker = RowMaker("h", 7, batch_id, located=True, traced=True)
    rows = maker.uniform(maker.rows([plain]) + maker.rows([located, traced, invalid]))
    assert maker.columns == (*COLUMNS, *LOCATION_COLUMNS, *TRACE_COLUMNS)
    assert rows == [
        (*narrow(1.5, 20, "m", '{"k": 1}'), None, None, None, None, None, None),
        (*narrow(2.0, 30, "w", "{}"), "mod", "fn", 9, None, None, None),
        (*narrow(3.0, 20, "t", '{"u": 2}'), None, None, None, "ab" * 16, "cd" * 8, 1),
        (*narrow(4.0, 20, "i", '{"span_id": "xyz"}'), None, None, None, None, None, None),
    ]

    # A table without those columns: every row narrow, the trace fields kept in `fields`.
    maker = RowMaker("h", 7, batch_id, located=False, traced=False)
    assert maker.uniform(maker.rows([located, traced])) == [
        narrow(2.0, 30, "w", "{}"),
        narrow(3.0, 20, "t", json.dumps({**trace, "u": 2})),
    ]
    assert maker.columns == COLUMNS


def test_transient_errors() -> None:
    asyncpg = pytest.importorskip("asyncpg")
    exceptions = asyncpg.exceptions
    for exc in (
        ConnectionRefusedError(),
        ConnectionResetError(),
        TimeoutError(),
        exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
        exceptions.AdminShutdownError("terminating connection due to administrator command"),
        exceptions.CannotConnectNowError("the database system is starting up"),
        exceptions.TooManyConnectionsError("too many clients"),
        exceptions.InterfaceError("connection is closed"),
    ):
        assert is_transient(exc), exc
    for exc in (
        exceptions.DataError("bad value"),
        exceptions.UndefinedColumnError("no column"),
        exceptions.InvalidPasswordError("password authentication failed"),
        exceptions.InsufficientPrivilegeError("permission denied"),
        ValueError("bug"),
    ):
        assert not is_transient(exc), exc


async def test_write_before_open_raises() -> None:
    backend = PostgresBackend(PostgresConfig(dsn=SECRET_DSN))
    with pytest.raises(LogError, match="not open"):
        await backend.write_batch([LogEntry(time.time(), 20, "m", "t")])
    await backend.close()  # closing what never opened is fine


# --- against a server ---------------------------------------------------------------------


@pytest.fixture
async def pg_table() -> AsyncIterator[str]:
    """A fresh table name (the backend creates the table), dropped afterwards."""
    name = fresh_table_name()
    yield name
    await drop_table(name)


def pg_config(table: str, **options: Any) -> PostgresConfig:
    return PostgresConfig(dsn=PG_DSN, table=table, **options)


def entries(count: int, start: int = 0) -> list[LogEntry]:
    now = time.time()
    return [
        LogEntry(now + n * 1e-6, 20, f"entry {n}", "test", {"n": n})
        for n in range(start, start + count)
    ]


async def column_of_n(table: str) -> list[int]:
    rows = await fetch(f"SELECT (fields->>'n')::int AS n FROM \"{table}\" ORDER BY id")
    return [row["n"] for row in rows]


@requires_pg
async def test_round_trip_of_every_column(pg_table: str) -> None:
    config = Config(backend=PostgresBackend(pg_config(pg_table)), name="svc")
    before = time.time()
    async with LogManager(config) as manager:
        await manager.info("hello", user_id=42, tags=["a", "b"], nested={"k": 1.5})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            await manager.exception("failed")
        await manager.warning("no fields")
    after = time.time()
    rows = await fetch(f'SELECT * FROM "{pg_table}" ORDER BY id')
    assert [row["message"] for row in rows] == ["hello", "failed", "no fields"]
    assert [row["level"] for row in rows] == [Level.INFO, Level.ERROR, Level.WARNING]
    first = rows[0]
    assert before - 1e-6 <= first["ts"].timestamp() <= after + 1e-6
    assert first["ts"].utcoffset() is not None  # timestamptz
    assert first["logger"] == "svc"
    assert json.loads(first["fields"]) == {"user_id": 42, "tags": ["a", "b"], "nested": {"k": 1.5}}
    assert json.loads(rows[2]["fields"]) == {}
    assert first["exception"] is None
    assert "RuntimeError: boom" in rows[1]["exception"]
    assert {row["host"] for row in rows} == {socket.gethostname()}
    assert {row["pid"] for row in rows} == {os.getpid()}
    assert all(isinstance(row["batch_id"], uuid.UUID) for row in rows)
    types = {
        row["column_name"]: row["data_type"]
        for row in await fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1",
            pg_table,
        )
    }
    assert types == {
        "id": "bigint",
        "ts": "timestamp with time zone",
        "level": "smallint",
        "logger": "text",
        "message": "text",
        "fields": "jsonb",
        "exception": "text",
        "host": "text",
        "pid": "integer",
        "batch_id": "uuid",
        "module": "text",
        "function": "text",
        "line": "integer",
        "trace_id": "text",
        "span_id": "text",
        "trace_flags": "smallint",
    }
    indexes = {
        row["indexname"]: row["indexdef"]
        for row in await fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1", pg_table
        )
    }
    assert indexes[f"{pg_table}_ts"].endswith("USING btree (ts)")
    assert indexes[f"{pg_table}_level_ts"].endswith("USING btree (level, ts)")
    assert indexes[f"{pg_table}_trace"].endswith(
        "USING btree (trace_id) WHERE (trace_id IS NOT NULL)"
    )


@requires_pg
async def test_stored_timestamps_and_a_batch_of_narrow_and_wide_rows(pg_table: str) -> None:
    backend = PostgresBackend(pg_config(pg_table))
    await backend.open()
    plain = [LogEntry(ts, 20, f"e{n}", "t", {"n": n}) for n, ts in enumerate(TRICKY_TIMES)]
    located = LogEntry(5.0, 30, "located", "t", {}, None, None, Location("m", "f", 3))
    try:
        await backend.write_batch([*plain, located])  # one COPY: the narrow rows padded
        await backend.write_batch(plain[:2])  # narrow rows only: the base columns
    finally:
        await backend.close()
    rows = await fetch(
        f'SELECT ts, message, module, function, line, trace_id FROM "{pg_table}" ORDER BY id'
    )
    written = [*plain, located, *plain[:2]]
    assert [row["ts"] for row in rows] == [
        datetime.fromtimestamp(entry.timestamp, UTC) for entry in written
    ]
    assert [tuple(row)[1:] for row in rows] == [
        *[(f"e{n}", None, None, None, None) for n in range(len(plain))],
        ("located", "m", "f", 3, None),
        ("e0", None, None, None, None),
        ("e1", None, None, None, None),
    ]


@requires_pg
async def test_fields_are_queryable_as_jsonb(pg_table: str) -> None:
    config = Config(backend=PostgresBackend(pg_config(pg_table)), async_mode=True, batch_size=100)
    async with LogManager(config) as manager:
        for n in range(1000):
            await manager.info("request", user_id=n % 50, ctx={"region": "eu" if n % 4 else "us"})
    table = f'"{pg_table}"'
    assert await fetchval(f"SELECT count(*) FROM {table}") == 1000
    assert await fetchval(f"SELECT count(*) FROM {table} WHERE fields->>'user_id' = '42'") == 20
    assert (
        await fetchval(f"SELECT count(*) FROM {table} WHERE fields @> '{{\"user_id\": 42}}'") == 20
    )
    assert (
        await fetchval(f"SELECT count(*) FROM {table} WHERE fields->'ctx'->>'region' = 'us'") == 250
    )
    assert await fetchval(f"SELECT sum((fields->>'user_id')::int) FROM {table}") == 20 * sum(
        range(50)
    )


@requires_pg
async def test_text_postgres_cannot_store_is_escaped_not_lost(pg_table: str) -> None:
    backend = PostgresBackend(pg_config(pg_table))
    await backend.open()
    try:
        await backend.write_batch(
            [
                LogEntry(
                    time.time(), 20, "nul\x00here", "log\x00ger", {"k\x00": "v\x00", "s": "\udc80"}
                ),
                LogEntry(time.time(), 40, "surrogate \ud800", "t", {}, "trace\x00back"),
            ]
        )
    finally:
        await backend.close()
    rows = await fetch(f'SELECT * FROM "{pg_table}" ORDER BY id')
    assert rows[0]["message"] == "nul\\x00here" and rows[0]["logger"] == "log\\x00ger"
    assert (
        await fetchval(f"""SELECT fields->>'k\\x00' FROM "{pg_table}" ORDER BY id LIMIT 1""")
        == "v\\x00"
    )
    assert rows[1]["message"] == "surrogate \\ud800" and rows[1]["exception"] == "trace\\x00back"


@requires_pg
async def test_processes_opening_at_once_create_the_table_once(pg_table: str) -> None:
    """CREATE TABLE IF NOT EXISTS races with itself; the backends serialize it."""
    backends = [PostgresBackend(pg_config(pg_table)) for _ in range(6)]
    await asyncio.gather(*(backend.open() for backend in backends))
    await asyncio.gather(*(backend.write_batch(entries(10)) for backend in backends))
    await asyncio.gather(*(backend.close() for backend in backends))
    assert await fetchval(f'SELECT count(*) FROM "{pg_table}"') == 60
    again = PostgresBackend(pg_config(pg_table))  # open on an existing table
    await again.open()
    await again.close()


@requires_pg
async def test_schema_option() -> None:
    schema = f"s_{uuid.uuid4().hex[:12]}"
    await fetch(f'CREATE SCHEMA "{schema}"')
    try:
        backend = PostgresBackend(pg_config("logs", schema=schema))
        await backend.open()
        await backend.write_batch(entries(3))
        await backend.close()
        assert await fetchval(f'SELECT count(*) FROM "{schema}"."logs"') == 3
    finally:
        await fetch(f'DROP SCHEMA "{schema}" CASCADE')


@requires_pg
async def test_missing_table_or_columns_fail_open(pg_table: str) -> None:
    backend = PostgresBackend(pg_config(pg_table, create_table=False))
    with pytest.raises(LogError, match="does not exist"):
        await backend.open()
    await fetch(f'CREATE TABLE "{pg_table}" (ts timestamptz, level smallint, message text)')
    with pytest.raises(LogError, match="lacks a column") as info:
        await PostgresBackend(pg_config(pg_table)).open()
    assert "batch_id" in str(info.value)


@requires_pg
async def test_connection_errors_do_not_show_the_password() -> None:
    asyncpg_module()
    parts = urllib.parse.urlsplit(PG_DSN)
    netloc = f"{parts.username}:not-the-password-xyz@{parts.hostname}:{parts.port or 5432}"
    bad = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    with pytest.raises(LogError, match="cannot connect") as info:
        await PostgresBackend(PostgresConfig(dsn=bad)).open()
    assert "not-the-password-xyz" not in str(info.value)
    assert "***" in str(info.value)
    closed_port = "postgresql://u:pw-secret@127.0.0.1:1/db"
    started = time.monotonic()
    with pytest.raises(LogError, match="cannot connect") as refused:
        await PostgresBackend(PostgresConfig(dsn=closed_port, connect_timeout=2)).open()
    assert "pw-secret" not in str(refused.value)
    assert time.monotonic() - started < 5


class LostAcknowledgement:
    """Wraps a connection: at the next COMMIT, the commit runs (`lands=True`) or not, and
    then the connection dies before the answer arrives, as when the server restarts
    between writing the commit and acknowledging it."""

    def __init__(self, conn: Any, lands: bool) -> None:
        self._conn = conn
        self._lands = lands
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, query: str, *args: object) -> Any:
        if query == "COMMIT" and not self.fired:
            self.fired = True
            if self._lands:
                await self._conn.execute("COMMIT")
            self._conn.terminate()
            raise asyncpg_module().exceptions.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation"
            )
        return await self._conn.execute(query, *args)


@requires_pg
@pytest.mark.parametrize("lands", [True, False], ids=["commit-landed", "commit-lost"])
async def test_batch_whose_commit_acknowledgement_is_lost_lands_once(
    pg_table: str, lands: bool
) -> None:
    backend = PostgresBackend(pg_config(pg_table, reconnect_backoff=0.01))
    await backend.open()
    try:
        await backend.write_batch(entries(100))
        fault = backend._conn = LostAcknowledgement(backend._conn, lands)  # type: ignore[assignment]
        await backend.write_batch(entries(100, start=100))  # retried inside the call
        assert fault.fired
        await backend.write_batch(entries(100, start=200))
    finally:
        await backend.close()
    assert await column_of_n(pg_table) == list(range(300))
    assert backend.reconnects == 1
    assert backend.skipped_batches == (1 if lands else 0)


class LingeringCommit(LostAcknowledgement):
    """The client gives up on the connection at COMMIT (a timeout, a partition) while the
    server session lives on and commits a moment later."""

    def __init__(self, conn: Any, delay: float) -> None:
        super().__init__(conn, lands=True)
        self._delay = delay
        self.late_commit: asyncio.Task[Any] | None = None

    def terminate(self) -> None:
        pass  # the server never hears of it

    async def execute(self, query: str, *args: object) -> Any:
        if query == "COMMIT" and not self.fired:
            self.fired = True

            async def commit_later() -> Any:
                await asyncio.sleep(self._delay)
                return await self._conn.execute("COMMIT")

            self.late_commit = asyncio.create_task(commit_later())
            raise TimeoutError
        return await self._conn.execute(query, *args)


@requires_pg
async def test_retry_waits_for_a_commit_still_in_progress(pg_table: str) -> None:
    """The retry's check would miss a commit still under way; the batch's advisory lock makes
    it wait for that transaction to end, so it sees the rows and does not copy them again."""
    backend = PostgresBackend(pg_config(pg_table, reconnect_backoff=0.01))
    await backend.open()
    real = backend._conn
    fault = backend._conn = LingeringCommit(real, delay=0.3)  # type: ignore[assignment]
    try:
        started = time.monotonic()
        await backend.write_batch(entries(100))
        waited = time.monotonic() - started
        assert fault.late_commit is not None
        await fault.late_commit
    finally:
        await backend.close()
        await real.close()  # type: ignore[union-attr]
    assert waited >= 0.25  # the retry waited for the lingering transaction
    assert backend.skipped_batches == 1
    assert await column_of_n(pg_table) == list(range(100))


class AnswerNeverComes(LostAcknowledgement):
    """The COMMIT lands, and its answer is still awaited when the task is cancelled."""

    def __init__(self, conn: Any) -> None:
        super().__init__(conn, lands=True)
        self.committed = asyncio.Event()

    async def execute(self, query: str, *args: object) -> Any:
        if query == "COMMIT" and not self.fired:
            self.fired = True
            await self._conn.execute("COMMIT")
            self.committed.set()
            await asyncio.sleep(3600)
        return await self._conn.execute(query, *args)


@requires_pg
async def test_write_cancelled_after_its_commit_is_redelivered_once(pg_table: str) -> None:
    """The manager's worker cancelled mid-write delivers the batch in hand again (the same
    sequence): the backend recognizes it and finds it committed."""
    backend = PostgresBackend(pg_config(pg_table))
    await backend.open()
    try:
        fault = backend._conn = AnswerNeverComes(backend._conn)  # type: ignore[assignment]
        batch = entries(100)
        writing = asyncio.create_task(backend.write_batch(batch))
        await fault.committed.wait()
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        await backend.write_batch(batch)  # the redelivery
    finally:
        await backend.close()
    assert backend.skipped_batches == 1
    assert await column_of_n(pg_table) == list(range(100))


@requires_pg
async def test_manager_retry_of_a_batch_that_landed_does_not_duplicate(pg_table: str) -> None:
    """With no reconnection inside the backend the call fails; the manager retries the same
    batch, and the backend recognizes it."""
    backend = PostgresBackend(pg_config(pg_table, reconnect_attempts=0))
    config = Config(
        backend=backend, async_mode=True, retry_attempts=3, retry_backoff=0.01, fallback="none"
    )
    async with LogManager(config) as manager:
        fault = backend._conn = LostAcknowledgement(backend._conn, lands=True)  # type: ignore[assignment]
        for n in range(50):
            await manager.info("entry", n=n)
    stats = manager.get_stats()
    assert fault.fired
    assert stats.written == 50 and stats.write_errors == 1 and stats.retries == 1, stats
    assert_settled(stats)
    assert backend.skipped_batches == 1
    assert await column_of_n(pg_table) == list(range(50))


@requires_pg
async def test_killed_session_is_replaced(pg_table: str) -> None:
    backend = PostgresBackend(pg_config(pg_table, reconnect_backoff=0.01))
    await backend.open()
    try:
        await backend.write_batch(entries(10))
        assert backend._conn is not None
        pid = backend._conn.get_server_pid()  # type: ignore[attr-defined]
        assert await fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.1)
        await backend.write_batch(entries(10, start=10))
    finally:
        await backend.close()
    assert backend.reconnects == 1
    assert await column_of_n(pg_table) == list(range(20))


@requires_pg
async def test_sessions_killed_at_random_moments_lose_and_duplicate_nothing(
    pg_table: str,
) -> None:
    """The backend's session is terminated every few tens of milliseconds while entries
    stream in: mid-COPY, mid-COMMIT, between batches. Every entry lands exactly once."""
    import random

    backend = PostgresBackend(pg_config(pg_table, reconnect_backoff=0.005))
    config = Config(
        backend=backend,
        async_mode=True,
        queue_size=5_000,
        overflow="block",
        batch_size=100,
        retry_attempts=20,
        retry_backoff=0.05,
        fallback="none",
    )
    admin = await asyncpg_module().connect(PG_DSN)
    kills = 0
    rng = random.Random(7)

    stop = asyncio.Event()

    async def killer() -> None:
        nonlocal kills
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.01, 0.05))
            conn = backend._conn
            if conn is not None and not conn.is_closed():
                pid = conn.get_server_pid()  # type: ignore[attr-defined]
                kills += bool(await admin.fetchval("SELECT pg_terminate_backend($1)", pid))

    total = 20_000
    try:
        async with LogManager(config) as manager:
            killing = asyncio.create_task(killer())
            for n in range(total):
                await manager.info("entry", n=n)
                if n % 100 == 99:
                    await asyncio.sleep(0.002)
            stop.set()
            await killing
    finally:
        await admin.close()
    stats = manager.get_stats()
    assert stats.written == total and stats.dropped == 0 and stats.dead_lettered == 0, stats
    print(f"\nkills {kills}, reconnects {backend.reconnects}, errors {stats.write_errors}")
    assert kills >= 10 and backend.reconnects >= 10
    assert await column_of_n(pg_table) == list(range(total))


@requires_pg
async def test_table_dropped_while_running_is_recreated(pg_table: str) -> None:
    backend = PostgresBackend(pg_config(pg_table))
    await backend.open()
    try:
        await backend.write_batch(entries(5))
        await drop_table(pg_table)
        await backend.write_batch(entries(5, start=5))
    finally:
        await backend.close()
    assert await column_of_n(pg_table) == list(range(5, 10))


@requires_pg
async def test_bad_row_fails_the_batch_and_keeps_the_connection(pg_table: str) -> None:
    """A server error about the data is not retried inside the backend (the manager's retries
    and fallback handle it), and the connection stays usable."""
    backend = PostgresBackend(pg_config(pg_table))
    await backend.open()
    try:
        await fetch(f'ALTER TABLE "{pg_table}" ADD CONSTRAINT short CHECK (length(message) < 10)')
        with pytest.raises(LogError, match="CheckViolation"):
            await backend.write_batch([LogEntry(time.time(), 20, "far too long a message", "t")])
        conn = backend._conn
        await backend.write_batch(entries(3))
        assert backend._conn is conn and backend.reconnects == 0
    finally:
        await backend.close()
    assert await column_of_n(pg_table) == [0, 1, 2]


@requires_pg
async def test_the_whole_batch_or_nothing(pg_table: str) -> None:
    backend = PostgresBackend(pg_config(pg_table))
    await backend.open()
    try:
        await fetch(f"ALTER TABLE \"{pg_table}\" ADD CONSTRAINT no_bad CHECK (message <> 'bad')")
        batch = entries(500)
        batch[499] = batch[499]._replace(message="bad")
        with pytest.raises(LogError):
            await backend.write_batch(batch)
    finally:
        await backend.close()
    assert await fetchval(f'SELECT count(*) FROM "{pg_table}"') == 0


WRITER = Path(__file__).with_name("pg_support.py")


@requires_pg
@pytest.mark.slow
async def test_four_processes_into_one_table(pg_table: str) -> None:
    """4 processes x 25,000 entries, all opening the same (missing) table at once."""
    asyncpg_module()
    per_process, processes = 25_000, 4
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER),
            PG_DSN,
            pg_table,
            str(per_process),
            str(proc),
            env=env,
            stderr=subprocess.PIPE,
        )
        for proc in range(processes)
    ]
    results = [await child.communicate() for child in children]
    seconds = time.perf_counter() - started
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err.decode()
    table = f'"{pg_table}"'
    total = per_process * processes
    assert await fetchval(f"SELECT count(*) FROM {table}") == total
    assert await fetchval(f"SELECT count(DISTINCT pid) FROM {table}") == processes
    assert (
        await fetchval(f"SELECT count(DISTINCT (fields->>'proc', fields->>'n')) FROM {table}")
        == total
    )
    pids = await fetch(f"SELECT pid, count(*) FROM {table} GROUP BY pid")
    assert sorted(row["count"] for row in pids) == [per_process] * processes
    for proc in range(processes):
        rows = await fetch(
            f"SELECT (fields->>'n')::int AS n, pid, ts FROM {table} "
            f"WHERE fields->>'proc' = $1 ORDER BY id",
            str(proc),
        )
        assert [row["n"] for row in rows] == list(range(per_process))  # in its order by id
        assert len({row["pid"] for row in rows}) == 1
        stamps = [row["ts"] for row in rows]
        assert stamps == sorted(stamps)  # and by ts
    print(f"\n4 processes x {per_process:,}: {total:,} rows in {seconds:.1f} s")


@requires_cluster
@pytest.mark.slow
async def test_server_restart_mid_stream_loses_and_duplicates_nothing(pg_table: str) -> None:
    """Entries are written steadily while the server is restarted twice (a fast shutdown,
    then an immediate one, which needs crash recovery): every entry lands exactly once."""
    backend = PostgresBackend(
        pg_config(pg_table, reconnect_attempts=3, reconnect_backoff=0.05, command_timeout=10)
    )
    config = Config(
        backend=backend,
        async_mode=True,
        queue_size=20_000,
        overflow="block",
        batch_size=200,
        retry_attempts=20,
        retry_backoff=0.1,
        fallback="none",
    )

    async def restarts() -> None:
        for mode in ("fast", "immediate"):
            await asyncio.sleep(0.7)
            await asyncio.to_thread(restart_cluster, mode)

    written = 0
    async with LogManager(config) as manager:
        restarting = asyncio.create_task(restarts())
        quiet_after: float | None = None
        loop = asyncio.get_running_loop()
        while quiet_after is None or loop.time() < quiet_after:
            for _ in range(50):
                await manager.info("entry", n=written)
                written += 1
            await asyncio.sleep(0.005)  # about 8,000 entries a second
            if quiet_after is None and restarting.done():
                quiet_after = loop.time() + 0.5
        await restarting
    stats = manager.get_stats()
    await wait_until_up()
    table = f'"{pg_table}"'
    rows = await fetchval(f"SELECT count(*) FROM {table}")
    distinct = await fetchval(f"SELECT count(DISTINCT (fields->>'n')::int) FROM {table}")
    print(
        f"\nrestart test: {written:,} entries written, {rows:,} rows, "
        f"{rows - distinct} duplicates; {backend.reconnects} reconnections, "
        f"{stats.write_errors} failed writes, {stats.retries} manager retries, "
        f"{backend.skipped_batches} retried batches found committed"
    )
    assert stats.written == written and stats.dropped == 0 and stats.dead_lettered == 0, stats
    assert_settled(stats)
    assert rows == written
    assert distinct == written
    assert await column_of_n(pg_table) == list(range(written))
    assert backend.reconnects >= 2
