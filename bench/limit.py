"""The limit: the simplest pure-Python asyncio pipeline, the ceiling asynclog is quoted against.

Callers `await queue.put(...)` on an `asyncio.Queue(maxsize=1000)`; one worker takes what is
there (`get()`, then `get_nowait()` until empty) and writes the whole batch at once: one
blocking `write` + `flush` on a file opened in append mode, or one `executemany` + commit
through aiosqlite.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from time import time
from typing import TextIO, TypeVar

import aiosqlite
import sniffio

QUEUE_SIZE = 1000
Item = tuple[float, str] | None  # None tells the worker to stop after this batch
T = TypeVar("T")


def format_line(ts: float, msg: str) -> str:
    """The minimal line every peer writes, as near as each library allows."""
    return f"{ts:.6f} INFO {msg}\n"


async def wait_until(done: Callable[[], bool]) -> None:
    """Poll `done` every millisecond: the loggers offer no event for "caught up"."""
    while not done():
        await loop_sleep(0.001)


async def loop_sleep(seconds: float) -> None:
    """`asyncio.sleep`, or trio's under `python -m bench --loop trio`."""
    if "trio" in sys.modules and sniffio.current_async_library() == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def _drain(queue: asyncio.Queue[T]) -> list[T]:
    """Wait for one item, then take everything else already queued."""
    batch = [await queue.get()]
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            batch.append(queue.get_nowait())
    return batch


class _Pipeline:
    """Queue + worker; subclasses write a batch."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.written = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def log(self, msg: str) -> None:
        await self.queue.put((time(), msg))

    async def _work(self) -> None:
        while True:
            batch = await _drain(self.queue)
            items = [item for item in batch if item is not None]
            if items:
                await self.write(items)
                self.written += len(items)
            if len(items) < len(batch):
                return

    async def write(self, items: list[tuple[float, str]]) -> None:
        raise NotImplementedError

    async def settle(self, written: int) -> None:
        """Wait until the worker has written `written` entries (between caller rounds)."""
        await wait_until(lambda: self.written >= written)

    async def close(self) -> None:
        await self.queue.put(None)
        if self._task is not None:
            await self._task


def _open_append(path: Path) -> TextIO:
    return path.open("a", encoding="utf-8")


class LimitFile(_Pipeline):
    """One blocking write + flush per batch, on the event loop's thread."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = _open_append(path)

    async def write(self, items: list[tuple[float, str]]) -> None:
        self._file.write("".join([format_line(ts, msg) for ts, msg in items]))
        self._file.flush()

    async def close(self) -> None:
        await super().close()
        self._file.close()


class LimitSQLite(_Pipeline):
    """One `executemany` + commit per batch, with the same pragmas as asynclog (WAL, NORMAL)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self._db = db

    @classmethod
    async def connect(cls, path: Path, indexed: bool = False) -> LimitSQLite:
        """`indexed` adds asynclog's two indexes (ts; level, ts for WARNING and above): the same
        work per row."""
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(
            "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, "
            "level INTEGER NOT NULL, message TEXT NOT NULL)"
        )
        if indexed:
            await db.execute("CREATE INDEX logs_ts ON logs (ts)")
            await db.execute("CREATE INDEX logs_level_ts ON logs (level, ts) WHERE level >= 30")
        await db.commit()
        return cls(db)

    async def write(self, items: list[tuple[float, str]]) -> None:
        await self._db.executemany("INSERT INTO logs (ts, level, message) VALUES (?, 20, ?)", items)
        await self._db.commit()

    async def close(self) -> None:
        await super().close()
        await self._db.close()


class StuckLimit:
    """The limit queue in front of a worker that takes one batch and never finishes writing it.

    Callers use `put_nowait`; a `QueueFull` counts as dropped: the comparison for `stalled`.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._dropped = 0
        self.in_flight: list[str] = []
        self._never = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        self.in_flight = await _drain(self.queue)
        await self._never.wait()

    async def attempt(self, msg: str) -> bool:
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self._dropped += 1
            return False
        return True

    def dropped(self) -> int:
        return self._dropped
