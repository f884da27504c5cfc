"""`SinkRunner`: one backend of a manager and everything that feeds it: its `Writer`, its
counters, and in async mode its `FairQueue` and the worker task that drains it.

An entry reaches a sink in one of two ways:

- `accept(entry)`: counted, and queued if that is quick (async mode with room). True: done.
- `settle(entry, waited)`: the awaited way for an accepted entry that was not queued: a direct
  write (sync mode, or the worker is gone) or the overflow policy (a full queue).

Writes made outside the worker (sync mode, leftovers, after the worker is gone) hold the
sink's delivery lock, so nothing is reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from . import _overflow, _runtime
from ._config import Config
from ._entry import LEVEL, Entry, LogEntry
from ._errors import LogError, ManagerClosedError, QueueFullError
from ._levels import Level
from ._overflow import HandedOver, NotTaken, resumable
from ._processing import Chain
from ._queue import FairQueue
from ._registry import EXIT_FLUSH_SECONDS
from ._report import BurstReporter
from ._sanitize import approximate_size
from ._stats import Counters
from ._writer import Writer
from .backends.base import WouldBlock, concurrency_of
from .formatters import iso_utc

CLOSE_GRACE_SECONDS = 0.5
"""With `close(timeout=...)`, a write under way (or closing a backend) may take this long even
past the deadline."""


INSIDE: ContextVar[object] = ContextVar("asynclog_inside", default=None)
"""A token of the write in progress that the running code is part of: set for each batch of a
worker, each entry of the backlog's settler and each hold of a delivery lock, and compared
with the token of the write under way now. Tasks started there inherit it (`wait_for`,
`gather`), so `close()` from a handler wrapped in them is inside; a task that outlives that
write is not."""


class DeliveryLock:
    """An `asyncio.Lock` that remembers which task holds it and counts who wants it.

    The holder may be running a handler that logs again; that nested call must not wait for
    the lock it already holds (`held_by_current_task`).
    """

    def __init__(self) -> None:
        self._lock: Any = None  # made on first use, for the running loop (asyncio or trio)
        self._holder: asyncio.Task[object] | None = None
        self.token: object = None
        """The `INSIDE` token of the current hold (None when free)."""
        self.users = 0
        """Tasks holding or waiting for the lock."""

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Acquire in arrival order; release on exit."""
        self.users += 1
        try:
            if self._lock is None:
                self._lock = _runtime.Lock()
            async with self._lock:
                self._holder = _runtime.current_task()
                self.token = object()
                inside = INSIDE.set(self.token)
                try:
                    yield
                finally:
                    INSIDE.reset(inside)
                    self._holder = self.token = None
        finally:
            self.users -= 1

    def held_by_current_task(self) -> bool:
        """True inside `hold()` of the calling task (for example, in a handler it runs)."""
        holder = self._holder
        return holder is not None and holder is _runtime.current_task()


Pending = tuple[Entry, tuple["SinkRunner", ...]]
"""An accepted entry and the sinks that still have to take it (the awaited part)."""


def never_queued(entry: Entry) -> bool:
    """The quick way in where there is none (sync mode, or several sinks): always False."""
    return False


class SinkRunner:
    """One backend's path: `accept` (the quick part), `settle` (the awaited part), the worker
    (async mode), `stop` and `leftovers`."""

    def __init__(
        self,
        name: str,
        min_level: int,
        writer: Writer,
        reporter: BurstReporter,
        config: Config,
        owner: str,
        own_level: int | None = None,
    ) -> None:
        self.name = name
        self.min_level = min_level
        """Below this level the sink takes nothing: its own level, not below the lowest
        level any logger name has (an entry of a name below that is discarded at the call)."""
        self.own_level = own_level
        self.writer = writer
        self.counters: Counters = writer.counters
        self._reporter = reporter
        self._config = config
        self._owner = owner  # the manager's name, for error messages
        self.queue: FairQueue[Entry] | None = None
        """Async mode only (set by `start`); None means sync mode."""
        self.put: Callable[[Entry], bool] = never_queued
        """The queue's `try_put` once started in async mode: True when the entry was queued."""
        self.lock = DeliveryLock()
        self._batch_token: object = None  # the INSIDE token of the worker's batch in hand
        self.lanes: list[Writer] = []
        """Async mode, a backend with `concurrency` N > 1: N - 1 more writers, each with a batch
        in flight beside the main writer's (`_drain_in_lanes`)."""
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._lane_tokens: set[object] = set()  # the INSIDE tokens of the lanes' batches
        self.chain: Chain | None = None
        """This sink's own processors (`Sink(processors=...)`), run at the call; None: none."""
        self.owed = 0
        """Accepted entries this sink still has to take, held elsewhere: a call between
        `accept` and its turn in `Intake.settle`, or the handoff's backlog (pending too)."""
        # Direct writes waiting for the lock, by id of their batch: pending until they get it.
        self._waiting_writes: dict[int, tuple[Entry, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._current_task: Callable[[], Any] = _runtime.current_task  # start(): the loop's
        self._stopping = False
        self._abandoning = False
        self.worker_gone = False
        """The worker was cancelled from outside: entries are written directly from now on."""
        self.worker_failure: BaseException | None = None
        """What killed the worker, if a bug did before `stop()`."""

    def follow_levels(self, lowest: int) -> None:
        """The lowest level of any logger name is now `lowest` (`set_level`)."""
        own = self.own_level
        self.min_level = lowest if own is None else max(own, lowest)

    def start(self) -> None:
        """Async mode: create the queue and start the worker on the running loop."""
        config = self._config
        loop = _runtime.current_loop()
        self.queue = FairQueue(
            config.queue_size,
            reserve=max(16, config.queue_size // 10),
            max_bytes=config.max_queue_bytes,
            size_of=approximate_size,
            loop=loop,
        )
        self.put = self.queue.try_put
        self.lanes = [self.writer.lane() for _ in range(concurrency_of(self.writer.backend) - 1)]
        self._current_task = _runtime.task_getter(loop)
        self._task = loop.create_task(self._work(), name="asynclog-worker")
        self._task.add_done_callback(self._worker_done)

    # ---- the way in ------------------------------------------------------------------------

    def accept(self, entry: Entry, queue_now: bool = True) -> bool:
        """Count `entry` accepted; queue it if that is quick (and `queue_now`). True: queued.
        (The level shortcuts of `LogManager` inline this for the one-sink case.)"""
        self.counters.accepted += 1
        return queue_now and self.put(entry)

    def settle(self, entry: Entry, waited: float = 0.0) -> Coroutine[Any, Any, bool]:
        """The awaited part for an accepted entry that `accept` did not queue: write it now
        (sync mode, or the worker is gone) or apply the overflow policy (a full queue).
        `waited`: seconds it already waited elsewhere (it counts against `put_timeout`).
        True: written (or dead-lettered) or queued; False: dropped by the policy. Raises
        `QueueFullError` naming this backend, `BackendWriteError`, `ManagerClosedError`."""
        queue = self.queue
        if queue is None or self.worker_gone:
            return self._write_now(entry)
        return self._when_full(queue, entry, waited)

    def settle_now(self, entry: Entry) -> bool | None:
        """`settle` without waiting, for a `nowait` call on the loop's thread: True when the
        entry is queued or written (or its write goes on in a task after a failure), False
        when it is dropped (counted), None when it cannot be done without waiting (the
        caller hands it to the backlog). A full queue drops it, as `drop_newest` (or evicts
        as `drop_oldest`, which never waits either); a priority entry takes the reserve."""
        queue = self.queue
        if queue is None or self.worker_gone:
            return self._write_without_waiting(entry)
        if self.worker_failure is not None:
            self.counters.drop(1)
            return False
        config = self._config
        if entry[LEVEL] >= config.priority_min:
            return True if queue.try_put_reserved(entry) else None
        if config.overflow == "drop_oldest":
            priority_min = config.priority_min
            evicted, appended = queue.replace_oldest(
                entry, lambda queued: queued[LEVEL] < priority_min
            )
            self.counters.drop(evicted + (0 if appended else 1))
            return appended
        self.counters.drop(1)
        return False

    def _write_without_waiting(self, entry: Entry) -> bool | None:
        """A direct write that needs no awaiting: a blocking backend, no handlers, nobody
        holding or waiting for the delivery lock, no drop report to write first. None when
        that is not the case, or when the backend declined (`WouldBlock`) or failed (the
        awaited way retries it, with the backoff)."""
        writer = self.writer
        if (
            not writer.immediate
            or self.lock.users
            or writer.backend_closed
            or self.counters.unreported_drops
        ):
            return None
        try:
            error = writer.write_immediately((entry,))
        except WouldBlock:
            return None
        return True if error is None else None

    async def _when_full(self, queue: FairQueue[Entry], entry: Entry, waited: float) -> bool:
        if self._in_worker() and queue.put_past_bound(entry):
            return True  # a handler in this very worker logs: waiting would wait for itself
        if self.worker_failure is not None:
            self.counters.drop(1)
            raise LogError(
                f"the asynclog worker stopped unexpectedly: {self.worker_failure!r}"
            ) from self.worker_failure
        try:
            return await _overflow.admit(queue, entry, self.counters, self._config, waited)
        except HandedOver:
            return await self._write_now(entry)  # the worker went away while this waited
        except QueueFullError as full:
            raise QueueFullError(f"{full} (backend {self.name!r})") from None

    async def _write_now(self, entry: Entry) -> bool:
        writer = self.writer
        entries: tuple[Entry, ...] = (entry,)
        if self.counters.unreported_drops:  # drops since the last write: said in the log first
            report = self._drop_report()
            if report is not None:
                entries = (report, entry)
        if writer.immediate and not self.lock.users and not writer.backend_closed:
            try:
                error = writer.write_immediately(entries)  # nothing awaited: nobody to overtake
            except WouldBlock:
                pass  # the awaited way below
            else:
                if error is not None:
                    await self._serialised(
                        entries, lambda: writer.recover(entries, error, raise_if_lost=True)
                    )
                return True
        await self._serialised(entries, lambda: writer.write(entries, raise_if_lost=True))
        return True

    async def _serialised(
        self, entries: tuple[Entry, ...], write: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `write` under the delivery lock, in call order, after any leftovers of a worker
        that is gone. A caller cancelled before its entry was settled counts it dropped."""
        lock = self.lock
        if lock.held_by_current_task():
            await write()  # a handler of the write in progress logs again: no waiting on itself
            return
        writer = self.writer
        acquired = started = False
        waiting = self._waiting_writes
        waiting[id(entries)] = entries  # pending while it waits for the lock
        try:
            async with lock.hold():
                if waiting.pop(id(entries), None) is None:  # abandoned by close(timeout=...)
                    raise ManagerClosedError(f"LogManager {self._owner!r} closed before the write")
                acquired = True
                if writer.backend_closed:  # close() finished while this call waited
                    self.counters.drop(len(entries))
                    raise ManagerClosedError(f"LogManager {self._owner!r} closed before the write")
                if self.queue is not None:
                    await self.write_leftovers()
                started = True
                await write()
        except _runtime.CANCELLED as exc:
            still_waiting = waiting.pop(id(entries), None) is not None
            if resumable():
                if still_waiting:
                    self.counters.drop(len(entries) - 1)  # a drop report it carried: said again
                    raise NotTaken() from exc
                if writer.in_flight is entries:
                    raise  # the write under way stays in flight: the exit write takes it
            if still_waiting or (acquired and not started) or writer.in_flight is entries:
                if writer.in_flight is entries:
                    writer.in_flight = ()
                self.counters.drop(len(entries))
            raise

    # ---- the worker (async mode) -----------------------------------------------------------

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        assert self.queue is not None
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            self.worker_failure = failure
            self._reporter.failure("worker", f"stopped unexpectedly: {failure!r}")
            # Producers waiting for room would wait for ever: wake them with the reason.
            self.queue.close(LogError(f"the asynclog worker stopped unexpectedly: {failure!r}"))
        else:  # cancelled before it could run _drain_orphaned: direct writes from now on
            self._hand_over()

    def _hand_over(self) -> None:
        """The worker is gone: new entries and producers waiting for room write directly
        (each after the leftovers, under the delivery lock)."""
        self.worker_gone = True
        assert self.queue is not None
        self.queue.close(HandedOver())

    async def _work(self) -> None:
        try:
            await self._drain_queue()
        except _runtime.CANCELLED:
            if self._abandoning:
                raise
            await self._drain_orphaned()

    def _in_worker(self) -> bool:
        task = self._current_task()
        return task is not None and (task is self._task or task in self._lane_tasks)

    def _writers(self) -> list[Writer]:
        return [self.writer, *self.lanes]

    async def _drain_queue(self) -> None:
        if self.lanes:
            await self._drain_in_lanes()
            return
        queue, write, limit = self.queue, self.writer.write, self._config.batch_size
        assert queue is not None
        while batch := await queue.get_batch(limit):
            self._batch_token = token = object()
            INSIDE.set(token)  # tasks a handler starts for this batch are inside it
            await write(self._with_drop_report(batch))
            self._batch_token = None
        report = self._drop_report()
        if report is not None:
            await write([report])

    async def _drain_in_lanes(self) -> None:
        """Up to `1 + len(lanes)` batches in flight, each written (handlers, retries, fallback,
        counts) by a writer of its own in a task of its own; a batch is taken as soon as a
        writer is free, so batches may complete out of order."""
        queue, limit = self.queue, self._config.batch_size
        assert queue is not None
        idle = self._writers()
        idle.reverse()  # the main writer first
        running = self._lane_tasks
        loop = _runtime.current_loop()
        try:
            while True:
                while not idle:
                    done, _ = await _runtime.wait(running, first=True)
                    self._finished_lanes(done)
                batch = await queue.get_batch(limit)
                if not batch:
                    break
                writer = idle.pop()
                task = loop.create_task(
                    self._write_in_lane(writer, self._with_drop_report(batch), idle),
                    name="asynclog-lane",
                )
                running.add(task)
            while running:
                done, _ = await _runtime.wait(running)
                self._finished_lanes(done)
        except BaseException:
            for task in running:
                task.cancel()  # their batches stay in their writers' hands: see write_leftovers
            if running:
                with _runtime.shielded():
                    await _runtime.wait(running)
            # The tasks stay referenced until their batches are written again: a backend
            # keeps what a retry needs (a batch id) by the task that wrote it.
            raise
        report = self._drop_report()
        if report is not None:
            await self.writer.write([report])

    def _finished_lanes(self, done: set[asyncio.Future[Any]]) -> None:
        """A lane cancelled from outside stops the worker, as a cancelled worker would; a bug
        in one is the worker's."""
        for task in done:
            if task.cancelled():
                raise asyncio.CancelledError()
            failure = task.exception()
            if failure is not None:
                raise failure
            self._lane_tasks.discard(task)

    async def _write_in_lane(self, writer: Writer, batch: list[Entry], idle: list[Writer]) -> None:
        token = object()
        INSIDE.set(token)  # tasks a handler starts for this batch are inside it
        self._lane_tokens.add(token)
        try:
            await writer.write(batch)
        finally:
            self._lane_tokens.discard(token)
        idle.append(writer)  # not after a cancellation: its batch is still in its hands

    def _with_drop_report(self, batch: list[Entry]) -> list[Entry]:
        report = self._drop_report()
        if report is not None:
            batch.insert(0, report)
        return batch

    async def _drain_orphaned(self) -> None:
        """Cancelled from outside while the manager is open: `asyncio.run` tearing the loop
        down, or an application cancelling every task. Each new entry is written directly
        from now on (producers waiting for room too); the worker writes what was already
        accepted first, under the delivery lock, within a bound (the interpreter-exit hook
        writes what is left)."""
        task = _runtime.current_task()
        if task is not None:
            task.uncancel()
        self._hand_over()
        try:
            async with _runtime.timeout(EXIT_FLUSH_SECONDS, shield=True), self.lock.hold():
                await self.write_leftovers()
        except TimeoutError:
            self._reporter.failure("worker", "the queue could not be drained in time")

    async def write_leftovers(self) -> None:
        """Write the batch a cancelled worker had in hand, then everything still queued.
        The caller holds the delivery lock."""
        for writer in self._writers():
            await writer.rewrite_interrupted()
        self._lane_tasks.clear()
        assert self.queue is not None
        while batch := self.queue.take(self._config.batch_size):
            await self.writer.write(self._with_drop_report(batch))

    def _drop_report(self) -> Entry | None:
        """One WARNING entry saying how many entries were dropped since the last one."""
        drops = self.counters.take_drop_report()
        if drops is None:
            return None
        count, first, last = drops
        self._reporter.success(f"delivery to {self.name!r}")
        message = f"asynclog dropped {count} entries between {iso_utc(first)} and {iso_utc(last)}"
        fields = {"dropped": count, "first_drop": first, "last_drop": last}
        report = LogEntry(last, Level.WARNING, message, "asynclog", MappingProxyType(fields))
        self.accept(report, queue_now=False)
        return report

    # ---- closing ---------------------------------------------------------------------------

    async def stop(self, deadline: float | None) -> int:
        """Write everything accepted and stop the worker; return how many were abandoned at
        `deadline` (loop time; None: no limit). Producers still waiting for room are refused
        with `ManagerClosedError` (counted dropped where they wait)."""
        loop = _runtime.current_loop()
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        task = self._task
        if self.queue is None or task is None:  # sync mode: let the writes under way finish
            try:
                async with _runtime.timeout_at(deadline), self.lock.hold():
                    pass
            except TimeoutError:
                return await self._abandon_waiting_writes()
            return 0
        self._stopping = True
        self.queue.close()
        done, _ = await _runtime.wait({task}, timeout=remaining)
        if not done:  # the deadline passed: stop the worker where it is
            self._abandoning = True
            task.cancel()
            await _runtime.wait({task})
            return self._abandon()
        if not task.cancelled() and task.exception() is not None:  # a bug, already reported
            return self._abandon()
        # The worker drained the queue, or was cancelled from outside before it could.
        holding = False
        try:
            async with _runtime.timeout_at(deadline), self.lock.hold():
                holding = True
                await self.write_leftovers()
        except TimeoutError:
            # Waiting for the lock, in_flight is a direct writer's entry, for it to settle.
            return self._abandon(include_in_flight=holding)
        try:  # batches a cancelled worker left to a thread (WriteContinues)
            async with _runtime.timeout_at(deadline):
                for writer in self._writers():
                    await writer.wait_detached()
        except TimeoutError:
            return self._abandon()
        return 0

    async def _abandon_waiting_writes(self) -> int:
        """Sync mode at the close deadline: the direct writes still waiting for the lock are
        abandoned now (counted here, so the close report is final); the one under way gets
        a short grace to finish."""
        abandoned = sum(map(len, self._waiting_writes.values()))
        self._waiting_writes.clear()
        self.counters.drop(abandoned)
        try:
            async with _runtime.timeout(CLOSE_GRACE_SECONDS), self.lock.hold():
                pass
        except TimeoutError:
            self._reporter.failure("close", "a sync write was still under way at the deadline")
        return abandoned

    def _abandon(self, include_in_flight: bool = True) -> int:
        assert self.queue is not None
        abandoned = len(self.queue.clear())
        for writer in self._writers():
            abandoned += writer.let_go_of_detached()  # a thread's batch: counted here, once
            if include_in_flight:
                abandoned += len(writer.in_flight)
                writer.in_flight = ()
        self.counters.drop(abandoned)
        return abandoned

    def leftovers(self) -> list[Entry]:
        """No running loop: the batch in the worker's hands and everything queued, emptied."""
        entries: list[Entry] = []
        for writer in self._writers():
            entries.extend(writer.in_flight)
            writer.in_flight = ()
        for waiting in self._waiting_writes.values():  # direct writes waiting for the lock
            entries.extend(waiting)
        self._waiting_writes.clear()
        if self.queue is not None:
            entries.extend(self.queue.clear())
            entries.extend(self.queue.take_waiting())  # accepted too: they only lacked room
        return entries

    def runs_here(self) -> bool:
        """True in this sink's worker, or in a task holding its delivery lock (a handler or
        the backend of a write in progress)."""
        task = self._task
        token = INSIDE.get()
        return (
            (token is not None and (token is self._batch_token or token is self.lock.token))
            or (token is not None and token in self._lane_tokens)
            or (task is not None and _runtime.current_task() is task)
            or self._in_worker()
            or self.lock.held_by_current_task()
        )

    def settle_ended(self) -> None:
        """Count the batches threads finished after the loop closed (`Writer.settle_ended`)."""
        for writer in self._writers():
            writer.settle_ended()

    def forget_queued(self) -> None:
        """In a child process after `fork()`: what is queued is the parent's to write."""
        for writer in self._writers():
            writer.in_flight = ()
            writer.let_go_of_detached()  # the parent's thread writes those, not the child's
        self._waiting_writes.clear()
        if self.queue is not None:
            self.queue.clear()
            self.queue.take_waiting()

    # ---- figures ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Entries accepted here and not yet settled: queued, waiting for room, being written."""
        queue = self.queue
        writer = self.writer
        in_flight = (
            len(writer.in_flight)
            + writer.detached
            + sum(map(len, self._waiting_writes.values()))
        )
        for lane in self.lanes:
            in_flight += len(lane.in_flight) + lane.detached
        if queue is None:
            return in_flight
        return len(queue) + queue.waiting_producers + in_flight

    @property
    def queued(self) -> int:
        """Entries waiting in the queue (0 in sync mode)."""
        return len(self.queue) if self.queue is not None else 0
