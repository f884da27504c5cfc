"""`concurrency=N`: up to N batches in flight for the OTLP and PostgreSQL backends, against a
real OTLP receiver that answers after 20 ms and the PostgreSQL server of the tests; counts,
retries, the fallback, close and close(timeout) stay exact."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")

from asynclog import (
    Config,
    ConfigError,
    LogManager,
    OTLPConfig,
    PostgresBackend,
    PostgresConfig,
)

from .conftest import RecordingBackend
from .pg_support import PG_DSN, drop_table, fetch, fresh_table_name, requires_pg
from .test_otlp import Receiver, otlp

ROUND_TRIP = 0.02


@pytest.fixture
async def slow_receiver() -> AsyncIterator[Receiver]:
    """A collector that answers each request after 20 ms."""
    server = Receiver(delay=ROUND_TRIP)
    await server.start()
    yield server
    await server.stop()


def seqs_of(receiver: Receiver) -> list[int]:
    return [fields["seq"] for fields in receiver.decoded_fields()]


async def log_numbered(lm: LogManager, count: int) -> None:
    for i in range(count):
        await lm.info("event", seq=i)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("still not so after 10 s")


def counts(lm: LogManager) -> tuple[int, int, int, int, int]:
    stats = lm.get_stats()
    return stats.accepted, stats.written, stats.dead_lettered, stats.dropped, stats.pending


# -- the setting -------------------------------------------------------------------------


def test_default_is_one_and_bounds_are_checked() -> None:
    assert OTLPConfig().concurrency == 1
    assert PostgresConfig(dsn="postgresql://u@h/d").concurrency == 1
    assert OTLPConfig(concurrency=64).concurrency == 64
    for bad, detail in [
        (0, "concurrency must be >= 1, got 0"),
        (65, "OTLPConfig.concurrency must be <= 64, got 65"),
        ("4", "OTLPConfig.concurrency must be an int, got '4'"),
        (True, "OTLPConfig.concurrency must be an int, got True"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(detail)) as caught:
            OTLPConfig(concurrency=bad)
        assert caught.value.key == "concurrency"
    with pytest.raises(ConfigError, match=r"PostgresConfig\.concurrency must be <= 64") as caught:
        PostgresConfig(dsn="postgresql://u@h/d", concurrency=65)
    assert caught.value.key == "concurrency"


def test_loaded_from_a_dict() -> None:
    config = Config.from_dict(
        {
            "backends": [
                {"type": "otlp", "concurrency": 4},
                {"type": "postgres", "dsn": "postgresql://u@h/d", "concurrency": 3},
            ]
        }
    )
    otlp_config, pg_config = (sink for sink in config.backends)
    assert isinstance(otlp_config, OTLPConfig) and otlp_config.concurrency == 4
    assert isinstance(pg_config, PostgresConfig) and pg_config.concurrency == 3
    with pytest.raises(ConfigError, match=r"backends\[0\]\.concurrency: must be >= 1, got 0"):
        Config.from_dict({"backends": [{"type": "otlp", "concurrency": 0}]})


# -- OTLP --------------------------------------------------------------------------------


async def test_one_batch_at_a_time_by_default_and_in_order(slow_receiver: Receiver) -> None:
    backend = otlp(slow_receiver)
    config = Config(backend=backend, async_mode=True, batch_size=50, overflow="block")
    async with LogManager(config) as lm:
        await log_numbered(lm, 500)
    assert seqs_of(slow_receiver) == list(range(500))
    assert slow_receiver.most_at_once == 1 and backend.connections == 1
    assert counts(lm) == (500, 500, 0, 0, 0)


async def test_four_batches_in_flight_write_every_entry_once(slow_receiver: Receiver) -> None:
    backend = otlp(slow_receiver, concurrency=4)
    config = Config(backend=backend, async_mode=True, batch_size=50, queue_size=10_000)
    async with LogManager(config) as lm:
        await log_numbered(lm, 2000)
    seqs = seqs_of(slow_receiver)
    assert sorted(seqs) == list(range(2000))  # each once; batches may land out of order
    assert len(slow_receiver.requests) == 40
    assert slow_receiver.most_at_once == 4
    assert backend.connections == 4  # one kept-alive connection per batch in flight
    assert counts(lm) == (2000, 2000, 0, 0, 0)
    for request in slow_receiver.requests:  # each batch is whole and in order inside
        batch = [
            record.attributes[0].value.int_value
            for logs in request.decoded.resource_logs
            for scope in logs.scope_logs
            for record in scope.log_records
        ]
        assert batch == list(range(batch[0], batch[0] + 50))


async def test_stats_while_batches_are_in_flight(slow_receiver: Receiver) -> None:
    slow_receiver.delay = 0.3
    backend = otlp(slow_receiver, concurrency=4)
    lm = LogManager(Config(backend=backend, async_mode=True, batch_size=100, queue_size=10_000))
    await lm.start()
    await log_numbered(lm, 600)
    await until(lambda: slow_receiver.answering == 4)
    assert counts(lm) == (600, 0, 0, 0, 600)  # 400 in flight, 200 queued: all pending
    assert lm.get_stats().queue_size == 200
    report = await lm.close()  # drains the four batches in flight, then the rest
    assert (report.written, report.dropped, report.abandoned) == (600, 0, 0)
    assert sorted(seqs_of(slow_receiver)) == list(range(600))
    assert counts(lm) == (600, 600, 0, 0, 0)


async def test_close_timeout_abandons_and_counts_the_batches_in_flight(
    slow_receiver: Receiver,
) -> None:
    slow_receiver.delay = 30.0
    backend = otlp(slow_receiver, concurrency=4, timeout=60.0)
    lm = LogManager(Config(backend=backend, async_mode=True, batch_size=100, queue_size=10_000))
    await lm.start()
    await log_numbered(lm, 700)
    await until(lambda: slow_receiver.answering == 4)
    report = await lm.close(timeout=0.2)
    assert (report.written, report.dropped, report.abandoned) == (0, 700, 700)
    assert counts(lm) == (700, 0, 0, 700, 0)


async def test_retried_batches_arrive_once_with_exact_counts(slow_receiver: Receiver) -> None:
    busy = (503, {}, b"")
    slow_receiver.plan = [busy] * 6
    backend = otlp(slow_receiver, concurrency=4, retry_backoff=0.01)
    config = Config(backend=backend, async_mode=True, batch_size=50, queue_size=10_000)
    async with LogManager(config) as lm:
        await log_numbered(lm, 1000)
    seqs = seqs_of(slow_receiver)
    assert sorted(seqs) == list(range(1000))
    assert [r.status for r in slow_receiver.requests].count(503) == 6
    assert len(slow_receiver.requests) == 20 + 6
    assert backend.retries == 6
    assert counts(lm) == (1000, 1000, 0, 0, 0)
    assert lm.get_stats().write_errors == 0


async def test_refused_batches_go_to_the_fallback_once_each(slow_receiver: Receiver) -> None:
    """500 is not retried by the backend; the manager's retries do not send a refused batch
    again; the two refused batches are dead-lettered whole, the others written."""
    slow_receiver.plan = [(500, {}, b"")] * 2
    backend = otlp(slow_receiver, concurrency=4)
    fallback = RecordingBackend()
    config = Config(
        backend=backend,
        async_mode=True,
        batch_size=50,
        queue_size=10_000,
        retry_attempts=2,
        retry_backoff=0.01,
        fallback=fallback,
    )
    async with LogManager(config) as lm:
        await log_numbered(lm, 1000)
    written = seqs_of(slow_receiver)
    dead = [entry.fields["seq"] for entry in fallback.entries]
    assert sorted(written + dead) == list(range(1000))
    assert len(dead) == 100 and fallback.batches == [50, 50]
    assert len(slow_receiver.requests) == 20  # each batch sent once
    assert backend.refused == 2
    stats = lm.get_stats()
    assert (stats.written, stats.dead_lettered, stats.dropped, stats.pending) == (900, 100, 0, 0)
    assert (stats.write_errors, stats.retries) == (6, 4)


async def test_a_handler_of_a_lane_may_log_into_a_full_queue(slow_receiver: Receiver) -> None:
    """A handler runs in the task of its batch's lane: logging from it into a full queue
    must not wait for room that only this worker could make."""
    backend = otlp(slow_receiver, concurrency=3)
    config = Config(
        backend=backend, async_mode=True, batch_size=10, queue_size=10, overflow="block"
    )
    async with LogManager(config) as lm:
        logged = 0

        async def echo(entry: Any) -> None:
            nonlocal logged
            if entry.message == "event" and logged < 30:
                logged += 1
                await lm.info("echo", seq=1000 + entry.fields["seq"])

        lm.register_handler(echo)
        await log_numbered(lm, 30)
        await until(lambda: lm.get_stats().written == 60)  # close() refuses what they log
    assert sorted(seqs_of(slow_receiver)) == [*range(30), *range(1000, 1030)]
    assert counts(lm) == (60, 60, 0, 0, 0)


LOOP_ENDS = """
    import asyncio, threading
    from asynclog import Config, LogManager
    from tests.test_otlp import Receiver, otlp

    receiver = Receiver(delay=0.1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(receiver.start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    managers = []

    async def main():
        config = Config(
            backend=otlp(receiver, concurrency=4), async_mode=True, batch_size=10, queue_size=1000
        )
        lm = LogManager(config)
        managers.append(lm)  # kept alive, never closed
        await lm.start()
        for i in range(200):
            await lm.info("event", seq=i)
        while receiver.answering < 4:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    stats = managers[0].get_stats()
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0.3), loop).result()  # answers land
    seqs = [fields["seq"] for fields in receiver.decoded_fields()]
    print(stats.written, stats.dropped, stats.pending, len(seqs), set(seqs) == set(range(200)))
"""


def test_batches_in_flight_when_the_loop_ends_are_sent_again() -> None:
    """No close(): `asyncio.run` cancels the worker and its lanes with four batches in
    flight; each is written again before the loop goes (at least once), the counts exact."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOOP_ENDS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # written, dropped, pending; requests received (the four batches in flight twice); all
    assert done.stdout.split() == ["200", "0", "0", "240", "True"], done.stdout + done.stderr


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
async def pg_table() -> AsyncIterator[str]:
    name = fresh_table_name()
    yield name
    await drop_table(name)


@requires_pg
async def test_postgres_four_connections_write_every_row_once(pg_table: str) -> None:
    backend = PostgresBackend(PostgresConfig(dsn=PG_DSN, table=pg_table, concurrency=4))
    config = Config(backend=backend, async_mode=True, batch_size=100, queue_size=10_000)
    async with LogManager(config) as lm:
        await log_numbered(lm, 3000)
        await asyncio.sleep(0)
    rows = await fetch(f"SELECT (fields->>'seq')::int AS seq, batch_id FROM \"{pg_table}\"")
    assert sorted(row["seq"] for row in rows) == list(range(3000))
    assert len({row["batch_id"] for row in rows}) == 30
    assert counts(lm) == (3000, 3000, 0, 0, 0)
    assert backend.reconnects == 0 and backend.skipped_batches == 0


@requires_pg
async def test_postgres_batches_are_in_flight_at_once(pg_table: str) -> None:
    """Four batches wait on a lock at once: with one connection they could not."""
    backend = PostgresBackend(PostgresConfig(dsn=PG_DSN, table=pg_table, concurrency=4))
    config = Config(backend=backend, async_mode=True, batch_size=10, queue_size=10_000)
    lm = LogManager(config)
    await lm.start()
    await lm.info("table made")
    await until(lambda: lm.get_stats().written == 1)
    locker = await _locked(pg_table)
    try:
        await log_numbered(lm, 60)
        await _wait_for_waiting_copies(pg_table, 4)
        assert lm.get_stats().pending == 60
    finally:
        await locker.close()  # ends the lock: the COPYs go on
    await lm.close()
    rows = await fetch(f"SELECT (fields->>'seq')::int AS seq FROM \"{pg_table}\"")
    assert sorted(row["seq"] for row in rows if row["seq"] is not None) == list(range(60))
    assert counts(lm) == (61, 61, 0, 0, 0)


async def _locked(table: str) -> Any:
    from .pg_support import connect

    conn = await connect()
    await conn.execute("BEGIN")
    await conn.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
    return conn


async def _wait_for_waiting_copies(table: str, count: int) -> None:
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'asynclog' "
        "AND wait_event_type = 'Lock' AND query LIKE 'COPY%'"
    )
    for _ in range(500):
        rows = await fetch(query)
        if rows[0][0] == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} COPYs never waited at once on {table}")
