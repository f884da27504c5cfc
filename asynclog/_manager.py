"""`LogManager`: its lifecycle, `write_log` and the level shortcuts, handlers and stats."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import warnings
from collections.abc import Awaitable, Callable
from threading import get_ident
from time import time
from types import MappingProxyType, TracebackType
from typing import Any

from . import _exit
from ._config import Config
from ._entry import EMPTY_FIELDS, LogEntry
from ._errors import LogError, ManagerClosedError
from ._handlers import HandlerLike, HandlerSet
from ._levels import Level, parse_level
from ._lock import DeliveryLock
from ._pipeline import Pipeline, Writer
from ._queue import FairQueue
from ._report import BurstReporter
from ._sanitize import approximate_size, bound_fields, truncate
from ._stats import CloseReport, Counters, LogStats
from .backends import backend_for, fallback_for
from .formatters import safe_str

CLOSE_GRACE_SECONDS = 0.5
"""With `close(timeout=...)`, closing the backend may take this long even past the deadline."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


_new_entry = tuple.__new__  # LogEntry's generated __new__ costs a Python call more


class _HandedOver(Exception):
    """Wakes producers waiting for room when the worker is gone: they write directly."""


def _refuse(entry: LogEntry) -> bool:
    return False  # the fast path after the worker died: every entry takes the slow path


class LogManager:
    """Owns a backend and, in async mode, the queue and the worker task that feed it.

    Use it as `async with LogManager(config) as lm:`; leaving the block writes every accepted
    entry and closes the backend. `LogManager(config)` validates the config (`ConfigError`).
    """

    def __init__(self, config: Config | None = None) -> None:
        self._config = config if config is not None else Config()
        if not isinstance(self._config, Config):
            raise TypeError(f"LogManager needs a Config, got {type(self._config).__name__}")
        config = self._config
        self._name = config.name
        self._min_level = config.min_level
        self._priority_min = config.priority_min
        self._max_entry_bytes = config.max_entry_bytes
        self._quick_text_limit = config.max_entry_bytes // 4  # 4 bytes per char at most
        self._counters = Counters()
        self._reporter = BurstReporter(self._name)
        self._handlers = HandlerSet(self._counters, self._reporter)
        backend = backend_for(config.sinks[0].target)
        self._writer = Writer(
            backend,
            self._handlers,
            self._counters,
            self._reporter,
            blocking=not config.async_mode,
            fallback=fallback_for(config, backend),
            retry_attempts=config.retry_attempts,
            retry_backoff=config.retry_backoff,
        )
        self._pipeline: Pipeline | None = None
        self._try_put: Callable[[LogEntry], bool] | None = None  # the async fast path
        self._thread = -1  # the id of the thread running the loop that started the manager
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handed_over: set[asyncio.Task[None]] = set()  # write_log_threadsafe slow paths
        self._delivery_lock = DeliveryLock()  # serialises every write made outside a worker
        self._state = _State.NEW
        self._accepting = False
        self._closing: asyncio.Future[CloseReport] | None = None
        self._opening: asyncio.Future[None] | None = None  # while start() opens the backend
        self._backend_open = False

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
        """Open the backend and, in async mode, start the worker. Raises `LogError` on failure,
        `ManagerClosedError` if `close()` was called while the backend was opening."""
        if self._state is not _State.NEW:
            raise LogError(f"LogManager {self._name!r} was already started")
        self._state = _State.RUNNING
        self._opening = asyncio.get_running_loop().create_future()
        try:
            await self._writer.backend.open()
        except Exception as exc:
            self._state = _State.CLOSED
            if isinstance(exc, LogError):
                raise
            raise LogError(f"cannot open backend {self._writer.backend!r}: {exc}") from exc
        finally:
            self._opening.set_result(None)
        self._backend_open = True
        if self._state is not _State.RUNNING:  # close() began while the backend opened
            raise ManagerClosedError(f"LogManager {self._name!r} was closed while starting")
        self._thread = get_ident()
        self._loop = asyncio.get_running_loop()
        config = self._config
        if config.async_mode:
            queue: FairQueue[LogEntry] = FairQueue(
                config.queue_size,
                reserve=max(16, config.queue_size // 10),
                max_bytes=config.max_queue_bytes,
                size_of=approximate_size,
            )
            self._pipeline = Pipeline(
                self._writer,
                queue,
                self._counters,
                self._reporter,
                config.batch_size,
                self._delivery_lock,
                self._worker_gone,
            )
            self._pipeline.start()
            self._try_put = queue.try_put
        _exit.register(self)
        self._accepting = True

    def _worker_gone(self, failure: BaseException | None) -> None:
        # A bug: every call takes the slow path, which raises. Cancelled from outside: the
        # manager writes each entry itself from now on, like sync mode (after the leftovers),
        # and producers waiting for room are handed over to that path.
        self._try_put = _refuse if failure is not None else None
        if failure is None and self._pipeline is not None:
            self._pipeline.queue.close(_HandedOver())

    async def close(self, timeout: float | None = None) -> CloseReport:  # noqa: ASYNC109
        """Stop accepting, write every accepted entry, stop the worker, close the backend.

        With `timeout` (seconds), draining stops at the deadline: what is left is abandoned
        and counted dropped, and the returned `CloseReport` says how many. Producers waiting
        for room are refused with `ManagerClosedError` as soon as close begins.

        Idempotent, and safe to call from several tasks at once: all of them get the report of
        the single close. Cancelling a caller does not interrupt the close itself.
        """
        if self._closing is None or self._closing.cancelled():
            self._closing = asyncio.ensure_future(self._close_once(timeout))
        return await asyncio.shield(self._closing)

    async def _close_once(self, timeout: float | None) -> CloseReport:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._accepting = False
        if self._state is _State.NEW:
            self._state = _State.CLOSED
        if self._state is _State.CLOSED:
            return self._close_report(0)
        self._state = _State.CLOSING
        if self._opening is not None and not self._opening.done():
            await asyncio.wait({self._opening})  # close what start() is still opening
        abandoned = 0
        if self._backend_open:
            # If this task is cancelled (asyncio.run tearing the loop down, a supervisor's
            # deadline), the manager stays registered: the exit hook writes what is left and
            # releases the backend, and a later close() starts over.
            if self._pipeline is not None:
                abandoned = await self._pipeline.stop(timeout)
            else:
                await self._wait_for_sync_writes(deadline)
            if self._handed_over:  # refused or written by now; let them finish
                await asyncio.wait(set(self._handed_over), timeout=_remaining(deadline))
            await self._close_backends(deadline)
        _exit.unregister(self)
        self._reporter.flush()
        self._state = _State.CLOSED
        return self._close_report(abandoned)

    def _close_report(self, abandoned: int) -> CloseReport:
        counters = self._counters
        return CloseReport(counters.written, counters.dropped, abandoned, counters.dead_lettered)

    async def _wait_for_sync_writes(self, deadline: float | None) -> None:
        try:
            async with asyncio.timeout(_remaining(deadline)), self._delivery_lock.hold():
                pass
        except TimeoutError:
            self._reporter.failure("close", "a sync write was still under way at the deadline")

    async def _close_backends(self, deadline: float | None) -> None:
        self._writer.closed = True  # a write still waiting for the lock is dropped, not sent
        for what, closing in (
            ("backend", self._writer.backend.close),
            ("fallback", self._writer.close_fallback),
        ):
            remaining = _remaining(deadline)
            grace = None if remaining is None else max(remaining, CLOSE_GRACE_SECONDS)
            try:
                await asyncio.wait_for(closing(), grace)
            except TimeoutError:
                self._reporter.failure("close", f"the {what} did not close before the deadline")
            except Exception as exc:
                self._reporter.failure("close", f"the {what} failed to close: {exc!r}")

    def flush_at_exit(self) -> None:
        """Interpreter exit without a finished `close()`: write what is pending, synchronously."""
        if self._state not in (_State.RUNNING, _State.CLOSING):
            return
        leftovers = self._pipeline.leftovers() if self._pipeline is not None else []
        warnings.warn(
            f"{self!r} was not closed; writing {len(leftovers)} pending entries at exit",
            ResourceWarning,
            stacklevel=1,
        )
        self._accepting = False
        self._state = _State.CLOSED
        self._writer.flush_at_exit(leftovers)

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
        apply `Config.overflow` (by default: wait up to `put_timeout`, then `QueueFullError`).
        Sync mode: the entry is written (handlers first) before this returns. Entries below the
        configured level are discarded. Raises `ManagerClosedError` before `start()` and after
        `close()`, `ValueError` for an unknown level, `LogError` from another event loop.
        """
        entry = self._accept(level, message, fields)
        if entry is not None:
            await self._deliver(entry)

    def _accept(
        self, level: object, message: object, fields: dict[str, Any], at: float | None = None
    ) -> LogEntry | None:
        """The synchronous part of every call: checks, filter, the entry, the async fast path.
        `at` is the call's time when it was taken elsewhere (`write_log_threadsafe`).

        Returns the entry when it still has to be awaited (sync mode, or a full queue)."""
        if not self._accepting:
            raise self._not_accepting_error()
        if get_ident() != self._thread:  # a thread id is 4x cheaper to check than the loop
            raise self._wrong_loop_error()
        number = level if level.__class__ is Level else parse_level(level)
        counters = self._counters
        if number < self._min_level:
            counters.filtered += 1
            return None
        counters.accepted += 1
        if message.__class__ is not str:
            message = safe_str(message)
        if len(message) > self._quick_text_limit:
            message = truncate(message, self._max_entry_bytes)
        entry: LogEntry = _new_entry(
            LogEntry,
            (
                time() if at is None else at,
                number,
                message,
                self._name,
                self._bounded(fields) if fields else EMPTY_FIELDS,
                None,
            ),
        )
        try_put = self._try_put
        if try_put is not None and try_put(entry):
            return None
        return entry

    async def _deliver(self, entry: LogEntry) -> None:
        if self._try_put is None:
            await self._write_now(entry)
        else:
            await self._when_full(entry)

    def _bounded(self, fields: dict[str, Any]) -> MappingProxyType[str, Any]:
        bounded = bound_fields(fields, self._max_entry_bytes)
        return MappingProxyType(fields if bounded is None else dict(bounded))

    async def _when_full(self, entry: LogEntry) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        counters = self._counters
        if pipeline.worker_failure is not None:
            counters.drop(1)
            raise LogError(
                f"the asynclog worker stopped unexpectedly: {pipeline.worker_failure!r}"
            ) from pipeline.worker_failure
        queue = pipeline.queue
        if entry.level >= self._priority_min:
            if not queue.try_put_reserved(entry):
                await self._wait_in_line(queue, entry, None)  # never dropped for lack of room
            return
        overflow = self._config.overflow
        if overflow == "drop_newest":
            counters.drop(1)
        elif overflow == "drop_oldest":
            evicted, appended = queue.replace_oldest(entry, self._evictable)
            counters.drop(evicted + (0 if appended else 1))
        else:
            wait = self._config.put_timeout if overflow == "timeout" else None
            await self._wait_in_line(queue, entry, wait)

    def _evictable(self, entry: LogEntry) -> bool:
        return entry.level < self._priority_min

    async def _wait_in_line(
        self, queue: FairQueue[LogEntry], entry: LogEntry, max_wait: float | None
    ) -> None:
        rejected = False

        def on_rejected() -> None:
            nonlocal rejected
            rejected = True

        try:
            await queue.put(entry, max_wait, on_rejected)
        except _HandedOver:
            await self._write_now(entry)  # the worker is gone: write it directly
        except BaseException:
            if rejected:  # accepted at the call, never queued
                self._counters.drop(1)
            raise

    async def _write_now(self, entry: LogEntry) -> None:
        writer = self._writer
        entries = (entry,)
        if writer.immediate and not self._delivery_lock.users:
            error = writer.deliver_immediately(entries)  # nothing awaited: nobody to overtake
            if error is not None:
                await self._serialised(
                    entries, lambda: writer.recover(entries, error, raise_if_lost=True)
                )
            return
        await self._serialised(entries, lambda: writer.deliver(entries, raise_if_lost=True))

    async def _serialised(
        self, entries: tuple[LogEntry], write: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `write` under the delivery lock, in call order, after any leftovers of a worker
        that is gone. A caller cancelled before its entry was settled counts it dropped."""
        lock = self._delivery_lock
        if lock.held_by_current_task():
            await write()  # a handler of the write in progress logs again: no waiting on itself
            return
        writer = self._writer
        started = False
        try:
            async with lock.hold():
                if writer.closed:  # close() finished while this call waited
                    self._counters.drop(len(entries))
                    raise ManagerClosedError(f"LogManager {self._name!r} closed before the write")
                if self._pipeline is not None:
                    await self._pipeline.write_leftovers()
                started = True
                await write()
        except asyncio.CancelledError:
            if not started or writer.in_flight is entries:
                if writer.in_flight is entries:
                    writer.in_flight = ()
                self._counters.drop(len(entries))
            raise

    def _not_accepting_error(self) -> ManagerClosedError:
        if self._state is _State.NEW:
            return ManagerClosedError(
                f"LogManager {self._name!r} is not started; use `async with LogManager(config)` "
                "or `await lm.start()`"
            )
        return ManagerClosedError(f"LogManager {self._name!r} is closed")

    def _wrong_loop_error(self) -> LogError:
        return LogError(
            f"write_log of LogManager {self._name!r} was called from a thread other than the one "
            "running the event loop that started it; use lm.write_log_threadsafe(...) there"
        )

    def write_log_threadsafe(
        self, level: Level | int | str, message: object, /, **fields: Any
    ) -> None:
        """Log from any thread (a thread pool, `run_in_executor`, a plain thread); returns at
        once. The time is taken here; the entry is handed to the manager's loop, which applies
        the level, the bounds and the overflow policy as `write_log` does. An entry refused
        there (a full queue, a failed sync write) is counted dropped, not raised here.
        Raises `ValueError` for an unknown level and `ManagerClosedError` when not running."""
        number = level if level.__class__ is Level else parse_level(level)
        loop = self._loop
        if loop is None or not self._accepting:
            raise self._not_accepting_error()
        try:
            loop.call_soon_threadsafe(self._accept_handed_over, time(), number, message, fields)
        except RuntimeError as exc:  # the loop has closed
            raise ManagerClosedError(
                f"the event loop of LogManager {self._name!r} is closed"
            ) from exc

    def _accept_handed_over(
        self, at: float, level: int, message: object, fields: dict[str, Any]
    ) -> None:
        try:
            entry = self._accept(level, message, fields, at)
        except LogError as exc:  # closed meanwhile: not accepted, but not silent either
            self._reporter.failure("write_log_threadsafe", str(exc))
            return
        if entry is not None:
            task = asyncio.get_running_loop().create_task(self._deliver_handed_over(entry))
            self._handed_over.add(task)
            task.add_done_callback(self._handed_over.discard)

    async def _deliver_handed_over(self, entry: LogEntry) -> None:
        with contextlib.suppress(LogError):  # refused entries are already counted dropped
            await self._deliver(entry)

    # The shortcuts repeat write_log's three lines instead of calling it: one coroutine per
    # call instead of two is a third of the caller's cost.
    async def debug(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.DEBUG, ...)`."""
        entry = self._accept(Level.DEBUG, message, fields)
        if entry is not None:
            await self._deliver(entry)

    async def info(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.INFO, ...)`."""
        entry = self._accept(Level.INFO, message, fields)
        if entry is not None:
            await self._deliver(entry)

    async def warning(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.WARNING, ...)`."""
        entry = self._accept(Level.WARNING, message, fields)
        if entry is not None:
            await self._deliver(entry)

    async def error(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.ERROR, ...)`."""
        entry = self._accept(Level.ERROR, message, fields)
        if entry is not None:
            await self._deliver(entry)

    async def critical(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.CRITICAL, ...)`."""
        entry = self._accept(Level.CRITICAL, message, fields)
        if entry is not None:
            await self._deliver(entry)

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
        pending = pipeline.pending if pipeline is not None else len(self._writer.in_flight)
        return LogStats(
            queue_size=len(pipeline.queue) if pipeline is not None else 0,
            queue_capacity=self._config.queue_size if self._config.async_mode else 0,
            is_async=self._config.async_mode,
            handler_count=len(self._handlers),
            written=counters.written,
            dropped=counters.dropped,
            write_errors=counters.write_errors,
            handler_errors=counters.handler_errors,
            accepted=counters.accepted,
            dead_lettered=counters.dead_lettered,
            filtered=counters.filtered,
            pending=pending,
            retries=counters.retries,
        )

    def __repr__(self) -> str:
        mode = "async" if self._config.async_mode else "sync"
        return f"<LogManager {self._name!r} {mode} {self._state.value}>"


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - asyncio.get_running_loop().time())
