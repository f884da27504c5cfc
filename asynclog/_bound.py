"""`BoundLogger`: a view of a manager whose entries all carry some fields."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._freeze import frozen_mapping
from ._levels import Level

if TYPE_CHECKING:
    from ._manager import LogManager


class BoundLogger:
    """Returned by `LogManager.bind(**fields)`: the same logging methods, the same pipeline,
    plus the bound fields on every entry. Binding again returns a new view with the fields
    added; the original is unchanged."""

    __slots__ = ("_fields", "_manager")

    def __init__(self, manager: LogManager, fields: Mapping[str, Any]) -> None:
        self._manager = manager
        self._fields = fields

    @property
    def fields(self) -> Mapping[str, Any]:
        """The bound fields (read-only)."""
        return self._fields

    @property
    def manager(self) -> LogManager:
        """The manager this view writes through."""
        return self._manager

    def bind(self, **fields: Any) -> BoundLogger:
        """A new view with `fields` added to (and overriding) the bound ones."""
        added = frozen_mapping(fields)
        return BoundLogger(self._manager, MappingProxyType({**self._fields, **added}))

    async def write_log(self, level: Level | int | str, message: object, /, **fields: Any) -> bool:
        """`LogManager.write_log` with the bound fields; True when accepted (see there)."""
        intake = self._manager._intake  # the package-internal intake: see LogManager
        pending = intake.accept(level, message, fields, bound=self._fields)
        if pending is None:
            return True
        if pending is False:
            return False
        return await intake.settle_call(pending)

    async def debug(self, message: object, /, **fields: Any) -> bool:
        """`write_log(Level.DEBUG, ...)`."""
        return await self.write_log(Level.DEBUG, message, **fields)

    async def info(self, message: object, /, **fields: Any) -> bool:
        """`write_log(Level.INFO, ...)`."""
        return await self.write_log(Level.INFO, message, **fields)

    async def warning(self, message: object, /, **fields: Any) -> bool:
        """`write_log(Level.WARNING, ...)`."""
        return await self.write_log(Level.WARNING, message, **fields)

    async def error(self, message: object, /, **fields: Any) -> bool:
        """`write_log(Level.ERROR, ...)`."""
        return await self.write_log(Level.ERROR, message, **fields)

    async def critical(self, message: object, /, **fields: Any) -> bool:
        """`write_log(Level.CRITICAL, ...)`."""
        return await self.write_log(Level.CRITICAL, message, **fields)

    async def exception(self, message: object, /, **fields: Any) -> bool:
        """`error(...)` with the traceback of the exception being handled."""
        fields.setdefault("exc_info", True)
        return await self.write_log(Level.ERROR, message, **fields)

    def write_log_threadsafe(
        self, level: Level | int | str, message: object, /, **fields: Any
    ) -> None:
        """`LogManager.write_log_threadsafe` with the bound fields."""
        self._manager._intake.hand_in(level, message, fields, bound=self._fields)

    def __repr__(self) -> str:
        return f"<BoundLogger of {self._manager!r} {dict(self._fields)!r}>"
