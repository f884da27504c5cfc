"""`ThreadDone`: the end of a call handed to another thread, awaited on the event loop with one
loop turn between the thread's end and the awaiting task's resumption.

An `asyncio.Future` set from a thread (`call_soon_threadsafe(future.set_result, ...)`) costs two
turns: one runs `set_result`, which schedules the task's wake-up with `call_soon` for the next.
On a saturated loop a turn takes tens of milliseconds (every ready request handler runs in it),
so a batch written by a thread spends most of its time waiting for those two turns. Here the
thread schedules the wake-up itself: the task runs in the turn after the thread's call ended.

It implements the part of the `asyncio.Future` interface a `Task` uses to wait on an awaitable
that yields itself (`_asyncio_future_blocking`, `get_loop`, `add_done_callback`,
`remove_done_callback`, `cancel`, `result`): one task awaits it, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from contextvars import Context
from typing import Any

from .base import WriteContinues

_PENDING, _DONE, _CANCELLED = 0, 1, 2

Callback = Callable[["ThreadDone"], Any]


class ThreadDone:
    """Awaited on the loop until another thread calls `finish_threadsafe`; the await raises what
    the thread's call raised. Cancelled, it lets go at once; `continuing()` is then a future
    that says whether the thread's call succeeded (see `backends.base.WriteContinues`)."""

    _asyncio_future_blocking = False

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._error: BaseException | None = None
        self._ended: bool | None = None
        """Whether the thread's call succeeded, once it ended (also after a cancellation)."""
        self._cancel_message: Any = None
        self._callbacks: list[tuple[Callback, Context | None]] = []
        self._continuing: asyncio.Future[bool] | None = None

    # -- the thread's side

    def finish_threadsafe(self, error: BaseException | None = None) -> None:
        """Called by the thread when its call ended: `error` is what it raised, or None."""
        self._ended = error is None  # first: `ended()` reads it if the loop never runs again
        with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
            self._loop.call_soon_threadsafe(self._finish, error)

    def _finish(self, error: BaseException | None) -> None:
        continuing = self._continuing
        if continuing is not None and not continuing.done():
            continuing.set_result(error is None)
        if self._state != _PENDING:
            return
        self._state, self._error = _DONE, error
        callbacks, self._callbacks = self._callbacks, []
        for callback, context in callbacks:  # the task's wake-up, run now: this is the turn
            if context is None:
                callback(self)
            else:
                context.run(callback, self)

    def continuing(self) -> asyncio.Future[bool]:
        """A future that resolves to whether the thread's call succeeded, for a waiter that was
        cancelled while the thread goes on."""
        if self._continuing is None:
            self._continuing = self._loop.create_future()
            if self._ended is not None:
                self._continuing.set_result(self._ended)
        return self._continuing

    def ended(self) -> bool | None:
        """Whether the thread's call succeeded, None while it runs; read without the loop (the
        `ended` of `WriteContinues`), for when the loop closed before the thread could tell it."""
        return self._ended

    # -- what a Task uses

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def add_done_callback(self, callback: Callback, *, context: Context | None = None) -> None:
        if self._state == _PENDING:
            self._callbacks.append((callback, context))
        else:
            self._loop.call_soon(callback, self, context=context)

    def remove_done_callback(self, callback: Callback) -> int:
        kept = [entry for entry in self._callbacks if entry[0] != callback]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._state, self._cancel_message = _CANCELLED, msg
        callbacks, self._callbacks = self._callbacks, []
        for callback, context in callbacks:
            self._loop.call_soon(callback, self, context=context)
        return True

    def result(self) -> None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError(self._cancel_message)
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("the thread's call has not ended")
        if self._error is not None:
            raise self._error
        return None

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError(self._cancel_message)
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("the thread's call has not ended")
        return self._error

    def __await__(self) -> Generator[Any, None, None]:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        return self.result()


async def write_on_thread(
    submit: Callable[[Callable[[], None]], object], write: Callable[[], None]
) -> None:
    """Hand `write` (a batch's whole write) to a thread with `submit` and await its end, one
    loop turn after it (`ThreadDone`). Cancelled meanwhile, raise `WriteContinues`: the thread
    goes on, and its outcome counts the batch."""
    done = ThreadDone(asyncio.get_running_loop())

    def write_and_tell() -> None:
        try:
            write()
        except BaseException as exc:  # handed to the loop: the thread must go on
            done.finish_threadsafe(exc)
        else:
            done.finish_threadsafe()

    submit(write_and_tell)
    try:
        await done
    except asyncio.CancelledError as exc:
        raise WriteContinues(done.continuing(), done.ended) from exc
