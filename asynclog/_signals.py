"""`cancel_on_signals()`: turn SIGTERM (and SIGINT) into a clean unwind of the current task,
so `async with LogManager(...)` drains before the process ends."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from types import TracebackType

from . import _runtime


class cancel_on_signals:  # used like a function: `with cancel_on_signals():`
    """Cancel the current task when one of `signals` arrives, then swallow that cancellation
    when it reaches this block, so the program ends normally after its `async with` blocks
    have run (and every accepted log entry is written).

        async with LogManager(config) as lm:
            with asynclog.cancel_on_signals():
                await serve(lm)

    Unix only (it uses `loop.add_signal_handler`). `received` tells which signal arrived.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self._signals = tuple(signals)
        self._task: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.received: int | None = None

    def __enter__(self) -> cancel_on_signals:
        # Under trio: `trio.open_signal_receiver` and a cancel scope do this job.
        _runtime.require_asyncio("cancel_on_signals()")
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("cancel_on_signals() must be used inside a task")
        for signum in self._signals:
            self._loop.add_signal_handler(signum, self._on_signal, signum)
        return self

    def _on_signal(self, signum: int) -> None:
        if self.received is None and self._task is not None:
            self.received = signum
            self._task.cancel(f"received signal {signal.Signals(signum).name}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        assert self._loop is not None and self._task is not None
        for signum in self._signals:
            self._loop.remove_signal_handler(signum)
        if self.received is not None and exc_type is asyncio.CancelledError:
            self._task.uncancel()
            return True
        return False
