"""Registries of live managers, and what happens to them at process boundaries.

- `CAPTURES`: the open `asynclog.testing.capture_logs()` lists; every accepted entry is
  appended to each.
- `live_managers()`: every manager alive (the stdlib bridge finds managers by name here).
- `claim_default()` / `default_manager()`: the manager `asynclog.get_logger(name)` uses.
- `on_start` / `on_close` hooks: the stdlib bridge releases held records when a manager
  starts, and undoes `install()` when it closes.
- The exit flush: a started manager registers a callable that writes its pending entries
  synchronously; at interpreter exit, those of managers nobody closed are called. The hook runs
  through `threading._register_atexit`, before the interpreter joins non-daemon threads
  (aiosqlite's connection thread is one, and would otherwise keep the process alive).

This module is package-internal: managers call it, nothing here calls a manager's privates.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._entry import LogEntry
from ._errors import ConfigError, LogError

if TYPE_CHECKING:
    from ._manager import LogManager

EXIT_FLUSH_SECONDS = 5.0
"""How long the exit flush may take before it is abandoned (a stuck disk must not hang exit)."""

CAPTURES: list[list[LogEntry]] = []
"""The open captures. Mutated in place only: the intake reads this very list on every call."""

_managers: weakref.WeakSet[LogManager] = weakref.WeakSet()
_fork_hooks: weakref.WeakKeyDictionary[LogManager, Callable[[], None]] = (
    weakref.WeakKeyDictionary()
)
_start_hooks: list[Callable[[LogManager], None]] = []
_close_hooks: dict[int, list[Callable[[], object]]] = {}
_exit_writers: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_exit_hook_installed = False
_default: weakref.ref[LogManager] | None = None


# ---- live managers -----------------------------------------------------------------------


def add_manager(manager: LogManager, forked: Callable[[], None]) -> None:
    """Register a new manager (any thread may be reading the registry meanwhile); `forked()`
    is called in a child process after `fork()`."""
    with _lock:
        _managers.add(manager)
        _fork_hooks[manager] = forked


def claim_default(manager: LogManager) -> None:
    """Make `manager` (built with `Config(default=True)`) the default one; `ConfigError` when
    another default manager is alive and not closed."""
    global _default
    with _lock:
        current = _default() if _default is not None else None
        if current is not None and current is not manager and not current.closed:
            raise ConfigError(
                f"Config(default=True): LogManager {current.name!r} is the default already "
                "(close it first, or leave default=False on one of them)",
                "default",
            )
        _default = weakref.ref(manager)


def default_manager() -> LogManager:
    """The manager `asynclog.get_logger(name)` uses: the one built with `Config(default=True)`
    (unless closed), else the only one running. `LogError` saying what to do otherwise."""
    with _lock:
        chosen = _default() if _default is not None else None
        managers = list(_managers)
    if chosen is not None and not chosen.closed:
        return chosen
    running = [manager for manager in managers if manager.running]
    if len(running) == 1:
        return running[0]
    if not running:
        raise LogError(
            "asynclog.get_logger: no LogManager is running; start one first "
            "(`async with LogManager(config)`), or build it with Config(default=True)"
        )
    names = ", ".join(sorted(repr(manager.name) for manager in running))
    raise LogError(
        f"asynclog.get_logger: several LogManagers are running ({names}); mark the one to "
        "use with Config(default=True), or call lm.get_logger(name) on it"
    )


def live_managers() -> list[LogManager]:
    """A snapshot of the managers alive, safe to take from any thread."""
    with _lock:
        return list(_managers)


def on_start(hook: Callable[[LogManager], None]) -> None:
    """Call `hook(manager)` on the loop's thread each time a manager has started."""
    _start_hooks.append(hook)


def started(manager: LogManager) -> None:
    """Run the start hooks for `manager` (called by `LogManager.start`)."""
    for hook in list(_start_hooks):
        hook(manager)


def on_close(manager: LogManager, callback: Callable[[], object]) -> None:
    """Call `callback()` once `manager` has closed; callbacks run newest first."""
    with _lock:
        _close_hooks.setdefault(id(manager), []).append(callback)


def closed(manager: LogManager) -> list[Callable[[], object]]:
    """The close callbacks of `manager`, newest first, forgotten here (the manager runs them)."""
    with _lock:
        callbacks = _close_hooks.pop(id(manager), [])
    return callbacks[::-1]


# ---- captures ----------------------------------------------------------------------------


def open_capture(entries: list[LogEntry]) -> None:
    """Start appending every accepted entry of every manager to `entries`."""
    CAPTURES.append(entries)


def close_capture(entries: list[LogEntry]) -> None:
    """Stop appending to `entries`."""
    for index, active in enumerate(CAPTURES):
        if active is entries:
            del CAPTURES[index]
            break


# ---- fork ------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    """A forked child inherits every manager with its queues: disable them all, and forget
    the exit writers, so that only the parent writes the parent's entries."""
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork
    _exit_writers.clear()
    for forked in list(_fork_hooks.values()):
        try:
            forked()
        except Exception:  # one manager's failure must not leave the others enabled
            continue


os.register_at_fork(after_in_child=_after_fork_in_child)


# ---- interpreter exit --------------------------------------------------------------------


def write_at_exit(manager: LogManager, writer: Callable[[], None]) -> None:
    """At interpreter exit, call `writer()` unless `forget_at_exit(manager)` came first."""
    global _exit_hook_installed
    with _lock:
        _exit_writers[id(manager)] = writer
        if not _exit_hook_installed:
            hook = getattr(threading, "_register_atexit", None)
            if hook is not None:
                hook(_flush_all)
            else:  # pragma: no cover - every supported CPython has the hook
                atexit.register(_flush_all)
            _exit_hook_installed = True


def exit_writer(manager: LogManager) -> Callable[[], None] | None:
    """The writer `write_at_exit` registered for `manager` (None if none is): `run_in_thread`
    wraps it, so that a manager whose loop thread still runs at exit is closed on that loop."""
    with _lock:
        return _exit_writers.get(id(manager))


def forget_at_exit(manager: LogManager) -> None:
    """`manager` closed properly: nothing to write for it at exit."""
    with _lock:
        _exit_writers.pop(id(manager), None)


def _flush_all() -> None:
    with _lock:
        writers = list(_exit_writers.values())
        _exit_writers.clear()
    if not writers:
        return
    # A daemon thread bounds the time: a backend stuck in a write cannot hang the exit.
    worker = threading.Thread(target=_flush, args=(writers,), name="asynclog-exit", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # Python 3.12+ refuses new threads at shutdown: flush right here
        _flush(writers)
    else:
        worker.join(EXIT_FLUSH_SECONDS)


def _flush(writers: list[Callable[[], None]]) -> None:
    for writer in writers:
        try:
            writer()
        except Exception:  # one manager's failure must not stop the others
            continue
