"""Handlers: user callbacks that see every entry, isolated from each other and the writes."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, runtime_checkable

from . import _runtime
from ._entry import LogEntry
from ._report import BurstReporter
from ._stats import Counters

HandlerResult = Awaitable[None] | None


@runtime_checkable
class Handler(Protocol):
    """Anything with a `handle(entry)` method, plain (`def`) or coroutine (`async def`)."""

    def handle(self, entry: LogEntry) -> HandlerResult:
        """Called once for every entry, in order."""
        ...


HandlerLike = Handler | Callable[[LogEntry], HandlerResult]


class HandlerSet:
    """The registered handlers; a raising handler is counted and reported, never propagated."""

    def __init__(self, counters: Counters, reporter: BurstReporter) -> None:
        self._counters = counters
        self._reporter = reporter
        self._registered: tuple[tuple[HandlerLike, Callable[[LogEntry], HandlerResult]], ...] = ()

    def __len__(self) -> int:
        return len(self._registered)

    def add(self, handler: HandlerLike) -> None:
        """Register `handler` (an object with `handle`, or a callable taking the entry)."""
        call = getattr(handler, "handle", None)
        if not callable(call):
            if not callable(handler):
                raise TypeError(
                    f"a handler needs a handle(entry) method or must be callable, got {handler!r}"
                )
            call = handler
        self._registered = (*self._registered, (handler, call))

    def remove(self, handler: HandlerLike) -> None:
        """Unregister `handler`; unknown handlers are ignored, as in `logging`."""
        self._registered = tuple(pair for pair in self._registered if pair[0] is not handler)

    async def dispatch(self, entries: Iterable[LogEntry]) -> None:
        """Give every entry to every handler, in order."""
        calls = [call for _, call in self._registered]
        failed = False
        for entry in entries:
            for call in calls:
                try:
                    result = call(entry)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except _runtime.CANCELLED as exc:
                    if _runtime.really_cancelled(exc):
                        raise
                    failed = True  # a future the handler awaited was cancelled: its failure
                    self._counters.handler_errors += 1
                    self._reporter.failure("handler", f"{call!r} raised {exc!r}")
                except Exception as exc:
                    failed = True
                    self._counters.handler_errors += 1
                    self._reporter.failure("handler", f"{call!r} raised {exc!r}")
        if not failed:
            self._reporter.success("handler")

