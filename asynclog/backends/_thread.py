"""A single dedicated thread per backend, so blocking I/O never runs on the event loop."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .. import _runtime
from ._wakeup import write_on_thread

T = TypeVar("T")


class IOThread:
    """One worker thread that runs blocking calls in submission order."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            if self._closed:  # nothing may start a thread after close
                raise RuntimeError(f"the {self._name} thread is closed")
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        return self._executor

    @property
    def started(self) -> bool:
        """Whether the thread exists (started by a call, not shut down yet)."""
        return self._executor is not None

    async def run(self, func: Callable[[], T]) -> T:
        """Run `func` on the thread and return its result to the loop (asyncio's, or trio's
        through `_runtime.TrioLoop`, whose hand-back goes through the run's token)."""
        return await _runtime.current_loop().run_in_executor(self.executor, func)

    async def finish(self, func: Callable[[], None]) -> None:
        """`run` for the last call (a close): cancelled meanwhile, `func` still runs once the
        thread is free, so a close cut short by its deadline still closes the file after the
        stuck write. After `shutdown()` (a close before was cut short, `open()` failed) it
        runs on a thread of its own."""
        one_off = self._closed and self._executor is None
        executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
            if one_off
            else self.executor
        )
        try:
            await _runtime.shield(_runtime.current_loop().run_in_executor(executor, func))
        finally:
            if one_off:
                executor.shutdown(wait=False)

    async def run_batch(self, write: Callable[[], None]) -> None:
        """`run` for a batch write. Under asyncio the writer resumes one loop turn after the
        thread's call ends instead of two, and, cancelled meanwhile, raises `WriteContinues`
        (`write_on_thread`)."""
        if _runtime.on_trio():
            await self.run(write)
        else:
            await write_on_thread(self.executor.submit, write)

    async def aclose(self) -> None:
        """Wait, without blocking the loop, for the queued calls to finish, then stop the
        thread. Cancelled (a close deadline), it lets go of a stuck thread instead of waiting."""
        if self._executor is None:
            return
        try:
            await self.run(lambda: None)  # one thread, in order: everything before has run
        except BaseException:
            self.shutdown(wait=False)
            raise
        self.shutdown()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the thread once its queued calls have run; safe to call twice."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
            self._executor = None
