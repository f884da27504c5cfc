"""Issue 13, scenario 1: `async with LogManager(...)` cancelled while `start()` opens the
backends (a SQLite database first, then a backend whose `open()` is slow).

Usage: python cancel_during_open.py DB_PATH. Prints what it saw, one finding per line; the
process must then exit on its own (aiosqlite's connection thread is not a daemon thread)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from asynclog import Config, LogEntry, LogManager, Sink, SQLiteBackend, SQLiteConfig


class TrackedSQLite(SQLiteBackend):
    """The SQLite backend, remembering whether it was closed."""

    closed = False

    async def close(self) -> None:
        await super().close()
        self.closed = True


class SlowOpen:
    """A backend whose open() takes far longer than the caller is willing to wait."""

    async def open(self) -> None:
        await asyncio.sleep(60)

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        pass

    async def close(self) -> None:
        pass


async def main() -> None:
    sqlite = TrackedSQLite(SQLiteConfig(db_path=sys.argv[1]))
    lm = LogManager(Config(backends=[sqlite, Sink(SlowOpen(), name="slow")]))

    async def serve() -> None:
        async with lm:
            await lm.info("never logged: start() does not finish")

    task = asyncio.create_task(serve())
    await asyncio.sleep(0.5)  # the database is open; SlowOpen.open() is under way
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("start raised CancelledError", flush=True)
    except BaseException as exc:
        print(f"start raised {type(exc).__name__}: {exc}", flush=True)
    else:
        print("start returned", flush=True)
    print(f"sqlite closed: {sqlite.closed}", flush=True)


asyncio.run(main())
print("asyncio.run returned", flush=True)
