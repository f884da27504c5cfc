"""`python -m bench concurrency`: batches in flight at once (`concurrency=N`) when the round trip
dominates.

OTLP: `python -m bench.otlp_receiver --delay 0.02` answers each request 20 ms after it came
(a collector a continent away); asynclog's OTLP backend (async mode, `batch_size` 100) sends
the same entries with `concurrency=1` and `concurrency=4`, in alternating order, and every
run is checked: each entry received once, `written` exact. PostgreSQL (when
`ASYNCLOG_TEST_PG_DSN` is set): the same on the local server, which has no artificial delay
(a `COPY` cannot be made to wait without changing what is measured), so it shows what
several connections do when the round trip is short.

Prints the table; writes it into docs/benchmarks.md (its own section) unless `--no-write`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from asynclog import Config, LogManager, OTLPConfig, PostgresConfig

from .report import replace_section

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
LEVELS = (1, 4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_receiver(port: int, delay: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.otlp_receiver", "--port", str(port)]
    process = subprocess.Popen([*command, "--delay", str(delay)], cwd=ROOT, stdout=subprocess.PIPE)
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"READY":
        raise SystemExit("the OTLP receiver did not start")
    return process


def received(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/messages", timeout=30) as answer:
        found: list[str] = json.loads(answer.read())
    return found


async def one_run(backend: OTLPConfig | PostgresConfig, count: int, batch_size: int) -> float:
    """Entries a second from the first call to the end of `close()` (every entry written)."""
    config = Config(
        backends=[backend],
        async_mode=True,
        batch_size=batch_size,
        queue_size=count,
        overflow="block",
        fallback="none",
    )
    started = time.perf_counter()
    async with LogManager(config) as lm:
        for i in range(count):
            await lm.info(f"entry {i}")
    seconds = time.perf_counter() - started
    stats = lm.get_stats()
    if (stats.written, stats.dropped, stats.pending) != (count, 0, 0):
        raise SystemExit(f"a run lost entries: {stats}")
    return count / seconds


def check_otlp(port: int, count: int) -> None:
    bodies = received(port)
    if sorted(bodies) != sorted(f"entry {i}" for i in range(count)):
        raise SystemExit(f"the receiver got {len(bodies)} entries, not each of {count} once")


async def check_postgres(dsn: str, table: str, count: int) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval(f'SELECT count(DISTINCT message) FROM "{table}"')
        total = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
        await conn.execute(f'DROP TABLE "{table}"')
    finally:
        await conn.close()
    if (rows, total) != (count, count):
        raise SystemExit(f"PostgreSQL has {total} rows ({rows} distinct), not {count}")


async def measure(args: argparse.Namespace) -> list[dict[Any, Any]]:
    results: list[dict[Any, Any]] = []
    port = free_port()
    receiver = start_receiver(port, args.delay)
    try:
        received(port)
        rates: dict[int, list[float]] = {n: [] for n in LEVELS}
        for rep in range(args.reps):
            for n in LEVELS if rep % 2 == 0 else LEVELS[::-1]:
                endpoint = f"http://127.0.0.1:{port}/v1/logs"
                otlp = OTLPConfig(endpoint=endpoint, concurrency=n)
                rates[n].append(await one_run(otlp, args.entries, args.batch_size))
                check_otlp(port, args.entries)
        results.append({"backend": f"OTLP/HTTP, {args.delay * 1000:g} ms receiver", **rates})
    finally:
        os.kill(receiver.pid, signal.SIGTERM)
        receiver.wait(timeout=10)
    dsn = os.environ.get("ASYNCLOG_TEST_PG_DSN", "").strip()
    if dsn:
        rates = {n: [] for n in LEVELS}
        for rep in range(args.reps):
            for n in LEVELS if rep % 2 == 0 else LEVELS[::-1]:
                table = f"bench_{uuid.uuid4().hex[:12]}"
                pg = PostgresConfig(dsn=dsn, table=table, concurrency=n)
                rates[n].append(await one_run(pg, args.pg_entries, args.batch_size))
                await check_postgres(dsn, table, args.pg_entries)
        results.append({"backend": "PostgreSQL, local server (no delay)", **rates})
    return results


def table(results: list[dict[Any, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"`python -m bench concurrency` ({platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}; batch_size {args.batch_size}; "
        f"median of {args.reps} runs, each from the first call to the end of `close()`, "
        "every entry checked received once):",
        "",
        "| backend | entries | concurrency=1 | concurrency=4 | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results:
        one, four = statistics.median(row[1]), statistics.median(row[4])
        count = args.pg_entries if row["backend"].startswith("PostgreSQL") else args.entries
        lines.append(
            f"| {row['backend']} | {count:,} | {one:,.0f}/s | {four:,.0f}/s | {four / one:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench concurrency", description=__doc__)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--pg-entries", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    text = table(asyncio.run(measure(args)), args)
    print(text)
    if not args.no_write:
        DOCS.write_text(replace_section(DOCS.read_text(), "concurrency", text))


if __name__ == "__main__":
    main()
