"""`LogManager`: the lifecycle (`start`, `close`, the exit flush), the public calls, handlers
and stats. What happens at a call is `_intake.py`; what happens after it, `_sink.py`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Final

from . import _registry, _runtime
from ._bound import Logger, NoWait
from ._config import Config, SinkSpec
from ._entry import LogEntry
from ._errors import LogError, ManagerClosedError
from ._freeze import frozen_mapping
from ._handlers import HandlerLike, HandlerSet
from ._intake import BACKLOG_LIMIT, Intake, State, level_method, write_log_method
from ._levels import Level, parse_level
from ._processing import chain_of, merged_counts
from ._report import BurstReporter
from ._sink import CLOSE_GRACE_SECONDS, SinkRunner
from ._stats import CloseReport, Counters, LogStats
from ._writer import Writer
from .backends import backend_for, fallback_for


class LogManager:
    """Owns the backends and, in async mode, the queues and worker tasks that feed them.

    Use it as `async with LogManager(config) as lm:`; leaving the block writes every accepted
    entry and closes the backends. `LogManager(config)` validates the config (`ConfigError`).

    `_intake` is a documented shared private: the package's views (`Logger`, `NoWait`, the stdlib
    bridge) write through it.
    """

    def __init__(self, config: Config | None = None) -> None:
        self._config = config if config is not None else Config()
        if not isinstance(self._config, Config):
            raise TypeError(f"LogManager needs a Config, got {type(self._config).__name__}")
        config = self._config
        self._name = config.name
        self._reporter = BurstReporter(self._name)
        # Handlers see every accepted entry once: the first sink that takes them all runs them.
        min_level = min(spec.min_level for spec in config.sinks)
        handler_sink = next(
            i for i, spec in enumerate(config.sinks) if spec.min_level == min_level
        )
        self._handlers = HandlerSet(Counters(), self._reporter)  # replaced just below
        self._sinks: tuple[SinkRunner, ...] = tuple(
            self._sink_for(spec, runs_handlers=index == handler_sink)
            for index, spec in enumerate(config.sinks)
        )
        self._intake = Intake(
            self._name,
            self._sinks,
            sync=not config.async_mode,
            max_entry_bytes=config.max_entry_bytes,
            backlog_limit=max(BACKLOG_LIMIT, 10 * config.queue_size),
            reporter=self._reporter,
            raise_errors=config.raise_errors,
            chain=chain_of(config.processors, self._reporter, "", config.max_entry_bytes),
            capture_location=config.capture_location,
            otel_context=config.otel_context,
            level=config.min_level,
            levels=config.level_map,
        )
        self._loggers: dict[str, Logger] = {}
        self.nowait: Final = NoWait(self._intake, None, None)
        """The logging calls as plain functions that never wait (`lm.nowait.info("x")`), for
        code on the loop's thread that is not a coroutine; from another thread they hand the
        entry in as `write_log_threadsafe` does. See `NoWait`. (An attribute, not a property:
        one lookup less on every call.)"""
        self._closing: asyncio.Future[CloseReport] | None = None
        self._opening: asyncio.Future[None] | None = None  # while start() opens the backends
        self._opened: list[SinkRunner] = []
        if config.default:
            _registry.claim_default(self)
        _registry.add_manager(self, self._intake.forked)

    def _sink_for(self, spec: SinkSpec, runs_handlers: bool) -> SinkRunner:
        config = self._config
        counters = Counters(functools.partial(self._report_drops, spec.name))
        handlers = HandlerSet(counters, self._reporter)  # stays empty unless runs_handlers
        if runs_handlers:
            self._handlers = handlers
        backend = backend_for(spec.target)
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
        runner = SinkRunner(
            spec.name, spec.min_level, writer, self._reporter, config, self._name, spec.own_level
        )
        runner.chain = chain_of(
            spec.processors, self._reporter, f" of backend {spec.name!r}", config.max_entry_bytes
        )
        return runner

    def _report_drops(self, sink: str, count: int) -> None:
        """The first drop of a burst, on stderr; the in-band report (the next write) ends it."""
        self._reporter.failure(
            f"delivery to {sink!r}",
            f"dropped {count} entries (a full queue, a close or a failed write); the log "
            "itself says how many, and stats count them",
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
        return self._intake.state is State.RUNNING

    @property
    def closed(self) -> bool:
        """True once `close()` has begun."""
        return self._intake.state in (State.CLOSING, State.CLOSED, State.FORKED)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backends and, in async mode, start the workers. Raises `LogError` on failure
        (the backends already open are closed again), `ManagerClosedError` if `close()` was
        called while the backends were opening."""
        intake = self._intake
        if intake.state is not State.NEW:
            raise LogError(f"LogManager {self._name!r} was already started")
        intake.set_state(State.OPENING)
        self._opening = _runtime.current_loop().create_future()
        sink: SinkRunner | None = None
        try:
            for sink in self._sinks:
                await sink.writer.backend.open()
                self._opened.append(sink)
        except BaseException as exc:  # cancelled (a startup deadline, Ctrl-C) included
            intake.set_state(State.CLOSED)
            for opened in self._opened:
                with contextlib.suppress(Exception):
                    await opened.writer.backend.close()
            self._opened.clear()
            if isinstance(exc, LogError) or not isinstance(exc, Exception):
                raise
            assert sink is not None
            raise LogError(f"cannot open backend {sink.writer.backend!r}: {exc}") from exc
        finally:
            self._opening.set_result(None)
        if self.closed:  # close() began while the backends opened
            raise ManagerClosedError(f"LogManager {self._name!r} was closed while starting")
        intake.bind_loop(_runtime.current_loop())
        if self._config.async_mode:
            for sink in self._sinks:
                sink.start()
        _registry.write_at_exit(self, self._write_at_exit)
        intake.set_state(State.RUNNING)
        _registry.started(self)

    async def close(self, timeout: float | None = None) -> CloseReport:  # noqa: ASYNC109
        """Stop accepting, write every accepted entry, stop the workers, close the backends.

        With `timeout` (seconds), draining stops at the deadline: what is left is abandoned
        and counted dropped, and the returned `CloseReport` says how many. Producers waiting
        for room are refused with `ManagerClosedError` as soon as close begins.

        Idempotent, and safe to call from several tasks at once: all of them get the report of
        the single close. A call that joins a close already under way waits at most its own
        `timeout` (plus a 0.5 s grace), then returns the figures so far. Cancelling a caller
        does not interrupt the close itself.

        Called from inside this manager's own pipeline (a handler, a backend's write, which
        the close has to wait for), it starts the close and returns at once with the figures
        as they are then; `await lm.close()` elsewhere returns the final report. In a child
        process forked from the one that started the manager, it does nothing (the parent
        closes the backends).
        """
        if _runtime.loop_ended(self._intake.loop):
            return self._close_after_run_end()
        joining = self._closing is not None and not self._closing.cancelled()
        if not joining:
            self._closing = _runtime.current_loop().create_task(self._close_once(timeout))
        assert self._closing is not None
        if self._intake.inside_pipeline():
            # A handler or a backend of this manager: waiting here would wait for itself.
            # The close goes on in its own task; this returns the figures as they are now.
            return self._close_report(0)
        if joining and timeout is not None:  # a close under way keeps its deadline, not ours
            done, _ = await _runtime.wait({self._closing}, timeout=timeout + CLOSE_GRACE_SECONDS)
            if not done:
                return self._close_report(0)  # the figures so far; the close goes on
        return await _runtime.shield(self._closing)

    async def _close_once(self, timeout: float | None) -> CloseReport:  # noqa: ASYNC109
        loop = _runtime.current_loop()
        deadline = None if timeout is None else loop.time() + timeout
        intake = self._intake
        state = intake.state
        if state is State.FORKED:
            return self._close_report(0)
        if state in (State.NEW, State.CLOSED):
            intake.set_state(State.CLOSED)
            return self._close_report(0)
        held = None
        if state is State.RUNNING:
            intake.handoff.refuse_and_land()  # entries handed in before close() land first
            held = intake.flush_processors()  # what they hold (dedupe's count), after those
        intake.set_state(State.CLOSING)
        if self._opening is not None and not self._opening.done():
            await _runtime.wait({self._opening})  # close what start() is still opening
        if held is not None:
            with contextlib.suppress(LogError):  # counted and reported where it happened
                await intake.settle_call(held)
        abandoned = 0
        if self._opened:
            # If this task is cancelled (asyncio.run tearing the loop down, a supervisor's
            # deadline), the manager stays registered: the exit hook writes what is left and
            # releases the backends, and a later close() starts over.
            abandoned = await intake.handoff.finish(deadline)  # while the workers still run
            stopped = await _runtime.gather(*(sink.stop(deadline) for sink in self._opened))
            abandoned += sum(stopped)
            # A sync call may still be writing to a later backend whose lock was free when
            # stop() looked: let it finish before its backend closes.
            await intake.wait_idle(None if deadline is None else deadline + CLOSE_GRACE_SECONDS)
            if abandoned:
                self._reporter.failure(
                    "close", f"{abandoned} entries were abandoned at the close deadline"
                )
            for sink in self._opened:
                await self._close_backends(sink, deadline)
        _registry.forget_at_exit(self)
        self._reporter.flush()
        intake.set_state(State.CLOSED)
        self._run_close_callbacks()
        return self._close_report(abandoned)

    def _close_after_run_end(self) -> CloseReport:
        """`close()` after the trio run that started the manager ended: nothing can be awaited
        on that run's loop any more, so what is left is written synchronously, as at exit."""
        intake = self._intake
        if intake.state in (State.RUNNING, State.CLOSING):
            with intake.direct_lock:
                leftovers = intake.take_leftovers()
            intake.set_state(State.CLOSED)
            intake.write_leftovers_now(leftovers)
            _registry.forget_at_exit(self)
            self._reporter.flush()
            self._run_close_callbacks()
        return self._close_report(0)

    def _run_close_callbacks(self) -> None:
        for callback in _registry.closed(self):
            try:
                callback()
            except Exception as exc:
                self._reporter.failure("close", f"a close callback failed: {exc!r}")

    def _close_report(self, abandoned: int) -> CloseReport:
        sinks = self._sinks
        return CloseReport(
            sum(sink.counters.written for sink in sinks),
            sum(sink.counters.dropped for sink in sinks),
            abandoned,
            sum(sink.counters.dead_lettered for sink in sinks),
        )

    async def _close_backends(self, sink: SinkRunner, deadline: float | None) -> None:
        writer = sink.writer
        writer.backend_closed = True  # a write still waiting for the lock is dropped, not sent
        for what, closing in (
            (f"backend {sink.name!r}", writer.backend.close),
            (f"fallback of {sink.name!r}", writer.close_fallback),
        ):
            remaining = _remaining(deadline)
            grace = None if remaining is None else max(remaining, CLOSE_GRACE_SECONDS)
            task = _runtime.current_loop().create_task(closing())
            # Not wait_for: a cancelled close may itself wait (aiosqlite's close waits for the
            # transaction in hand, up to busy_timeout). Past the grace it goes on by itself.
            done, _ = await _runtime.wait({task}, timeout=grace)
            if not done:
                task.add_done_callback(_retrieve)
                self._reporter.failure("close", f"the {what} did not close before the deadline")
            elif not task.cancelled() and task.exception() is not None:
                self._reporter.failure("close", f"the {what} failed to close: {task.exception()!r}")

    def _write_at_exit(self) -> None:
        """Interpreter exit without a finished `close()`: write what is pending, synchronously
        (registered with `_registry.write_at_exit` by `start()`)."""
        intake = self._intake
        if intake.state not in (State.RUNNING, State.CLOSING):
            return
        with intake.direct_lock:
            leftovers = intake.take_leftovers()
        warnings.warn(
            f"{self!r} was not closed; writing {sum(map(len, leftovers))} pending entries at exit",
            ResourceWarning,
            stacklevel=1,
        )
        intake.set_state(State.CLOSED)
        intake.write_leftovers_now(leftovers)  # registered once every backend was open

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

    @write_log_method
    async def write_log(
        self, level: Level | int | str, message: object, /, *args: Any, **fields: Any
    ) -> bool:
        """Log `message` at `level` with `fields`; True when the entry was accepted (async mode:
        queued) or written (sync mode), False when it was not.

        With `args`, the message is `message % args` (as the standard library's), formatted at
        the call once the level let the entry through; the entry keeps `message` as its
        `template`. A single non-empty mapping formats `%(name)s`. A format error never loses
        the entry: it is written with the template, a marker and the arguments' reprs.

        Async mode: queue the entry and return (about a microsecond); when the queue is full,
        apply `Config.overflow` (by default: wait up to `put_timeout`, then drop it). Sync mode:
        the entry is written (handlers first) before this returns. Entries below the configured
        level are discarded (False). A dropped or lost entry is counted, said in the log itself
        and once per burst on stderr, and returns False; with `Config(raise_errors=True)` it
        raises `QueueFullError` or `BackendWriteError` instead. Programming errors always
        raise: `ManagerClosedError` before `start()` and after `close()`, `ValueError` for an
        unknown level, `LogError` from another thread.
        """
        raise NotImplementedError  # the body is the shortcut that write_log_method builds

    def write_log_threadsafe(
        self, level: Level | int | str, message: object, /, *args: Any, **fields: Any
    ) -> None:
        """Log from any thread (a thread pool, `run_in_executor`, a plain thread, the loop's own
        thread outside a coroutine); returns at once and never blocks the loop. The time, the
        traceback (`exc_info=`) and the `contextualize` fields are taken here; the entry is
        handed to the manager's loop, which applies the level, the bounds and the overflow
        policy as `write_log` does. An entry refused there (a full queue, a failed sync write)
        is counted dropped, not raised here. When the loop has stopped or closed while the
        manager is still open, the entry (after everything still queued) is written at once.
        Raises `ValueError` for an unknown level and `ManagerClosedError` when not running."""
        self._intake.hand_in(level, message, fields, args=args)

    @level_method(Level.DEBUG)
    async def debug(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.DEBUG, ...)`."""
        raise NotImplementedError  # the body is the shortcut that level_method builds

    @level_method(Level.INFO)
    async def info(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.INFO, ...)`."""
        raise NotImplementedError  # the body is the shortcut that level_method builds

    @level_method(Level.WARNING)
    async def warning(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.WARNING, ...)`."""
        raise NotImplementedError  # the body is the shortcut that level_method builds

    @level_method(Level.ERROR)
    async def error(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.ERROR, ...)`."""
        raise NotImplementedError  # the body is the shortcut that level_method builds

    @level_method(Level.CRITICAL)
    async def critical(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.CRITICAL, ...)`."""
        raise NotImplementedError  # the body is the shortcut that level_method builds

    async def exception(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.ERROR, ...)` with the traceback of the exception being handled
        (call it inside `except`); `exc_info=` may name another exception."""
        fields.setdefault("exc_info", True)
        return await self.write_log(Level.ERROR, message, *args, **fields)

    def bind(self, **fields: Any) -> Logger:
        """A light view of this manager whose entries all carry `fields` (the manager itself is
        unchanged). Fields given to a call win over `contextualize` fields, which win over
        bound ones."""
        return Logger(self, None, MappingProxyType(frozen_mapping(fields)), self._intake.own_gate)

    def get_logger(self, name: str) -> Logger:
        """The view whose entries carry `logger=name` (the same object for the same name), at
        the level `Config.levels` gives that name; with `.bind()` and `.nowait`."""
        logger = self._loggers.get(name)
        if logger is None:
            _check_logger_name(name)
            logger = Logger(self, name, MappingProxyType({}), self._intake.gate(name))
            self._loggers[name] = logger
        return logger

    def set_level(self, name: str, level: Level | int | str) -> None:
        """Set the level of the logger `name` and of the names under it that have none of
        their own (`Config.levels`), from now on, for the views that exist already too (and
        for this manager's own calls when `name` covers its name). `ValueError` for an
        unknown level."""
        _check_logger_name(name)
        self._intake.set_level(name, parse_level(level))

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
        for sink in self._sinks:
            sink.writer.observers.append(functools.partial(observer, sink.name))

    def get_stats(self) -> LogStats:
        """A snapshot of queue depth, capacity and the counters: totals over the backends,
        and each backend's own in `LogStats.backends` (by name)."""
        intake = self._intake
        per_sink = {sink.name: self._sink_stats(sink) for sink in self._sinks}
        parts = per_sink.values()
        chain = intake.chain
        filtered_by = merged_counts(
            {"level": intake.filtered},
            chain.filtered_by if chain is not None else {},
            *(part.filtered_by for part in parts),
        )
        filtered = sum(filtered_by.values())
        if intake.only is not None:
            only = per_sink[intake.only.name]
            return dataclasses.replace(
                only,
                filtered=filtered,
                filtered_by=MappingProxyType(filtered_by),
                backends=MappingProxyType(per_sink),
            )
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
            filtered=filtered,
            filtered_by=MappingProxyType(filtered_by),
            pending=sum(part.pending for part in parts),
            retries=sum(part.retries for part in parts),
            queue_bytes=sum(part.queue_bytes for part in parts),
            rotated_files_deleted=sum(part.rotated_files_deleted for part in parts),
            backends=MappingProxyType(per_sink),
        )

    def _sink_stats(self, sink: SinkRunner) -> LogStats:
        sink.settle_ended()  # a thread's batch that ended after the loop closed
        counters = sink.counters
        return LogStats(
            queue_size=sink.queued,
            queue_capacity=self._config.queue_size if self._config.async_mode else 0,
            is_async=self._config.async_mode,
            handler_count=len(sink.writer.handlers),
            written=counters.written,
            dropped=counters.dropped,
            write_errors=counters.write_errors,
            handler_errors=counters.handler_errors,
            accepted=counters.accepted,
            dead_lettered=counters.dead_lettered,
            filtered=sink.chain.filtered if sink.chain is not None else 0,
            filtered_by=MappingProxyType(dict(sink.chain.filtered_by if sink.chain else {})),
            pending=sink.pending + sink.owed,
            retries=counters.retries,
            queue_bytes=sink.queue.approximate_bytes if sink.queue is not None else 0,
            rotated_files_deleted=_reported_count(sink.writer.backend, "rotated_files_deleted"),
        )

    def __repr__(self) -> str:
        mode = "async" if self._config.async_mode else "sync"
        return f"<LogManager {self._name!r} {mode} {self._intake.state.value}>"


def get_logger(name: str) -> Logger:
    """`lm.get_logger(name)` of the default manager: the one built with `Config(default=True)`
    (it may not be started yet: its calls then raise `ManagerClosedError` until it is), else
    the only one running. `LogError` when there is none, or several and none is the default.
    The one-line migration from `logging.getLogger(__name__)`."""
    return _registry.default_manager().get_logger(name)


def _check_logger_name(name: object) -> None:
    if not isinstance(name, str) or not name or "" in name.split("."):
        raise ValueError(f"a logger name must be a non-empty dotted str, got {name!r}")


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - _runtime.current_loop().time())


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # a late failure is not "never retrieved"


def _reported_count(backend: object, name: str) -> int:
    """A count a backend reports as an attribute (`Backend`'s optional hooks); 0 without one,
    or when it is not a non-negative int."""
    value = getattr(backend, name, 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0
