"""The contenders. Each builds a `Sink`: an awaitable `log(msg)`, `close()`, and where it wrote.

Every contender writes one line per entry, `f"{ts:.6f} INFO {msg}"` or as close as the library
allows, with the message last so `verify` can cut it out. Libraries whose call is synchronous
are wrapped in an `async def`, so every contender is driven as `await log(msg)`; the `noop`
contender is exactly that wrapper around nothing (the harness's floor).
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import queue
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from .limit import LimitFile, LimitSQLite, StuckLimit, loop_sleep, wait_until

LogFn = Callable[[str], Awaitable[object]]
MINIMAL_FORMAT = "%(created).6f %(levelname)s %(message)s"  # stdlib and aiologger


@dataclass(frozen=True)
class Output:
    """Where a contender wrote: a text file (message after `head_fields` spaces) or SQLite."""

    kind: Literal["file", "sqlite"]
    path: Path
    head_fields: int = 2  # "<ts> INFO <message>"


async def _pause(written: int) -> None:
    await loop_sleep(0.005)


def _no_check(expected: int) -> str | None:
    return None


@dataclass
class Sink:
    """One ready logger. `settle(n)` waits until it has written the first `n` entries, where
    it can tell (between caller rounds); `check(n)` reads the library's own counters after
    close (None when they say all `n` were written)."""

    log: LogFn
    close: Callable[[], Awaitable[object]]
    output: Output | None
    settle: Callable[[int], Awaitable[None]] = _pause
    check: Callable[[int], str | None] = _no_check


class Attempter(Protocol):
    """`stalled`: `attempt(msg)` says whether the entry was accepted; `dropped()` is the
    logger's own count of refused entries."""

    async def attempt(self, msg: str) -> bool: ...

    def dropped(self) -> int: ...


@dataclass(frozen=True)
class SharedFile:
    """How a contender runs in the `shared_*` scenarios (several `bench.shared_worker`
    processes writing one file with `FileConfig(shared=True)`)."""

    async_mode: bool

    def output(self, path: Path) -> Output:
        return Output("file", path, head_fields=3)  # asynclog's text format


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    group: Literal["asynclog", "peer", "limit", "floor"]
    limit: str  # the limit contender its ratios are quoted against
    make: Callable[[Path], Awaitable[Sink]]
    make_stuck: Callable[[], Awaitable[Attempter]] | None = None
    shared: SharedFile | None = None


# ---- asynclog --------------------------------------------------------------------------------


async def _asynclog(directory: Path, backend: str, async_mode: bool, on_loop: bool) -> Sink:
    from asynclog import Config, FileConfig, LogManager, SQLiteConfig

    backend_config: FileConfig | SQLiteConfig
    if backend == "file":
        path = directory / "asynclog.log"
        backend_config = FileConfig(
            file_path=path,
            max_file_size_mb=1000,
            max_backups=0,
            format="text",
            write_on_loop=on_loop,
        )
        output = Output("file", path, head_fields=3)  # "<iso ts> INFO asynclog <message>"
    else:
        path = directory / "asynclog.db"
        backend_config = SQLiteConfig(db_path=path, table="logs", write_on_loop=on_loop)
        output = Output("sqlite", path)
    config = Config(
        backend=backend,
        backend_config=backend_config,
        async_mode=async_mode,
        queue_size=1000,
        put_timeout=0.1,
    )
    lm = LogManager(config)
    await lm.start()

    async def settle(written: int) -> None:
        def caught_up() -> bool:
            stats = lm.get_stats()
            return stats.written + stats.dropped >= written

        await wait_until(caught_up)

    def check(expected: int) -> str | None:
        stats = lm.get_stats()
        if (stats.written, stats.dropped, stats.write_errors) != (expected, 0, 0):
            return (
                f"stats: written={stats.written} dropped={stats.dropped} "
                f"write_errors={stats.write_errors}, expected written={expected}"
            )
        return None

    return Sink(lm.info, lm.close, output, settle, check)


class _StuckBackend:
    """A Backend whose `write_batch` never returns: a hung disk or database."""

    def __init__(self) -> None:
        self._never = asyncio.Event()

    async def open(self) -> None:
        pass

    async def write_batch(self, entries: object) -> None:
        await self._never.wait()

    async def close(self) -> None:
        pass


class _StuckAsynclog:
    def __init__(self, lm: Any) -> None:
        from asynclog import QueueFullError

        self._lm = lm
        self._full = QueueFullError

    def dropped(self) -> int:
        return int(self._lm.get_stats().dropped)

    async def attempt(self, msg: str) -> bool:
        try:
            # False: refused (counted dropped); raises instead with raise_errors=True.
            return bool(await self._lm.info(msg))
        except self._full:
            return False


async def _stuck_asynclog() -> Attempter:
    from asynclog import Config, LogManager

    config = Config(backend=_StuckBackend(), async_mode=True, queue_size=1000, put_timeout=0)
    lm = LogManager(config)
    await lm.start()
    return _StuckAsynclog(lm)


async def _stuck_limit() -> Attempter:
    return StuckLimit()


# ---- the limit and the floor -----------------------------------------------------------------


async def _limit_file(directory: Path) -> Sink:
    path = directory / "limit.log"
    pipeline = LimitFile(path)
    pipeline.start()
    return Sink(pipeline.log, pipeline.close, Output("file", path), pipeline.settle)


async def _limit_sqlite(directory: Path, indexed: bool = False) -> Sink:
    path = directory / "limit.db"
    pipeline = await LimitSQLite.connect(path, indexed=indexed)
    pipeline.start()
    return Sink(pipeline.log, pipeline.close, Output("sqlite", path), pipeline.settle)


async def _limit_sqlite_indexed(directory: Path) -> Sink:
    return await _limit_sqlite(directory, indexed=True)


async def _noop(directory: Path) -> Sink:
    async def log(msg: str) -> None:
        pass

    async def close() -> None:
        pass

    return Sink(log, close, None)


# ---- peers -----------------------------------------------------------------------------------


def _stdlib_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _file_handler(path: Path) -> logging.FileHandler:
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(MINIMAL_FORMAT))
    return handler


async def _stdlib_file(directory: Path) -> Sink:
    path = directory / "stdlib.log"
    handler = _file_handler(path)
    info = _stdlib_logger("bench.stdlib_file", handler).info

    async def log(msg: str) -> None:
        info(msg)

    async def close() -> None:
        handler.close()

    return Sink(log, close, Output("file", path))


async def _stdlib_queue(directory: Path) -> Sink:
    path = directory / "stdlib_queue.log"
    handler = _file_handler(path)
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    listener = logging.handlers.QueueListener(records, handler)
    info = _stdlib_logger("bench.stdlib_queue", logging.handlers.QueueHandler(records)).info
    listener.start()

    async def log(msg: str) -> None:
        info(msg)

    async def settle(written: int) -> None:
        await wait_until(records.empty)

    async def close() -> None:
        listener.stop()  # enqueues the sentinel and joins the thread: everything is written
        handler.close()

    return Sink(log, close, Output("file", path), settle)


async def _aiologger(directory: Path) -> Sink:
    from aiologger import Logger
    from aiologger.formatters.base import Formatter
    from aiologger.handlers.files import AsyncFileHandler
    from aiologger.levels import LogLevel

    path = directory / "aiologger.log"
    handler = AsyncFileHandler(str(path))
    handler.formatter = Formatter(MINIMAL_FORMAT)
    logger = Logger(name="bench", level=LogLevel.INFO)
    logger.add_handler(handler)
    return Sink(logger.info, logger.shutdown, Output("file", path))


async def _loguru(directory: Path) -> Sink:
    from loguru import logger

    path = directory / "loguru.log"

    def line_format(record: Any) -> str:
        # loguru's {time:X} has no fraction; the template must escape nothing else.
        return f"{record['time'].timestamp():.6f} {{level}} {{message}}\n"

    logger.remove()
    handler_id = logger.add(path, format=line_format, level="INFO", enqueue=True)
    info = logger.info

    async def log(msg: str) -> None:
        info(msg)

    async def settle(written: int) -> None:
        await logger.complete()

    async def close() -> None:
        await logger.complete()
        logger.remove(handler_id)  # stops the queue's thread and closes the file

    return Sink(log, close, Output("file", path), settle)


def _open_text(path: Path) -> TextIO:
    return path.open("a", encoding="utf-8")


async def _structlog(directory: Path) -> Sink:
    import structlog

    path = directory / "structlog.log"
    stream = _open_text(path)

    def render(_logger: object, method: str, event: MutableMapping[str, Any]) -> str:
        return f"{time.time():.6f} {method.upper()} {event['event']}"

    structlog.configure(
        processors=[render],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    logger = structlog.get_logger()

    async def close() -> None:
        stream.close()

    return Sink(logger.ainfo, close, Output("file", path))


def _asynclog_maker(
    backend: str, async_mode: bool, on_loop: bool = False
) -> Callable[[Path], Awaitable[Sink]]:
    async def make(directory: Path) -> Sink:
        return await _asynclog(directory, backend, async_mode, on_loop)

    return make


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in [
        Contender(
            "asynclog-async-file",
            "asynclog async→file",
            "asynclog",
            "limit-file",
            _asynclog_maker("file", True),
            _stuck_asynclog,
            SharedFile(async_mode=True),
        ),
        Contender(
            "asynclog-async-file-loop",
            "asynclog async→file, write_on_loop",
            "asynclog",
            "limit-file",
            _asynclog_maker("file", True, on_loop=True),
        ),
        Contender(
            "asynclog-async-sqlite",
            "asynclog async→SQLite",
            "asynclog",
            "limit-sqlite",
            _asynclog_maker("sqlite", True),
        ),
        Contender(
            "asynclog-async-sqlite-loop",
            "asynclog async→SQLite, write_on_loop",
            "asynclog",
            "limit-sqlite",
            _asynclog_maker("sqlite", True, on_loop=True),
        ),
        Contender(
            "asynclog-sync-file",
            "asynclog sync→file",
            "asynclog",
            "limit-file",
            _asynclog_maker("file", False),
            shared=SharedFile(async_mode=False),
        ),
        Contender(
            "asynclog-sync-sqlite",
            "asynclog sync→SQLite",
            "asynclog",
            "limit-sqlite",
            _asynclog_maker("sqlite", False),
        ),
        Contender("stdlib-file", "stdlib FileHandler", "peer", "limit-file", _stdlib_file),
        Contender(
            "stdlib-queue", "stdlib QueueHandler+Listener", "peer", "limit-file", _stdlib_queue
        ),
        Contender("aiologger", "aiologger AsyncFileHandler", "peer", "limit-file", _aiologger),
        Contender("loguru", "loguru enqueue=True", "peer", "limit-file", _loguru),
        Contender("structlog", "structlog ainfo", "peer", "limit-file", _structlog),
        Contender("limit-file", "limit-file", "limit", "limit-file", _limit_file, _stuck_limit),
        Contender("limit-sqlite", "limit-sqlite", "limit", "limit-sqlite", _limit_sqlite),
        Contender(
            "limit-sqlite-indexed",
            "limit-sqlite-indexed",
            "limit",
            "limit-sqlite-indexed",
            _limit_sqlite_indexed,
        ),
        Contender("noop", "no-op (floor)", "floor", "limit-file", _noop),
    ]
}
