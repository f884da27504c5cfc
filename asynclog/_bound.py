"""The views of a manager: `Logger` (named loggers and `bind()` views: a logger name, bound
fields and the level of that name) and `NoWait` (the same calls as plain functions)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._freeze import frozen_mapping
from ._intake import nowait_method
from ._levels import Gate, Level, level_name

if TYPE_CHECKING:
    from ._intake import Intake
    from ._manager import LogManager

_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = (
    Level.DEBUG,
    Level.INFO,
    Level.WARNING,
    Level.ERROR,
    Level.CRITICAL,
)


class Logger:
    """A view of a manager: `lm.get_logger("app.db")` (entries carry `logger="app.db"`) or
    `lm.bind(**fields)` / `logger.bind(**fields)` (entries carry the bound fields). The same
    methods as `LogManager` and the same pipeline. The level is that of the view's logger name
    (`Config.levels`, `LogManager.set_level`), read once per call from a gate shared by every
    view of the name: a level method (`debug` ... `critical`) below it returns False at once,
    formatting and counting nothing, about as cheap as awaiting a no-op coroutine (`write_log`
    and `exception` below it are counted in `filtered`, as the manager's own calls are)."""

    __slots__ = ("_fields", "_gate", "_intake", "_logger", "_manager", "_nowait")

    def __init__(
        self,
        manager: LogManager,
        logger: str | None,
        fields: Mapping[str, Any],
        gate: Gate,
    ) -> None:
        self._manager = manager
        self._intake: Intake = manager._intake  # the package-internal intake: see LogManager
        self._logger = logger
        self._fields = fields
        self._gate = gate
        self._nowait: NoWait | None = None

    @property
    def name(self) -> str:
        """The logger name this view's entries carry."""
        return self._manager.name if self._logger is None else self._logger

    @property
    def level(self) -> int:
        """The level below which this view's calls are discarded (as it is now)."""
        return self._gate.level

    @property
    def fields(self) -> Mapping[str, Any]:
        """The bound fields (read-only)."""
        return self._fields

    @property
    def manager(self) -> LogManager:
        """The manager this view writes through."""
        return self._manager

    @property
    def nowait(self) -> NoWait:
        """This view's calls as plain functions that never wait (see `LogManager.nowait`)."""
        nowait = self._nowait
        if nowait is None:
            nowait = self._nowait = NoWait(self._intake, self._logger, self._fields)
        return nowait

    def bind(self, **fields: Any) -> Logger:
        """A new view with `fields` added to (and overriding) the bound ones."""
        merged = MappingProxyType({**self._fields, **frozen_mapping(fields)})
        return Logger(self._manager, self._logger, merged, self._gate)

    async def write_log(
        self, level: Level | int | str, message: object, /, *args: Any, **fields: Any
    ) -> bool:
        """`LogManager.write_log` through this view; True when accepted (see there)."""
        intake = self._intake
        pending = intake.accept(
            level, message, fields, None, self._logger, self._fields, args=args
        )
        if pending is None:
            return True
        if pending is False:
            return False
        return await intake.settle_call(pending)

    async def debug(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.DEBUG, ...)`."""
        if self._gate.level > 10:  # DEBUG, as a literal: the filtered call stays cheap
            return False
        return await self.write_log(_DEBUG, message, *args, **fields)

    async def info(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.INFO, ...)`."""
        if self._gate.level > 20:  # INFO, as a literal: the filtered call stays cheap
            return False
        return await self.write_log(_INFO, message, *args, **fields)

    async def warning(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.WARNING, ...)`."""
        if self._gate.level > 30:  # WARNING, as a literal: the filtered call stays cheap
            return False
        return await self.write_log(_WARNING, message, *args, **fields)

    async def error(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.ERROR, ...)`."""
        if self._gate.level > 40:  # ERROR, as a literal: the filtered call stays cheap
            return False
        return await self.write_log(_ERROR, message, *args, **fields)

    async def critical(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.CRITICAL, ...)`."""
        if self._gate.level > 50:  # CRITICAL, as a literal: the filtered call stays cheap
            return False
        return await self.write_log(_CRITICAL, message, *args, **fields)

    async def exception(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`error(...)` with the traceback of the exception being handled."""
        fields.setdefault("exc_info", True)
        return await self.write_log(_ERROR, message, *args, **fields)

    def write_log_threadsafe(
        self, level: Level | int | str, message: object, /, *args: Any, **fields: Any
    ) -> None:
        """`LogManager.write_log_threadsafe` through this view."""
        self._intake.hand_in(
            level, message, fields, logger=self._logger, bound=self._fields, args=args
        )

    def __repr__(self) -> str:
        bound = f" {dict(self._fields)!r}" if self._fields else ""
        return f"<Logger {self.name!r} {level_name(self._gate.level)}{bound} of {self._manager!r}>"


BoundLogger = Logger
"""The former name of `Logger` (what `bind()` returns)."""


class NoWait:
    """`lm.nowait`, `logger.nowait`: the logging calls as plain functions that never wait, for
    code on the loop's thread that is not a coroutine (a callback, a sync function called
    from a coroutine). They return what the awaited calls return: True when the entry was
    queued, written or handed to the pipeline, False when it was filtered out or dropped.

    On the loop's thread, in async mode, a full queue drops the entry at once (counted in
    `dropped` and reported as every drop is; `QueueFullError` with `raise_errors=True`), as
    `overflow="drop_newest"` does (`"drop_oldest"` evicts, which never waits either); a
    priority entry takes the reserve, and once that is full it waits in the backlog (it is
    never dropped for lack of room). In sync mode the entry is written before the call
    returns when the backend can write without awaiting (the file and console backends, no
    handlers, no write in progress); otherwise it joins the backlog, written in order by the
    pipeline's task. From another thread, a call hands the entry in as
    `write_log_threadsafe` does and returns True."""

    __slots__ = ("_fields", "_intake", "_logger", "_plain")

    def __init__(
        self, intake: Intake, logger: str | None, fields: Mapping[str, Any] | None
    ) -> None:
        self._intake = intake
        self._logger = logger
        self._fields = fields
        self._plain = logger is None and not fields
        """The manager's own: the level shortcuts apply (see `nowait_method`)."""

    def write_log(
        self, level: Level | int | str, message: object, /, *args: Any, **fields: Any
    ) -> bool:
        """Log `message` (`% args`) at `level` with `fields`, without waiting."""
        return self._intake.log_now(level, message, args, fields, self._logger, self._fields)

    @nowait_method(Level.DEBUG)
    def debug(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.DEBUG, ...)`."""
        raise NotImplementedError  # the body is the shortcut that nowait_method builds

    @nowait_method(Level.INFO)
    def info(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.INFO, ...)`."""
        raise NotImplementedError  # the body is the shortcut that nowait_method builds

    @nowait_method(Level.WARNING)
    def warning(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.WARNING, ...)`."""
        raise NotImplementedError  # the body is the shortcut that nowait_method builds

    @nowait_method(Level.ERROR)
    def error(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.ERROR, ...)`."""
        raise NotImplementedError  # the body is the shortcut that nowait_method builds

    @nowait_method(Level.CRITICAL)
    def critical(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`write_log(Level.CRITICAL, ...)`."""
        raise NotImplementedError  # the body is the shortcut that nowait_method builds

    def exception(self, message: object, /, *args: Any, **fields: Any) -> bool:
        """`error(...)` with the traceback of the exception being handled."""
        fields.setdefault("exc_info", True)
        return self._intake.log_now(_ERROR, message, args, fields, self._logger, self._fields)

    def __repr__(self) -> str:
        return f"<NoWait of {self._intake.name!r} logger={self._logger!r}>"
