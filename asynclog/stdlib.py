"""The bridge from the standard library's `logging` into asynclog.

`AsyncLogHandler` is a `logging.Handler` that feeds records into a `LogManager`: level, logger
name, the `%`-formatted message (its template in `entry.template`), the record's time,
`exc_info`/`stack_info` (formatted into `entry.exception`) and `extra` (into `fields`). The
manager's levels by logger name (`Config.levels`) apply to the record's name. It never blocks
the event loop and never raises into the caller; it works from the loop's thread, from any
other thread, and after the loop has stopped (then it writes synchronously). `install()` routes
loggers through it.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from types import FunctionType, MappingProxyType
from typing import Any

from . import _registry
from ._entry import Location
from ._errors import LogError
from ._format import format_message
from ._freeze import freeze_fields
from ._manager import LogManager
from ._otel import current_trace_fields
from ._sanitize import exact_str
from ._threaded import ThreadedManager
from .formatters import escape

__all__ = ["AsyncLogHandler", "DirectLogger", "Installation", "install"]

_RECORD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        # logging's keywords, taken by logging already: as fields, asynclog would take them
        # for its own (a record with extra={"stacklevel": "x"} was lost to a TypeError).
        "stacklevel",
        "extra",
    }
)

PENDING_LIMIT = 1000
"""Records kept while the handler's manager has not started yet (by name, via dictConfig)."""

IGNORED_LOGGERS = ("aiosqlite",)
"""Loggers whose records the handler drops: aiosqlite logs every statement the SQLite backend
runs at DEBUG, which would feed each write back into the log."""

_waiting_handlers: weakref.WeakSet[AsyncLogHandler] = weakref.WeakSet()
"""Handlers holding records for a manager (by name) that has not started yet."""


class _ThreadState(threading.local):
    """A handler's state in each thread (class defaults: a missing attribute of a
    `threading.local` costs a raised and caught AttributeError at every read)."""

    emitting = False
    """This thread is inside the handler: a record asynclog logs meanwhile goes to stderr."""
    last: weakref.ref[logging.LogRecord] | None = None
    """The record this thread's handler saw last (seen again from an ancestor: skipped)."""


class AsyncLogHandler(logging.Handler):
    """Feeds stdlib log records into `manager` (a `LogManager`, or the `Config.name` of one,
    looked up when a record arrives: handy with `logging.config.dictConfig`).

    Records that arrive before that manager has started are kept (up to `PENDING_LIMIT`) and
    written first once it runs; records after it has closed go to stderr. Nothing raises into
    the code that logged: failures go through `Handler.handleError`, as in `logging`.
    """

    def __init__(self, manager: LogManager | str, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        if not isinstance(manager, LogManager | str):
            raise TypeError(f"manager must be a LogManager or its name, got {manager!r}")
        self._manager = manager
        self._seen: LogManager | None = manager if isinstance(manager, LogManager) else None
        self._pending: collections.deque[logging.LogRecord] = collections.deque()
        self.overflowed = 0
        """Records that arrived before the manager started and did not fit the pending list
        (they went to stderr instead)."""
        self._local = _ThreadState()

    @property
    def manager(self) -> LogManager | None:
        """The manager records go to: the one given, or the running one of that name (else
        the last one seen, or None while none has started yet)."""
        if isinstance(self._manager, LogManager):
            return self._manager
        for candidate in _registry.live_managers():
            if candidate.name == self._manager and candidate.running:
                self._seen = candidate
                return candidate
        return self._seen

    def handle(self, record: logging.LogRecord) -> bool:
        # Installed on a logger and on its ancestor, the handler would see a propagating
        # record twice (logging calls every handler of every ancestor in the same thread).
        last = self._local.last
        if (last is not None and last() is record) or record.name.startswith(IGNORED_LOGGERS):
            return False
        self._local.last = weakref.ref(record)  # a weak one: a record keeps its traceback alive
        if self.filters:
            kept = self.filter(record)
            if not kept:
                return False
            if isinstance(kept, logging.LogRecord):  # Python 3.12: a filter may replace it
                record = kept
        # Not under `self.lock` (as `Handler.handle` would): forwarding takes records from any
        # thread, and the lock cost a tenth of a forwarded record. Held records take it.
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self._local.emitting:
            _to_stderr(record)  # asynclog itself logged while handling a record: no loop
            return
        self._local.emitting = True
        try:
            given = self._manager
            manager = given if given.__class__ is LogManager else self.manager
            if manager is None or not manager.running:
                self.acquire()
                try:
                    self._hold(record, manager)
                finally:
                    self.release()
                return
            if self._pending:
                self.release_pending(manager)
            self._forward(manager, record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
        finally:
            self._local.emitting = False

    def take_call(self, logger: str, level: int, message: object, args: tuple[Any, ...]) -> bool:
        """A `DirectLogger` call for which this handler is the only one: the record's work
        done without the record. False when the call must make its record after all (the
        manager is not running, records are held, the call site is wanted)."""
        given = self._manager
        manager = given if given.__class__ is LogManager else self.manager
        local = self._local
        if manager is None or self._pending or local.emitting or logger.startswith(IGNORED_LOGGERS):
            return False
        intake = manager._intake  # the package-internal intake: see LogManager
        at = time.time()
        try:
            # Only while the manager runs (take_plain checks); it logs nothing: no guard.
            if intake.take_plain(level, message, args, at, logger):
                return True
        except Exception:
            return False  # the record's way reports it
        if not manager.running or intake.capture_location:
            return False
        local.emitting = True
        try:
            level = min(max(level, 1), 100)
            intake.take_record(level, message, args, {}, at, logger, None, None)
        except Exception:
            return False  # the record's way reports it (or writes it to stderr once closed)
        finally:
            local.emitting = False
        return True

    def release_pending(self, manager: LogManager) -> None:
        """Forward the records held before `manager` started, oldest first."""
        self.acquire()  # records held and released from several threads keep their order
        try:
            while self._pending:
                self._forward(manager, self._pending.popleft())
        finally:
            self.release()

    def _forward(self, manager: LogManager, record: logging.LogRecord) -> None:
        attributes = record.__dict__
        fields = _extra_fields(record)
        intake = manager._intake  # the package-internal intake: see LogManager
        location = None
        if intake.capture_location:  # the record's own, found by logging
            location = Location(record.module, record.funcName or "?", record.lineno)
        args = _record_args(record)
        exception = None
        if record.exc_info or record.exc_text or record.stack_info:
            exception = self._exception_text(record)
        level = min(max(record.levelno, 1), 100)
        template = attributes.get(_TEMPLATE)
        trace = attributes.get(_TRACE)
        try:
            if template is None and trace is None:  # not a held record: the common case
                message, at, name = record.msg, record.created, record.name
                intake.take_record(level, message, args, fields, at, name, exception, location)
                return
            intake.hand_in(
                level,
                record.msg,  # formatted with args there, at the level of record.name
                fields,
                at=record.created,
                logger=record.name,
                exception=exception,
                location=location,
                args=args,
                template=template,
                trace=trace,
            )
        except LogError:
            _to_stderr(record)  # closed between the check and the call

    def _exception_text(self, record: logging.LogRecord) -> str | None:
        formatter = self.formatter or _DEFAULT_FORMATTER
        parts = []
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(formatter.formatStack(record.stack_info))
        return "\n".join(parts) if parts else None

    def _hold(self, record: logging.LogRecord, manager: LogManager | None) -> None:
        if manager is not None and manager.closed:
            _to_stderr(record)
        elif len(self._pending) < PENDING_LIMIT:
            record.exc_text = self._exception_text(record)  # the traceback dies with the frame
            record.exc_info = None
            record.__dict__.update(freeze_fields(_extra_fields(record)))  # as they are now
            _format_now(record)
            # The span now (none before the import): never the one current at the release.
            wanted = manager is None or manager.config.otel_context
            record.__dict__[_TRACE] = (current_trace_fields() if wanted else None) or _NO_TRACE
            self._pending.append(record)
            _waiting_handlers.add(self)
        else:
            self.overflowed += 1
            _to_stderr(record)

    def __repr__(self) -> str:
        name = self._manager if isinstance(self._manager, str) else self._manager.name
        return f"<AsyncLogHandler -> {name!r} ({logging.getLevelName(self.level)})>"


_DEFAULT_FORMATTER = logging.Formatter()


class DirectLogger(logging.Logger):
    """A `logging.Logger` whose calls skip logging's `LogRecord` (its call-site search, its
    attributes, the handler chain) when one `AsyncLogHandler` is the only handler that would
    see them: the same entry, for a fraction of the CPU (a web server's access line costs
    a third). Anything else (a filter on the logger or handler, another handler on the way to
    the root, `exc_info`, `extra`, `stack_info`, a custom record factory, a manager not running
    yet) takes logging's usual way.

    `install()` gives this class to the loggers it names (and puts theirs back on undo);
    `logging.setLoggerClass(DirectLogger)` gives it to loggers created afterwards. While
    `makeRecord`, `handle`, `callHandlers`, `filter` or `Logger._log` is not logging's own (a
    subclass overrides it, a library patched it: ddtrace's `makeRecord`, Sentry's
    `callHandlers`), every call makes its record."""

    def _log(
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Mapping[str, object] | None = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        if (
            exc_info is None
            and extra is None
            and not stack_info
            and not _changes_records(self.__class__)
        ):
            handler = _only_handler(self, level)
            if handler is not None and handler.take_call(self.name, level, msg, args):
                return
        # One frame more to skip when logging looks for the call site: this method's.
        super()._log(level, msg, args, exc_info, extra, stack_info, stacklevel + 1)


def _changes_records(cls: type[logging.Logger]) -> bool:
    """True when one of `cls`'s record methods is not logging's own: overridden or patched."""
    methods = (cls.makeRecord, cls.handle, cls.callHandlers, cls.filter, logging.Logger._log)
    if _plain_methods.get(cls) == methods:
        return False
    if any(
        # A wrapper object (wrapt's, as ddtrace uses) passes on `__module__` but is no function.
        type(method) is not FunctionType or method.__module__ != "logging"
        for method in methods
    ):
        return True
    _plain_methods[cls] = methods
    return False


_plain_methods: dict[type[logging.Logger], tuple[object, ...]] = {}
"""Logger classes whose record methods were found to be logging's own, with those methods."""


def _only_handler(logger: logging.Logger, level: int) -> AsyncLogHandler | None:
    """The `AsyncLogHandler` that alone would handle `logger`'s record at `level` with no
    filter in the way, else None."""
    if logger.filters or logger.disabled or logging.getLogRecordFactory() is not _RECORD:
        return None
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or handler.__class__ is not AsyncLogHandler:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if found is None or found.filters or level < found.level:
        return None
    return found


_RECORD = logging.LogRecord


_TEMPLATE = "_asynclog_template"
"""A held record's attribute: its `msg` before `_format_now` formatted it with its args."""
_TRACE = "_asynclog_trace"
"""A held record's attribute: the trace context where it was logged (`_NO_TRACE`: none)."""
_NO_TRACE: Mapping[str, Any] = MappingProxyType({})


def _format_now(record: logging.LogRecord) -> None:
    """Format a record held for later with its args now: they may change once `emit` returns."""
    template = record.msg if type(record.msg) is str else exact_str(record.msg)
    args = _record_args(record)
    if args:
        record.msg = format_message(template, args)
        record.args = None
        record.__dict__[_TEMPLATE] = template
    else:
        record.msg = template


def _record_args(record: logging.LogRecord) -> tuple[Any, ...]:
    """The record's `%` args as a tuple (logging keeps a single mapping argument as it is)."""
    args = record.args
    if not args:
        return ()
    if type(args) is tuple:
        return args
    return (args,) if isinstance(args, Mapping) else tuple(args)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's attributes that are not `LogRecord`'s own: its `extra=` fields."""
    attributes = record.__dict__
    if attributes.keys() <= _RECORD_ATTRIBUTES:  # the common case, one C-level set check
        return {}
    return {
        key: value
        for key, value in attributes.items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


def _manager_started(manager: LogManager) -> None:
    """A manager started: handlers holding records for its name write them now."""
    for handler in list(_waiting_handlers):  # the loop's thread; holding takes handler.lock too
        if handler._manager == manager.name or handler._manager is manager:
            with handler.lock or contextlib.nullcontext():
                handler._seen = manager
                try:
                    handler.release_pending(manager)
                except Exception:
                    _to_stderr_all(handler)
            _waiting_handlers.discard(handler)


def _at_exit() -> None:
    """Records still held at exit (their manager never started) go to stderr."""
    for handler in list(_waiting_handlers):
        _to_stderr_all(handler)


def _to_stderr_all(handler: AsyncLogHandler) -> None:
    while handler._pending:
        _to_stderr(handler._pending.popleft())


_registry.on_start(_manager_started)
atexit.register(_at_exit)


def _to_stderr(record: logging.LogRecord) -> None:
    with contextlib.suppress(Exception):  # stderr itself gone: nowhere left to say it
        parts = (str(record.levelname), record.name, record.getMessage())
        sys.stderr.write(":".join(escape(part) for part in parts) + "\n")


class Installation:
    """What `install()` changed; `undo()` puts it back (done by the manager's `close()`).

    Installations on the same logger undo in any order: an undo that is not the latest one
    on a logger leaves the logger to the later ones, which then restore what this one found."""

    def __init__(self, handler: AsyncLogHandler) -> None:
        self.handler = handler
        self._changes: list[_Saved] = []
        self._undone = False

    def _route(self, logger: logging.Logger, level: int | None, replace: bool) -> None:
        saved = _Saved(logger, logger.level, list(logger.handlers))
        self._changes.append(saved)
        if type(logger) is logging.Logger:  # not the root, nor a class of the user's
            logger.__class__ = DirectLogger
            _made_direct.add(logger)
        _routes.setdefault(logger, []).append(saved)
        if replace:
            for existing in list(logger.handlers):
                logger.removeHandler(existing)
        logger.addHandler(self.handler)
        if level is not None:
            logger.setLevel(level)

    def undo(self) -> None:
        """Remove the handler and restore the loggers' levels and handlers. Idempotent."""
        if self._undone:
            return
        self._undone = True
        for saved in reversed(self._changes):
            logger = saved.logger
            routes = _routes.get(logger, [])
            at = next((i for i, route in enumerate(routes) if route is saved), len(routes))
            logger.removeHandler(self.handler)
            if at + 1 < len(routes):  # a later installation routes it: it restores ours
                later = routes[at + 1]
                later.level = saved.level
                later.handlers = [h for h in saved.handlers if h is not self.handler]
            else:
                logger.setLevel(saved.level)
                for handler in saved.handlers:
                    if handler not in logger.handlers:
                        logger.addHandler(handler)
            del routes[at : at + 1]
            if not routes:
                _routes.pop(logger, None)
                if logger in _made_direct:
                    _made_direct.discard(logger)
                    _make_plain(logger)


class _Saved:
    """A logger as one installation found it."""

    __slots__ = ("handlers", "level", "logger")

    def __init__(self, logger: logging.Logger, level: int, handlers: list[logging.Handler]):
        self.logger = logger
        self.level = level
        self.handlers = handlers


_routes: weakref.WeakKeyDictionary[logging.Logger, list[_Saved]] = weakref.WeakKeyDictionary()
"""Each logger's installations not undone yet, oldest first."""
_made_direct: weakref.WeakSet[logging.Logger] = weakref.WeakSet()
"""Loggers `install()` made `DirectLogger`s: plain again once no installation routes them."""


def _make_plain(logger: logging.Logger) -> None:
    current = type(logger)
    if current is DirectLogger:  # not changed since by someone else
        logger.__class__ = logging.Logger


def _level_number(level: int | str) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    number = logging.getLevelNamesMapping().get(str(level).upper())
    if number is None:
        raise ValueError(f"unknown logging level {level!r}")
    return number


def install(
    manager: LogManager | ThreadedManager,
    level: int | str | None = logging.INFO,
    loggers: Iterable[str] | None = None,
    *,
    replace: bool = False,
    **handler_options: Any,
) -> Installation:
    """Route the root logger (or the loggers named in `loggers`) through `manager` (a
    `LogManager`, or the `ThreadedManager` that `asynclog.run_in_thread` returned).

    `level` is set on those loggers (None leaves their levels alone); `replace=True` detaches
    their existing handlers meanwhile (for example uvicorn's own). Everything is undone when
    the manager closes, or by `Installation.undo()`.
    """
    if isinstance(manager, ThreadedManager):
        manager = manager.manager
    handler = AsyncLogHandler(manager, **handler_options)
    installation = Installation(handler)
    numeric = _level_number(level) if level is not None else None
    for name in loggers if loggers is not None else [None]:
        installation._route(logging.getLogger(name), numeric, replace)
    _registry.on_close(manager, installation.undo)
    return installation
