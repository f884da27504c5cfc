"""The path from an accepted entry to the backend: handlers, one write per batch, counting.

`Writer` is shared by both modes; `Pipeline` adds the queue and the worker task of async mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ._entry import LogEntry
from ._errors import BackendWriteError
from ._handlers import HandlerSet
from ._queue import FairQueue
from ._report import BurstReporter
from ._stats import Counters
from .backends.base import Backend


class Writer:
    """Runs the handlers on a batch, then writes it with one backend call, and counts.

    With `blocking=True` (sync mode) a backend that offers `write_batch_blocking` is written
    directly, without a thread hop.
    """

    def __init__(
        self,
        backend: Backend,
        handlers: HandlerSet,
        counters: Counters,
        reporter: BurstReporter,
        *,
        blocking: bool = False,
    ) -> None:
        self.backend = backend
        self._handlers = handlers
        self._counters = counters
        self._reporter = reporter
        write_now = getattr(backend, "write_batch_blocking", None) if blocking else None
        self._write_now: Callable[[Sequence[LogEntry]], None] | None = write_now

    @property
    def immediate(self) -> bool:
        """True when `deliver_immediately` may be used: a blocking backend and no handlers."""
        return self._write_now is not None and not len(self._handlers)

    async def deliver(self, entries: Sequence[LogEntry], *, raise_errors: bool = False) -> None:
        """Handle and write `entries`. A failed write counts them dropped; raises only if asked."""
        if len(self._handlers):
            await self._handlers.dispatch(entries)
        try:
            if self._write_now is not None:
                self._write_now(entries)
            else:
                await self.backend.write_batch(entries)
        except Exception as exc:
            self._failed(entries, exc, raise_errors)
        else:
            self._succeeded(entries)

    def deliver_immediately(self, entries: Sequence[LogEntry]) -> None:
        """Sync mode without handlers: write now, raise `BackendWriteError` on failure."""
        assert self._write_now is not None
        try:
            self._write_now(entries)
        except Exception as exc:
            self._failed(entries, exc, True)
        else:
            self._succeeded(entries)

    def _succeeded(self, entries: Sequence[LogEntry]) -> None:
        self._counters.written += len(entries)
        self._reporter.success("write")

    def _failed(self, entries: Sequence[LogEntry], exc: Exception, raise_errors: bool) -> None:
        self._counters.write_errors += 1
        self._counters.dropped += len(entries)
        self._reporter.failure(
            "write", f"{type(self.backend).__name__} lost {len(entries)} entries: {exc!r}"
        )
        if raise_errors:
            raise BackendWriteError(f"log entry not written: {exc}") from exc


class Pipeline:
    """Async mode: a `FairQueue` in front of one worker task that drains it in batches."""

    def __init__(
        self,
        writer: Writer,
        counters: Counters,
        reporter: BurstReporter,
        capacity: int,
        batch_size: int,
    ) -> None:
        self.queue: FairQueue[LogEntry] = FairQueue(capacity)
        self._writer = writer
        self._counters = counters
        self._reporter = reporter
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._work(), name="asynclog-worker")

    @property
    def worker_failure(self) -> BaseException | None:
        """What killed the worker, if it stopped before `stop()` was called."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None if task is None or not task.cancelled() else asyncio.CancelledError()
        return task.exception()

    async def _work(self) -> None:
        queue, deliver, limit = self.queue, self._writer.deliver, self._batch_size
        while batch := await queue.get_batch(limit):
            await deliver(batch)

    async def stop(self) -> None:
        """Refuse new entries, write every accepted one, and wait for the worker to end."""
        self.queue.close()  # producers still waiting get ManagerClosedError (counted there)
        if self._task is None:
            return
        try:
            await self._task
        except Exception as exc:  # a bug in the worker: report it, close must still finish
            self._reporter.failure("worker", repr(exc))
            self._counters.dropped += self.queue.clear()
