"""Trace correlation without code: with the real OpenTelemetry SDK, an entry logged while a span
is current carries `trace_id`, `span_id` and `trace_flags` (`Config(otel_context=True)`, the
default), captured in the caller's context; and each backend puts them in its own place."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from asynclog import (
    Config,
    ConfigError,
    FileConfig,
    Level,
    LogManager,
    SQLiteConfig,
    contextualize,
    query,
    run_in_thread,
)
from asynclog.query import LogDB, make_filters
from asynclog.stdlib import AsyncLogHandler, install

from .conftest import RecordingBackend, read_lines

if TYPE_CHECKING:
    from opentelemetry.trace import Span


@dataclass
class OTel:
    """The OpenTelemetry API and SDK, imported for this module's tests only."""

    trace: ModuleType
    sdk: ModuleType
    tracer: Any
    """From a provider of the module's own (the global one can be set once per process)."""
    always_off: Any


@pytest.fixture(scope="module")
def otel() -> Iterator[OTel]:
    """Import OpenTelemetry here, and forget it after this module's tests: imported at
    collection, it would make every manager of every other test module capture trace
    context, and none of their calls would take the inline shortcuts they test."""
    before = set(sys.modules)
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    yield OTel(trace, sdk, sdk.TracerProvider().get_tracer("asynclog.tests"), ALWAYS_OFF)
    for name in set(sys.modules) - before:
        if name.startswith("opentelemetry"):
            del sys.modules[name]


OLD_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def ids(span: Span) -> dict[str, Any]:
    """The fields an entry logged in `span` carries."""
    context = span.get_span_context()
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "trace_flags": int(context.trace_flags),
    }


def trace_part(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: fields[key] for key in ("trace_id", "span_id", "trace_flags") if key in fields}


def recording(**options: Any) -> tuple[RecordingBackend, Config]:
    backend = RecordingBackend()
    return backend, Config(backend=backend, **options)


def by_message(backend: RecordingBackend) -> dict[str, dict[str, Any]]:
    return {entry.message: dict(entry.fields) for entry in backend.entries}


# -- capture at the call -------------------------------------------------------------------


@pytest.mark.parametrize("async_mode", [False, True])
async def test_nested_spans_outside_and_after(otel: OTel, async_mode: bool) -> None:
    backend, config = recording(async_mode=async_mode)
    async with LogManager(config) as lm:
        await lm.info("before")
        with otel.tracer.start_as_current_span("outer") as outer:
            await lm.info("in outer")
            with otel.tracer.start_as_current_span("inner") as inner:
                await lm.info("in inner")
                await lm.write_log("WARNING", "write_log in inner")
            await lm.info("outer again")
        await lm.info("after")
    fields = by_message(backend)
    assert fields["before"] == {} and fields["after"] == {}
    assert fields["in outer"] == ids(outer) == fields["outer again"]
    assert fields["in inner"] == ids(inner) == fields["write_log in inner"]
    assert ids(inner)["trace_id"] == ids(outer)["trace_id"]
    assert ids(inner)["span_id"] != ids(outer)["span_id"]
    assert len(ids(outer)["trace_id"]) == 32 and len(ids(outer)["span_id"]) == 16
    assert ids(outer)["trace_id"] == ids(outer)["trace_id"].lower()


async def test_every_kind_of_call_carries_the_ids(otel: OTel) -> None:
    backend, config = recording()
    async with LogManager(config) as lm:
        named = lm.get_logger("app.db")
        bound = lm.bind(user="ann")
        with otel.tracer.start_as_current_span("request") as span:
            await lm.info("plain")
            await lm.info("args %s", 1)
            await lm.info("fields", n=1)
            await lm.error("nested", payload={"a": [1]})
            assert lm.nowait.info("nowait")
            assert lm.nowait.warning("nowait args %d", 2)
            await named.info("named")
            assert named.nowait.info("named nowait")
            await bound.info("bound")
            try:
                raise ValueError("boom")
            except ValueError:
                await lm.exception("exception")
        await lm.info("outside")
    fields = by_message(backend)
    expected = ids(span)
    for message in ("plain", "args 1", "nowait", "nowait args 2", "named", "named nowait"):
        assert fields[message] == expected, message
    assert fields["fields"] == {**expected, "n": 1}
    assert fields["nested"] == {**expected, "payload": {"a": [1]}}
    assert fields["bound"] == {**expected, "user": "ann"}
    assert fields["exception"] == expected
    assert fields["outside"] == {}
    assert [entry.logger for entry in backend.entries if entry.message.startswith("named")] == [
        "app.db",
        "app.db",
    ]


async def test_any_trace_key_the_user_gives_replaces_the_whole_span(otel: OTel) -> None:
    backend, config = recording()
    async with LogManager(config) as lm:
        with otel.tracer.start_as_current_span("request") as span:
            await lm.info("explicit", span_id="mine", trace_flags=7)
            await lm.info("extra", extra={"trace_id": "from-extra"})
            with contextualize(trace_id="from-context"):
                await lm.info("context")
            await lm.bind(span_id="bound").info("bound")
    fields = by_message(backend)
    expected = ids(span)
    assert expected["trace_id"] != ""  # the span was there: its ids are left out on purpose
    assert fields["explicit"] == {"span_id": "mine", "trace_flags": 7}
    assert fields["extra"] == {"trace_id": "from-extra"}
    assert fields["context"] == {"trace_id": "from-context"}
    assert fields["bound"] == {"span_id": "bound"}


async def test_a_user_trace_key_from_a_thread_replaces_the_whole_span(otel: OTel) -> None:
    backend, config = recording()
    async with LogManager(config) as lm:

        def in_thread() -> None:
            with otel.tracer.start_as_current_span("job"):
                lm.write_log_threadsafe(Level.INFO, "given", trace_id="f" * 32)
                lm.write_log_threadsafe(Level.INFO, "captured")

        await asyncio.to_thread(in_thread)
    fields = by_message(backend)
    assert fields["given"] == {"trace_id": "f" * 32}
    assert sorted(fields["captured"]) == ["span_id", "trace_flags", "trace_id"]


async def test_tasks_made_in_a_span_keep_it(otel: OTel) -> None:
    backend, config = recording(async_mode=True)

    async def work(name: str, gate: asyncio.Event) -> None:
        await gate.wait()
        await asyncio.sleep(0)
        await lm.info(name)
        lm.nowait.info(f"{name} nowait")

    async with LogManager(config) as lm:
        gate = asyncio.Event()
        outside = asyncio.create_task(work("outside", gate))
        with otel.tracer.start_as_current_span("one") as one:
            first = asyncio.create_task(work("task of one", gate))
        with otel.tracer.start_as_current_span("two") as two:
            second = asyncio.create_task(work("task of two", gate))
            gate.set()  # all three run interleaved, after both spans are made
            await asyncio.gather(outside, first, second)
    fields = by_message(backend)
    assert fields["outside"] == {} == fields["outside nowait"]
    assert fields["task of one"] == ids(one) == fields["task of one nowait"]
    assert fields["task of two"] == ids(two) == fields["task of two nowait"]


async def test_a_thread_gives_its_own_span_not_the_loops(otel: OTel) -> None:
    backend, config = recording(async_mode=True)
    async with LogManager(config) as lm:
        thread_spans: dict[str, Span] = {}

        def in_thread() -> None:
            lm.write_log_threadsafe("INFO", "thread, no span")
            with otel.tracer.start_as_current_span("thread") as span:
                thread_spans["span"] = span
                lm.write_log_threadsafe("INFO", "thread %s", "span", n=1)
                lm.nowait.info("thread nowait")

        with otel.tracer.start_as_current_span("loop") as loop_span:
            thread = threading.Thread(target=in_thread)
            thread.start()
            await asyncio.to_thread(thread.join)
            await lm.info("loop")
    fields = by_message(backend)
    assert fields["loop"] == ids(loop_span)
    assert fields["thread, no span"] == {}
    assert fields["thread span"] == {**ids(thread_spans["span"]), "n": 1}
    assert fields["thread nowait"] == ids(thread_spans["span"])


def test_a_program_without_a_loop_run_in_thread(otel: OTel) -> None:
    backend, config = recording(async_mode=True)
    with run_in_thread(config) as logs:  # the manager's loop runs in a thread of its own
        with otel.tracer.start_as_current_span("job") as span:
            logs.write_log_threadsafe("INFO", "in the job", n=1)
        logs.write_log_threadsafe("INFO", "after the job")
    fields = by_message(backend)
    assert fields == {"in the job": {**ids(span), "n": 1}, "after the job": {}}


async def test_the_stdlib_bridge_takes_the_span_of_the_record(otel: OTel) -> None:
    backend, config = recording(async_mode=True)
    logger = logging.getLogger("otel_bridge_test")
    async with LogManager(config) as lm:
        install(lm, loggers=["otel_bridge_test"])
        with otel.tracer.start_as_current_span("request") as span:
            logger.info("stdlib %s", "in span")
            copied = contextvars.copy_context()  # a thread given the request's context
            thread = threading.Thread(target=copied.run, args=(logger.warning, "stdlib thread"))
            thread.start()
            await asyncio.to_thread(thread.join)
        logger.info("stdlib outside")
    fields = by_message(backend)
    assert fields["stdlib in span"] == ids(span) == fields["stdlib thread"]
    assert fields["stdlib outside"] == {}


async def test_structlog_calls_carry_the_ids(otel: OTel) -> None:
    structlog = pytest.importorskip("structlog")
    import asynclog.structlog

    backend, config = recording()
    try:
        async with LogManager(config) as lm:
            asynclog.structlog.configure(lm)
            log = structlog.get_logger("shop")
            with otel.tracer.start_as_current_span("request") as span:
                assert log.info("structlog sync", order_id=1) is True
                assert await log.ainfo("structlog awaited") is True
            log.info("structlog outside")
    finally:
        structlog.reset_defaults()
    fields = by_message(backend)
    assert fields["structlog sync"] == {**ids(span), "order_id": 1}
    assert fields["structlog awaited"] == ids(span)
    assert fields["structlog outside"] == {}


async def test_a_stdlib_record_held_before_start_keeps_its_span(otel: OTel) -> None:
    backend, config = recording(name="otel_held")
    logger = logging.getLogger("otel_held_test")
    handler = AsyncLogHandler("otel_held")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with otel.tracer.start_as_current_span("early") as span:
            logger.info("held")
        logger.info("held, no span")
        async with LogManager(config):
            pass
    finally:
        logger.removeHandler(handler)
    fields = by_message(backend)
    assert fields["held"] == ids(span)
    assert fields["held, no span"] == {}


async def test_otel_context_false_adds_nothing(otel: OTel) -> None:
    backend, config = recording(otel_context=False, name="otel_off")
    logger = logging.getLogger("otel_off_test")
    handler = AsyncLogHandler("otel_off")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with otel.tracer.start_as_current_span("early"):
            logger.info("held")  # before the manager of that name exists
        async with LogManager(config) as lm:
            with otel.tracer.start_as_current_span("request"):
                await lm.info("plain")
                await lm.info("fields", n=1)
                lm.nowait.info("nowait")
                await asyncio.to_thread(lm.write_log_threadsafe, "INFO", "thread")
                logger.info("stdlib")
                await asyncio.sleep(0.05)
    finally:
        logger.removeHandler(handler)
    assert by_message(backend) == {
        "held": {},
        "plain": {},
        "fields": {"n": 1},
        "nowait": {},
        "thread": {},
        "stdlib": {},
    }


async def test_an_unsampled_span_still_correlates_and_an_invalid_one_adds_nothing(
    otel: OTel,
) -> None:
    tracer = otel.sdk.TracerProvider(sampler=otel.always_off).get_tracer("unsampled")
    backend, config = recording()
    async with LogManager(config) as lm:
        with tracer.start_as_current_span("dropped") as span:
            await lm.info("unsampled")
        trace = otel.trace
        with trace.use_span(trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)):
            await lm.info("invalid")
    fields = by_message(backend)
    assert fields["unsampled"] == ids(span)
    assert fields["unsampled"]["trace_flags"] & 1 == 0  # not sampled (W3C bit 0)
    assert fields["invalid"] == {}


def test_otel_context_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="otel_context must be a bool, got 'yes'") as caught:
        Config(otel_context="yes")  # type: ignore[arg-type]
    assert caught.value.key == "otel_context"
    assert Config().otel_context is True
    assert Config.from_dict({"otel_context": False}).otel_context is False


# -- in the backends ------------------------------------------------------------------------


async def test_ids_land_in_json_lines(otel: OTel, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = Config(backend="file", backend_config=FileConfig(file_path=path, format="json"))
    async with LogManager(config) as lm:
        with otel.tracer.start_as_current_span("request") as span:
            await lm.info("in span", user="ann")
        await lm.info("outside")
    first, second = (json.loads(line) for line in read_lines(path))
    assert trace_part(first["fields"]) == ids(span)
    assert first["fields"]["user"] == "ann"
    assert trace_part(second.get("fields", {})) == {}


async def test_ids_land_in_sqlite_columns_and_come_back(otel: OTel, tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=path), async_mode=True)
    async with LogManager(config) as lm:
        with otel.tracer.start_as_current_span("outer") as outer:
            await lm.info("plain in span")
            with otel.tracer.start_as_current_span("inner") as inner:
                await lm.info("fields in span", user="ann")
        await lm.info("outside", user="bob")
        await lm.info("invalid", trace_id="not-hex", span_id=0)
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT message, fields, trace_id, span_id, trace_flags FROM logs ORDER BY id"
        ).fetchall()
    conn.close()
    outer_ids, inner_ids = ids(outer), ids(inner)
    assert rows == [
        ("plain in span", "{}", *outer_ids.values()),
        ("fields in span", '{"user": "ann"}', *inner_ids.values()),
        ("outside", '{"user": "bob"}', None, None, None),
        ("invalid", '{"trace_id": "not-hex", "span_id": 0}', None, None, None),
    ]
    read = {entry.message: dict(entry.fields) async for entry in query(path)}
    assert read == {
        "plain in span": outer_ids,
        "fields in span": {**inner_ids, "user": "ann"},
        "outside": {"user": "bob"},
        "invalid": {"trace_id": "not-hex", "span_id": 0},
    }
    one_trace = [e.message async for e in query(path, fields={"trace_id": outer_ids["trace_id"]})]
    assert one_trace == ["plain in span", "fields in span"]
    upper = outer_ids["trace_id"].upper()
    assert [e.message async for e in query(path, fields={"trace_id": upper})] == one_trace
    by_span = [e.message async for e in query(path, fields={"span_id": inner_ids["span_id"]})]
    assert by_span == ["fields in span"]
    flags = outer_ids["trace_flags"]
    assert [e.message async for e in query(path, fields={"trace_flags": flags})] == one_trace
    assert [e.message async for e in query(path, fields={"trace_id": "not-hex"})] == ["invalid"]
    with LogDB(path) as db:  # the CLI's reader
        found = list(db.entries(make_filters(fields={"trace_id": outer_ids["trace_id"]})))
        assert [(e.message, dict(e.fields)) for e in found] == [
            ("plain in span", outer_ids),
            ("fields in span", {**inner_ids, "user": "ann"}),
        ]
        assert db.summary(make_filters(fields={"span_id": inner_ids["span_id"]}))[0] == 1


async def test_an_older_sqlite_database_gets_the_trace_columns(otel: OTel, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, level INTEGER NOT NULL, "
            "logger TEXT NOT NULL, message TEXT NOT NULL, fields TEXT, exception TEXT, "
            "host TEXT, pid INTEGER, module TEXT, function TEXT, line INTEGER)"
        )
        conn.execute(
            "INSERT INTO logs (ts, level, logger, message, fields) "
            "VALUES (1.0, 20, 'old', 'old row', ?)",
            (json.dumps({"trace_id": OLD_TRACE_ID}),),
        )
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    # Before the migration, the field in the JSON is what there is: found, and given back.
    before = [dict(e.fields) async for e in query(path)]
    assert before == [{"trace_id": OLD_TRACE_ID}]
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=path))
    async with LogManager(config) as lm:
        with otel.tracer.start_as_current_span("request") as span:
            await lm.info("new row")
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        rows = conn.execute("SELECT message, trace_id, span_id FROM logs ORDER BY id").fetchall()
    conn.close()
    assert version == 3
    assert rows == [
        ("old row", None, None),
        ("new row", ids(span)["trace_id"], ids(span)["span_id"]),
    ]
    old_trace = [e.message async for e in query(path, fields={"trace_id": OLD_TRACE_ID})]
    assert old_trace == ["old row"]


async def test_ids_land_in_the_otlp_records_own_fields(otel: OTel) -> None:
    pytest.importorskip("opentelemetry.proto")
    from .test_otlp import Receiver, attributes, otlp

    receiver = Receiver()
    await receiver.start()
    try:
        config = Config(backend=otlp(receiver), async_mode=True)
        async with LogManager(config) as lm:
            with otel.tracer.start_as_current_span("request") as span:
                await lm.info("in span", user="ann")
            await lm.info("outside")
    finally:
        await receiver.stop()
    (_, first), (_, second) = receiver.records
    context = span.get_span_context()
    assert first.trace_id == context.trace_id.to_bytes(16, "big")
    assert first.span_id == context.span_id.to_bytes(8, "big")
    assert first.flags == int(context.trace_flags)
    assert attributes(first.attributes) == {"user": "ann"}
    assert (second.trace_id, second.span_id, second.flags) == (b"", b"", 0)
    assert attributes(second.attributes) == {}


async def test_ids_land_in_postgres_columns(otel: OTel) -> None:
    from .pg_support import PG_DSN, drop_table, fetch, fresh_table_name

    if not PG_DSN:
        pytest.skip("ASYNCLOG_TEST_PG_DSN is not set: no PostgreSQL server to test against")
    from asynclog import PostgresConfig

    table = fresh_table_name()
    try:
        config = Config(backend="postgres", backend_config=PostgresConfig(dsn=PG_DSN, table=table))
        async with LogManager(config) as lm:
            with otel.tracer.start_as_current_span("request") as span:
                await lm.info("in span", user="ann")
            await lm.info("outside")
            await lm.info("invalid", span_id="xyz")
        rows = await fetch(
            f"SELECT message, fields::text, trace_id, span_id, trace_flags FROM {table} ORDER BY id"
        )
    finally:
        await drop_table(table)
    expected = ids(span)
    assert [tuple(row) for row in rows] == [
        ("in span", '{"user": "ann"}', *expected.values()),
        ("outside", "{}", None, None, None),
        ("invalid", '{"span_id": "xyz"}', None, None, None),
    ]


# -- when OpenTelemetry is imported (a fresh interpreter each) ---------------------------------


def run_script(source: str, *, block_otel: bool = False) -> str:
    prelude = "import sys\nsys.modules['opentelemetry'] = None\n" if block_otel else ""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


COMMON = """
    import asyncio, sys
    from asynclog import Config, LogManager
    from asynclog.testing import capture_logs

    class Keep:
        def __init__(self): self.entries = []
        async def open(self): pass
        async def write_batch(self, entries): self.entries.extend(entries)
        async def close(self): pass

    def hooks():
        return [f for f in sys.meta_path if "opentelemetry.trace" in repr(f)]
"""


def test_an_import_after_start_is_noticed_at_once() -> None:
    out = run_script(
        COMMON
        + """
    async def main():
        keep = Keep()
        async with LogManager(Config(backend=keep)) as lm:
            await lm.info("before the import")
            print("imported before:", "opentelemetry.trace" in sys.modules, len(hooks()))
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            tracer = TracerProvider().get_tracer("late")
            with tracer.start_as_current_span("first") as span:
                await lm.info("first span")  # no await in between: no worker, no refresh
            ctx = span.get_span_context()
            print("expected:", format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
        for entry in keep.entries:
            print(entry.message + ":", entry.fields.get("trace_id"), entry.fields.get("span_id"))

    asyncio.run(main())
    """
    )
    lines = out.splitlines()
    assert lines[0] == "imported before: False 1"
    trace_id, span_id = lines[1].split()[1:]
    assert lines[2:] == ["before the import: None None", f"first span: {trace_id} {span_id}"]


def test_import_in_another_thread_is_noticed() -> None:
    out = run_script(
        COMMON
        + """
    import threading

    async def main():
        keep = Keep()
        async with LogManager(Config(backend=keep, async_mode=True)) as lm:
            def setup():
                from opentelemetry.sdk.trace import TracerProvider
                tracer = TracerProvider().get_tracer("thread")
                with tracer.start_as_current_span("thread span"):
                    lm.write_log_threadsafe("INFO", "from the thread")
            thread = threading.Thread(target=setup)
            thread.start()
            await asyncio.to_thread(thread.join)
            from opentelemetry.sdk.trace import TracerProvider
            with TracerProvider().get_tracer("loop").start_as_current_span("loop span"):
                await lm.info("on the loop")
        for entry in keep.entries:
            print(entry.message, len(entry.fields.get("trace_id", "")))

    asyncio.run(main())
    """
    )
    assert out.splitlines() == ["from the thread 32", "on the loop 32"]


def test_asynclog_never_imports_opentelemetry() -> None:
    out = run_script(
        COMMON
        + """
    async def main():
        keep = Keep()
        async with LogManager(Config(backend=keep, async_mode=True)) as lm:
            for i in range(3):
                await lm.info("x", n=i)
                lm.nowait.info("y")
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")), len(hooks()))
        print(len(keep.entries), sum(bool(e.fields.get("trace_id")) for e in keep.entries))

    asyncio.run(main())
    """
    )
    assert out.splitlines() == ["[] 1", "6 0"]


def test_without_opentelemetry_nothing_is_installed() -> None:
    out = run_script(
        COMMON
        + """
    async def main():
        keep = Keep()
        async with LogManager(Config(backend=keep)) as lm:
            await lm.info("x")
            with capture_logs() as logs:
                await lm.info("y", n=1)
        print(len(hooks()), [dict(e.fields) for e in logs], len(keep.entries))

    asyncio.run(main())
    """,
        block_otel=True,
    )
    assert out.splitlines() == ["0 [{'n': 1}] 2"]
