"""One run of `python -m bench protocols`: one client (the limit, or asynclog's backend in
async mode) sends `entries` entries over one protocol, in this process; prints one JSON line.

    python -m bench.protocol_run PROTOCOL CONTENDER --target JSON [--entries N --tasks T]
                                 [--no-fields]

`--target` says where the receiver is: `{"dsn": ...}` (postgres), `{"host", "port",
"output"}` (tcp, relp: rsyslogd's output file), `{"host", "port"}` (otlp). The time and the
process CPU run from the first call until the client is closed (everything committed,
acknowledged, answered, or for TCP written to the socket); then what the receiver got is read
back and checked: every entry once, in each task's order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .protocol_limits import LimitOtlp, LimitPostgres, LimitRelp, LimitTcpSyslog
from .run_one import RESULT_MARK
from .verify import check_messages

PROTOCOLS = ("postgres", "tcp", "relp", "otlp")
CONTENDERS = ("limit", "asynclog")
BOM = "\ufeff"
SYSLOG_WAIT = 30.0  # seconds rsyslogd may take to write out what a run sent


@dataclass
class Client:
    log: Callable[..., Awaitable[object]]
    close: Callable[[], Awaitable[object]]
    check: Callable[[int], str | None] = lambda expected: None  # its own counters, after close


async def asynclog_client(
    protocol: str, target: dict[str, Any], table: str, otlp_client: str = "builtin"
) -> Client:
    from asynclog import Config, LogManager, OTLPConfig, PostgresConfig, SyslogConfig

    backend: str
    settings: PostgresConfig | SyslogConfig | OTLPConfig
    if protocol == "postgres":
        backend, settings = "postgres", PostgresConfig(dsn=target["dsn"], table=table)
    elif protocol in ("tcp", "relp"):
        backend = "syslog"
        transport: Literal["tcp", "relp"] = "tcp" if protocol == "tcp" else "relp"
        settings = SyslogConfig(host=target["host"], port=target["port"], transport=transport)
    else:
        backend = "otlp"
        settings = OTLPConfig(
            endpoint=f"http://{target['host']}:{target['port']}/v1/logs",
            proxy="",
            http_client="httpx" if otlp_client == "httpx" else "builtin",
        )
    config = Config(
        backend=backend,
        backend_config=settings,
        async_mode=True,
        queue_size=1000,
        overflow="block",
    )
    lm = LogManager(config)
    await lm.start()

    def check(expected: int) -> str | None:
        stats = lm.get_stats()
        if (stats.written, stats.dropped, stats.write_errors) != (expected, 0, 0):
            return (
                f"stats: written={stats.written} dropped={stats.dropped} "
                f"write_errors={stats.write_errors}, expected written={expected}"
            )
        return None

    return Client(lm.info, lm.close, check)


async def limit_client(protocol: str, target: dict[str, Any], table: str) -> Client:
    pipeline: LimitPostgres | LimitTcpSyslog | LimitRelp | LimitOtlp
    if protocol == "postgres":
        pipeline = LimitPostgres(target["dsn"], table)
    elif protocol == "tcp":
        pipeline = LimitTcpSyslog(target["host"], target["port"])
    elif protocol == "relp":
        pipeline = LimitRelp(target["host"], target["port"])
    else:
        pipeline = LimitOtlp(target["host"], target["port"])
    await pipeline.start()
    return Client(pipeline.log, pipeline.close)


# ---- what the receiver got -------------------------------------------------------------------


class Received:
    """Reads back what one run sent: prepared before the run, read after it."""

    def __init__(self, protocol: str, target: dict[str, Any], table: str) -> None:
        self.protocol, self.target, self.table = protocol, target, table
        self.offset = 0

    async def prepare(self) -> None:
        if self.protocol == "postgres":
            await self._pg(f'DROP TABLE IF EXISTS "{self.table}"')
        elif self.protocol == "otlp":
            await asyncio.to_thread(self._otlp_messages)  # forget what came before
        else:
            output = Path(self.target["output"])
            self.offset = output.stat().st_size if output.exists() else 0

    async def messages(self, expected: int) -> list[str]:
        if self.protocol == "postgres":
            rows = await self._pg(f'SELECT message FROM "{self.table}" ORDER BY id', fetch=True)
            await self._pg(f'DROP TABLE IF EXISTS "{self.table}"')
            return [row[0] for row in rows]
        if self.protocol == "otlp":
            return await asyncio.to_thread(self._otlp_messages)
        return await self._syslog_lines(expected)

    async def _pg(self, query: str, fetch: bool = False) -> list[Any]:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(self.target["dsn"])
        try:
            if fetch:
                return list(await conn.fetch(query))
            await conn.execute(query)
            return []
        finally:
            await conn.close()

    def _otlp_messages(self) -> list[str]:
        url = f"http://{self.target['host']}:{self.target['port']}/messages"
        with urllib.request.urlopen(url, timeout=30) as answer:
            found: list[str] = json.loads(answer.read())
        return found

    async def _syslog_lines(self, expected: int) -> list[str]:
        """rsyslogd's output lines written since `prepare`, once `expected` are there (TCP
        has no acknowledgement: the server may still be writing when the client is done)."""
        output = Path(self.target["output"])
        deadline = time.monotonic() + SYSLOG_WAIT
        while True:
            with output.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
            lines = data.decode("utf-8", "replace").split("\n")[:-1]
            if len(lines) >= expected or time.monotonic() >= deadline:
                return [line.removeprefix(BOM) for line in lines]
            await asyncio.sleep(0.02)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    target = json.loads(args.target)
    table = f"bench_{args.contender}_{os.getpid()}"
    received = Received(args.protocol, target, table)
    await received.prepare()
    if args.contender == "limit":
        client = await limit_client(args.protocol, target, table)
    else:
        client = await asynclog_client(args.protocol, target, table, args.otlp_client)
    log = client.log
    per_task = args.entries // args.tasks

    async def produce(t: int) -> None:
        if args.fields:
            for i in range(per_task):
                await log(f"task {t} msg {i}", task=t, seq=i)
        else:
            for i in range(per_task):
                await log(f"task {t} msg {i}")

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(produce(t) for t in range(args.tasks)))
    await client.close()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    entries = per_task * args.tasks
    problems = [client.check(entries)]
    problems.append(check_messages(await received.messages(entries), args.tasks, per_task))
    error = "; ".join(p for p in problems if p) or None
    return {
        "protocol": args.protocol,
        "contender": args.contender,
        "ok": error is None,
        "error": error,
        "entries": entries,
        "seconds": seconds,
        "entries_per_s": entries / seconds,
        "cpu_us_per_entry": cpu / entries * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.protocol_run", description=__doc__)
    parser.add_argument("protocol", choices=PROTOCOLS)
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--target", required=True, help="JSON: where the receiver is")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument(
        "--fields",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each entry carries two fields, task=t and seq=i (default: yes)",
    )
    parser.add_argument(
        "--otlp-client",
        choices=("builtin", "httpx"),
        default="builtin",
        help="the OTLP backend's HTTP client (OTLPConfig.http_client)",
    )
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except Exception as exc:
        result = {
            "protocol": args.protocol,
            "contender": args.contender,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
        }
    print(RESULT_MARK + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
