"""A bounded queue for many producers and one consumer, fair to blocked producers.

Producers that find the queue full wait in line; when the consumer takes a batch it moves the
waiting items in, first come first served, before anyone else can use the room. A newcomer
never overtakes a waiter through the fast path, which `asyncio.Queue` does not promise.

The queue is bounded by a count and, optionally, by the approximate bytes of its items. A small
reserve above the count admits priority items when the queue is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from . import _runtime
from ._errors import ManagerClosedError, QueueFullError

T = TypeVar("T")

_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


_Waiter = tuple[asyncio.Future[None], T, float | None, float]
"""A producer waiting for room: (future, item, max_wait, deadline in loop time, inf without
max_wait). A plain tuple, not an object: CPython recycles tuples, and every object allocated
here would bring the next garbage collection nearer (see `_entry.Entry`)."""


def _reject(on_rejected: Callable[[], None] | None) -> None:
    if on_rejected is not None:
        on_rejected()


def _admitted(future: asyncio.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


class FairQueue(Generic[T]):
    """Bounded FIFO: `try_put` (no waiting), `put` (waits in line), `get_batch` (one consumer)."""

    __slots__ = (
        "_bytes",
        "_capacity",
        "_closed",
        "_getter",
        "_items",
        "_loop",
        "_max_bytes",
        "_reserve",
        "_size_of",
        "_timer",
        "_timer_at",
        "_waiters",
    )

    def __init__(
        self,
        capacity: int,
        *,
        reserve: int = 0,
        max_bytes: int | None = None,
        size_of: Callable[[T], int] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`loop`: the loop every waiter runs on, if known (else asked at each wait)."""
        self._loop = loop
        self._capacity = capacity
        self._reserve = reserve
        self._max_bytes = max_bytes
        self._size_of = size_of if max_bytes is not None else None
        self._bytes = 0
        self._items: deque[T] = deque()
        self._waiters: deque[_Waiter[T]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._closed = False
        # One timer for every waiter, due at the earliest deadline (a timer per waiter costs
        # more than the rest of a blocked put together).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self._items)

    @property
    def waiting_producers(self) -> int:
        """How many producers are waiting for room."""
        return len(self._waiters)

    @property
    def approximate_bytes(self) -> int:
        """The summed size of the queued items (0 unless bounded by bytes)."""
        return self._bytes

    def _has_room(self, item: T, limit: int) -> bool:
        if len(self._items) >= limit:
            return False
        size_of = self._size_of
        if size_of is None or not self._items:
            return True  # an empty queue takes even an oversized item: progress is guaranteed
        assert self._max_bytes is not None
        return self._bytes + size_of(item) <= self._max_bytes

    def _append(self, item: T) -> None:
        self._items.append(item)
        if self._size_of is not None:
            self._bytes += self._size_of(item)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def try_put(self, item: T) -> bool:
        """Append `item` if there is room and nobody is waiting for it; never blocks."""
        # The hot path of every async write_log: kept flat, no helper calls.
        items = self._items
        if self._waiters or len(items) >= self._capacity:
            return False
        size_of = self._size_of
        if size_of is not None:
            size = size_of(item)
            if items and self._bytes + size > self._max_bytes:  # type: ignore[operator]
                return False
            self._bytes += size
        items.append(item)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        return True

    def put_past_bound(self, item: T) -> bool:
        """Append `item` whatever the bounds (False only once closed): for the consumer itself,
        which cannot wait for room that only it can make (a handler in the worker logs)."""
        if self._closed:
            return False
        self._append(item)
        return True

    def try_put_reserved(self, item: T) -> bool:
        """Append a priority item into the reserve above the count bound, if any is left."""
        if self._closed or len(self._items) >= self._capacity + self._reserve:
            return False
        self._append(item)
        return True

    def replace_oldest(self, item: T, evictable: Callable[[T], bool]) -> tuple[int, bool]:
        """Evict the oldest evictable items until `item` fits, then append it.

        Returns `(evicted, appended)`: when nothing evictable is left and `item` still does not
        fit, it is not appended (the caller drops it).
        """
        if self._closed:  # closing: what is queued is the worker's to write, not to evict
            return 0, False
        items = self._items
        evicted = 0
        index = 0
        while not self._has_room(item, self._capacity):
            while index < len(items) and not evictable(items[index]):
                index += 1
            if index == len(items):
                return evicted, False
            queued = items[index]
            del items[index]
            if self._size_of is not None:
                self._bytes -= self._size_of(queued)
            evicted += 1
        self._append(item)
        return evicted, True

    async def put(
        self, item: T, max_wait: float | None, on_rejected: Callable[[], None] | None = None
    ) -> None:
        """Append `item`, waiting in line up to `max_wait` seconds (None: no limit).

        Raises `QueueFullError` when the time runs out and `ManagerClosedError` when the
        queue closes first. `on_rejected` is called whenever this ends without the item in the
        queue (those errors, or cancellation while waiting). A cancellation that arrives just
        after the item was admitted still raises `CancelledError`, but the item stays queued
        and `on_rejected` is not called.
        """
        if self._closed:
            _reject(on_rejected)
            raise ManagerClosedError("the log manager is closing; entry not accepted")
        if self.try_put(item):
            return
        if max_wait is not None and max_wait <= 0:
            _reject(on_rejected)
            raise self._full_error(max_wait)
        loop = self._loop or _runtime.current_loop()
        deadline = math.inf if max_wait is None else loop.time() + max_wait
        waiter: _Waiter[T] = (loop.create_future(), item, max_wait, deadline)
        self._waiters.append(waiter)
        if deadline < self._timer_at:
            self._arm(loop, deadline)
        try:
            await waiter[0]
        except BaseException:
            if not _admitted(waiter[0]):
                self._forget(waiter)
                _reject(on_rejected)
            raise

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._expire_due, loop)
        self._timer_at = when

    def _expire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: refuse every waiter whose time is up, then wait for the next deadline.
        Waiters with the same `max_wait` expire in line order."""
        self._timer = None
        self._timer_at = math.inf
        now = loop.time() + _CLOCK_RESOLUTION  # asyncio may run a timer this early
        earliest = math.inf
        for waiter in list(self._waiters):
            future, _, max_wait, deadline = waiter
            if future.done():
                continue
            if deadline <= now:
                self._forget(waiter)
                future.set_exception(self._full_error(max_wait or 0.0))
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._arm(loop, earliest)

    def _forget(self, waiter: _Waiter[T]) -> None:
        with contextlib.suppress(ValueError):  # already admitted or already removed
            self._waiters.remove(waiter)

    def _full_error(self, max_wait: float) -> QueueFullError:
        return QueueFullError(
            f"log queue full ({self._capacity} entries) for {max_wait:g}s; entry dropped"
        )

    async def get_batch(self, limit: int) -> list[T]:
        """Wait for at least one item and take up to `limit`; `[]` once closed and empty."""
        while not self._items:
            if self._closed:
                return []
            getter = (self._loop or _runtime.current_loop()).create_future()
            self._getter = getter
            try:
                await getter
            finally:
                if self._getter is getter:
                    self._getter = None
        return self.take(limit)

    def take(self, limit: int) -> list[T]:
        """Take up to `limit` items without waiting, then let waiting producers in."""
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        if self._size_of is not None:
            self._bytes = (
                sum(map(self._size_of, items))
                if len(items) < len(batch)
                else (self._bytes - sum(map(self._size_of, batch)))
            )
        self._admit_waiters()
        return batch

    def _admit_waiters(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            future, item, _, _ = waiter
            if future.done():
                waiters.popleft()
                continue
            if not self._has_room(item, self._capacity):
                return
            waiters.popleft()
            self._append(item)
            future.set_result(None)

    def clear(self) -> list[T]:
        """Remove and return every queued item."""
        batch = list(self._items)
        self._items.clear()
        self._bytes = 0
        return batch

    def take_waiting(self) -> list[T]:
        """No running loop (interpreter exit, a closed loop): remove the producers waiting for
        room and return their items, in arrival order. Their futures are left alone: nothing
        will ever run their callbacks."""
        items = [waiter[1] for waiter in self._waiters]
        self._waiters.clear()
        return items

    def close(self, error: BaseException | None = None) -> int:
        """Stop accepting: waiting producers get `error` (default: `ManagerClosedError`);
        return how many there were. Items already queued stay there for the consumer.
        """
        self._closed = True
        self._capacity = 0  # try_put (which does not check _closed, for speed) refuses too
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        rejected = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter[0].done():
                waiter[0].set_exception(
                    error
                    or ManagerClosedError("the log manager closed while this entry waited for room")
                )
                rejected += 1
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return rejected
