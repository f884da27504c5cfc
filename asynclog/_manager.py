"""`LogManager`: its lifecycle, `write_log` and the level shortcuts, handlers and stats."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from time import time
from types import MappingProxyType, TracebackType
from typing import Any

from ._config import Config
from ._entry import EMPTY_FIELDS, LogEntry, make_entry
from ._errors import LogError, ManagerClosedError, QueueFullError
from ._handlers import HandlerLike, HandlerSet
from ._levels import Level, parse_level
from ._pipeline import Pipeline, Writer
from ._report import BurstReporter
from ._stats import Counters, LogStats
from .backends import backend_for
from .formatters import safe_str


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class LogManager:
    """Owns a backend and, in async mode, the queue and the worker task that feed it.

    Use it as `async with LogManager(config) as lm:`; leaving the block writes every accepted
    entry and closes the backend. `LogManager(config)` validates the config (`ConfigError`).
    """

    def __init__(self, config: Config | None = None) -> None:
        self._config = config if config is not None else Config()
        if not isinstance(self._config, Config):
            raise TypeError(f"LogManager needs a Config, got {type(self._config).__name__}")
        self._name = self._config.name
        self._min_level = self._config.min_level
        self._counters = Counters()
        self._reporter = BurstReporter(self._name)
        self._handlers = HandlerSet(self._counters, self._reporter)
        self._writer = Writer(
            backend_for(self._config),
            self._handlers,
            self._counters,
            self._reporter,
            blocking=not self._config.async_mode,
        )
        self._pipeline: Pipeline | None = None
        self._try_put: Callable[[LogEntry], bool] | None = None  # the async fast path
        self._sync_lock = asyncio.Lock()
        self._state = _State.NEW
        self._accepting = False
        self._closing: asyncio.Future[None] | None = None

    @property
    def config(self) -> Config:
        """The validated configuration."""
        return self._config

    @property
    def name(self) -> str:
        """The logger name every entry carries."""
        return self._name

    @property
    def closed(self) -> bool:
        """True once `close()` has begun."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend and, in async mode, start the worker. Raises `LogError` on failure."""
        if self._state is not _State.NEW:
            raise LogError(f"LogManager {self._name!r} was already started")
        self._state = _State.RUNNING
        try:
            await self._writer.backend.open()
        except LogError:
            self._state = _State.CLOSED
            raise
        except Exception as exc:
            self._state = _State.CLOSED
            raise LogError(f"cannot open backend {self._writer.backend!r}: {exc}") from exc
        if self._config.async_mode:
            self._pipeline = Pipeline(
                self._writer,
                self._counters,
                self._reporter,
                self._config.queue_size,
                self._config.batch_size,
            )
            self._pipeline.start()
            self._try_put = self._pipeline.queue.try_put
        self._accepting = True

    async def close(self) -> None:
        """Stop accepting, write every accepted entry, stop the worker, close the backend.

        Idempotent, and safe to call from several tasks at once: all of them return when the
        single close has finished. Cancelling a caller does not interrupt the close itself.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close_once())
        await asyncio.shield(self._closing)

    async def _close_once(self) -> None:
        started = self._state is _State.RUNNING
        self._accepting = False
        self._state = _State.CLOSING
        try:
            if not started:
                return
            if self._pipeline is not None:
                await self._pipeline.stop()
            else:
                async with self._sync_lock:  # waits for writes already under way
                    pass
            try:
                await self._writer.backend.close()
            except Exception as exc:
                self._reporter.failure("close", f"{type(self._writer.backend).__name__}: {exc!r}")
        finally:
            self._reporter.flush()
            self._state = _State.CLOSED

    async def __aenter__(self) -> LogManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- writing ---------------------------------------------------------------------------

    async def write_log(self, level: Level | int | str, message: object, /, **fields: Any) -> None:
        """Log `message` at `level` with `fields`.

        Async mode: queue the entry and return (about a microsecond); when the queue is full,
        wait up to `put_timeout` for room, then raise `QueueFullError`. Sync mode: the entry is
        written (handlers run first) before this returns. Entries below the configured level
        are discarded. Raises `ManagerClosedError` before `start()` and after `close()`.
        """
        if not self._accepting:
            raise self._not_accepting_error()
        number = level if level.__class__ is Level else parse_level(level)
        if number < self._min_level:
            return
        entry = make_entry(
            time(),
            number,
            message if message.__class__ is str else safe_str(message),
            self._name,
            MappingProxyType(fields) if fields else EMPTY_FIELDS,
            None,
        )
        try_put = self._try_put
        if try_put is None:
            await self._write_now(entry)
        elif not try_put(entry):
            await self._wait_for_room(entry)

    async def _wait_for_room(self, entry: LogEntry) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        failure = pipeline.worker_failure
        if failure is not None:
            raise LogError(f"the asynclog worker stopped unexpectedly: {failure!r}") from failure
        try:
            await pipeline.queue.put(entry, self._config.put_timeout)
        except (QueueFullError, ManagerClosedError):
            self._counters.dropped += 1
            raise

    async def _write_now(self, entry: LogEntry) -> None:
        writer = self._writer
        if writer.immediate and not self._sync_lock.locked():
            writer.deliver_immediately((entry,))  # nothing to await, so no one to order against
            return
        async with self._sync_lock:
            await self._writer.deliver((entry,), raise_errors=True)

    def _not_accepting_error(self) -> ManagerClosedError:
        if self._state is _State.NEW:
            return ManagerClosedError(
                f"LogManager {self._name!r} is not started; use `async with LogManager(config)` "
                "or `await lm.start()`"
            )
        return ManagerClosedError(f"LogManager {self._name!r} is closed")

    def debug(self, message: object, /, **fields: Any) -> Awaitable[None]:
        """`write_log(Level.DEBUG, ...)`."""
        return self.write_log(Level.DEBUG, message, **fields)

    def info(self, message: object, /, **fields: Any) -> Awaitable[None]:
        """`write_log(Level.INFO, ...)`."""
        return self.write_log(Level.INFO, message, **fields)

    def warning(self, message: object, /, **fields: Any) -> Awaitable[None]:
        """`write_log(Level.WARNING, ...)`."""
        return self.write_log(Level.WARNING, message, **fields)

    def error(self, message: object, /, **fields: Any) -> Awaitable[None]:
        """`write_log(Level.ERROR, ...)`."""
        return self.write_log(Level.ERROR, message, **fields)

    def critical(self, message: object, /, **fields: Any) -> Awaitable[None]:
        """`write_log(Level.CRITICAL, ...)`."""
        return self.write_log(Level.CRITICAL, message, **fields)

    # ---- handlers and stats ----------------------------------------------------------------

    def register_handler(self, handler: HandlerLike) -> None:
        """Call `handler.handle(entry)` (or `handler(entry)`) for every entry, in order.

        In async mode handlers run in the worker, before the batch is written; in sync mode,
        before `write_log` writes. A raising handler is counted in `handler_errors`.
        """
        self._handlers.add(handler)

    def unregister_handler(self, handler: HandlerLike) -> None:
        """Stop calling `handler`; an unknown handler is ignored."""
        self._handlers.remove(handler)

    def get_stats(self) -> LogStats:
        """A snapshot of queue depth, capacity and the counters."""
        pipeline = self._pipeline
        counters = self._counters
        return LogStats(
            queue_size=len(pipeline.queue) if pipeline is not None else 0,
            queue_capacity=self._config.queue_size if self._config.async_mode else 0,
            is_async=self._config.async_mode,
            handler_count=len(self._handlers),
            written=counters.written,
            dropped=counters.dropped,
            write_errors=counters.write_errors,
            handler_errors=counters.handler_errors,
        )

    def __repr__(self) -> str:
        mode = "async" if self._config.async_mode else "sync"
        return f"<LogManager {self._name!r} {mode} {self._state.value}>"
