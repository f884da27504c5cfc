"""The event loop asynclog runs on: asyncio's own, or trio's through a small adapter.

asynclog's pipeline is written against the few asyncio loop primitives it needs: futures for
blocked producers, tasks for the workers, `call_at` for the queue's one timer,
`call_soon_threadsafe` for the thread hand-offs, `run_in_executor` for the backends' I/O
threads. Under asyncio (and uvloop) those are the loop's own objects, untouched. Under trio,
`current_loop()` returns a `TrioLoop`: the same primitives built on trio (futures woken through
a `trio.Event`, tasks as trio system tasks in a cancel scope of their own, callbacks from
threads through the run's `TrioToken`). The functions here (`wait`, `timeout_at`, `sleep`,
`current_task`, `shield`, `gather`, `Lock`, `Event`) dispatch between the two; the hot path of
a log call touches none of them.

The choice is made per call from the running loop (one `asyncio._get_running_loop()`), so a
manager started under trio uses trio throughout; which library a manager runs on is fixed
when `LogManager.start()` binds it (`Intake.bind_loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import sys
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar, cast

from ._errors import UnsupportedLoopError

T = TypeVar("T")

CANCELLED: tuple[type[BaseException], ...] = (asyncio.CancelledError,)
"""The cancellation exceptions of the loops in use: asyncio's, and trio's once a trio run has
started a manager (catch with `except _runtime.CANCELLED`, read through the module)."""

_running_asyncio = asyncio._get_running_loop

RUN_END_WAIT_SECONDS = 10.0
"""How long the end of a trio run waits for asynclog's tasks (workers draining what was
accepted, bounded themselves) before it lets the loop adapter go."""


def on_trio() -> bool:
    """True in a trio run (and not under asyncio)."""
    if _running_asyncio() is not None:
        return False
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


def in_event_loop() -> bool:
    """True in a running asyncio loop or trio run (without creating anything)."""
    return _running_asyncio() is not None or on_trio()


def current_loop() -> asyncio.AbstractEventLoop:
    """The running asyncio loop, or the `TrioLoop` of the running trio run; `RuntimeError`
    outside of both (as `asyncio.get_running_loop()`)."""
    loop = _running_asyncio()
    if loop is not None:
        return loop
    if on_trio():
        return _trio_loop()
    raise RuntimeError("no running event loop (asynclog runs under asyncio or trio)")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """ "trio" for a `TrioLoop`, else "asyncio"."""
    return "trio" if isinstance(loop, TrioLoop) else "asyncio"


def require_asyncio(what: str) -> None:
    """Raise `UnsupportedLoopError` naming `what` when running under trio."""
    if on_trio():
        raise UnsupportedLoopError(
            f"{what} needs asyncio (it is built on asyncio's own API); it cannot run under "
            "trio: under trio use the file, SQLite or console backend (or a backend of your "
            "own), or run the program under asyncio (docs/trio.md)"
        )


# ---- the portable functions ---------------------------------------------------------------
#
# On Python 3.11, asking asyncio for the running loop (`get_running_loop`, `current_task()`
# without a loop) makes a getpid() system call: about 0.2 µs, as much as queueing an entry.
# Code that already holds its loop passes it (`task_getter`, `FairQueue(loop=...)`).


def current_task() -> Any:
    """The running task: an `asyncio.Task`, asynclog's `TrioTask`, or trio's own task (an
    application's); compare by identity only."""
    if _running_asyncio() is not None:
        return asyncio.current_task()
    if not on_trio():
        return None
    import trio

    task = trio.lowlevel.current_task()
    return _TRIO_TASKS.get(task, task)


def task_getter(loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """`current_task` for code that runs on `loop`, without asking which loop is running."""
    if isinstance(loop, TrioLoop):
        return current_task
    return lambda: asyncio.current_task(loop)


async def sleep(delay: float) -> None:
    """`asyncio.sleep` / `trio.sleep`."""
    if _running_asyncio() is not None:
        await asyncio.sleep(delay)
        return
    import trio

    await trio.sleep(delay)


def timeout_at(deadline: float | None) -> contextlib.AbstractAsyncContextManager[Any]:
    """`asyncio.timeout_at` (loop time; None: no limit), `TimeoutError` when it passes."""
    if _running_asyncio() is not None:
        return asyncio.timeout_at(deadline)
    return _trio_deadline(math.inf if deadline is None else deadline, shield=False)


def timeout(
    delay: float | None, *, shield: bool = False
) -> contextlib.AbstractAsyncContextManager[Any]:
    """`asyncio.timeout` (None: no limit), `TimeoutError` when it passes. `shield`: under trio,
    the block runs even in a cancelled task (cleanup after a cancellation, which asyncio's
    edge-triggered cancellation allows anyway)."""
    if _running_asyncio() is not None:
        return asyncio.timeout(delay)
    import trio

    deadline = math.inf if delay is None else trio.current_time() + delay
    return _trio_deadline(deadline, shield=shield)


@contextlib.asynccontextmanager
async def _trio_deadline(deadline: float, shield: bool) -> AsyncIterator[None]:
    import trio

    with trio.CancelScope(deadline=deadline, shield=shield) as scope:
        yield
    if scope.cancelled_caught:
        raise TimeoutError


def shielded() -> contextlib.AbstractContextManager[Any]:
    """Under trio, shield the block from the task's cancellation (cleanup that asyncio code
    awaits after catching `CancelledError`); nothing under asyncio."""
    if _running_asyncio() is not None or not on_trio():
        return contextlib.nullcontext()
    import trio

    return trio.CancelScope(shield=True)


async def wait(
    futures: Iterable[asyncio.Future[Any]],
    timeout: float | None = None,  # noqa: ASYNC109 - asyncio.wait's own signature
    first: bool = False,
) -> tuple[set[asyncio.Future[Any]], set[asyncio.Future[Any]]]:
    """`asyncio.wait` (`first`: FIRST_COMPLETED): the (done, not done) sets."""
    waited = set(futures)
    if _running_asyncio() is not None:
        when = asyncio.FIRST_COMPLETED if first else asyncio.ALL_COMPLETED
        return await asyncio.wait(waited, timeout=timeout, return_when=when)
    import trio

    def finished() -> bool:
        done = sum(1 for future in waited if future.done())
        return done > 0 if first else done == len(waited)

    if waited and not finished():
        event = trio.Event()

        def woken(_: object) -> None:
            if finished():
                event.set()

        for future in waited:
            future.add_done_callback(woken)
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await event.wait()
        finally:
            for future in waited:
                future.remove_done_callback(woken)
    done = {future for future in waited if future.done()}
    return done, waited - done


async def shield(future: asyncio.Future[T]) -> T:
    """Await `future` without cancelling it when the caller is cancelled (`asyncio.shield`)."""
    if _running_asyncio() is not None:
        return await asyncio.shield(future)
    assert isinstance(future, TrioFuture)
    return cast(T, await future.wait(cancel_on_cancel=False))


async def gather(*awaitables: Coroutine[Any, Any, T]) -> list[T]:
    """`asyncio.gather` of coroutines, each in a task of its own; the first failure is raised
    once all have finished."""
    if _running_asyncio() is not None:
        return list(await asyncio.gather(*awaitables))
    loop = current_loop()
    tasks = [loop.create_task(awaitable) for awaitable in awaitables]
    await wait(tasks)
    return [task.result() for task in tasks]


def Lock() -> Any:
    """`asyncio.Lock` / `trio.Lock` (both first come, first served)."""
    if _running_asyncio() is not None or not on_trio():
        return asyncio.Lock()
    import trio

    return trio.Lock()


class _TrioEvent:
    """An `asyncio.Event` for trio (`clear` included, which `trio.Event` lacks)."""

    def __init__(self) -> None:
        import trio

        self._event = trio.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        if self._event.is_set():
            import trio

            self._event = trio.Event()

    async def wait(self) -> bool:
        await self._event.wait()
        return True


def Event() -> Any:
    """`asyncio.Event`, or its trio equivalent."""
    if _running_asyncio() is not None or not on_trio():
        return asyncio.Event()
    return _TrioEvent()


# ---- trio: futures, tasks, the loop ---------------------------------------------------------


_PENDING, _DONE, _CANCELLED = 0, 1, 2


class TrioFuture(Generic[T]):
    """The subset of `asyncio.Future` asynclog (and aiosqlite) use, on trio. Done
    callbacks run soon after, through the loop, as asyncio's do. Awaiting it from a trio task
    that gets cancelled cancels the future (as a cancelled asyncio task cancels the future it
    awaits), unless awaited through `shield`."""

    __slots__ = ("__weakref__", "_callbacks", "_event", "_exception", "_loop", "_result", "_state")

    def __init__(self, loop: TrioLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[tuple[Callable[[Any], object], contextvars.Context]] = []
        self._event: Any = None

    def get_loop(self) -> TrioLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> T:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("Result is not ready.")
        if self._exception is not None:
            raise self._exception
        return cast(T, self._result)

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("Exception is not set.")
        return self._exception

    def set_result(self, result: T) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        self._result = result
        self._finish(_DONE)

    def set_exception(self, exception: BaseException | type[BaseException]) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        if isinstance(exception, type):
            exception = exception()
        self._exception = exception
        self._finish(_DONE)

    def cancel(self, msg: object = None) -> bool:
        if self._state != _PENDING:
            return False
        self._finish(_CANCELLED)
        return True

    def add_done_callback(
        self, callback: Callable[[Any], object], *, context: contextvars.Context | None = None
    ) -> None:
        ctx = context or contextvars.copy_context()
        if self._state != _PENDING:
            self._loop.call_soon(callback, self, context=ctx)
        else:
            self._callbacks.append((callback, ctx))

    def remove_done_callback(self, callback: Callable[[Any], object]) -> int:
        kept = [(cb, ctx) for cb, ctx in self._callbacks if cb != callback]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def _finish(self, state: int) -> None:
        self._state = state
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback, ctx in callbacks:
            self._loop.call_soon(callback, self, context=ctx)

    async def wait(self, cancel_on_cancel: bool = True) -> T:
        """Wait until done and return the result (raise the exception)."""
        if self._state == _PENDING:
            import trio

            if self._event is None:
                self._event = trio.Event()
            try:
                await self._event.wait()
            except trio.Cancelled:
                if cancel_on_cancel:
                    self.cancel()
                raise
        return self.result()

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()

    __iter__ = __await__


_TRIO_TASKS: weakref.WeakKeyDictionary[Any, TrioTask[Any]] = weakref.WeakKeyDictionary()
"""trio's task object of each running `TrioTask` (for `current_task()`)."""


class TrioTask(TrioFuture[T]):
    """An asyncio-like task on trio: a system task (not tied to a nursery, cancelled at the
    end of the run as `asyncio.run` cancels leftover tasks) in a cancel scope of its own.
    `cancel()` cancels that scope; trio's cancellation is level-triggered, so code that goes on
    awaiting after catching the cancellation does so under `shielded()`."""

    __slots__ = ("_cancel_requests", "_coro", "_name", "_scope")

    def __init__(
        self,
        loop: TrioLoop,
        coro: Coroutine[Any, Any, T],
        name: str | None,
        context: contextvars.Context | None,
    ) -> None:
        import trio

        super().__init__(loop)
        self._coro = coro
        self._name = name or "asynclog-task"
        self._scope = trio.CancelScope()
        self._cancel_requests = 0
        loop.task_started()
        trio.lowlevel.spawn_system_task(
            self._run, name=self._name, context=context or contextvars.copy_context()
        )

    def get_name(self) -> str:
        return self._name

    async def _run(self) -> None:
        import trio

        _TRIO_TASKS[trio.lowlevel.current_task()] = self
        try:
            with self._scope:
                result = await self._coro
        except (trio.Cancelled, asyncio.CancelledError):
            self._finish(_CANCELLED)
        except BaseException as exc:
            self._exception = exc
            self._finish(_DONE)
        else:
            if self._scope.cancelled_caught:
                self._finish(_CANCELLED)
            else:
                self._result = result
                self._finish(_DONE)
        finally:
            self._loop.task_ended()

    def cancel(self, msg: object = None) -> bool:
        if self.done():
            return False
        self._cancel_requests += 1
        self._scope.cancel()
        return True

    def cancelling(self) -> int:
        return self._cancel_requests

    def uncancel(self) -> int:
        if self._cancel_requests > 0:
            self._cancel_requests -= 1
        return self._cancel_requests


class _TrioTimer:
    """What `TrioLoop.call_at` returns: `cancel()` before it fires."""

    __slots__ = ("_scope",)

    def __init__(self, scope: Any) -> None:
        self._scope = scope

    def cancel(self) -> None:
        self._scope.cancel()


class TrioLoop(asyncio.AbstractEventLoop):
    """The asyncio loop primitives asynclog needs, on the running trio run (one per run).

    A subclass of `AbstractEventLoop` so that it can also be the thread's current event loop
    for aiosqlite, which asks `asyncio.get_event_loop()` for its futures; anything else it
    does not offer raises `NotImplementedError`."""

    def __init__(self, token: Any) -> None:
        import trio

        self._token = token
        self._clock = trio.lowlevel.current_clock()
        self._finished = False
        self._live_tasks = 0
        self._no_tasks: Any = None  # a trio.Event while the end of the run waits for them
        self._at_end: list[Callable[[], object]] = []

    def call_at_end(self, callback: Callable[[], object]) -> None:
        """Call `callback()` when the run has ended (its tasks done, the loop finished)."""
        self._at_end.append(callback)

    def run_ended(self) -> None:
        """The run is over: mark the loop finished and call what `call_at_end` registered."""
        self._finished = True
        callbacks, self._at_end = self._at_end, []
        for callback in callbacks:
            _guarded(None, callback, ())

    def task_started(self) -> None:
        """A `TrioTask` of this loop began (the end of the run waits for it)."""
        self._live_tasks += 1

    def task_ended(self) -> None:
        """A `TrioTask` of this loop ended."""
        self._live_tasks -= 1
        if not self._live_tasks and self._no_tasks is not None:
            self._no_tasks.set()

    async def tasks_finished(self, limit: float) -> None:
        """Wait up to `limit` seconds, shielded, for this loop's tasks (the end of the run has
        cancelled them; a worker is still writing what was accepted)."""
        import trio

        with trio.CancelScope(shield=True, deadline=trio.current_time() + limit):
            while self._live_tasks:
                self._no_tasks = trio.Event()
                await self._no_tasks.wait()

    # The clock, callbacks and timers.
    def time(self) -> float:
        return float(self._clock.current_time())  # trio's clock: callable from any thread

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        self.call_soon_threadsafe(callback, *args, context=context)

    def call_soon_threadsafe(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        import trio

        try:
            self._token.run_sync_soon(_guarded, context, callback, args)
        except trio.RunFinishedError:
            self._finished = True
            raise RuntimeError("the trio run has finished") from None

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> _TrioTimer:
        import trio

        scope = trio.CancelScope()

        async def fire() -> None:
            with scope:
                await trio.sleep_until(when)
                _guarded(context, callback, args)

        trio.lowlevel.spawn_system_task(fire, name="asynclog-timer")
        return _TrioTimer(scope)

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> _TrioTimer:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    # Futures and tasks.
    def create_future(self) -> asyncio.Future[Any]:
        return cast("asyncio.Future[Any]", TrioFuture(self))

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        return cast("asyncio.Task[T]", TrioTask(self, coro, name, context))

    # Threads.
    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        if executor is None:
            executor = _default_executor()
        future: TrioFuture[T] = TrioFuture(self)
        done = executor.submit(func, *args)

        def hand_back(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the run is over: nobody waits
                self.call_soon_threadsafe(_transfer, done, future)

        done.add_done_callback(hand_back)
        return cast("asyncio.Future[T]", future)

    # State.
    def is_running(self) -> bool:
        return not self._finished

    def is_closed(self) -> bool:
        return self._finished

    def get_debug(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        message = context.get("message", "an exception in a callback")
        print(f"asynclog (trio): {message}: {context.get('exception')!r}", file=sys.stderr)

    def __repr__(self) -> str:
        return f"<TrioLoop {'finished' if self._finished else 'running'}>"


def _guarded(
    context: contextvars.Context | None, callback: Callable[..., object], args: tuple[Any, ...]
) -> None:
    """A callback run by trio must not raise (trio would crash the run): report instead."""
    try:
        if context is not None:
            context.run(callback, *args)
        else:
            callback(*args)
    except BaseException as exc:
        print(f"asynclog (trio): a callback failed: {exc!r}", file=sys.stderr)


def _transfer(done: Any, future: TrioFuture[Any]) -> None:
    if future.done():
        return
    if done.cancelled():
        future.cancel()
    elif done.exception() is not None:
        future.set_exception(done.exception())
    else:
        future.set_result(done.result())


_executor: Executor | None = None


def _default_executor() -> Executor:
    global _executor
    if _executor is None:
        from concurrent.futures import ThreadPoolExecutor

        _executor = ThreadPoolExecutor(thread_name_prefix="asynclog-trio")
    return _executor


def _trio_loop() -> TrioLoop:
    import trio

    global CANCELLED
    loop = _RUN_LOOP.get()
    if loop is None:
        loop = TrioLoop(trio.lowlevel.current_trio_token())  # type: ignore[abstract]
        _set_run_loop(loop)
        CANCELLED = (asyncio.CancelledError, trio.Cancelled)
    return loop


class _RunLoop:
    """One `TrioLoop` per trio run (a `trio.lowlevel.RunVar`, made on first use)."""

    def __init__(self) -> None:
        self._var: Any = None

    def _run_var(self) -> Any:
        if self._var is None:
            import trio

            self._var = trio.lowlevel.RunVar("asynclog_loop", default=None)
        return self._var

    def get(self) -> TrioLoop | None:
        return cast("TrioLoop | None", self._run_var().get())

    def set(self, loop: TrioLoop) -> None:
        self._run_var().set(loop)


_RUN_LOOP = _RunLoop()


def _set_run_loop(loop: TrioLoop) -> None:
    _RUN_LOOP.set(loop)

    # aiosqlite asks `asyncio.get_event_loop()` for its futures: for the rest of the run, the
    # thread's current asyncio loop is this one. When the run ends, the loop is marked
    # finished (threads then write directly) and the thread gets its previous loop back.
    with warnings.catch_warnings():  # the policy API is deprecated from Python 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    previous = getattr(local, "_loop", None)
    # Whether set_event_loop() had been called: if not, get_event_loop() still makes a loop
    # for legacy code in the main thread (set_event_loop(previous) alone would stop that).
    previous_set = getattr(local, "_set_called", False)
    asyncio.set_event_loop(loop)

    async def watch_run_end() -> None:
        import trio

        try:
            await trio.sleep_forever()
        finally:
            # The workers drain (aiosqlite still needs the loop) before the loop is let go.
            await loop.tasks_finished(RUN_END_WAIT_SECONDS)
            loop.run_ended()
            with contextlib.suppress(Exception):
                asyncio.set_event_loop(previous)
                if local is not None:
                    local._set_called = previous_set

    import trio

    trio.lowlevel.spawn_system_task(watch_run_end, name="asynclog-run-end")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """`current_loop()`, or None outside of any."""
    loop = _running_asyncio()
    if loop is not None:
        return loop
    return _trio_loop() if on_trio() else None


def at_loop_end(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Under trio, call `callback()` once the run of `loop` has ended (nothing for asyncio,
    whose loops end with `close()`)."""
    if isinstance(loop, TrioLoop):
        loop.call_at_end(callback)


def loop_ended(loop: asyncio.AbstractEventLoop | None) -> bool:
    """True for the `TrioLoop` of a trio run that has ended."""
    return isinstance(loop, TrioLoop) and loop.is_closed()


def really_cancelled(exc: BaseException) -> bool:
    """Whether `exc`, a caught cancellation, cancels the running task (rather than being a
    future the task awaited that someone else cancelled). trio's `Cancelled` always does."""
    if not isinstance(exc, asyncio.CancelledError):
        return True
    task = current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0
