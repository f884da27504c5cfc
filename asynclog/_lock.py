"""The delivery lock: serialises writes made outside the worker, and knows its holder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class DeliveryLock:
    """An `asyncio.Lock` that remembers which task holds it and counts who wants it.

    The holder may be running a handler that logs again; that nested call must not wait for
    the lock it already holds (`held_by_current_task`).
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[object] | None = None
        self.users = 0
        """Tasks holding or waiting for the lock."""

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Acquire in arrival order; release on exit."""
        self.users += 1
        try:
            async with self._lock:
                self._holder = asyncio.current_task()
                try:
                    yield
                finally:
                    self._holder = None
        finally:
            self.users -= 1

    def held_by_current_task(self) -> bool:
        """True inside `hold()` of the calling task (for example, in a handler it runs)."""
        holder = self._holder
        return holder is not None and holder is asyncio.current_task()
