"""The PostgreSQL backend: asyncpg, one `COPY` per batch inside a transaction, reconnection
with backoff, and a batch id that makes a retried batch land exactly once.

asyncpg is imported at `open()`, so this module (and `asynclog`) imports without it.
The design is in docs/postgres.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

from .. import _runtime
from .._backend_registry import register_backend
from .._entry import Entry, Location
from .._errors import LogError
from .._otel import TRACE_KEYS, TraceValues, split_trace
from .._postgres_config import PostgresConfig, hide_secrets
from ..formatters import fields_to_json, utf8_safe
from ._slices import convert_in_slices

COLUMNS = ("ts", "level", "logger", "message", "fields", "exception", "host", "pid", "batch_id")
"""The columns each batch's `COPY` fills, in record order (`id` comes from its identity)."""

LOCATION_COLUMNS = ("module", "function", "line")
"""The columns of a captured location, after `COLUMNS` when the table has them (added to an
older table by `open()` unless `create_table=False`); NULL when the entry has none."""
TRACE_COLUMNS = ("trace_id", "span_id", "trace_flags")
"""The columns of the trace context, after the location's when the table has them (added as
those are); NULL when the entry has none. A valid `trace_id`/`span_id`/`trace_flags` field
is stored there (ids as lowercase hex) instead of in `fields`."""
ADDED_COLUMNS = (
    *zip(LOCATION_COLUMNS, ("text", "text", "integer"), strict=True),
    *zip(TRACE_COLUMNS, ("text", "text", "smallint"), strict=True),
)
"""The columns added since the original table, with their types."""

Row = tuple[Any, ...]
"""`COLUMNS`' values (int: `pg_microseconds`; int, str, str, str, str | None, str, int,
UUID), then in a wide row (`RowMaker`) the location's (str | None, str | None, int | None)
when the table has its columns, then the trace context's (str | None, str | None,
int | None) when it has those."""

TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
"""Connection exception, transaction rollback, insufficient resources, operator intervention
(shutdown, "the database system is starting up", a cancelled statement), system error:
worth a new connection and another try. Any other server error is a fact about the batch or
the table, and fails the call at once."""


def schema_statements(config: PostgresConfig) -> list[str]:
    """The DDL of the table and its indexes (names are validated identifiers)."""
    table, name = config.qualified_table, config.table
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "ts timestamptz NOT NULL, "
        "level smallint NOT NULL, "
        "logger text NOT NULL, "
        "message text NOT NULL, "
        "fields jsonb NOT NULL DEFAULT '{}', "
        "exception text, "
        "host text, "
        "pid integer, "
        "batch_id uuid, "
        "module text, "
        "function text, "
        "line integer, "
        "trace_id text, "
        "span_id text, "
        "trace_flags smallint)",
        f'CREATE INDEX IF NOT EXISTS "{name}_ts" ON {table} (ts)',
        f'CREATE INDEX IF NOT EXISTS "{name}_level_ts" ON {table} (level, ts)',
    ]


def trace_index_statement(config: PostgresConfig) -> str:
    """The index of the rows of one trace, after the migration (it needs the column); partial,
    so rows outside any span cost it nothing."""
    return (
        f'CREATE INDEX IF NOT EXISTS "{config.table}_trace" ON {config.qualified_table} '
        "(trace_id) WHERE trace_id IS NOT NULL"
    )


def pg_text(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates: they become `\\x00`, `\\udc80`."""
    text = utf8_safe(text)
    return text if "\x00" not in text else text.replace("\x00", "\\x00")


def pg_json(fields: Any) -> str:
    """The fields as a JSON object jsonb accepts: jsonb refuses `\\u0000` and lone surrogates,
    so strings (keys and values) holding them are cleaned as `pg_text` does."""
    if not fields:
        return "{}"
    text = _flat_json(fields)
    if text is None:
        text = fields_to_json(fields)
    if "\\u0000" in text or not (text.isascii() or _is_utf8(text)):
        text = json.dumps(_clean_json(json.loads(text)), ensure_ascii=False)
    return text


_json_string = json.encoder.encode_basestring
"""A str as JSON text, as `json.dumps(ensure_ascii=False)` writes it (one C call)."""
_json_keys: dict[str, str] = {}
"""`, "key": ` for each str field name seen (up to `JSON_KEYS_CACHED`)."""
JSON_KEYS_CACHED = 256


def _flat_json(fields: Mapping[str, Any]) -> str | None:
    """`fields_to_json(fields)`'s very text when every key is a str and every value a str,
    int, bool or None (the common fields), built without the encoder's per-call set-up; None
    for any other fields."""
    keys = _json_keys
    text = ""  # each member with a ", " before it, the first one's cut off at the end
    try:
        for key, value in fields.items():
            prefix = keys.get(key)
            if prefix is None:
                if type(key) is not str:
                    return None
                prefix = ", " + _json_string(key) + ": "
                if len(keys) < JSON_KEYS_CACHED:
                    keys[key] = prefix
            kind = type(value)
            if kind is int:
                text += f"{prefix}{value}"  # an exact int formats as its repr, in C
            elif kind is str:
                text += prefix + _json_string(value)
            elif kind is bool:
                text += prefix + ("true" if value else "false")
            elif value is None:
                text += prefix + "null"
            else:
                return None
    except ValueError:  # an int with more digits than int_max_str_digits allows
        return None
    return "{" + text[2:] + "}"


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_json(value: object) -> object:
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(key): _clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    return value


def migration_statement(config: PostgresConfig) -> str:
    """The `ALTER TABLE` that adds the location and trace columns to a table made before
    them."""
    return f"ALTER TABLE {config.qualified_table} " + ", ".join(
        f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in ADDED_COLUMNS
    )


COUNT_COLUMNS = (
    "SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass "
    "AND attname = ANY($2::text[]) AND NOT attisdropped"
)


class RowMaker:
    """Makes the `COPY` rows of one batch. A row is narrow, `COLUMNS`' values, unless its
    entry has a location or a valid trace context and the table has their columns: then it
    is wide, the location's and then the trace's values following (`wide_columns`). A batch
    of narrow rows (the usual one) copies `COLUMNS` only, the other columns staying NULL;
    `uniform` pads the narrow rows of a batch that has wide ones.

    The timestamp is `pg_microseconds`' int (see `use_microsecond_timestamps`)."""

    def __init__(
        self, host: str, pid: int, batch_id: uuid.UUID, located: bool, traced: bool
    ) -> None:
        self.host, self.pid, self.batch_id = host, pid, batch_id
        self.located, self.traced = located, traced
        self.wide_columns = (
            *COLUMNS,
            *(LOCATION_COLUMNS if located else ()),
            *(TRACE_COLUMNS if traced else ()),
        )
        self.wide_rows = 0
        """Wide rows made so far."""

    def rows(self, entries: Sequence[Entry]) -> list[Row]:
        """The rows of `entries`, in order (a slice of the batch: see `uniform`)."""
        host, pid, batch_id = self.host, self.pid, self.batch_id
        located, traced = self.located, self.traced
        rows: list[Row] = []
        append = rows.append
        last_logger = clean_logger = ""
        for ts, level, message, logger, fields, exception, _, location in entries:
            if logger is not last_logger:
                last_logger, clean_logger = logger, pg_text(logger)
            wide = located and location is not None
            trace = _NO_TRACE
            if not fields:
                fields_json = "{}"
            else:
                if traced and not _TRACE_KEYS.isdisjoint(fields):
                    fields, trace = split_trace(fields)
                    wide = wide or trace != _NO_TRACE
                fields_json = pg_json(fields)
            row: Row = (
                pg_microseconds(ts),
                level,
                clean_logger,
                message if message.isascii() and "\x00" not in message else pg_text(message),
                fields_json,
                None if exception is None else pg_text(exception),
                host,
                pid,
                batch_id,
            )
            append(self._widened(row, location, trace) if wide else row)
        return rows

    def _widened(self, row: Row, location: Location | None, trace: TraceValues) -> Row:
        self.wide_rows += 1
        if self.located:
            if location is None:
                row = (*row, None, None, None)
            else:
                row = (*row, pg_text(location[0]), pg_text(location[1]), int(location[2]))
        return (*row, *trace) if self.traced else row

    def uniform(self, rows: list[Row]) -> list[Row]:
        """All the batch's `rows` (`rows()` of each slice), at one width: `columns`'."""
        if 0 < self.wide_rows < len(rows):
            padding = (None,) * (len(self.wide_columns) - len(COLUMNS))
            return [row if len(row) > len(COLUMNS) else (*row, *padding) for row in rows]
        return rows

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the batch's rows fill, in row order."""
        return self.wide_columns if self.wide_rows else COLUMNS


PG_EPOCH = 946_684_800
"""2000-01-01 00:00 UTC, PostgreSQL's epoch, in Unix seconds."""
_NO_TRACE: TraceValues = (None, None, None)
_TRACE_KEYS = frozenset(TRACE_KEYS)


def pg_microseconds(ts: float) -> int:
    """A Unix time as a timestamptz holds it: microseconds since PostgreSQL's epoch, rounded
    as `datetime.fromtimestamp` rounds them (the fraction, half to even), so that a row holds
    the very value it did when the rows carried datetimes. (`ts - seconds` is exact.)"""
    seconds = int(ts)
    return (seconds - PG_EPOCH) * 1_000_000 + round((ts - seconds) * 1e6)


async def use_microsecond_timestamps(conn: Connection) -> None:
    """Make `conn` exchange each timestamptz as `pg_microseconds`' int: that is the type's
    binary form, so asyncpg's C encoder of an int8 writes it.

    asyncpg's own encoder of a `datetime` converts it to UTC and subtracts the epoch, making
    two objects per row: with `datetime.fromtimestamp` before it, that was the most costly
    column of the `COPY`, and this int costs a fraction of it. (The backend reads no
    timestamps; one read on these connections would be such an int.)"""
    await conn.set_builtin_type_codec(
        "timestamptz", schema="pg_catalog", codec_name="int8", format="binary"
    )


class Connection(Protocol):
    """The part of `asyncpg.Connection` this backend uses (asyncpg ships no type hints)."""

    async def execute(self, query: str, *args: object) -> str: ...

    async def fetchval(self, query: str, *args: object) -> Any: ...

    async def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Sequence[Row],
        columns: Sequence[str],
        schema_name: str | None = None,
    ) -> str: ...

    async def set_builtin_type_codec(
        self, typename: str, *, schema: str, codec_name: str, format: str
    ) -> None: ...

    async def close(self, *, timeout: float | None = None) -> None: ...  # noqa: ASYNC109

    def terminate(self) -> None: ...

    def is_closed(self) -> bool: ...

    def is_in_transaction(self) -> bool: ...


class _Batch:
    """A batch with its id and rows, kept while a failed write of it may be retried."""

    __slots__ = ("batch_id", "columns", "entries", "lock_key", "maybe_committed", "rows")

    def __init__(
        self,
        entries: Sequence[Entry],
        batch_id: uuid.UUID,
        rows: list[Row],
        columns: Sequence[str],
    ) -> None:
        self.entries = entries
        self.batch_id = batch_id
        self.rows = rows
        self.columns = columns
        """The columns `rows` fill, in order."""
        self.lock_key = int.from_bytes(batch_id.bytes[:8], "big", signed=True)
        """The advisory lock (a bigint) the batch's transaction holds."""
        self.maybe_committed = False
        """Set once a COMMIT of it was sent: whether it landed is unknown until checked."""


def load_asyncpg() -> ModuleType:
    """asyncpg, or a `LogError` saying how to install it."""
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError as exc:
        raise LogError(
            "the PostgreSQL backend needs asyncpg: pip install 'asynclog[postgres]'"
        ) from exc
    return asyncpg  # type: ignore[no-any-return]


def new_batch_id() -> uuid.UUID:
    """A random batch id; asyncpg's own `UUID` (a `uuid.UUID` subclass) when it has one,
    which its COPY encodes without going through `.bytes` for every row."""
    batch_id = uuid.uuid4()
    try:
        from asyncpg.pgproto.pgproto import UUID  # type: ignore[import-untyped]
    except ImportError:  # another asyncpg layout: the standard class works as well
        return batch_id
    fast: uuid.UUID = UUID(batch_id.bytes)
    return fast


def is_transient(exc: BaseException) -> bool:
    """Whether a new connection and another try may succeed: the connection broke, timed
    out or was refused, or the server is shutting down, restarting or overloaded."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    # asyncpg's client-side errors: "connection is closed", "connection was closed in the
    # middle of operation", a protocol state it cannot continue from.
    module = type(exc).__module__
    return module.startswith("asyncpg") and type(exc).__name__ in (
        "InterfaceError",
        "ConnectionDoesNotExistError",
        "InternalClientError",
        "ProtocolError",
    )


class PostgresBackend:
    """Writes each batch with one `COPY` in one transaction, on one connection that is
    re-established with backoff when it breaks. See docs/postgres.md."""

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(self, config: PostgresConfig) -> None:
        if not isinstance(config, PostgresConfig):
            raise TypeError(f"PostgresBackend needs a PostgresConfig, got {type(config).__name__}")
        self.config = config
        self.host = pg_text(socket.gethostname())
        self._driver: ModuleType | None = None
        self.concurrency = config.concurrency
        """Batches written at once, each on a connection of its own."""
        self._conns: list[Connection | None] = [None] * config.concurrency
        """One connection per batch in flight, each opened when first needed."""
        self._connected: set[int] = set()  # the slots of `_conns` that have had a connection
        self._idle_slots: list[int] = []
        self._free: asyncio.Semaphore | None = None
        self._opened = False
        self._pending: weakref.WeakKeyDictionary[asyncio.Task[object], _Batch] = (
            weakref.WeakKeyDictionary()
        )
        """By the task writing it (one batch at a time each): the last batch whose write
        failed; a retry of it reuses its id and checks first."""
        table = config.qualified_table
        self._exists = f"SELECT EXISTS (SELECT 1 FROM {table} WHERE ts = $1 AND batch_id = $2)"
        self._probe = f"SELECT {', '.join(COLUMNS)} FROM {table} LIMIT 0"
        self.located = False
        """The table has the location columns (set by `open()`): the rows fill them."""
        self.traced = False
        """The table has the trace columns (set by `open()`): the rows fill them."""
        self.reconnects = 0
        """Connections re-established after a failure (for tests and curiosity)."""
        self.skipped_batches = 0
        """Retried batches found already committed, so not copied again."""

    @property
    def _conn(self) -> Connection | None:
        """The first connection (the only one with `concurrency=1`)."""
        return self._conns[0]

    @_conn.setter
    def _conn(self, conn: Connection | None) -> None:
        self._conns[0] = conn

    def __repr__(self) -> str:
        return f"PostgresBackend({self.config.qualified_table} at {self.config.masked_dsn})"

    def _describe(self, exc: BaseException) -> str:
        """`exc` for an error message, with any secret of the DSN in it as `***`."""
        text = hide_secrets(str(exc), self.config.dsn)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _cause(self, exc: BaseException) -> BaseException | None:
        """`exc` to chain to a `LogError`; None (no chaining) if its text holds a secret of the
        DSN, which a printed traceback would show."""
        return None if hide_secrets(str(exc), self.config.dsn) != str(exc) else exc

    @property
    def _where(self) -> str:
        return f"{self.config.qualified_table} at {self.config.masked_dsn}"

    async def open(self) -> None:
        """Connect (one attempt: a wrong DSN fails `start()` at once), create the table and
        its indexes if missing, and check that the table has the columns it needs."""
        _runtime.require_asyncio("the PostgreSQL backend (asyncpg)")
        self._driver = load_asyncpg()
        try:
            conn = await self._connect()
        except Exception as exc:
            raise LogError(
                f"cannot connect to PostgreSQL at {self.config.masked_dsn}: {self._describe(exc)}"
            ) from self._cause(exc)
        try:
            await self._set_up(conn)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, Exception) and not isinstance(exc, LogError):
                raise LogError(
                    f"cannot set up PostgreSQL table {self._where}: {self._describe(exc)}"
                ) from self._cause(exc)
            raise
        self._conn = conn
        self._connected = {0}
        self._idle_slots = list(range(self.config.concurrency - 1, -1, -1))
        self._free = asyncio.Semaphore(self.config.concurrency)
        self._opened = True

    async def _connect(self) -> Connection:
        assert self._driver is not None
        config = self.config
        settings = {"application_name": "asynclog"}
        if config.command_timeout is not None:
            # A session whose client vanished between BEGIN and COMMIT must not keep holding
            # its batch's lock (and so stall the retry that waits for it) for long.
            idle = max(1000, int(config.command_timeout * 2000))
            settings["idle_in_transaction_session_timeout"] = str(idle)
        conn: Connection = await self._driver.connect(
            config.dsn,
            timeout=config.connect_timeout,
            command_timeout=config.command_timeout,
            server_settings=settings,
        )
        try:
            await use_microsecond_timestamps(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _set_up(self, conn: Connection) -> None:
        if self.config.create_table:
            # Several processes may open at once, and CREATE ... IF NOT EXISTS is not safe
            # against a concurrent create: a lock on the table's name serializes them.
            await conn.execute("BEGIN")
            try:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"asynclog {self.config.qualified_table}",
                )
                for statement in schema_statements(self.config):
                    await conn.execute(statement)
                if not await self._has_columns(conn, [name for name, _ in ADDED_COLUMNS]):
                    await conn.execute(migration_statement(self.config))
                await conn.execute(trace_index_statement(self.config))
                await conn.execute("COMMIT")
            except BaseException as exc:
                await self._roll_back(conn, exc)
                raise
        try:
            await conn.execute(self._probe)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == "42P01":  # undefined_table
                raise LogError(
                    f"PostgreSQL table {self._where} does not exist "
                    "(PostgresConfig(create_table=False))"
                ) from exc
            if getattr(exc, "sqlstate", None) == "42703":  # undefined_column
                raise LogError(
                    f"PostgreSQL table {self._where} lacks a column the backend writes "
                    f"({self._describe(exc)}); it needs {', '.join(COLUMNS)} (docs/postgres.md)"
                ) from self._cause(exc)
            raise
        self.located = await self._has_columns(conn, LOCATION_COLUMNS)
        self.traced = await self._has_columns(conn, TRACE_COLUMNS)

    async def _has_columns(self, conn: Connection, names: Sequence[str]) -> bool:
        count = await conn.fetchval(COUNT_COLUMNS, self.config.qualified_table, list(names))
        return bool(count == len(names))

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        """COPY the batch in one transaction. A broken connection is re-established (up to
        `reconnect_attempts` times, with backoff) and the batch retried; a retry of a batch
        whose COMMIT may have landed first checks, and copies only if it did not."""
        if not self._opened:
            raise LogError(f"PostgreSQL backend for {self._where} is not open")
        if not entries:
            return
        task = asyncio.current_task()
        assert task is not None
        batch = await self._batch_for(entries, task)
        async with self._slot() as slot:
            await self._write_in(slot, batch)
        self._pending.pop(task, None)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[int]:
        """The index in `_conns` of a connection no other batch is using (the lowest free)."""
        assert self._free is not None
        async with self._free:
            slot = self._idle_slots.pop()
            try:
                yield slot
            finally:
                self._idle_slots.append(slot)
                self._idle_slots.sort(reverse=True)

    async def _write_in(self, slot: int, batch: _Batch) -> None:
        config = self.config
        entries = batch.entries
        attempt = 0
        recreated = False
        while True:
            try:
                conn = self._conns[slot]
                if conn is None:
                    conn = self._conns[slot] = await self._connect()
                    if slot in self._connected:
                        self.reconnects += 1
                    self._connected.add(slot)
                    if recreated:
                        await self._set_up(conn)
                await self._write(conn, batch)
            except Exception as exc:
                if (
                    getattr(exc, "sqlstate", None) == "42P01"
                    and config.create_table
                    and not recreated
                ):
                    # The table was dropped while running: recreate it, on a new connection
                    # (the old one's cached statements name the dropped table).
                    recreated = True
                    self._drop_connection(slot)
                    continue
                if not is_transient(exc):
                    raise LogError(
                        f"PostgreSQL write of {len(entries)} entries to {self._where} "
                        f"failed: {self._describe(exc)}"
                    ) from self._cause(exc)
                self._drop_connection(slot)
                if attempt >= config.reconnect_attempts:
                    raise LogError(
                        f"PostgreSQL write of {len(entries)} entries to {self._where} failed "
                        f"after {attempt + 1} attempt{'s' if attempt else ''}: "
                        f"{self._describe(exc)}"
                    ) from self._cause(exc)
                await asyncio.sleep(min(30.0, config.reconnect_backoff * 2.0 ** min(attempt, 32)))
                attempt += 1
            else:
                return

    async def _batch_for(self, entries: Sequence[Entry], task: asyncio.Task[object]) -> _Batch:
        """The batch being retried (the manager retries the very same sequence), else a new
        one with a fresh id. A pending batch that is not retried was given up by the manager
        (to the fallback, or dropped), so it is forgotten."""
        pending = self._pending.get(task)
        if pending is None or pending.entries is not entries:
            # A batch interrupted by a cancellation is delivered again from another task.
            pending = next((p for p in self._pending.values() if p.entries is entries), None)
        if pending is not None and pending.entries is entries and len(pending.rows) == len(entries):
            self._pending[task] = pending
            return pending
        batch_id = new_batch_id()
        maker = RowMaker(self.host, os.getpid(), batch_id, self.located, self.traced)
        rows = maker.uniform(await convert_in_slices(maker.rows, entries))
        batch = _Batch(entries, batch_id, rows, maker.columns)
        self._pending[task] = batch
        return batch

    async def _write(self, conn: Connection, batch: _Batch) -> None:
        """One transaction holding the batch's advisory lock: BEGIN, COPY, COMMIT. When an
        earlier COMMIT of the batch may have landed, the lock first waits for that session's
        transaction to end (were it still committing), then the check sees its outcome."""
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({batch.lock_key})")
        try:
            if batch.maybe_committed and await conn.fetchval(
                self._exists, batch.rows[0][0], batch.batch_id
            ):
                self.skipped_batches += 1
            else:
                await self._copy(conn, batch)
            batch.maybe_committed = True
            await conn.execute("COMMIT")
        except BaseException as exc:
            await self._roll_back(conn, exc)
            raise

    async def _copy(self, conn: Connection, batch: _Batch) -> None:
        await conn.copy_records_to_table(
            self.config.table,
            records=batch.rows,
            columns=batch.columns,
            schema_name=self.config.schema,
        )

    async def _roll_back(self, conn: Connection, exc: BaseException) -> None:
        """After a failed statement: roll back on a connection that still works; give up a
        broken or interrupted one (its server session aborts the transaction itself)."""
        if isinstance(exc, Exception) and not is_transient(exc) and not conn.is_closed():
            try:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                return
            except Exception:
                pass
        for slot, held in enumerate(self._conns):
            if held is conn:
                self._conns[slot] = None
        if not conn.is_closed():
            conn.terminate()

    def _drop_connection(self, slot: int) -> None:
        conn, self._conns[slot] = self._conns[slot], None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self) -> None:
        """Close the connections (a broken one is just dropped)."""
        self._opened = False
        self._pending.clear()
        conns, self._conns = self._conns, [None] * self.config.concurrency
        for conn in conns:
            if conn is None or conn.is_closed():
                continue
            try:
                await conn.close(timeout=self.config.connect_timeout)
            except Exception:
                conn.terminate()


register_backend("postgres", PostgresConfig, PostgresBackend)
