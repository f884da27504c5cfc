"""structlog on top of asynclog: structlog's API and processors, asynclog's queue and backends.

    import structlog
    import asynclog.structlog

    asynclog.structlog.configure(lm)          # or structlog.configure(...) with the parts below
    log = structlog.get_logger("shop")
    log.info("order placed", order_id=42)     # never waits (the nowait way)
    await log.ainfo("order placed", order_id=42)   # awaits asynclog's write_log

The parts: `LoggerFactory(manager)` (structlog's `logger_factory`), `render_entry` (the final
processor: the event dict becomes an entry) and `BoundLogger` (the `wrapper_class` whose
`ainfo()` & co. await asynclog instead of running the call in a thread pool, as structlog's
own `ainfo` does).

This module needs structlog (`pip install 'asynclog[structlog]'`); `import asynclog` does not
import it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from threading import get_ident
from typing import Any, NamedTuple

try:
    import structlog
    from structlog import DropEvent
    from structlog._base import BoundLoggerBase
    from structlog.typing import Processor, WrappedLogger
except ImportError as exc:  # pragma: no cover - the extra is installed in the test suite
    raise ImportError(
        "asynclog.structlog needs structlog: pip install 'asynclog[structlog]'"
    ) from exc

from ._format import format_message
from ._levels import LEVEL_NAMES, Gate, Level, parse_level
from ._manager import LogManager
from ._sanitize import exact_str
from ._threaded import ThreadedManager
from ._tracebacks import format_exc_info

_CALLING_FRAME = getattr(structlog.contextvars, "_ASYNC_CALLING_STACK", None)
"""structlog's (private) variable holding the frame a call came from (structlog >= 23.3)."""

__all__ = [
    "BoundLogger",
    "EntryParts",
    "LoggerFactory",
    "StructlogLogger",
    "configure",
    "render_entry",
]

METHOD_LEVELS: Mapping[str, int] = {
    "debug": Level.DEBUG,
    "info": Level.INFO,
    "msg": Level.INFO,
    "warning": Level.WARNING,
    "warn": Level.WARNING,
    "error": Level.ERROR,
    "err": Level.ERROR,
    "exception": Level.ERROR,
    "failure": Level.ERROR,
    "critical": Level.CRITICAL,
    "fatal": Level.CRITICAL,
}
"""The level of each logging method name structlog may call on a wrapped logger."""

LOGGER_KEYS = ("logger_name", "logger")
"""Event-dict keys that name the entry's logger (the first present wins): `logger_name`,
and `logger` as structlog's `add_logger_name` processor sets it."""


class EntryParts(NamedTuple):
    """What `render_entry` makes of an event dict: everything but the level and the time."""

    message: object
    fields: dict[str, Any]
    exception: str | None
    logger: str | None


def render_entry(
    logger: WrappedLogger, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[EntryParts], dict[str, Any]]:
    """The final processor: the `event` key becomes the message; `exc_info` (as given to the
    call: True, an exception, a `sys.exc_info()` tuple) or an `exception` string (from
    structlog's `format_exc_info`) the traceback, with a `stack` string (from
    `StackInfoRenderer`) after it; `logger_name` or `logger` the logger name; a `level` that
    names a level (from `add_log_level`) is dropped, the entry has its own. Every other key is
    a field."""
    fields = dict(event_dict)
    message = fields.pop("event", "")
    exception = format_exc_info(fields.pop("exc_info", None))
    if exception is None and isinstance(fields.get("exception"), str):
        exception = fields.pop("exception")
    if isinstance(fields.get("stack"), str):
        stack = fields.pop("stack")
        exception = stack if exception is None else f"{exception}\n{stack}"
    name: str | None = None
    for key in LOGGER_KEYS:
        if isinstance(fields.get(key), str):
            name = name or fields[key]
            del fields[key]
    level = fields.get("level")
    if isinstance(level, str) and _is_level_name(level):
        del fields["level"]  # add_log_level's: the entry has its own level
    return (EntryParts(message, fields, exception, name),), {}


def _is_level_name(value: str) -> bool:
    lowered = value.lower()
    return lowered in METHOD_LEVELS or lowered.startswith("level ") or lowered == "notset"


class StructlogLogger:
    """The wrapped logger `LoggerFactory` makes: one per `structlog.get_logger(name)`. Its
    methods (`info`, `error`, ... as structlog calls them) log what the processors made of
    the event at their level, without waiting; `awrite` is the awaited way."""

    def __init__(self, manager: LogManager, name: str | None = None) -> None:
        self.manager = manager
        self.name = name if name is not None else manager.name
        """The logger name of the entries (read by structlog's `add_logger_name`)."""
        self._gate: Gate | None = None

    def is_enabled_for(self, level: int) -> bool:
        """False when the manager discards `level` for this logger name anyway (its
        `Config.levels` entry, the backends' levels): checked before the processors run."""
        gate = self._gate
        if gate is None:
            gate = self._gate = self.manager._intake.gate(self.name)  # the shared intake
        return level >= gate.level

    def write(self, level: int, *args: Any, **kwargs: Any) -> bool:
        """Log without waiting, as `LogManager.nowait` does: on the manager's loop thread a
        full queue drops the entry (False); from any other thread the entry is handed to the
        loop (True). `args` is `(EntryParts,)` from `render_entry`, or a rendered string from
        another final processor; `kwargs` an event dict when the chain ended without one."""
        return self.send(level, _parts(args, kwargs))

    async def awrite(self, level: int, *args: Any, **kwargs: Any) -> bool:
        """`write`, awaited: `LogManager.write_log`'s path (its overflow policy; written when
        it returns in sync mode). On the manager's loop thread only."""
        return await self.asend(level, _parts(args, kwargs))

    def send(self, level: int, parts: EntryParts, template: str | None = None) -> bool:
        """`write` for parts made already; `template`: that of a `%`-formatted message."""
        intake = self.manager._intake  # the package-internal intake: see LogManager
        message, fields, exception = parts.message, parts.fields, parts.exception
        logger = parts.logger or self.name
        if get_ident() != intake.loop_thread:
            intake.hand_in(
                level, message, fields, logger=logger, exception=exception, template=template
            )
            return True
        pending = intake.accept(
            level, message, fields, logger=logger, exception=exception, template=template
        )
        if pending is None:
            return True
        if pending is False:
            return False
        return intake.settle_now(pending)

    async def asend(self, level: int, parts: EntryParts, template: str | None = None) -> bool:
        """`awrite` for parts made already; `template`: that of a `%`-formatted message."""
        intake = self.manager._intake  # the package-internal intake: see LogManager
        pending = intake.accept(
            level,
            parts.message,
            parts.fields,
            logger=parts.logger or self.name,
            exception=parts.exception,
            template=template,
        )
        if pending is None:
            return True
        if pending is False:
            return False
        return await intake.settle_call(pending)

    def __getattr__(self, method_name: str) -> Any:
        level = METHOD_LEVELS.get(method_name)
        if level is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {method_name!r}")

        def log(*args: Any, **kwargs: Any) -> bool:
            return self.write(level, *args, **kwargs)

        return log

    def __repr__(self) -> str:
        return f"<StructlogLogger {self.name!r} of {self.manager!r}>"


def _parts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> EntryParts:
    if len(args) == 1 and isinstance(args[0], EntryParts) and not kwargs:
        return args[0]
    if len(args) == 1 and not kwargs:  # another final processor rendered a str or bytes
        rendered = args[0]
        if isinstance(rendered, bytes | bytearray):
            rendered = bytes(rendered).decode("utf-8", "replace")
        return EntryParts(rendered, {}, None, None)
    if not args:  # the chain ended with the event dict itself
        return render_entry(None, "", kwargs)[0][0]
    raise TypeError(
        "asynclog.structlog's logger takes what render_entry returns (make it the last "
        f"processor), a rendered string or an event dict; got args={args!r}"
    )


class LoggerFactory:
    """structlog's `logger_factory`: `structlog.get_logger(name)` writes through `manager`
    with `name` as the entry's logger (`get_logger()` without a name: the manager's name)."""

    def __init__(self, manager: LogManager | ThreadedManager) -> None:
        if isinstance(manager, ThreadedManager):
            manager = manager.manager
        if not isinstance(manager, LogManager):
            raise TypeError(f"LoggerFactory needs a LogManager, got {manager!r}")
        self.manager = manager

    def __call__(self, *args: Any) -> StructlogLogger:
        name = args[0] if args else None
        if name is not None and not isinstance(name, str):
            raise TypeError(f"the logger name must be a str, got {name!r}")
        return StructlogLogger(self.manager, name)


def _method_name(level: int) -> str:
    name = LEVEL_NAMES.get(level)
    return name.lower() if name is not None else logging.getLevelName(level).lower()


class BoundLogger(BoundLoggerBase):
    """structlog's `wrapper_class` for asynclog: `info()` & co. never wait (as
    `LogManager.nowait`: from another thread the entry is handed to the manager's loop, on the
    loop's thread a full queue drops it); `await ainfo()` & co. take `LogManager.write_log`'s
    path. Both return True when the entry was accepted (False: below the level, dropped, or
    dropped by a processor raising `DropEvent`). Positional arguments `%`-format the event
    before the processors run, as in structlog's own loggers (a format error writes the
    template, a marker and the arguments, as asynclog's own calls do; the entry keeps the
    template unless a processor changed the message); `exception()` logs at error
    level with the current traceback. Levels below the logger name's are discarded before
    the processors run."""

    _logger: StructlogLogger

    def _prepare(
        self, level: int, event: object, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> tuple[EntryParts, str | None] | None:
        """The processors' entry for this call and the template of its message (None when
        there were no `%` arguments, or a processor rewrote the formatted event); None when
        the level or a processor (`DropEvent`) discards it."""
        logger = self._logger
        if not isinstance(logger, StructlogLogger):
            raise TypeError(
                "asynclog.structlog.BoundLogger writes through the loggers of "
                f"asynclog.structlog.LoggerFactory(manager), got {logger!r}"
            )
        if not logger.is_enabled_for(level):
            return None
        template = None
        if args:
            template = event if type(event) is str else exact_str(event)
            event = format_message(template, args)
        # structlog's CallsiteParameterAdder and StackInfoRenderer start looking for the
        # caller's frame from this context variable (set as structlog's own async methods do),
        # then skip frames of modules named structlog*: ours are asynclog.structlog.
        token = _CALLING_FRAME.set(sys._getframe(3)) if _CALLING_FRAME is not None else None
        try:
            processed = self._process_event(_method_name(level), event, kw)  # type: ignore[arg-type]
        except DropEvent:
            return None
        finally:
            if token is not None:
                _CALLING_FRAME.reset(token)  # type: ignore[union-attr]
        parts = _parts(tuple(processed[0]), dict(processed[1]))
        if template is not None and parts.message != event:
            template = None  # a processor changed the message: the template is not its own
        return parts, template

    def _log(self, level: int, event: object, args: tuple[Any, ...], kw: dict[str, Any]) -> bool:
        prepared = self._prepare(level, event, args, kw)
        if prepared is None:
            return False
        return self._logger.send(level, *prepared)

    async def _alog(
        self, level: int, event: object, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> bool:
        prepared = self._prepare(level, event, args, kw)
        if prepared is None:
            return False
        return await self._logger.asend(level, *prepared)

    def debug(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at DEBUG without waiting."""
        return self._log(Level.DEBUG, event, args, kw)

    def info(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at INFO without waiting."""
        return self._log(Level.INFO, event, args, kw)

    msg = info

    def warning(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at WARNING without waiting."""
        return self._log(Level.WARNING, event, args, kw)

    warn = warning

    def error(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at ERROR without waiting."""
        return self._log(Level.ERROR, event, args, kw)

    def exception(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at ERROR with the traceback of the exception being handled (`exc_info=True`
        unless given)."""
        kw.setdefault("exc_info", True)
        return self._log(Level.ERROR, event, args, kw)

    def critical(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at CRITICAL without waiting."""
        return self._log(Level.CRITICAL, event, args, kw)

    fatal = critical

    def log(self, level: int | str, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at `level` (a number from 1 to 100 or a level name) without waiting."""
        return self._log(parse_level(level), event, args, kw)

    async def adebug(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at DEBUG, awaited (`LogManager.write_log`'s path)."""
        return await self._alog(Level.DEBUG, event, args, kw)

    async def ainfo(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at INFO, awaited (`LogManager.write_log`'s path)."""
        return await self._alog(Level.INFO, event, args, kw)

    amsg = ainfo

    async def awarning(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at WARNING, awaited (`LogManager.write_log`'s path)."""
        return await self._alog(Level.WARNING, event, args, kw)

    awarn = awarning

    async def aerror(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at ERROR, awaited (`LogManager.write_log`'s path)."""
        return await self._alog(Level.ERROR, event, args, kw)

    async def aexception(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """`exception()`, awaited."""
        kw.setdefault("exc_info", True)
        return await self._alog(Level.ERROR, event, args, kw)

    async def acritical(self, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at CRITICAL, awaited (`LogManager.write_log`'s path)."""
        return await self._alog(Level.CRITICAL, event, args, kw)

    afatal = acritical

    async def alog(self, level: int | str, event: object = None, *args: Any, **kw: Any) -> bool:
        """Log at `level`, awaited (`LogManager.write_log`'s path)."""
        return await self._alog(parse_level(level), event, args, kw)


DEFAULT_PROCESSORS: tuple[Processor, ...] = (structlog.contextvars.merge_contextvars,)
"""What `configure` runs before `render_entry` unless told otherwise: the values bound with
`structlog.contextvars.bind_contextvars` join the fields."""


def configure(
    manager: LogManager | ThreadedManager,
    processors: Iterable[Processor] = DEFAULT_PROCESSORS,
    **options: Any,
) -> None:
    """`structlog.configure` for `manager`: `processors` then `render_entry`, `BoundLogger`
    as the wrapper class and `LoggerFactory(manager)`. `options` go to `structlog.configure`
    as they are (`cache_logger_on_first_use=True`, say)."""
    structlog.configure(
        processors=[*processors, render_entry],
        wrapper_class=BoundLogger,
        logger_factory=LoggerFactory(manager),
        **options,
    )
