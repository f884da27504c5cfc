"""`Handoff`: entries handed in from outside a coroutine (other threads, stdlib records, a loop
that is paused), and every entry that must wait behind them.

Threads append to a landing under a lock; one loop callback accepts what landed, in arrival
order. What could not be queued at once waits in the backlog, settled one by one, in the order
it reached the loop, by a single task (the settler).

While the backlog is not empty, a later handed-in entry is not queued past it but joins it. In
sync mode a coroutine's direct write joins it too (`Owner.set_holding`); in async mode
coroutines keep their fast path and their own overflow policy.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast

from . import _runtime
from ._errors import LogError, ManagerClosedError
from ._overflow import RESUMABLE, NotTaken
from ._report import BurstReporter
from ._sink import INSIDE, Pending

YIELD_EVERY = 64
"""The settler gives the loop a turn after this many entries (sync writes never suspend)."""

HandInArgs = tuple[Any, ...]
"""`(level, message, fields, at, logger, bound, exception, template, location)` of one
handed-in entry (its message formatted already when it had `%` arguments: `template` is then
the template)."""


class Owner(Protocol):
    """What the handoff needs from its owner (the manager's `Intake`)."""

    def accept_handed_in(
        self, args: HandInArgs, anywhere: bool, hold: bool
    ) -> Pending | Literal[False] | None:
        """Accept one handed-in entry; None or False when it is settled (queued, filtered).
        `hold`: entries wait already, so this one must not be queued past them."""
        ...

    async def settle(self, pending: Pending, fast_first: bool, since: float) -> bool:
        """The awaited part for an entry from the backlog; True when every sink took it."""
        ...

    def count_dropped(self, pending: Pending) -> None:
        """Count a pending entry dropped on every sink that still had to take it."""
        ...

    def set_holding(self, active: bool) -> None:
        """Told when the backlog becomes non-empty (True) and empty again (False)."""
        ...


class Waiting:
    """One entry in the backlog: what still has to be settled, whether it was held back from the
    queues, when it reached the loop, and the future its caller awaits (if any)."""

    __slots__ = ("future", "held", "pending", "since")

    def __init__(
        self, pending: Pending, held: bool, since: float, future: asyncio.Future[bool] | None
    ) -> None:
        self.pending = pending
        self.held = held
        self.since = since
        self.future = future


class Handoff:
    """The landing (entries handed in, not yet accepted on the loop) and the backlog."""

    def __init__(self, owner: Owner, reporter: BurstReporter, limit: int, name: str) -> None:
        self._owner = owner
        self._reporter = reporter
        self._limit = limit
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        # Guards the landing, from any thread. Reentrant: a signal handler that logs runs in a
        # thread that may be inside it (a plain Lock would hang that thread for good).
        self._lock = threading.RLock()
        # (the caller's context, the entry, the loop time it was handed in)
        self._landing: collections.deque[tuple[contextvars.Context, HandInArgs, float]] = (
            collections.deque()
        )
        self._scheduled = False  # a _land callback is on the loop
        self._refusing = False
        self._waiting: collections.deque[Waiting] = collections.deque()
        self._settler: asyncio.Task[None] | None = None
        self.in_hand: Waiting | None = None
        self._entry_token: object = None  # the INSIDE token of the entry in hand
        self.turn = 0
        """Which of the in-hand entry's sinks is taking it (set by the owner's settle)."""
        self.active = False
        """True while the backlog (or its settler's hand) holds an entry."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the manager runs on (set by `start()`)."""
        self._loop = loop

    # ---- handing in (any thread) -----------------------------------------------------------

    def hand_in(self, args: HandInArgs, on_loop: bool) -> bool:
        """Hand an entry to the loop. `on_loop`: called from the running loop's own thread.
        Returns False when the loop has closed (the caller writes directly); raises
        `ManagerClosedError` once `close()` refuses new entries."""
        loop = self._loop
        assert loop is not None
        now = loop.time()  # put_timeout counts from here (a monotonic clock: any thread)
        if on_loop:
            if self._refusing:
                raise ManagerClosedError(f"LogManager {self._name!r} is closing")
            if self._landing:
                self._land()  # what other threads handed in before it goes first
            self._accept(args, now)
            return True
        context = contextvars.copy_context()  # the caller's contextualize() fields
        with self._lock:
            if self._refusing:
                raise ManagerClosedError(f"LogManager {self._name!r} is closing")
            if loop.is_closed():
                return False
            self._landing.append((context, args, now))
            if not self._scheduled:
                try:
                    loop.call_soon_threadsafe(self._land)  # a paused loop runs it when resumed
                except RuntimeError:  # closed meanwhile
                    self._landing.pop()
                    return False
                self._scheduled = True
        return True

    def _land(self) -> None:
        with self._lock:
            # One step (no call between): a signal handler's hand-in lands before or after it.
            landed, self._landing = self._landing, collections.deque()
            self._scheduled = False
        for context, args, since in landed:
            context.run(self._accept, args, since)

    def _accept(self, args: HandInArgs, since: float, anywhere: bool = False) -> None:
        held = self.active or anywhere
        try:
            pending = self._owner.accept_handed_in(args, anywhere, held)
        except (LogError, TypeError, ValueError) as exc:  # closed meanwhile, a bad exc_info
            self._reporter.failure("write_log_threadsafe", f"{args[1]!r} refused: {exc}")
            return
        if pending is None or pending is False:
            return
        if len(self._waiting) >= self._limit:
            self._owner.count_dropped(pending)  # threads outpace a stalled backend
            return
        self._join(Waiting(pending, held, since, None), start=not anywhere)

    # ---- the backlog (the loop's thread)---------------------------------------------------

    def idle(self) -> bool:
        """Nothing landed or waiting, and new entries taken: one accepted on the loop's thread
        now comes after everything handed in before it."""
        return not (self.active or self._landing or self._refusing)

    def join(self, pending: Pending, held: bool = True) -> bool:
        """An accepted entry that could not be settled without waiting (a `nowait` call) joins
        the backlog; the settler settles it in its turn. False: the backlog is full, the
        entry is counted dropped. `held`: it was not offered to the queues yet."""
        assert self._loop is not None
        if len(self._waiting) >= self._limit:
            self._owner.count_dropped(pending)
            return False
        self._join(Waiting(pending, held, self._loop.time(), None))
        return True

    def _join(self, waiting: Waiting, start: bool = True) -> None:
        self._waiting.append(waiting)
        if not self.active:
            self.active = True
            self._owner.set_holding(True)
        if start:
            self.start_settler()

    def start_settler(self) -> None:
        """Start the task that settles the backlog, unless it runs already."""
        settler = self._settler
        if self._waiting and (settler is None or settler.done()):
            # An empty context: the settler must not carry one request's contextualize().
            # Until close() begins its waits are RESUMABLE: cancelled (asyncio.run tearing the
            # loop down), the entry in hand goes back to the front of the backlog uncounted.
            self._settler = _runtime.current_loop().create_task(
                self._settle_backlog(), context=contextvars.Context()
            )
            if not self._refusing:
                RESUMABLE.add(self._settler)

    def settles_here(self) -> bool:
        """True in the settler itself (a handler of the write it is making logs again)."""
        token = INSIDE.get()
        return (token is not None and token is self._entry_token) or (
            self._settler is not None and _runtime.current_task() is self._settler
        )

    async def wait_behind(self, pending: Pending) -> bool:
        """A coroutine's entry behind the backlog: wait for its own turn, then its outcome."""
        loop = _runtime.current_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiting = Waiting(pending, True, loop.time(), future)
        self._join(waiting)
        try:
            return await future
        except _runtime.CANCELLED:
            if waiting in self._waiting:  # not taken yet: it never will be
                self._waiting.remove(waiting)
                self._owner.count_dropped(pending)
            raise  # taken: the settler settles it

    async def _settle_backlog(self) -> None:
        backlog = self._waiting
        settled = 0
        try:
            while backlog:
                settled += 1
                if settled % YIELD_EVERY == 0:
                    await _runtime.sleep(0)  # sync writes never suspend: let the loop breathe
                    if not backlog:
                        break
                waiting = backlog.popleft()
                self.in_hand = waiting
                self._entry_token = token = object()
                INSIDE.set(token)  # tasks a handler starts for this entry are inside it
                future = waiting.future
                try:
                    taken = await self._owner.settle(waiting.pending, waiting.held, waiting.since)
                except LogError as exc:  # counted where it was refused
                    if future is not None and not future.done():
                        future.set_exception(exc)
                except NotTaken as not_taken:  # cancelled while it waited: it stays pending
                    waiting.pending = cast(Pending, not_taken.pending)
                    backlog.appendleft(waiting)
                    raise
                except _runtime.CANCELLED:
                    if future is not None and not future.done():
                        future.set_exception(
                            ManagerClosedError(f"LogManager {self._name!r} closed first")
                        )
                    raise
                else:
                    if future is not None and not future.done():
                        future.set_result(taken)
                finally:
                    self.in_hand = self._entry_token = None
        finally:
            if not backlog:
                self.active = False
                self._owner.set_holding(False)

    # ---- closing and leftovers -------------------------------------------------------------

    def refuse_and_land(self) -> None:
        """Refuse new hand-ins; let those already handed in reach the loop."""
        with self._lock:
            self._refusing = True
        if self._settler is not None:
            RESUMABLE.discard(self._settler)  # close() settles, abandons and counts from now
        self._land()  # on the loop's thread: accept what is still waiting to land

    async def finish(self, deadline: float | None) -> int:
        """Let the settler settle the backlog until `deadline`; then stop it and count what is
        left dropped. Returns how many were abandoned."""
        self.start_settler()  # again, if the application cancelled it
        settler = self._settler
        abandoned = 0
        if settler is not None and not settler.done():
            loop = _runtime.current_loop()
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            await _runtime.wait({settler}, timeout=remaining)
            if not settler.done():
                in_hand = self.in_hand
                settler.cancel()
                await _runtime.wait({settler})
                if in_hand is not None and in_hand not in self._waiting:
                    abandoned += 1  # cancelled mid-write: counted dropped where it was
        while self._waiting:
            waiting = self._waiting.popleft()
            self._owner.count_dropped(waiting.pending)
            if waiting.future is not None and not waiting.future.done():
                waiting.future.set_exception(
                    ManagerClosedError(f"LogManager {self._name!r} closed first")
                )
            abandoned += 1
        if self.active:
            self.active = False
            self._owner.set_holding(False)
        return abandoned

    def take_all(self, extra: HandInArgs | None = None) -> list[Pending]:
        """No running loop (interpreter exit, or the loop has closed): accept what landed (and
        `extra`), and return everything in the backlog, in order, emptied. The caller writes it."""
        loop = self._loop
        assert loop is not None
        with self._lock:
            landing, self._landing = self._landing, collections.deque()
            landed = [*landing, *([] if extra is None else [(None, extra, loop.time())])]
            self._scheduled = False
        for context, args, since in landed:
            if context is None:
                self._accept(args, since, anywhere=True)
            else:
                context.run(self._accept, args, since, True)
        # The entry the settler had in hand first (waiting for room or for a lock): unless a
        # sink's leftovers hold it already, it is written with the rest.
        in_hand = [] if self.in_hand is None else [self.in_hand.pending]
        taken = [*in_hand, *(waiting.pending for waiting in self._waiting)]
        self._waiting.clear()
        self.in_hand = None
        if self.active:
            self.active = False
            self._owner.set_holding(False)
        return taken

    @property
    def waiting(self) -> int:
        """How many entries wait in the backlog (safe from any thread)."""
        return len(self._waiting)

    def count(self, matches: Callable[[Pending], bool]) -> int:
        """How many entries waiting in the backlog `matches` (for the stats; `deque.copy` is
        atomic, so another thread may ask while the loop changes the backlog)."""
        return sum(1 for waiting in self._waiting.copy() if matches(waiting.pending))
