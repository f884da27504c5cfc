"""Interpreter exit: managers that were never closed get their pending entries written.

The hook runs through `threading._register_atexit`, before the interpreter joins non-daemon
threads (aiosqlite's connection thread is one, and would otherwise keep the process alive),
and falls back to `atexit` where that private hook is missing.
"""

from __future__ import annotations

import atexit
import threading
from typing import Protocol

EXIT_FLUSH_SECONDS = 5.0
"""How long the exit flush may take before it is abandoned (a stuck disk must not hang exit)."""


class _Flushable(Protocol):
    def flush_at_exit(self) -> None: ...


_live: dict[int, _Flushable] = {}
_installed = False
_lock = threading.Lock()


def register(manager: _Flushable) -> None:
    """Remember a started manager until `unregister` (its close)."""
    global _installed
    with _lock:
        _live[id(manager)] = manager
        if not _installed:
            hook = getattr(threading, "_register_atexit", None)
            if hook is not None:
                hook(_flush_all)
            else:  # pragma: no cover - every supported CPython has the hook
                atexit.register(_flush_all)
            _installed = True


def unregister(manager: _Flushable) -> None:
    """Forget a manager that closed properly."""
    with _lock:
        _live.pop(id(manager), None)


def _flush_all() -> None:
    with _lock:
        managers = list(_live.values())
        _live.clear()
    if not managers:
        return
    # A daemon thread bounds the time: a backend stuck in a write cannot hang the exit.
    worker = threading.Thread(target=_flush, args=(managers,), name="asynclog-exit", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # Python 3.12+ refuses new threads at shutdown: flush right here
        _flush(managers)
    else:
        worker.join(EXIT_FLUSH_SECONDS)


def _flush(managers: list[_Flushable]) -> None:
    for manager in managers:
        try:
            manager.flush_at_exit()
        except Exception:  # one manager's failure must not stop the others
            continue
