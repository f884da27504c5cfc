"""A single dedicated thread per backend, so blocking I/O never runs on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class IOThread:
    """One worker thread that runs blocking calls in submission order."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        return self._executor

    async def run(self, func: Callable[[], T]) -> T:
        """Run `func` on the thread and return its result to the loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, func)

    def shutdown(self) -> None:
        """Stop the thread once its queued calls have run; safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
