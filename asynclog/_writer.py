"""`Writer`: what happens to a batch once it leaves the queue (or the caller, in sync mode):
handlers, one backend write, retries with capped backoff, the fallback, and the counting of
`written`, `dead_lettered`, `write_errors` and `retries`.

Override points, in order: `write` (the whole job) -> `handlers.dispatch` -> `_attempt`
(one backend call) -> `recover` (retries) -> `_dead_letter` (fallback, else dropped).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any, cast

from . import _runtime
from ._entry import Entry, LogEntries, LogEntry
from ._errors import BackendWriteError, LogError
from ._handlers import HandlerSet
from ._report import BurstReporter
from ._stats import Counters
from .backends.base import (
    Backend,
    WouldBlock,
    WriteContinues,
    blocking_write,
    takes_entry_tuples,
    taking_entry_tuples,
)

MAX_RETRY_DELAY = 30.0
"""Seconds: the longest wait between two retries of a batch, whatever `retry_backoff` and
`retry_attempts` ask for."""

WriteObserver = Callable[[Sequence[LogEntry], float], None]
Ended = Callable[[], bool | None]
"""A detached batch's outcome read without the loop (`WriteContinues.ended`)."""


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
        self.counters = counters
        self._reporter = reporter
        self._write_now = blocking_write(backend) if blocking else None
        self._write_now_takes_tuples = takes_entry_tuples(backend, "write_batch_blocking")
        self._batch_takes_tuples = takes_entry_tuples(backend, "write_batch")
        self._fallback = fallback
        # Shared with the lanes: the fallback opens once and takes one batch at a time.
        self._fallback_lock: list[Any] = [None]  # made on first use, for the running loop
        self._fallback_opened = [False]
        self._retry_attempts = retry_attempts
        self._retry_backoff = retry_backoff
        self.backend_closed = False
        """Set when the manager closes the backend: a late write is dropped, not reopened."""
        self.observers: list[WriteObserver] = []
        """Called with `(entries, seconds)` after each successful backend write (metrics)."""
        self.detached = 0
        """Entries of batches whose caller was cancelled while a thread still writes them."""
        # The detached batches, by their outcome: (entries, when their write began, `ended`).
        self._outcomes: dict[asyncio.Future[bool], tuple[Sequence[Entry], float, Ended | None]]
        self._outcomes = {}
        self.in_flight: Sequence[Entry] = ()
        """The batch being handled, written or retried (abandoned if the worker is cancelled)."""
        self._converted: tuple[Sequence[Entry], Sequence[LogEntry]] = ((), ())

    def lane(self) -> Writer:
        """A writer for one more batch in flight at once (a backend's `concurrency`): the same
        backend, handlers, counters, observers and fallback, its own batch in hand."""
        lane = copy.copy(self)
        lane.detached = 0
        lane._outcomes = {}
        lane.in_flight = ()
        lane._converted = ((), ())
        return lane

    def _public(self, entries: Sequence[Entry]) -> Sequence[LogEntry]:
        """The batch as `LogEntry` objects, converted once, when first read: handlers, the
        backend and the observers get the same object, and so does every retry of the batch (a
        backend may recognise a retried batch by identity)."""
        source, converted = self._converted
        if source is not entries:
            converted = LogEntries(entries)
            self._converted = (entries, converted)
        return converted

    def _for_backend(self, entries: Sequence[Entry]) -> Sequence[LogEntry]:
        """The batch as the backend's `write_batch` takes it."""
        if self._batch_takes_tuples:
            return cast(Sequence[LogEntry], entries)
        return self._public(entries)

    @property
    def immediate(self) -> bool:
        """True when `write_immediately` may be used: a blocking backend and no handlers."""
        return self._write_now is not None and not len(self.handlers)

    async def write(self, entries: Sequence[Entry], *, raise_if_lost: bool = False) -> None:
        """Handle and write `entries`, with retries and the fallback; every entry is counted
        written, dead-lettered or dropped. Raises `BackendWriteError` if lost and asked to."""
        # If this is interrupted (cancelled, or a bug), in_flight stays set and whoever
        # stopped it settles the batch: writes it again, abandons or drops it. A handler of this
        # batch may log again (a nested write): what was in flight is restored after it.
        outer = self.in_flight
        self.in_flight = entries
        if len(self.handlers):
            await self.handlers.dispatch(self._public(entries))
        error = await self._attempt(entries)
        if error is not None:
            try:
                await self.recover(entries, error, raise_if_lost=raise_if_lost)
            except BackendWriteError:
                self.in_flight = outer  # settled (dropped) here: the outer batch goes on
                raise
        self.in_flight = outer

    def write_immediately(self, entries: Sequence[Entry]) -> Exception | None:
        """Sync mode without handlers: write now; return the error for `recover` if it failed.
        Raises `WouldBlock` (nothing written, nothing counted) when the backend cannot write
        without waiting: then `write` it."""
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
            delay = min(MAX_RETRY_DELAY, self._retry_backoff * 2.0 ** min(attempt, 64))
            await (_runtime.sleep(delay) if _runtime.on_trio() else asyncio.sleep(delay))
            self.counters.retries += 1
            retry_error = await self._attempt(entries)
            if retry_error is None:
                self.in_flight = ()
                return
            error = retry_error
        await self._dead_letter(entries, error, raise_if_lost)  # settles and clears in_flight

    async def _attempt(self, entries: Sequence[Entry]) -> Exception | None:
        if self._write_now is not None:
            try:
                return self.write_immediately(entries)
            except WouldBlock:
                pass  # the backend has to wait (a lock): await its write_batch
        started = perf_counter() if self.observers else 0.0
        try:
            await self.backend.write_batch(self._for_backend(entries))
        except WriteContinues as going_on:  # cancelled; a thread finishes the batch
            self._settle_later(entries, going_on, started)
            raise
        except _runtime.CANCELLED as exc:
            if _runtime.really_cancelled(exc):
                raise  # this task really is being cancelled
            # A future the backend's own client cancelled: a failed write, not a cancellation.
            failure = LogError(f"the backend's write was cancelled from inside: {exc!r}")
            self._write_failed(entries, failure)
            return failure
        except Exception as exc:
            self._write_failed(entries, exc)
            return exc
        self._written(entries, started)
        return None

    def _settle_later(
        self, entries: Sequence[Entry], going_on: WriteContinues, started: float
    ) -> None:
        """The caller was cancelled, the batch goes on being written elsewhere: pending until
        its outcome says written (True) or lost (False)."""
        self.in_flight = ()
        self.detached += len(entries)
        self._outcomes[going_on.outcome] = (entries, started, going_on.ended)

        def settled(future: asyncio.Future[bool]) -> None:
            written = not future.cancelled() and future.exception() is None and future.result()
            self._settle(future, written)

        going_on.outcome.add_done_callback(settled)

    def _settle(self, outcome: asyncio.Future[bool], written: bool) -> None:
        detached = self._outcomes.pop(outcome, None)
        if detached is None:
            return  # counted already: abandoned at a close deadline, or settled by settle_ended
        entries, started, _ = detached
        self.detached -= len(entries)
        if written:
            self._written(entries, started)
        else:
            self.counters.drop(len(entries))

    def settle_ended(self) -> None:
        """Count the detached batches whose loop has closed (their outcome can no longer
        resolve) and whose thread has ended, by what their `ended` says. While the loop
        lives, only the outcome counts them."""
        for outcome, (_, _, ended) in list(self._outcomes.items()):
            if ended is None or not outcome.get_loop().is_closed():
                continue
            written = ended()
            if written is not None:
                self._settle(outcome, written)

    async def wait_detached(self) -> None:
        """Until the batches a thread still writes are settled (their outcomes counted): the
        backend must not be closed under them."""
        while self._outcomes:
            await _runtime.wait(self._outcomes)  # `settled` (added first) has run when it returns

    def let_go_of_detached(self) -> int:
        """At a close deadline: the entries a thread still writes are the caller's to count as
        abandoned (the report must be final); whatever the thread does later counts nothing."""
        detached, self.detached = self.detached, 0
        self._outcomes.clear()
        return detached

    def _written(self, entries: Sequence[Entry], started: float) -> None:
        self.counters.written += len(entries)
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
        self.counters.write_errors += 1
        self._reporter.failure(
            "write", f"{type(self.backend).__name__} failed on {len(entries)} entries: {exc!r}"
        )

    async def _dead_letter(
        self, entries: Sequence[Entry], error: Exception, raise_if_lost: bool
    ) -> None:
        fallback = self._fallback if not self.backend_closed else None
        if fallback is not None:
            try:
                if self._fallback_lock[0] is None:
                    self._fallback_lock[0] = _runtime.Lock()
                async with self._fallback_lock[0]:
                    if not self._fallback_opened[0]:
                        await fallback.open()
                        self._fallback_opened[0] = True
                    await taking_entry_tuples(fallback, "write_batch")(entries)
            except BaseException as fallback_error:
                if not isinstance(fallback_error, Exception) and (
                    not isinstance(fallback_error, _runtime.CANCELLED)
                    or _runtime.really_cancelled(fallback_error)
                ):
                    raise
                detail = f"the fallback {type(fallback).__name__} failed too: {fallback_error!r}"
            else:
                self.counters.dead_lettered += len(entries)
                self.in_flight = ()
                self._reporter.failure(
                    "delivery",
                    f"{len(entries)} entries went to the fallback {type(fallback).__name__}",
                )
                return
        else:
            detail = "the manager is closed" if self.backend_closed else "no fallback is configured"
        self.counters.drop(len(entries))
        self.in_flight = ()
        self._reporter.failure("delivery", f"dropped {len(entries)} entries: {error!r}; {detail}")
        if raise_if_lost:
            raise BackendWriteError(f"log entry not written: {error}") from error

    async def rewrite_interrupted(self) -> None:
        """After a cancellation: write the batch that was in hand again. Its write may have
        completed before the cancellation arrived, so this is at least once, not exactly once."""
        entries, self.in_flight = self.in_flight, ()
        if entries:
            await self.write(entries)

    def write_at_exit(self, entries: Sequence[Entry]) -> None:
        """No running loop (interpreter exit, a closed loop): write `entries` with the backend's
        `flush_at_exit` hook, if it has one; else they are dropped."""
        if getattr(self.backend, "flush_at_exit", None) is None:
            self.counters.drop(len(entries))
            return
        try:
            taking_entry_tuples(self.backend, "flush_at_exit")(entries)
        except Exception as exc:
            self.counters.drop(len(entries))
            self._reporter.failure("exit flush", repr(exc))
        else:
            self._written(entries, perf_counter())

    async def close_fallback(self) -> None:
        """Close the fallback if it was ever opened; it is not reopened afterwards."""
        self.backend_closed = True
        if self._fallback is not None and self._fallback_opened[0]:
            self._fallback_opened[0] = False
            await self._fallback.close()
