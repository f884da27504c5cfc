"""`run_in_thread()`: a `LogManager` for programs without an event loop (Django, Celery, WSGI
apps, scripts). The manager runs on a loop of its own in a daemon thread; any thread logs
through it without waiting for I/O; `close()` (or interpreter exit) drains it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _registry, _runtime
from ._bound import Logger, NoWait
from ._config import Config
from ._errors import LogError
from ._levels import Level
from ._manager import LogManager
from ._stats import CloseReport, LogStats

EXIT_CLOSE_SECONDS = 4.0
"""At interpreter exit, how long the close of a manager nobody closed may drain (the exit
flush as a whole is bounded by `_registry.EXIT_FLUSH_SECONDS`)."""

_running: dict[str, ThreadedManager] = {}
"""The managers run_in_thread() started in this process, by name, until closed."""
_running_lock = threading.Lock()


class ThreadedManager:
    """A started `LogManager` running on its own event loop in a daemon thread, returned by
    `asynclog.run_in_thread(config)`.

    Every method here is synchronous and safe from any thread. Log through `nowait`
    (`logs.nowait.info(...)`), named loggers' and bound views' `.nowait`, or
    `write_log_threadsafe`; leave with `close()` or a `with` block.
    What is still pending at interpreter exit is drained then (bounded, see
    `EXIT_CLOSE_SECONDS`).
    """

    def __init__(
        self, manager: LogManager, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self._manager = manager
        self._loop = loop
        self._thread = thread
        self._pid = os.getpid()
        self._lock = threading.RLock()  # reentrant: a signal handler may close() in close()
        self._report: CloseReport | None = None

    @property
    def manager(self) -> LogManager:
        """The `LogManager` itself: pass it to `asynclog.stdlib.install`, `asynclog.metrics`,
        or to coroutines that run on other loops' threads (they use `write_log_threadsafe`)."""
        return self._manager

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the manager runs on (in `thread`)."""
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        """The daemon thread running `loop`."""
        return self._thread

    @property
    def name(self) -> str:
        """The manager's name (`Config.name`)."""
        return self._manager.name

    @property
    def running(self) -> bool:
        """True until `close()` begins (False in a forked child)."""
        return self._manager.running and os.getpid() == self._pid

    @property
    def nowait(self) -> NoWait:
        """`LogManager.nowait`: `logs.nowait.info("x")` from any thread hands the entry to the
        manager's loop and returns at once."""
        return self._manager.nowait

    def get_logger(self, name: str) -> Logger:
        """`LogManager.get_logger`: the view named `name` (log through its `.nowait`)."""
        return self._manager.get_logger(name)

    def bind(self, **fields: Any) -> Logger:
        """`LogManager.bind`: a view whose entries carry `fields` (log through its `.nowait`)."""
        return self._manager.bind(**fields)

    def write_log_threadsafe(
        self, level: Level | int | str, message: object, /, *args: Any, **fields: Any
    ) -> None:
        """`LogManager.write_log_threadsafe`: hand the entry to the manager's loop; never waits."""
        self._manager.write_log_threadsafe(level, message, *args, **fields)

    def get_stats(self) -> LogStats:
        """`LogManager.get_stats()` (a snapshot, safe from any thread)."""
        return self._manager.get_stats()

    def close(self, timeout: float | None = None) -> CloseReport:
        """Stop accepting, write every accepted entry (until `timeout` seconds, if given: what
        is left then is abandoned and counted), close the backends and stop the thread.
        Blocks until done. Idempotent and safe from several threads (and from a signal handler
        that runs while its thread is in `close()`): all get the one report.
        In a child process forked after `run_in_thread`, it does nothing (returns zeros: the
        parent owns the manager). Raises `LogError` when called from the manager's own thread
        (a handler or a backend), which would wait for itself."""
        if os.getpid() != self._pid:
            return CloseReport(0, 0, 0, 0)
        if threading.current_thread() is self._thread:
            raise LogError(
                f"close() of the manager {self.name!r} was called from its own thread (a "
                "handler or backend); it would wait for itself"
            )
        with self._lock:
            if self._report is None:
                self._report = self._close_now(timeout)
            return self._report

    def _close_now(self, timeout: float | None) -> CloseReport:
        if self._report is not None:  # a signal handler's close() ran meanwhile, in this thread
            return self._report
        try:
            if self._loop.is_closed() or not self._thread.is_alive():
                raise LogError(f"the thread of the manager {self.name!r} has stopped")
            closing = asyncio.run_coroutine_threadsafe(self._manager.close(timeout), self._loop)
            return closing.result()
        finally:
            with _running_lock:
                if _running.get(self.name) is self:
                    del _running[self.name]
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def _close_at_exit(self, fallback: Callable[[], None] | None) -> None:
        """The exit flush for this manager: close it on its loop (the loop thread is a daemon
        and still runs); if that thread has died, the manager's own synchronous exit write."""
        if self._thread.is_alive() and not self._loop.is_closed():
            self.close(EXIT_CLOSE_SECONDS)
        elif fallback is not None:
            fallback()

    def __enter__(self) -> ThreadedManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ThreadedManager {self._manager!r} in {self._thread.name}>"


def run_in_thread(
    config: Config | LogManager | None = None,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> ThreadedManager:
    """Start a `LogManager` (from `config`, or the unstarted manager given) on an event loop
    of its own in a daemon thread, and return once it runs (its backends are open).
    `loop_factory` makes that loop (`uvloop.new_event_loop`, say; default: asyncio's).

    For programs without an event loop: any thread then logs through it without waiting for
    I/O, and `close()` or interpreter exit writes everything accepted. Raises `LogError` when
    called where an event loop runs (use `async with LogManager(config)` there), when a
    manager of the same name already runs in a thread, or when the backends cannot open.
    """
    if _has_running_loop():
        raise LogError(
            "run_in_thread() is for code without a running event loop; in a coroutine use "
            "`async with LogManager(config)` (or `await lm.start()`)"
        )
    manager = config if isinstance(config, LogManager) else LogManager(config)
    if manager.running or manager.closed:
        raise LogError(f"{manager!r} was already started; run_in_thread() needs a new one")
    loop = (loop_factory or asyncio.new_event_loop)()
    started: concurrent.futures.Future[None] = concurrent.futures.Future()
    thread = threading.Thread(
        target=_serve, args=(loop, manager, started), name=f"asynclog-{manager.name}", daemon=True
    )
    threaded = ThreadedManager(manager, loop, thread)
    with _running_lock:
        other = _running.get(manager.name)
        if other is not None:
            loop.close()
            raise LogError(
                f"a LogManager named {manager.name!r} already runs in a thread (run_in_thread "
                "was called twice); close() it first, or give this one another Config(name=...)"
            )
        _running[manager.name] = threaded
    try:
        thread.start()
        started.result()
    except BaseException:
        with _running_lock:
            _running.pop(manager.name, None)
        thread.join()
        raise
    fallback = _registry.exit_writer(manager)
    _registry.write_at_exit(manager, lambda: threaded._close_at_exit(fallback))
    return threaded


def _serve(
    loop: asyncio.AbstractEventLoop, manager: LogManager, started: concurrent.futures.Future[None]
) -> None:
    """The loop thread: start the manager, then run the loop until `close()` stops it."""
    asyncio.set_event_loop(loop)
    try:
        try:
            loop.run_until_complete(manager.start())
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        # It starts a thread: refused while the interpreter shuts down (3.12+), harmless then.
        with contextlib.suppress(RuntimeError):
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _has_running_loop() -> bool:
    return _runtime.in_event_loop()  # asyncio's or trio's


def _forget_in_child() -> None:
    """A forked child runs none of the parent's threads: it may start managers of any name."""
    global _running_lock
    _running_lock = threading.Lock()
    _running.clear()


os.register_at_fork(after_in_child=_forget_in_child)
