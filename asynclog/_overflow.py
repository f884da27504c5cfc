"""What a full queue does with one more entry: the overflow policies, one function each.

`admit` is called when `FairQueue.try_put` refused an accepted entry. It returns True when the
entry got into the queue, False when the policy dropped it (counted). It raises
`QueueFullError` or `ManagerClosedError` when the entry was refused while waiting (counted
dropped here), `CancelledError` when the caller was (counted dropped if the entry never got
in), and `HandedOver` when the worker is gone while it waited (nothing counted: the caller
writes it directly).

To add a policy: write `async def _name(queue, entry, counters, config, waited) -> bool` below
(True: queued), add it to `POLICIES`, and add its name to `OVERFLOW_POLICIES` in `_config.py`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from . import _runtime
from ._config import Config
from ._entry import LEVEL, Entry
from ._queue import FairQueue
from ._stats import Counters


class HandedOver(Exception):
    """Wakes producers waiting for room when the worker is gone: they write directly."""


RESUMABLE: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
"""Tasks whose waits are resumed elsewhere when they are cancelled (the handoff's settler,
which `asyncio.run` cancels at teardown, until `close()` begins): a cancelled wait for room or
for the delivery lock then raises `NotTaken` instead of counting the entry dropped. A set of
tasks, not a context variable: tasks the settler's handlers start must not inherit it."""


def resumable() -> bool:
    """Whether the running task is `RESUMABLE`."""
    task = _runtime.current_task()
    return task is not None and task in RESUMABLE


class NotTaken(asyncio.CancelledError):
    """A wait in a `RESUMABLE` task was cancelled before the entry was taken: nothing was
    counted. `pending` (set by `Intake.settle`) is what is left to settle."""

    pending: object = None


Policy = Callable[[FairQueue[Entry], Entry, Counters, Config, float], Awaitable[bool]]
"""`(queue, entry, counters, config, waited)`: `waited` is how many seconds the entry already
waited before it reached the queue (it counts against `put_timeout`)."""


async def admit(
    queue: FairQueue[Entry], entry: Entry, counters: Counters, config: Config, waited: float
) -> bool:
    """Apply `config.overflow` to `entry`; priority entries use the reserve, then wait.
    True: queued; False: dropped by the policy."""
    if entry[LEVEL] >= config.priority_min:
        if not queue.try_put_reserved(entry):
            await wait_for_room(queue, entry, counters, None)  # never dropped for lack of room
        return True
    return await POLICIES[config.overflow](queue, entry, counters, config, waited)


async def wait_for_room(
    queue: FairQueue[Entry], entry: Entry, counters: Counters, max_wait: float | None
) -> bool:
    """Wait in line for room, up to `max_wait` seconds (None: no limit); an entry that never
    got in is counted dropped (unless the worker is gone: `HandedOver`)."""
    rejected = False

    def on_rejected() -> None:
        nonlocal rejected
        rejected = True

    try:
        await queue.put(entry, max_wait, on_rejected)
        return True
    except HandedOver:
        raise
    except BaseException as exc:
        if rejected:  # accepted at the call, never queued
            if isinstance(exc, _runtime.CANCELLED) and resumable():
                raise NotTaken() from exc
            counters.drop(1)
        raise


async def _timeout(
    queue: FairQueue[Entry], entry: Entry, counters: Counters, config: Config, waited: float
) -> bool:
    return await wait_for_room(queue, entry, counters, max(0.0, config.put_timeout - waited))


async def _block(
    queue: FairQueue[Entry], entry: Entry, counters: Counters, config: Config, waited: float
) -> bool:
    return await wait_for_room(queue, entry, counters, None)


async def _drop_newest(
    queue: FairQueue[Entry], entry: Entry, counters: Counters, config: Config, waited: float
) -> bool:
    counters.drop(1)
    return False


async def _drop_oldest(
    queue: FairQueue[Entry], entry: Entry, counters: Counters, config: Config, waited: float
) -> bool:
    priority_min = config.priority_min
    evicted, appended = queue.replace_oldest(entry, lambda queued: queued[LEVEL] < priority_min)
    counters.drop(evicted + (0 if appended else 1))
    return appended


POLICIES: dict[str, Policy] = {
    "timeout": _timeout,
    "block": _block,
    "drop_newest": _drop_newest,
    "drop_oldest": _drop_oldest,
}
"""Each `Config.overflow` name and its policy."""
