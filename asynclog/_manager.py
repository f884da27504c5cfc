"""`LogManager`: its lifecycle, `write_log` and the level shortcuts, handlers and stats."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import threading
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from threading import get_ident
from time import time
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, cast

from . import _capture, _exit
from ._bound import BoundLogger
from ._capture import ACTIVE as _CAPTURES
from ._config import Config, SinkSpec
from ._context import CONTEXT
from ._entry import EMPTY_FIELDS, Entry, LogEntry, as_log_entry
from ._errors import LogError, ManagerClosedError
from ._handlers import HandlerLike, HandlerSet
from ._levels import Level, parse_level
from ._line import Line
from ._pipeline import Writer
from ._report import BurstReporter
from ._route import Route
from ._sanitize import bound_fields, truncate
from ._stats import CloseReport, Counters, LogStats
from ._tracebacks import format_exc_info
from .backends import backend_for, fallback_for
from .formatters import safe_str

BACKLOG_LIMIT = 10_000
"""Handed-in entries (from threads, stdlib records) waiting for room: at least this many
(or ten queues' worth) are kept; more are counted dropped at once."""

CLOSE_GRACE_SECONDS = 0.5
"""With `close(timeout=...)`, closing the backend may take this long even past the deadline."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"




class _Unsettled(tuple):  # type: ignore[type-arg]
    """(entry, routes): an entry some of several backends still have to take (slow path)."""

    __slots__ = ()


_Method = TypeVar("_Method", bound=Callable[..., Coroutine[Any, Any, None]])


def _level_method(level: Level) -> Callable[[_Method], _Method]:
    """Replace the decorated stub (its signature and docstring are what users see) by the
    shortcut for `level`: `write_log`'s work with the common case inlined.

    A plain entry (a str message, no fields, no context, one backend whose queue has room)
    is built and queued right here: calling `_accept` as well would cost a quarter more per
    call. Everything else goes through `_accept`, which does the full job.
    """

    def replace(stub: _Method) -> _Method:
        async def log(self: LogManager, message: object, /, **fields: Any) -> None:
            if (
                get_ident() != self._fast_thread  # not accepting (-1), or another thread
                or level < self._min_level
                or message.__class__ is not str
                or len(message) > self._quick_text_limit
                or fields
                or self._context_get()
                or self._only_counters is None  # several backends, or a capture is open
            ):
                pending = self._accept(level, message, fields)
            else:
                entry: Entry = (time(), level, message, self._name, EMPTY_FIELDS, None)
                self._only_counters.accepted += 1
                try_put = self._try_put
                if try_put is not None and try_put(entry):
                    return
                pending = entry
            if pending is not None:
                await self._deliver(pending)

        log.__name__, log.__qualname__ = stub.__name__, stub.__qualname__
        log.__doc__, log.__annotations__ = stub.__doc__, stub.__annotations__
        return log  # type: ignore[return-value]

    return replace


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
        # Below every backend's own level an entry goes nowhere: discard it at the call.
        self._min_level = min(sink.min_level for sink in config.sinks)
        self._max_entry_bytes = config.max_entry_bytes
        self._quick_text_limit = config.max_entry_bytes // 4  # 4 bytes per char at most
        self._filtered = 0
        self._reporter = BurstReporter(self._name)
        # Handlers see every accepted entry once: the first route that takes them all runs them.
        handler_route = next(
            i for i, sink in enumerate(config.sinks) if sink.min_level == self._min_level
        )
        self._routes: tuple[Route, ...] = tuple(
            self._route_for(sink, runs_handlers=index == handler_route)
            for index, sink in enumerate(config.sinks)
        )
        # The one route, or None with several: then every entry takes the awaited fan-out.
        self._only: Route | None = self._routes[0] if len(self._routes) == 1 else None
        # The one route's counters and fast path, cached here for _accept (None: several).
        self._only_counters: Counters | None = None
        self._context_get = CONTEXT.get
        self._try_put: Callable[[Entry], bool] | None = None
        self._thread = -1  # the id of the thread running the loop that started the manager
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holding = False  # sync mode, the line is not empty: direct writes join it
        self._sync = not config.async_mode
        # Entries handed in from outside a coroutine, and those that must wait behind them.
        self._line = Line(
            self, self._reporter, max(BACKLOG_LIMIT, 10 * config.queue_size), self._name
        )
        self._direct_lock = threading.Lock()  # writes made while the loop is not running
        self._on_close: list[Callable[[], object]] = []
        self._state = _State.NEW
        self._fast_thread = -1  # the loop's thread while accepting, else -1 (see _level_method)
        self._refresh_fast_path()
        _capture.add_manager(self)
        self._closing: asyncio.Future[CloseReport] | None = None
        self._opening: asyncio.Future[None] | None = None  # while start() opens the backends
        self._opened: list[Route] = []

    @property
    def _accepting(self) -> bool:
        return self._fast_thread != -1

    @_accepting.setter
    def _accepting(self, accepting: bool) -> None:
        self._fast_thread = self._thread if accepting else -1

    def _route_for(self, sink: SinkSpec, runs_handlers: bool) -> Route:
        config = self._config
        counters = Counters()
        handlers = HandlerSet(counters, self._reporter)  # stays empty unless runs_handlers
        if runs_handlers:
            self._handlers = handlers
        backend = backend_for(sink.target)
        writer = Writer(
            backend,
            handlers,
            counters,
            self._reporter,
            blocking=not config.async_mode,
            fallback=fallback_for(config, backend),
            retry_attempts=config.retry_attempts,
            retry_backoff=config.retry_backoff,
        )
        return Route(
            sink.name, sink.min_level, writer, counters, self._reporter, config, self._name
        )

    @property
    def config(self) -> Config:
        """The validated configuration."""
        return self._config

    @property
    def name(self) -> str:
        """The logger name every entry carries."""
        return self._name

    @property
    def running(self) -> bool:
        """True between a successful `start()` and the beginning of `close()`."""
        return self._accepting

    @property
    def closed(self) -> bool:
        """True once `close()` has begun."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backends and, in async mode, start the workers. Raises `LogError` on failure
        (the backends already open are closed again), `ManagerClosedError` if `close()` was
        called while the backends were opening."""
        if self._state is not _State.NEW:
            raise LogError(f"LogManager {self._name!r} was already started")
        self._state = _State.RUNNING
        self._opening = asyncio.get_running_loop().create_future()
        try:
            for route in self._routes:
                await route.writer.backend.open()
                self._opened.append(route)
        except Exception as exc:
            self._state = _State.CLOSED
            for route in self._opened:
                with contextlib.suppress(Exception):
                    await route.writer.backend.close()
            self._opened.clear()
            if isinstance(exc, LogError):
                raise
            raise LogError(f"cannot open backend {route.writer.backend!r}: {exc}") from exc
        finally:
            self._opening.set_result(None)
        if self._state is not _State.RUNNING:  # close() began while the backends opened
            raise ManagerClosedError(f"LogManager {self._name!r} was closed while starting")
        self._thread = get_ident()
        self._loop = asyncio.get_running_loop()
        self._line.bind(self._loop)
        if self._config.async_mode:
            for route in self._routes:
                route.start()
            if self._only is not None:
                self._fast_path_changed(self._only.try_put)
                self._only.on_fast_path_change = self._fast_path_changed
        _exit.register(self)
        self._accepting = True
        for hook in list(_capture.ON_START):
            hook(self)

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
        if self._state is _State.RUNNING:
            self._line.refuse_and_land()  # entries handed in before close() land first
        self._accepting = False
        if self._state is _State.NEW:
            self._state = _State.CLOSED
        if self._state is _State.CLOSED:
            return self._close_report(0)
        self._state = _State.CLOSING
        if self._opening is not None and not self._opening.done():
            await asyncio.wait({self._opening})  # close what start() is still opening
        abandoned = 0
        if self._opened:
            # If this task is cancelled (asyncio.run tearing the loop down, a supervisor's
            # deadline), the manager stays registered: the exit hook writes what is left and
            # releases the backends, and a later close() starts over.
            abandoned = await self._line.finish(deadline)  # while the workers still run
            drained = await asyncio.gather(
                *(route.drain(_remaining(deadline), deadline) for route in self._opened)
            )
            abandoned += sum(drained)
            if abandoned:
                self._reporter.failure(
                    "close", f"{abandoned} entries were abandoned at the close deadline"
                )
            for route in self._opened:
                await self._close_backends(route, deadline)
        _exit.unregister(self)
        self._reporter.flush()
        self._state = _State.CLOSED
        self._run_close_callbacks()
        return self._close_report(abandoned)

    def _fast_path_changed(self, try_put: Callable[[Entry], bool] | None) -> None:
        self._try_put = try_put

    def _set_line_mode(self, active: bool) -> None:
        """Sync mode: while the line holds entries, a coroutine's direct write waits behind
        them (it joins the line). Async mode keeps its fast path: a coroutine's entry only
        waits behind handed-in ones when they wait for room in the same queue."""
        if self._sync:
            self._holding = active

    def _run_close_callbacks(self) -> None:
        callbacks, self._on_close = self._on_close, []
        for callback in reversed(callbacks):
            try:
                callback()
            except Exception as exc:
                self._reporter.failure("close", f"a close callback failed: {exc!r}")

    def add_close_callback(self, callback: Callable[[], object]) -> None:
        """Call `callback()` once the manager has closed (used by `asynclog.stdlib.install`
        to undo itself); callbacks run in reverse order of registration."""
        self._on_close.append(callback)

    def _close_report(self, abandoned: int) -> CloseReport:
        routes = self._routes
        return CloseReport(
            sum(route.counters.written for route in routes),
            sum(route.counters.dropped for route in routes),
            abandoned,
            sum(route.counters.dead_lettered for route in routes),
        )

    async def _close_backends(self, route: Route, deadline: float | None) -> None:
        writer = route.writer
        writer.closed = True  # a write still waiting for the lock is dropped, not sent
        for what, closing in (
            (f"backend {route.name!r}", writer.backend.close),
            (f"fallback of {route.name!r}", writer.close_fallback),
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
        with self._direct_lock:
            leftovers = self._take_leftovers()
        warnings.warn(
            f"{self!r} was not closed; writing {sum(map(len, leftovers))} pending entries at exit",
            ResourceWarning,
            stacklevel=1,
        )
        self._accepting = False
        self._state = _State.CLOSED
        self._write_leftovers_now(leftovers)

    def _write_leftovers_now(self, leftovers: list[list[Entry]]) -> None:
        """No running loop: each open backend writes its leftovers synchronously."""
        for route, entries in zip(self._routes, leftovers, strict=True):
            if route in self._opened:
                route.writer.flush_at_exit(entries)

    def _take_leftovers(self, extra: tuple[Any, ...] | None = None) -> list[list[Entry]]:
        """No running loop: per route, what its worker left (in hand, queued), then the line
        (and `extra`, an entry handed in now). The caller holds `_direct_lock`."""
        leftovers = [route.leftovers() for route in self._routes]
        for pending in self._line.take(extra):
            entry, routes = self._unpack(pending)
            for index, route in enumerate(self._routes):
                if route in routes:
                    leftovers[index].append(entry)
        return leftovers

    def _unpack(self, pending: object) -> tuple[Entry, tuple[Route, ...]]:
        """(entry, the routes that still have to take it) of a pending entry."""
        if pending.__class__ is _Unsettled:
            return cast(tuple[Entry, tuple[Route, ...]], pending)
        assert self._only is not None
        return cast(Entry, pending), (self._only,)

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
        self,
        level: object,
        message: object,
        fields: dict[str, Any],
        at: float | None = None,
        logger: str | None = None,
        bound: Mapping[str, Any] | None = None,
        exception: str | None = None,
        anywhere: bool = False,
    ) -> Entry | _Unsettled | None:
        """The synchronous part of every call: checks, filter, the entry, the async fast path.
        `at` is the call's time when it was taken elsewhere (`write_log_threadsafe`, a stdlib
        record); `logger` overrides the manager's name; `bound` are a `bind` view's fields.

        Returns the entry when it still has to be awaited (sync mode, a full queue, several
        backends)."""
        if not self._accepting:
            raise self._not_accepting_error()
        if get_ident() != self._thread and not anywhere:  # 4x cheaper than the loop check
            raise self._wrong_loop_error()
        number = level if level.__class__ is Level else parse_level(level)
        if number < self._min_level:
            self._filtered += 1
            return None
        if message.__class__ is not str:
            message = safe_str(message)
        if len(message) > self._quick_text_limit:
            message = truncate(message, self._max_entry_bytes)
        context = self._context_get()
        if fields or context or bound or exception:
            frozen, exception = self._merged(fields, context, bound, exception)
        else:
            frozen = EMPTY_FIELDS
        entry: Entry = (
            time() if at is None else at,
            number,
            message,
            self._name if logger is None else logger,
            frozen,
            exception,
        )
        counters = self._only_counters
        if counters is None:  # several backends, or a capture_logs() is open
            return self._fan_out(entry)
        counters.accepted += 1  # Route.offer, inlined: this runs for every entry
        try_put = self._try_put
        if try_put is not None and try_put(entry):
            return None
        return entry

    def _merged(
        self,
        fields: dict[str, Any],
        context: Mapping[str, Any] | None,
        bound: Mapping[str, Any] | None,
        exception: str | None,
    ) -> tuple[Mapping[str, Any], str | None]:
        """The entry's fields and traceback. Explicit fields win over context fields, which
        win over bound fields; `exc_info` (from any of them) becomes the traceback."""
        if context or bound:
            fields = {**(bound or {}), **(context or {}), **fields}
        if "exc_info" in fields:
            exception = format_exc_info(fields.pop("exc_info")) or exception
        if exception is not None and len(exception) > self._quick_text_limit:
            exception = truncate(exception, self._max_entry_bytes)
        if not fields:
            return EMPTY_FIELDS, exception
        bounded = bound_fields(fields, self._max_entry_bytes)
        return MappingProxyType(fields if bounded is None else dict(bounded)), exception

    def _fan_out(self, entry: Entry) -> Entry | _Unsettled | None:
        """The synchronous part for several backends (or an open capture): every backend at
        or below the entry's level is offered it; those that could not queue it at once are
        returned for `_deliver`. While `_holding`, no backend is offered it (see
        `_accept_handed_in`)."""
        if _CAPTURES:
            public = as_log_entry(entry)
            for captured in _CAPTURES:
                captured.append(public)
        queue_now = not self._holding
        waiting = tuple(
            route
            for route in self._routes
            if entry[1] >= route.min_level and not route.offer(entry, queue_now)
        )
        return _Unsettled((entry, waiting)) if waiting else None

    async def _deliver(self, pending: Entry | _Unsettled) -> None:
        """The awaited part of a call whose entry could not be queued at once: the one
        backend's slow path, each waiting backend's in turn, or a place in the line."""
        if self._holding and not self._settles_here():
            await self._line.wait_in_line(pending)
        elif pending.__class__ is not _Unsettled:
            assert self._only is not None
            await self._only.deliver(pending)
        else:
            await self._settle(pending, False, 0.0)

    def _settles_here(self) -> bool:
        """A handler of a write in progress logs again: it must not wait for itself."""
        return self._line.settles_here() or any(
            route.lock.held_by_current_task() for route in self._routes
        )

    async def _settle(self, pending: Entry | _Unsettled, fast_first: bool, since: float) -> None:
        """Give the entry to each backend that still has to take it (a full or failing one
        raises only after the others have it). `fast_first`: it was held back from the
        queues, so try the quick way first. `since`: the loop time it joined the line (its
        wait for room counts from then)."""
        entry, routes = self._unpack(pending)
        waited = asyncio.get_running_loop().time() - since if since else 0.0
        failure: LogError | None = None
        for index, route in enumerate(routes):
            try_put = route.try_put
            if fast_first and try_put is not None and try_put(entry):
                continue
            try:
                await route.deliver(entry, waited)
            except LogError as exc:
                failure = failure or exc
            except BaseException:  # cancelled: the backends not reached never get it
                for later in routes[index + 1 :]:
                    later.counters.drop(1)
                raise
        if failure is not None:
            raise failure

    def _refresh_fast_path(self) -> None:
        """Take the fan-out path while a capture is open (or with several backends)."""
        only = self._only
        self._only_counters = only.counters if only is not None and not _CAPTURES else None

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
        """Log from any thread (a thread pool, `run_in_executor`, a plain thread, the loop's own
        thread outside a coroutine); returns at once and never blocks the loop. The time, the
        traceback (`exc_info=`) and the `contextualize` fields are taken here; the entry is
        handed to the manager's loop, which applies the level, the bounds and the overflow
        policy as `write_log` does. An entry refused there (a full queue, a failed sync write)
        is counted dropped, not raised here. When the loop has stopped or closed while the
        manager is still open, the entry (after everything still queued) is written at once.
        Raises `ValueError` for an unknown level and `ManagerClosedError` when not running."""
        self._log_anywhere(level, message, fields)

    def _log_anywhere(
        self,
        level: Level | int | str,
        message: object,
        fields: dict[str, Any],
        *,
        at: float | None = None,
        logger: str | None = None,
        bound: Mapping[str, Any] | None = None,
        exception: str | None = None,
    ) -> None:
        number = level if level.__class__ is Level else parse_level(level)
        loop = self._loop
        if loop is None or not self._accepting:
            raise self._not_accepting_error()
        if "exc_info" in fields:  # the traceback dies with the caller's frame: format it here
            exception = format_exc_info(fields.pop("exc_info")) or exception
        args = (number, message, fields, time() if at is None else at, logger, bound, exception)
        if not self._line.hand_in(args, on_loop=_running_loop() is loop):
            with self._direct_lock:  # the loop has closed: write it (and what is left) now
                self._write_leftovers_now(self._take_leftovers(args))

    def _accept_handed_in(
        self, args: tuple[Any, ...], anywhere: bool, hold: bool
    ) -> Entry | _Unsettled | None:
        """`_accept` for an entry handed in. `hold`: entries handed in earlier still wait, so
        this one must not be queued past them (it joins the line). `anywhere`: the loop is not
        running (this thread is the only one at work)."""
        level, message, fields, at, logger, bound, exception = args
        if not hold:
            return self._accept(level, message, fields, at, logger, bound, exception, anywhere)
        saved = self._holding, self._try_put
        self._holding, self._try_put = True, None
        try:
            return self._accept(level, message, fields, at, logger, bound, exception, anywhere)
        finally:
            self._holding, self._try_put = saved

    def _count_dropped(self, pending: Entry | _Unsettled) -> None:
        for route in self._unpack(pending)[1]:
            route.counters.drop(1)

    @_level_method(Level.DEBUG)
    async def debug(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.DEBUG, ...)`."""

    @_level_method(Level.INFO)
    async def info(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.INFO, ...)`."""

    @_level_method(Level.WARNING)
    async def warning(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.WARNING, ...)`."""

    @_level_method(Level.ERROR)
    async def error(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.ERROR, ...)`."""

    @_level_method(Level.CRITICAL)
    async def critical(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.CRITICAL, ...)`."""

    async def exception(self, message: object, /, **fields: Any) -> None:
        """`write_log(Level.ERROR, ...)` with the traceback of the exception being handled
        (call it inside `except`); `exc_info=` may name another exception."""
        fields.setdefault("exc_info", True)
        entry = self._accept(Level.ERROR, message, fields)
        if entry is not None:
            await self._deliver(entry)

    def bind(self, **fields: Any) -> BoundLogger:
        """A light view of this manager whose entries all carry `fields` (the manager itself is
        unchanged). Fields given to a call win over `contextualize` fields, which win over
        bound ones."""
        return BoundLogger(self, MappingProxyType(dict(fields)))

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

    def observe_writes(self, observer: Callable[[str, Sequence[LogEntry], float], None]) -> None:
        """Call `observer(backend_name, entries, seconds)` after every successful write of a
        batch to a backend (in the worker, in async mode): what `asynclog.metrics` builds its
        histograms from. A raising observer is reported on stderr and does not fail the write.
        """
        for route in self._routes:
            route.writer.observers.append(functools.partial(observer, route.name))

    def get_stats(self) -> LogStats:
        """A snapshot of queue depth, capacity and the counters: totals over the backends,
        and each backend's own in `LogStats.backends` (by name)."""
        per_backend = {
            route.name: self._route_stats(route, self._waiting_in_line(route))
            for route in self._routes
        }
        if self._only is not None:
            only = per_backend[self._only.name]
            return dataclasses.replace(
                only, filtered=self._filtered, backends=MappingProxyType(per_backend)
            )
        parts = per_backend.values()
        return LogStats(
            queue_size=sum(part.queue_size for part in parts),
            queue_capacity=sum(part.queue_capacity for part in parts),
            is_async=self._config.async_mode,
            handler_count=len(self._handlers),
            written=sum(part.written for part in parts),
            dropped=sum(part.dropped for part in parts),
            write_errors=sum(part.write_errors for part in parts),
            handler_errors=sum(part.handler_errors for part in parts),
            accepted=sum(part.accepted for part in parts),
            dead_lettered=sum(part.dead_lettered for part in parts),
            filtered=self._filtered,
            pending=sum(part.pending for part in parts),
            retries=sum(part.retries for part in parts),
            backends=MappingProxyType(per_backend),
        )

    def _waiting_in_line(self, route: Route) -> int:
        if self._only is not None:
            return self._line.waiting
        return self._line.count(lambda pending: route in self._unpack(pending)[1])

    def _route_stats(self, route: Route, waiting: int) -> LogStats:
        counters = route.counters
        return LogStats(
            queue_size=route.queued,
            queue_capacity=self._config.queue_size if self._config.async_mode else 0,
            is_async=self._config.async_mode,
            handler_count=len(route.writer.handlers),
            written=counters.written,
            dropped=counters.dropped,
            write_errors=counters.write_errors,
            handler_errors=counters.handler_errors,
            accepted=counters.accepted,
            dead_lettered=counters.dead_lettered,
            filtered=0,
            pending=route.pending + waiting,
            retries=counters.retries,
        )

    def __repr__(self) -> str:
        mode = "async" if self._config.async_mode else "sync"
        return f"<LogManager {self._name!r} {mode} {self._state.value}>"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - asyncio.get_running_loop().time())
