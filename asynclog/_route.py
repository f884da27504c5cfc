"""`Route`: one backend of a manager with everything that feeds it: its writer, its counters,
and in async mode its queue and worker. The manager fans each accepted entry out to its routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ._config import Config
from ._entry import Entry
from ._errors import LogError, ManagerClosedError
from ._lock import DeliveryLock
from ._pipeline import Pipeline, Writer
from ._queue import FairQueue
from ._report import BurstReporter
from ._sanitize import approximate_size
from ._stats import Counters
from .backends.base import WouldBlock


class HandedOver(Exception):
    """Wakes producers waiting for room when the worker is gone: they write directly."""


def _refuse(entry: Entry) -> bool:
    return False  # the fast path after the worker died: every entry takes the slow path


class Route:
    """One backend's path. `try_put` is the async fast path (None: write directly)."""

    def __init__(
        self,
        name: str,
        min_level: int,
        writer: Writer,
        counters: Counters,
        reporter: BurstReporter,
        config: Config,
        owner: str,
    ) -> None:
        self.name = name
        self.min_level = min_level
        self.writer = writer
        self.counters = counters
        self._reporter = reporter
        self._config = config
        self._owner = owner  # the manager's name, for error messages
        self.pipeline: Pipeline | None = None
        self.try_put: Callable[[Entry], bool] | None = None
        self.lock = DeliveryLock()  # serialises every write made outside the worker
        self.on_fast_path_change: Callable[[Callable[[Entry], bool] | None], None] | None = None
        """Told when `try_put` changes (the manager caches it for its hot path)."""

    def start(self) -> None:
        """Async mode: create the queue and start the worker on the running loop."""
        config = self._config
        queue: FairQueue[Entry] = FairQueue(
            config.queue_size,
            reserve=max(16, config.queue_size // 10),
            max_bytes=config.max_queue_bytes,
            size_of=approximate_size,
        )
        self.pipeline = Pipeline(
            self.writer,
            queue,
            self.counters,
            self._reporter,
            config.batch_size,
            self.lock,
            self._worker_gone,
        )
        self.pipeline.start()
        self.try_put = queue.try_put

    def _worker_gone(self, failure: BaseException | None) -> None:
        # A bug: every call takes the slow path, which raises. Cancelled from outside: entries
        # are written directly from now on, like sync mode (after the leftovers), and
        # producers waiting for room are handed over to that path.
        self.try_put = _refuse if failure is not None else None
        if self.on_fast_path_change is not None:
            self.on_fast_path_change(self.try_put)
        if failure is None and self.pipeline is not None:
            self.pipeline.queue.close(HandedOver())

    # ---- delivery --------------------------------------------------------------------------

    def offer(self, entry: Entry, queue_now: bool = True) -> bool:
        """Count `entry` for this route and queue it if that is quick (and `queue_now`);
        False: `deliver` it."""
        self.counters.accepted += 1
        try_put = self.try_put
        return queue_now and try_put is not None and try_put(entry)

    def deliver(self, entry: Entry, waited: float = 0.0) -> Coroutine[Any, Any, None]:
        """The slow path: write now (sync mode), or apply the overflow policy (queue full).
        `waited`: seconds the entry already waited before it got here (it counts against
        `put_timeout`). A plain method returning the coroutine: one frame less per call."""
        if self.try_put is None:
            return self._write_now(entry)
        return self._when_full(entry, waited)

    async def _when_full(self, entry: Entry, waited: float = 0.0) -> None:
        pipeline = self.pipeline
        assert pipeline is not None
        counters = self.counters
        if pipeline.worker_failure is not None:
            counters.drop(1)
            raise LogError(
                f"the asynclog worker stopped unexpectedly: {pipeline.worker_failure!r}"
            ) from pipeline.worker_failure
        queue = pipeline.queue
        config = self._config
        if entry[1] >= config.priority_min:
            if not queue.try_put_reserved(entry):
                await self._wait_in_line(queue, entry, None)  # never dropped for lack of room
            return
        overflow = config.overflow
        if overflow == "drop_newest":
            counters.drop(1)
        elif overflow == "drop_oldest":
            evicted, appended = queue.replace_oldest(entry, self._evictable)
            counters.drop(evicted + (0 if appended else 1))
        else:
            wait = max(0.0, config.put_timeout - waited) if overflow == "timeout" else None
            await self._wait_in_line(queue, entry, wait)

    def _evictable(self, entry: Entry) -> bool:
        return entry[1] < self._config.priority_min

    async def _wait_in_line(
        self, queue: FairQueue[Entry], entry: Entry, max_wait: float | None
    ) -> None:
        rejected = False

        def on_rejected() -> None:
            nonlocal rejected
            rejected = True

        try:
            await queue.put(entry, max_wait, on_rejected)
        except HandedOver:
            await self._write_now(entry)  # the worker is gone: write it directly
        except BaseException:
            if rejected:  # accepted at the call, never queued
                self.counters.drop(1)
            raise

    async def _write_now(self, entry: Entry) -> None:
        writer = self.writer
        entries = (entry,)
        if writer.immediate and not self.lock.users:
            try:
                error = writer.deliver_immediately(entries)  # nothing awaited: nobody to overtake
            except WouldBlock:
                pass  # the awaited way below
            else:
                if error is not None:
                    await self._serialised(
                        entries, lambda: writer.recover(entries, error, raise_if_lost=True)
                    )
                return
        await self._serialised(entries, lambda: writer.deliver(entries, raise_if_lost=True))

    async def _serialised(
        self, entries: tuple[Entry], write: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `write` under the delivery lock, in call order, after any leftovers of a worker
        that is gone. A caller cancelled before its entry was settled counts it dropped."""
        lock = self.lock
        if lock.held_by_current_task():
            await write()  # a handler of the write in progress logs again: no waiting on itself
            return
        writer = self.writer
        started = False
        try:
            async with lock.hold():
                if writer.closed:  # close() finished while this call waited
                    self.counters.drop(len(entries))
                    raise ManagerClosedError(f"LogManager {self._owner!r} closed before the write")
                if self.pipeline is not None:
                    await self.pipeline.write_leftovers()
                started = True
                await write()
        except asyncio.CancelledError:
            if not started or writer.in_flight is entries:
                if writer.in_flight is entries:
                    writer.in_flight = ()
                self.counters.drop(len(entries))
            raise

    # ---- closing ---------------------------------------------------------------------------

    async def drain(self, timeout: float | None, deadline: float | None) -> int:  # noqa: ASYNC109
        """Write everything accepted (async: stop the worker); return how many were abandoned."""
        if self.pipeline is not None:
            return await self.pipeline.stop(timeout)
        try:
            async with asyncio.timeout_at(deadline), self.lock.hold():
                pass
        except TimeoutError:
            self._reporter.failure("close", "a sync write was still under way at the deadline")
        return 0

    def leftovers(self) -> list[Entry]:
        """At interpreter exit: what the worker had in hand and everything queued."""
        return self.pipeline.leftovers() if self.pipeline is not None else []

    @property
    def pending(self) -> int:
        """Entries accepted by this route and not yet settled."""
        if self.pipeline is not None:
            return self.pipeline.pending
        return len(self.writer.in_flight)

    @property
    def queued(self) -> int:
        """Entries waiting in the queue (0 in sync mode)."""
        return len(self.pipeline.queue) if self.pipeline is not None else 0
