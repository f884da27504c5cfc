"""The path from an accepted entry to the backend: handlers, one write per batch, retries,
the fallback, and counting. `Writer` serves both modes; `Pipeline` adds the queue and the
worker task of async mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from time import perf_counter
from types import MappingProxyType
from typing import cast

from ._entry import Entry, LogEntry, as_log_entries
from ._errors import BackendWriteError, LogError
from ._exit import EXIT_FLUSH_SECONDS
from ._handlers import HandlerSet
from ._levels import Level
from ._lock import DeliveryLock
from ._queue import FairQueue
from ._report import BurstReporter
from ._stats import Counters
from .backends.base import (
    Backend,
    WouldBlock,
    blocking_write,
    takes_entry_tuples,
    taking_entry_tuples,
)
from .formatters import iso_utc

WriteObserver = Callable[[Sequence[LogEntry], float], None]


class Writer:
    """Runs the handlers on a batch, writes it with one backend call, retries it with
    exponential backoff, hands it to the fallback when the retries fail, and counts.

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
        fallback: Backend | None = None,
        retry_attempts: int = 0,
        retry_backoff: float = 0.0,
    ) -> None:
        self.backend = backend
        self.handlers = handlers
        self._counters = counters
        self._reporter = reporter
        self._write_now = blocking_write(backend) if blocking else None
        self._write_now_takes_tuples = takes_entry_tuples(backend, "write_batch_blocking")
        self._fallback = fallback
        self._fallback_opened = False
        self._retry_attempts = retry_attempts
        self._retry_backoff = retry_backoff
        self.closed = False
        """Set when the manager closes the backends: a late write is dropped, not reopened."""
        self.observers: list[WriteObserver] = []
        """Called with `(entries, seconds)` after each successful backend write (metrics)."""
        self.in_flight: Sequence[Entry] = ()
        """The batch being handled, written or retried (abandoned if the worker is cancelled)."""
        self._converted: tuple[Sequence[Entry], Sequence[LogEntry]] = ((), ())

    def _public(self, entries: Sequence[Entry]) -> Sequence[LogEntry]:
        """The batch as `LogEntry` objects, converted once: handlers, the backend and the
        observers get the same object, and so does every retry of the batch (a backend may
        recognise a retried batch by identity)."""
        source, converted = self._converted
        if source is not entries:
            converted = as_log_entries(entries)
            self._converted = (entries, converted)
        return converted

    def _for_backend(self, entries: Sequence[Entry]) -> Sequence[LogEntry]:
        """The batch as the backend's `write_batch` takes it."""
        if takes_entry_tuples(self.backend, "write_batch"):
            return cast(Sequence[LogEntry], entries)
        return self._public(entries)

    @property
    def immediate(self) -> bool:
        """True when `deliver_immediately` may be used: a blocking backend and no handlers."""
        return self._write_now is not None and not len(self.handlers)

    async def deliver(self, entries: Sequence[Entry], *, raise_if_lost: bool = False) -> None:
        """Handle and write `entries`, with retries and the fallback; every entry is counted
        written, dead-lettered or dropped. Raises `BackendWriteError` if lost and asked to."""
        # If this is interrupted (cancelled, or a bug), in_flight stays set and whoever
        # stopped it settles the batch: redelivers, abandons or drops it.
        self.in_flight = entries
        if len(self.handlers):
            await self.handlers.dispatch(self._public(entries))
        error = await self._attempt(entries)
        if error is not None:
            await self.recover(entries, error, raise_if_lost=raise_if_lost)
        self.in_flight = ()

    def deliver_immediately(self, entries: Sequence[Entry]) -> Exception | None:
        """Sync mode without handlers: write now; return the error for `recover` if it failed.
        Raises `WouldBlock` (nothing written, nothing counted) when the backend cannot write
        without waiting: then `deliver` it."""
        assert self._write_now is not None
        started = perf_counter() if self.observers else 0.0
        try:
            if self._write_now_takes_tuples:
                self._write_now(cast(Sequence[LogEntry], entries))
            else:
                self._write_now(self._public(entries))
        except WouldBlock:
            raise
        except Exception as exc:
            self._write_failed(entries, exc)
            return exc
        self._written(entries, started)
        return None

    async def recover(
        self, entries: Sequence[Entry], error: Exception, *, raise_if_lost: bool = False
    ) -> None:
        """Retry a failed batch with exponential backoff, then dead-letter or drop it."""
        self.in_flight = entries
        for attempt in range(self._retry_attempts):
            await asyncio.sleep(self._retry_backoff * 2**attempt)
            self._counters.retries += 1
            retry_error = await self._attempt(entries)
            if retry_error is None:
                self.in_flight = ()
                return
            error = retry_error
        await self._dead_letter(entries, error, raise_if_lost)  # settles and clears in_flight

    async def _attempt(self, entries: Sequence[Entry]) -> Exception | None:
        if self._write_now is not None:
            try:
                return self.deliver_immediately(entries)
            except WouldBlock:
                pass  # the backend has to wait (a lock): await its write_batch
        started = perf_counter() if self.observers else 0.0
        try:
            await self.backend.write_batch(self._for_backend(entries))
        except Exception as exc:
            self._write_failed(entries, exc)
            return exc
        self._written(entries, started)
        return None

    def _written(self, entries: Sequence[Entry], started: float) -> None:
        self._counters.written += len(entries)
        if self.observers:
            seconds = perf_counter() - started
            written = self._public(entries)
            for observer in self.observers:
                try:
                    observer(written, seconds)
                except Exception as exc:
                    self._reporter.failure("write observer", f"{observer!r} raised {exc!r}")
        self._reporter.success("write")  # a write that works ends every burst of failures
        self._reporter.success("delivery")

    def _write_failed(self, entries: Sequence[Entry], exc: Exception) -> None:
        self._counters.write_errors += 1
        self._reporter.failure(
            "write", f"{type(self.backend).__name__} failed on {len(entries)} entries: {exc!r}"
        )

    async def _dead_letter(
        self, entries: Sequence[Entry], error: Exception, raise_if_lost: bool
    ) -> None:
        fallback = self._fallback if not self.closed else None
        if fallback is not None:
            try:
                if not self._fallback_opened:
                    await fallback.open()
                    self._fallback_opened = True
                await taking_entry_tuples(fallback, "write_batch")(entries)
            except Exception as fallback_error:
                detail = f"the fallback {type(fallback).__name__} failed too: {fallback_error!r}"
            else:
                self._counters.dead_lettered += len(entries)
                self.in_flight = ()
                self._reporter.failure(
                    "delivery",
                    f"{len(entries)} entries went to the fallback {type(fallback).__name__}",
                )
                return
        else:
            detail = "no fallback is configured" if not self.closed else "the manager is closed"
        self._counters.drop(len(entries))
        self.in_flight = ()
        self._reporter.failure("delivery", f"dropped {len(entries)} entries: {error!r}; {detail}")
        if raise_if_lost:
            raise BackendWriteError(f"log entry not written: {error}") from error

    async def redeliver_interrupted(self) -> None:
        """After a cancellation: deliver the batch that was in hand again. Its write may have
        completed before the cancellation arrived, so this is at least once, not exactly once."""
        entries, self.in_flight = self.in_flight, ()
        if entries:
            await self.deliver(entries)

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit: write what is left with the backend's `flush_at_exit`, if any."""
        if getattr(self.backend, "flush_at_exit", None) is None:
            self._counters.drop(len(entries))
            return
        try:
            taking_entry_tuples(self.backend, "flush_at_exit")(entries)
        except Exception as exc:
            self._counters.drop(len(entries))
            self._reporter.failure("exit flush", repr(exc))
        else:
            self._counters.written += len(entries)

    async def close_fallback(self) -> None:
        """Close the fallback if it was ever opened; it is not reopened afterwards."""
        self.closed = True
        if self._fallback is not None and self._fallback_opened:
            self._fallback_opened = False
            await self._fallback.close()


class Pipeline:
    """Async mode: a `FairQueue` in front of one worker task that drains it in batches.

    `lock` is the manager's delivery lock: whoever writes outside the worker (the leftovers
    after the worker is gone, direct writes then) holds it, so nothing is reordered.
    """

    def __init__(
        self,
        writer: Writer,
        queue: FairQueue[Entry],
        counters: Counters,
        reporter: BurstReporter,
        batch_size: int,
        lock: DeliveryLock,
        on_worker_gone: Callable[[BaseException | None], None],
    ) -> None:
        self.queue = queue
        self._writer = writer
        self._counters = counters
        self._reporter = reporter
        self._batch_size = batch_size
        self._lock = lock
        self._on_worker_gone = on_worker_gone
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._abandoning = False
        self.worker_failure: BaseException | None = None
        """What killed the worker, if a bug did before `stop()`."""

    @property
    def pending(self) -> int:
        """Entries queued, waiting for room, or in the worker's hands."""
        return len(self.queue) + self.queue.waiting_producers + len(self._writer.in_flight)

    def start(self) -> None:
        """Start the worker on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._work(), name="asynclog-worker")
        self._task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            self.worker_failure = failure
            self._reporter.failure("worker", f"stopped unexpectedly: {failure!r}")
            # Producers waiting for room would wait for ever: wake them with the reason.
            self.queue.close(LogError(f"the asynclog worker stopped unexpectedly: {failure!r}"))
        self._on_worker_gone(failure)

    async def _work(self) -> None:
        try:
            await self._drain()
        except asyncio.CancelledError:
            if self._abandoning:
                raise
            await self._drain_orphaned()

    async def _drain(self) -> None:
        queue, deliver, limit = self.queue, self._writer.deliver, self._batch_size
        while batch := await queue.get_batch(limit):
            await deliver(self._with_drop_report(batch))
        report = self._drop_report()
        if report is not None:
            await deliver([report])

    def _with_drop_report(self, batch: list[Entry]) -> list[Entry]:
        report = self._drop_report()
        if report is not None:
            batch.insert(0, report)
        return batch

    async def _drain_orphaned(self) -> None:
        """Cancelled from outside while the manager is open: `asyncio.run` tearing the loop
        down, or an application cancelling every task. The manager writes each new entry
        itself from now on; the worker writes what was already accepted first, under the
        delivery lock, within a bound (the interpreter-exit hook writes what is left)."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        self._on_worker_gone(None)
        try:
            async with asyncio.timeout(EXIT_FLUSH_SECONDS), self._lock.hold():
                await self.write_leftovers()
        except TimeoutError:
            self._reporter.failure("worker", "the queue could not be drained in time")

    async def write_leftovers(self) -> None:
        """Write the batch a cancelled worker had in hand, then everything still queued.
        The caller holds the delivery lock."""
        await self._writer.redeliver_interrupted()
        while batch := self.queue.take(self._batch_size):
            await self._writer.deliver(self._with_drop_report(batch))

    def _drop_report(self) -> Entry | None:
        """One WARNING entry saying how many entries were dropped since the last one."""
        drops = self._counters.take_drop_report()
        if drops is None:
            return None
        count, first, last = drops
        self._counters.accepted += 1
        message = f"asynclog dropped {count} entries between {iso_utc(first)} and {iso_utc(last)}"
        fields = {"dropped": count, "first_drop": first, "last_drop": last}
        return LogEntry(last, Level.WARNING, message, "asynclog", MappingProxyType(fields))

    async def stop(self, max_wait: float | None) -> int:
        """Refuse new entries, write every accepted one, and wait for the worker to end.

        With `max_wait`, entries still unwritten at the deadline are abandoned: counted dropped,
        and their number returned.
        """
        self._stopping = True
        self.queue.close()  # producers still waiting get ManagerClosedError (counted there)
        task = self._task
        if task is None:
            return 0
        loop = asyncio.get_running_loop()
        deadline = None if max_wait is None else loop.time() + max_wait
        done, _ = await asyncio.wait({task}, timeout=max_wait)
        if not done:  # the deadline passed: stop the worker where it is
            self._abandoning = True
            task.cancel()
            await asyncio.wait({task})
            return self._abandon()
        if not task.cancelled() and task.exception() is not None:  # a bug, already reported
            return self._abandon()
        # The worker drained the queue, or was cancelled from outside before it could.
        holding = False
        try:
            async with asyncio.timeout_at(deadline), self._lock.hold():
                holding = True
                await self.write_leftovers()
        except TimeoutError:
            # Waiting for the lock, in_flight is a direct writer's entry, for it to settle.
            return self._abandon(include_in_flight=holding)
        return 0

    def _abandon(self, include_in_flight: bool = True) -> int:
        abandoned = len(self.queue.clear())
        if include_in_flight:
            abandoned += len(self._writer.in_flight)
            self._writer.in_flight = ()
        self._counters.drop(abandoned)
        return abandoned

    def leftovers(self) -> list[Entry]:
        """At interpreter exit: the batch in the worker's hands and everything queued."""
        entries = [*self._writer.in_flight, *self.queue.clear()]
        self._writer.in_flight = ()
        return entries
