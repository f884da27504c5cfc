"""PostgreSQL test support: the server the tests use (from the environment), fresh tables,
queries, a server restart, and (run as a script) the writer process of the multi-process test.

`.ci/postgres.sh` starts a local server and prints the variables:

    eval "$(.ci/postgres.sh)"

ASYNCLOG_TEST_PG_DSN      the DSN; the server tests skip when it is unset (CI always sets it)
ASYNCLOG_TEST_PG_CLUSTER  "<version> <cluster>" of that server, for the restart test
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

# Absolute: this file also runs as a script (the writer processes, PYTHONPATH = the checkout).
from tests.conftest import needs_real

PG_DSN = os.environ.get("ASYNCLOG_TEST_PG_DSN", "").strip()
PG_CLUSTER = os.environ.get("ASYNCLOG_TEST_PG_CLUSTER", "").strip()

START_PG = 'eval "$(.ci/postgres.sh)"'
"""Starts a local server and sets both variables (`.ci/run` does it)."""

requires_pg = needs_real(
    "PostgreSQL",
    None if PG_DSN else "ASYNCLOG_TEST_PG_DSN is not set",
    START_PG,
)
requires_cluster = needs_real(
    "PostgreSQL",
    None
    if PG_DSN and PG_CLUSTER
    else "ASYNCLOG_TEST_PG_DSN is not set"
    if not PG_DSN
    else "ASYNCLOG_TEST_PG_CLUSTER is not set (the restart test needs to know which cluster, "
    "e.g. '15 main')",
    START_PG,
)


def asyncpg_module() -> Any:
    """asyncpg; with a DSN set but asyncpg missing the tests fail (they do not skip)."""
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        pytest.fail(
            "ASYNCLOG_TEST_PG_DSN is set but asyncpg is not installed: "
            "pip install -e '.[test,postgres]'"
        )
    return asyncpg


def fresh_table_name() -> str:
    return f"logs_{uuid.uuid4().hex}"


async def connect() -> Any:
    return await asyncpg_module().connect(PG_DSN)


async def fetch(query: str, *args: object) -> list[Any]:
    conn = await connect()
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def fetchval(query: str, *args: object) -> Any:
    conn = await connect()
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def drop_table(name: str, schema: str | None = None) -> None:
    qualified = f'"{name}"' if schema is None else f'"{schema}"."{name}"'
    await fetch(f"DROP TABLE IF EXISTS {qualified}")


def restart_cluster(mode: str = "fast") -> None:
    """`pg_ctlcluster <version> <cluster> restart` (as root), waiting until it is up."""
    version, cluster = PG_CLUSTER.split()
    command = [
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        "--mode",
        mode,
        version,
        cluster,
        "restart",
    ]
    if os.geteuid() != 0:
        command.insert(0, "sudo")
    subprocess.run(command, check=True, capture_output=True, timeout=120)


async def wait_until_up(seconds: float = 30.0) -> None:
    """Until the server accepts a query (after a restart it may still be recovering)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            await fetchval("SELECT 1")
            return
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _write_entries(dsn: str, table: str, count: int, proc: int) -> None:
    """The multi-process test's writer: `count` entries through an async-mode manager."""
    from asynclog import Config, LogManager
    from asynclog._postgres_config import PostgresConfig
    from asynclog.backends.postgres import PostgresBackend

    backend = PostgresBackend(PostgresConfig(dsn=dsn, table=table))
    config = Config(
        backend=backend,
        async_mode=True,
        queue_size=10_000,
        overflow="block",
        retry_attempts=20,
        retry_backoff=0.1,
        fallback="none",
    )
    async with LogManager(config) as manager:
        for n in range(count):
            await manager.write_log("info", f"process {proc} entry {n}", proc=proc, n=n)
    stats = manager.get_stats()
    if stats.written != count or stats.dropped or stats.dead_lettered:
        print(f"writer {proc}: {stats}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    dsn_arg, table_arg, count_arg, proc_arg = sys.argv[1:5]
    asyncio.run(_write_entries(dsn_arg, table_arg, int(count_arg), int(proc_arg)))
