"""A bounded queue for many producers and one consumer, fair to blocked producers.

Producers that find the queue full wait in line; when the consumer takes a batch it moves the
waiting items in, first come first served, before anyone else can use the room. A newcomer
never overtakes a waiter through the fast path, which `asyncio.Queue` does not promise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Generic, TypeVar

from ._errors import ManagerClosedError, QueueFullError

T = TypeVar("T")


class _Waiter(Generic[T]):
    __slots__ = ("future", "item")

    def __init__(self, future: asyncio.Future[None], item: T) -> None:
        self.future = future
        self.item = item


class FairQueue(Generic[T]):
    """Bounded FIFO: `try_put` (no waiting), `put` (waits in line), `get_batch` (one consumer)."""

    __slots__ = ("_capacity", "_closed", "_getter", "_items", "_waiters")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._waiters: deque[_Waiter[T]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def waiting_producers(self) -> int:
        """How many producers are waiting for room."""
        return len(self._waiters)

    def try_put(self, item: T) -> bool:
        """Append `item` if there is room and nobody is waiting for it; never blocks."""
        if self._waiters or len(self._items) >= self._capacity:
            return False
        self._items.append(item)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        return True

    async def put(self, item: T, max_wait: float | None) -> None:
        """Append `item`, waiting in line up to `max_wait` seconds (None: no limit).

        Raises `QueueFullError` when the time runs out and `ManagerClosedError` when the
        queue closes first. Cancelled while waiting, the item is not in the queue; the item is
        in the queue exactly when this returns normally.
        """
        if self._closed:
            raise ManagerClosedError("the log manager is closing; entry not accepted")
        if self.try_put(item):
            return
        if max_wait is not None and max_wait <= 0:
            raise self._full_error(max_wait)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), item)
        self._waiters.append(waiter)
        timer = None
        if max_wait is not None:
            # A timer handle is cheaper than asyncio.timeout() and decides atomically.
            timer = loop.call_later(max_wait, self._expire, waiter, max_wait)
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._forget(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, waiter: _Waiter[T], timeout: float) -> None:
        if not waiter.future.done():
            self._forget(waiter)
            waiter.future.set_exception(self._full_error(timeout))

    def _forget(self, waiter: _Waiter[T]) -> None:
        with contextlib.suppress(ValueError):  # already admitted or already removed
            self._waiters.remove(waiter)

    def _full_error(self, timeout: float) -> QueueFullError:
        return QueueFullError(
            f"log queue full ({self._capacity} entries) for {timeout:g}s; entry dropped"
        )

    async def get_batch(self, limit: int) -> list[T]:
        """Wait for at least one item and take up to `limit`; `[]` once closed and empty."""
        while not self._items:
            if self._closed:
                return []
            getter = asyncio.get_running_loop().create_future()
            self._getter = getter
            try:
                await getter
            finally:
                if self._getter is getter:
                    self._getter = None
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        self._admit_waiters()
        return batch

    def _admit_waiters(self) -> None:
        waiters, items = self._waiters, self._items
        while waiters and len(items) < self._capacity:
            waiter = waiters.popleft()
            if waiter.future.done():
                continue
            items.append(waiter.item)
            waiter.future.set_result(None)

    def clear(self) -> int:
        """Throw away every queued item; return how many there were."""
        count = len(self._items)
        self._items.clear()
        return count

    def close(self) -> int:
        """Stop accepting: waiting producers get `ManagerClosedError`; return how many there were.

        Items already in the queue stay there for the consumer to drain.
        """
        self._closed = True
        rejected = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(
                    ManagerClosedError("the log manager closed while this entry waited for room")
                )
                rejected += 1
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return rejected
