"""`Intake`: everything that happens at the call, from `write_log(...)` to "queued" or "still
to settle". It is the one place that decides an entry's fate before the sinks take over:

    accept()   checks (state, thread), level filter, message, fields, the entry tuple,
               (processors, if any: `_processed`), captures, then each sink at or below the
               level `accept`s it
               -> None (queued, filtered) or a pending `(entry, sinks still to take it)`
    settle()   the awaited part of a pending entry: each remaining sink's `settle`
    hand_in()  the same from any thread, through the `Handoff`

It also owns the state of the manager (`State`) and the cache the level shortcuts read
(`thread`, `counters`, `put`), rebuilt by `refresh()` whenever the state changes.

Package-internal: `LogManager` and its views (`Logger`, `NoWait`, the stdlib bridge) use it through
`LogManager._intake`, a documented shared private.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Callable, Coroutine, Mapping
from threading import get_ident
from time import time
from typing import Any, Literal, TypeVar, cast

from . import _runtime
from ._callsite import caller_frame, checked_stacklevel, location_of, stack_text
from ._context import CONTEXT
from ._entry import LEVEL, NO_FIELDS, Entry, Location, as_log_entry
from ._errors import LogError, ManagerClosedError, QueueFullError
from ._format import PLAIN_ARGS, format_message
from ._freeze import IMMUTABLE, freeze_fields
from ._handoff import HandInArgs, Handoff
from ._levels import Gate, Level, level_of_name, parse_level
from ._otel import current_trace_fields, gives_trace, trace_imported, watch
from ._overflow import NotTaken
from ._processing import Chain
from ._registry import CAPTURES
from ._report import BurstReporter
from ._sanitize import bound_fields, exact_str, quick_fields, truncate
from ._sink import Pending, SinkRunner, never_queued
from ._tracebacks import format_exc_info

QUICK_LEVELS: dict[int, Level] = {int(level): level for level in Level}
"""The standard levels by number: `write_log` takes these inline, `hand_in` without parsing."""
QUICK_CLASSES = (Level, int)
"""The classes of a level looked up in `QUICK_LEVELS` (a bool or a float is parsed, and refused)."""

BACKLOG_LIMIT = 10_000
"""Handed-in entries (from threads, stdlib records) waiting for room: at least this many
(or ten queues' worth) are kept; more are counted dropped at once."""


class State(enum.Enum):
    """The manager's life: every "is it open?" question reads this."""

    NEW = "new"
    OPENING = "opening"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"
    FORKED = "forked"
    """This process is a child forked from the one that started the manager."""


class Intake:
    """The call side of one manager (see the module docstring)."""

    def __init__(
        self,
        name: str,
        sinks: tuple[SinkRunner, ...],
        *,
        sync: bool,
        max_entry_bytes: int,
        backlog_limit: int,
        reporter: BurstReporter,
        raise_errors: bool = False,
        chain: Chain | None = None,
        capture_location: bool = False,
        otel_context: bool = False,
        level: int = Level.DEBUG,
        levels: Mapping[str, int] | None = None,
    ) -> None:
        self.name = name
        self.chain = chain
        """The manager's processors (None: none)."""
        self.sink_processing = any(sink.chain is not None for sink in sinks)
        self.processing = chain is not None or self.sink_processing
        """Processors run at the call (the manager's or a sink's): every call takes `accept`."""
        self.preceding: dict[int, list[Pending]] = {}
        """Processors made several pending entries of one call: by id of the last one (the
        one the call settles), those to settle before it, in order."""
        self.capture_location = capture_location
        """Every entry gets the `Location` of its call (all calls then go through `accept`)."""
        self.otel_context = otel_context
        self.tracing = otel_context and trace_imported()
        """Every entry made in a span gets its ids (`_otel.py`; all calls go through `accept`):
        `Config(otel_context=True)` and the application imported `opentelemetry.trace`."""
        self.sinks = sinks
        self.sync = sync
        self.default_level = level
        self.levels: dict[str, int] = dict(levels or {})
        """Levels by logger name (`Config.levels`, then `set_level`)."""
        self.gates: dict[str, Gate] = {}
        """The gate of each logger name asked for (views, stdlib records), shared by views."""
        self.levels_lock = threading.RLock()
        """A gate made in a thread while `set_level` runs in another gets the new level
        (reentrant: a signal handler may make a view while its thread holds it)."""
        self.own_gate = self.gate(name)
        self.min_level = self.own_gate.level
        """The level of the manager's own calls (`lm.info`): its name's, and not below the
        lowest sink's (below every sink's level an entry goes nowhere)."""
        self.max_entry_bytes = max_entry_bytes
        self.quick_text_limit = max_entry_bytes // 4  # 4 bytes per char at most
        self.filtered = 0
        self.raise_errors = raise_errors
        """False: a call whose entry is dropped returns False; True: it raises."""
        self.settling = 0
        """Calls between the start and the end of `settle` (close() waits for them)."""
        self._idle: Any = None  # an asyncio.Event, or its trio equivalent
        self.state = State.NEW
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = -1
        self.holding = False
        """Sync mode, the backlog is not empty: a coroutine's direct write waits behind it."""
        self.only = sinks[0] if len(sinks) == 1 else None
        self.reporter = reporter
        self.handoff = Handoff(self, reporter, backlog_limit, name)
        self.direct_lock = threading.Lock()  # writes made while the loop is not running
        self.context_get = CONTEXT.get
        # The level shortcuts' cache (see refresh).
        self.thread = -1
        self.counters = self.only.counters if self.only is not None else None
        self.put: Callable[[Entry], bool] = self.only.put if self.only is not None else never_queued
        if otel_context and not self.tracing:
            watch(self)  # until the import, calls cost nothing more

    # ---- levels by logger name -------------------------------------------------------------

    def gate(self, logger: str) -> Gate:
        """The gate of `logger` (created on first use): the level of its name by
        `levels` (the longest dotted prefix), never below the lowest sink's."""
        gate = self.gates.get(logger)
        if gate is None:
            with self.levels_lock:  # a thread's hand_in may ask for the same name meanwhile
                gate = self.gates.get(logger)
                if gate is None:
                    gate = self.gates.setdefault(logger, Gate(self._level_of(logger)))
        return gate

    def _level_of(self, logger: str) -> int:
        named = level_of_name(logger, self.levels, self.default_level)
        return max(self._lowest_sink_level(), named)

    def _lowest_sink_level(self) -> int:
        """Below this level an entry goes to no sink."""
        return min(sink.min_level for sink in self.sinks)

    def set_level(self, logger: str, level: int) -> None:
        """From now on, `logger` and the names under it that have no level of their own are
        at `level`: the sinks' levels, every gate and the shortcuts' cache follow."""
        with self.levels_lock:
            self.levels[logger] = level
            lowest = min([self.default_level, *self.levels.values()])
            for sink in self.sinks:
                sink.follow_levels(lowest)
            for name, gate in self.gates.items():
                gate.level = self._level_of(name)
            self.min_level = self.own_gate.level
        self.refresh()

    def refresh(self) -> None:
        """Rebuild what the level shortcuts read from the state: `thread` is the loop's
        thread while running and no processor, location or trace context needs `accept`
        (else -1, which no thread has); `put` the one sink's quick way in. (`counters`, the
        one sink's counters or None with several sinks, never changes.)"""
        running = self.state is State.RUNNING
        if self.otel_context and not self.tracing:  # in case the import hook was not there
            self.tracing = trace_imported()
        # Processors, caller location and trace context need every call to go through accept.
        shortcut = (
            running and not self.processing and not self.capture_location and not self.tracing
        )
        self.thread = self.loop_thread if shortcut else -1
        self.put = self.only.put if self.only is not None else never_queued

    def trace_imported(self) -> None:
        """`opentelemetry.trace` is being imported (`_otel.watch`, maybe from another thread):
        from now on every call captures the trace context. The shortcuts' gate closes at once;
        a refresh on the loop's thread follows, so that one running meanwhile cannot reopen it."""
        self.tracing = True
        self.thread = -1
        loop = self.loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            if get_ident() == self.loop_thread:
                loop.call_soon(self.trace_import_ended)
            else:
                loop.call_soon_threadsafe(self.refresh)

    def trace_import_ended(self) -> None:
        """After an import of `opentelemetry.trace` that began on the loop's thread (it has
        ended by now): if it failed, or was only a look-up (`importlib.util.find_spec`), the
        calls take the shortcuts again and the next import is watched for. (One that began on
        another thread may still be under way: the trace context stays on.)"""
        if self.tracing and not trace_imported():
            self.tracing = False
            watch(self)
            self.refresh()

    def set_state(self, state: State) -> None:
        """Move to `state` and rebuild the shortcuts' cache."""
        self.state = state
        self.refresh()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop (and its thread) the manager runs on, set by `start()`."""
        self.loop = loop
        self.loop_thread = get_ident()
        self.handoff.bind(loop)
        _runtime.at_loop_end(loop, self._loop_ended)

    def _loop_ended(self) -> None:
        """The trio run that started the manager ended: no thread may await its calls now."""
        self.loop_thread = -1
        self.refresh()

    # ---- the call ------------------------------------------------------------------------

    def accept(
        self,
        level: object,
        message: object,
        fields: dict[str, Any],
        at: float | None = None,
        logger: str | None = None,
        bound: Mapping[str, Any] | None = None,
        exception: str | None = None,
        anywhere: bool = False,
        queue_now: bool = True,
        location: Location | None = None,
        args: tuple[Any, ...] = (),
        template: str | None = None,
        at_call: bool = True,
    ) -> Pending | Literal[False] | None:
        """The synchronous part of every call. `at`: the call's time when it was taken
        elsewhere (a thread, a stdlib record); `logger` overrides the manager's name; `bound`
        are a view's fields; `anywhere`: the caller may be on any thread; `queue_now`: False
        when the entry must not be queued past entries waiting in the backlog; `location`:
        the call's, when it was taken elsewhere; `args`: the `%` arguments of `message`
        (formatted here, once the level let it through); `template`: the template of a
        message formatted already (by `hand_in`); `at_call`: this runs in the caller's
        context (False for an entry handed in, whose trace context `hand_in` took).

        Returns None when the entry is queued everywhere, False when it is filtered out, else
        the pending entry for `settle`."""
        if self.state is not State.RUNNING:
            raise self.not_accepting_error()
        if get_ident() != self.loop_thread and not anywhere:  # 4x cheaper than the loop check
            raise self.wrong_thread_error()
        number = level if level.__class__ is Level else parse_level(level)
        if number < (self.min_level if logger is None else self.gate(logger).level):
            self.filtered += 1
            return False
        if type(message) is not str:  # not __class__: a property can fake that
            message = exact_str(message)
        if args:
            template, message = message, format_message(message, args)
        if len(message) > self.quick_text_limit:
            message = truncate(message, self.max_entry_bytes)
        if template is not None and len(template) > self.quick_text_limit:
            template = truncate(template, self.max_entry_bytes)
        context = self.context_get()
        trace = current_trace_fields() if self.tracing and at_call else None
        if fields or context or bound or exception:
            if trace is not None and not gives_trace(fields, context, bound):
                bound = {**trace, **bound} if bound else trace
            frozen, exception, location = self._merged(fields, context, bound, exception, location)
        else:
            frozen = NO_FIELDS if trace is None else trace  # made once per span, never changed
            if self.capture_location and location is None:
                location = location_of(caller_frame())
        entry: Entry = (
            time() if at is None else at,
            number,
            message,
            self.name if logger is None else logger,
            frozen,
            exception,
            template,
            location,
        )
        if self.processing:
            return self._processed(entry, queue_now)
        if CAPTURES:
            _capture(entry)
        counters = self.counters
        if counters is not None:  # one sink: SinkRunner.accept, inlined (every call runs it)
            counters.accepted += 1
            if queue_now and self.put(entry):
                return None
            self.sinks[0].owed += 1
            return (entry, self.sinks)
        return self._fan_out(entry, number, queue_now)

    def log_now(
        self,
        level: Level | int | str,
        message: object,
        args: tuple[Any, ...],
        fields: dict[str, Any],
        logger: str | None = None,
        bound: Mapping[str, Any] | None = None,
    ) -> bool:
        """A `nowait` call: never waits. On the loop's thread, `accept` and `settle_now`;
        from another thread, `hand_in` (True once handed in)."""
        if get_ident() != self.loop_thread:
            self.hand_in(level, message, fields, logger=logger, bound=bound, args=args)
            return True
        pending = self.accept(level, message, fields, None, logger, bound, args=args)
        if pending is None:
            return True
        if pending is False:
            return False
        return self.settle_now(pending)

    def settle_now(self, pending: Pending) -> bool:
        """Settle `pending` without waiting: each sink queues it (a priority entry in the
        reserve), writes it directly (sync mode, when that needs no awaiting) or drops it (a
        full queue); what would have to wait joins the backlog (sync mode behind entries
        already there, a priority entry once the reserve is full). True unless a sink
        dropped it (then `QueueFullError` with `raise_errors`)."""
        if self.holding:  # sync mode: not written past the entries in the backlog
            return self.handoff.join(pending)
        dropped: list[str] = []
        if self.preceding and id(pending) in self.preceding:  # processors made several
            for earlier in self.preceding.pop(id(pending)):
                dropped.extend(self._settled_now(earlier))
        dropped.extend(self._settled_now(pending))
        if not dropped:
            return True
        if self.raise_errors:
            names = ", ".join(repr(name) for name in dict.fromkeys(dropped))
            raise QueueFullError(f"log queue full (backend {names}): a nowait call does not wait")
        return False

    def _settled_now(self, pending: Pending) -> list[str]:
        """`settle_now` for one pending entry: the names of the sinks that dropped it."""
        entry, sinks = pending
        later: list[SinkRunner] = []
        dropped: list[str] = []
        for sink in sinks:
            sink.owed -= 1
            if sink.put(entry):  # held back behind an earlier entry of the call: room now
                continue
            outcome = sink.settle_now(entry)
            if outcome is None:
                sink.owed += 1
                later.append(sink)
            elif not outcome:
                dropped.append(sink.name)
        if later and not self.handoff.join((entry, tuple(later))):
            dropped.extend(sink.name for sink in later)
        return dropped

    def accept_quickly(
        self, level: int, message: str, args: tuple[Any, ...], fields: dict[str, Any]
    ) -> Pending | Literal[False] | None:
        """The shortcuts' way in for a call with `%` args or fields that is on their terms
        otherwise (see `level_method`): scalar fields are taken as they are and the message is
        formatted here; anything else goes to `accept`, which does the full job."""
        frozen = NO_FIELDS
        if fields:
            quick = quick_fields(fields, self.max_entry_bytes)
            if quick is None:
                return self.accept(level, message, fields, args=args)
            frozen = quick
        template = None
        if args:
            template = message
            if len(args) == 1 and type(args[0]) not in PLAIN_ARGS:  # maybe a mapping
                message = format_message(template, args)
            else:  # format_message's common case, inline
                try:
                    message = message % args
                except Exception:
                    message = format_message(template, args)  # the marker
            if type(message) is not str:
                message = str.__str__(message)
            if len(message) > self.quick_text_limit:
                message = truncate(message, self.max_entry_bytes)
        entry: Entry = (time(), level, message, self.name, frozen, None, template, None)
        self.sinks[0].counters.accepted += 1
        if self.put(entry):
            return None
        self.sinks[0].owed += 1
        return (entry, self.sinks)

    def _fan_out(self, entry: Entry, level: int, queue_now: bool) -> Pending | None:
        """Several sinks: each at or below `level` accepts the entry; those that could not
        queue it at once still owe it."""
        waiting = tuple(
            sink
            for sink in self.sinks
            if level >= sink.min_level and not sink.accept(entry, queue_now)
        )
        if not waiting:
            return None
        for sink in waiting:
            sink.owed += 1
        return (entry, waiting)

    # ---- processors (see _processing.py and docs/processors.md) ----------------------------

    def _processed(self, entry: Entry, queue_now: bool) -> Pending | Literal[False] | None:
        """`accept`'s end when processors run: the manager's, then captures and each sink
        (with its own processors). False when nothing was accepted anywhere."""
        chain = self.chain
        entries: list[Entry] = [entry] if chain is None else list(chain.run(as_log_entry(entry)))
        if len(entries) == 1 and not self.sink_processing:
            return self._to_sinks(entries[0], queue_now)
        pendings, accepted = self._deliver(entries, queue_now)
        if not accepted:
            return False
        return self._one_pending(pendings)

    def _to_sinks(self, entry: Entry, queue_now: bool) -> Pending | Literal[False] | None:
        """The common case of `_processed`: one entry, no sink with processors of its own."""
        if CAPTURES:
            _capture(entry)
        level = entry[LEVEL]
        only = self.only
        # A processor lowered its level below every sink's (not min_level: the manager's own
        # name's, above which the levels of other names may be).
        if level < (only.min_level if only is not None else self._lowest_sink_level()):
            self.filtered += 1
            return False
        if only is None:
            return self._fan_out(entry, level, queue_now)
        if only.accept(entry, queue_now):
            return None
        only.owed += 1
        return (entry, self.sinks)

    def _deliver(self, entries: list[Entry], queue_now: bool) -> tuple[list[Pending], bool]:
        """Each entry to the captures and to every sink at or below its level (through the
        sink's processors). The pendings, in order; and whether any sink accepted one."""
        pendings: list[Pending] = []
        accepted = False
        for entry in entries:
            if CAPTURES:
                _capture(entry)
            level = entry[LEVEL]
            waiting: list[SinkRunner] = []
            for sink in self.sinks:
                if level < sink.min_level:
                    continue
                if sink.chain is None:
                    accepted = True
                    if not sink.accept(entry, queue_now):
                        waiting.append(sink)
                    continue
                for own in sink.chain.run(as_log_entry(entry)):
                    accepted = True
                    if not sink.accept(own, queue_now):
                        sink.owed += 1
                        pendings.append((own, (sink,)))
            if waiting:
                for sink in waiting:
                    sink.owed += 1
                pendings.append((entry, tuple(waiting)))
            if pendings:
                queue_now = False  # what comes after a pending entry must not overtake it
        return pendings, accepted

    def _one_pending(self, pendings: list[Pending]) -> Pending | None:
        """What the call settles: the last pending entry, the others remembered before it."""
        if not pendings:
            return None
        last = pendings[-1]
        if len(pendings) > 1:
            self.preceding[id(last)] = pendings[:-1]
        return last

    def flush_processors(self) -> Pending | None:
        """At close, before the drain: what the processors still hold (their `flush()`), to
        the sinks. The pending part, for `settle_call`."""
        entries: list[Entry] = list(self.chain.flush()) if self.chain is not None else []
        pendings, _ = self._deliver(entries, True)
        for sink in self.sinks:
            if sink.chain is None:
                continue
            for own in sink.chain.flush():
                if not sink.accept(own, not pendings):
                    sink.owed += 1
                    pendings.append((own, (sink,)))
        return self._one_pending(pendings)

    async def _settle_preceding(self, pending: Pending, fast_first: bool, since: float) -> bool:
        """Settle the entries made by the same call before `pending`, then `pending`."""
        earlier = self.preceding[id(pending)]
        taken = True
        failure: LogError | None = None
        while earlier:
            try:
                taken = await self._settle(earlier[0], fast_first, since) and taken
            except LogError as exc:
                taken = False
                failure = failure or exc
            except NotTaken as not_taken:  # the backlog's settler, cancelled: it resumes later
                earlier[0] = cast(Pending, not_taken.pending)
                not_taken.pending = pending
                raise
            except BaseException:  # cancelled: the entries not reached are lost
                del earlier[0]
                self.count_dropped(pending)
                raise
            del earlier[0]
        del self.preceding[id(pending)]
        try:
            taken = await self._settle(pending, fast_first, since) and taken
        except LogError:
            if failure is None:
                raise
            taken = False
        if failure is not None:
            raise failure
        return taken

    def _with_preceding(self, pendings: list[Pending]) -> list[Pending]:
        """Each pending preceded by those remembered before it (taken out of `preceding`)."""
        expanded: list[Pending] = []
        for pending in pendings:
            expanded.extend(self.preceding.pop(id(pending), ()))
            expanded.append(pending)
        return expanded

    def _merged(
        self,
        fields: dict[str, Any],
        context: Mapping[str, Any] | None,
        bound: Mapping[str, Any] | None,
        exception: str | None,
        location: Location | None,
    ) -> tuple[Mapping[str, Any], str | None, Location | None]:
        """The entry's fields, traceback and location. Explicit fields win over `extra`'s,
        which win over context fields, which win over bound fields; the call's values are
        frozen (bound and context ones were when given); `exc_info`, `stack_info` and
        `stacklevel` (from any of them) are taken out and mean what they mean in logging."""
        if fields:
            immutable = IMMUTABLE
            for value in fields.values():  # scalars only, the common case: a check each
                if type(value) not in immutable:
                    fields = freeze_fields(fields)
                    break
            else:
                if "extra" in fields:  # extra=None
                    fields = freeze_fields(fields)
        if context or bound:
            fields = {**(bound or {}), **(context or {}), **fields}
        if "exc_info" in fields:
            exception = format_exc_info(fields.pop("exc_info")) or exception
        if "stack_info" in fields or "stacklevel" in fields or self.capture_location:
            exception, location = self._call_site(fields, exception, location)
        if exception is not None and len(exception) > self.quick_text_limit:
            exception = truncate(exception, self.max_entry_bytes)
        if not fields:
            return NO_FIELDS, exception, location
        bounded = bound_fields(fields, self.max_entry_bytes)
        return (fields if bounded is None else dict(bounded)), exception, location

    def _call_site(
        self, fields: dict[str, Any], exception: str | None, location: Location | None
    ) -> tuple[str | None, Location | None]:
        """Take `stacklevel` and `stack_info` out of `fields`: the stack of the caller (at
        that level) after the traceback, and its location when it is captured."""
        stacklevel = checked_stacklevel(fields.pop("stacklevel", 1))
        wants_stack = fields.pop("stack_info", False)
        if not wants_stack and (location is not None or not self.capture_location):
            return exception, location
        frame = caller_frame(stacklevel)
        if wants_stack:
            stack = stack_text(frame)
            if stack is not None:
                exception = stack if exception is None else f"{exception}\n{stack}"
        if self.capture_location and location is None:
            location = location_of(frame)
        return exception, location

    async def settle_call(self, pending: Pending) -> bool:
        """The awaited part of a call whose entry was not queued at once: behind the backlog
        (sync mode, while it holds entries), else each remaining sink in turn. True when
        every sink took it; False when one dropped it (with `raise_errors`, that raises)."""
        try:
            if self.holding and not self._settles_here():
                return await self.handoff.wait_behind(pending)
            return await self.settle(pending, False, 0.0)
        except LogError:  # counted and reported where it happened
            if self.raise_errors:
                raise
            return False

    def _settles_here(self) -> bool:
        """A handler of a write in progress logs again: it must not wait for itself."""
        return self.handoff.settles_here() or any(
            sink.lock.held_by_current_task() for sink in self.sinks
        )

    async def settle(self, pending: Pending, fast_first: bool, since: float) -> bool:
        """Give the entry to each sink that still has to take it (a full or failing one
        raises only after the others have it). `fast_first`: it was held back from the
        queues, so try the quick way first. `since`: the loop time it joined the backlog
        (its wait for room counts from then)."""
        self.settling += 1
        try:
            if self.preceding and id(pending) in self.preceding:
                return await self._settle_preceding(pending, fast_first, since)
            return await self._settle(pending, fast_first, since)
        finally:
            self.settling -= 1
            if not self.settling and self._idle is not None:
                self._idle.set()

    async def wait_idle(self, deadline: float | None) -> None:
        """Until no call is settling an entry (a sync write to a later sink, say), or
        `deadline` (loop time): `close()` must not close a backend under a write."""
        if not self.settling:
            return
        self._idle = self._idle or _runtime.Event()
        self._idle.clear()
        with contextlib.suppress(TimeoutError):
            async with _runtime.timeout_at(deadline):
                while self.settling:
                    await self._idle.wait()
                    self._idle.clear()

    async def _settle(self, pending: Pending, fast_first: bool, since: float) -> bool:
        entry, sinks = pending
        waited = (self.loop or _runtime.current_loop()).time() - since if since else 0.0
        failure: LogError | None = None
        taken = True
        settler = self.handoff.settles_here()
        for index, sink in enumerate(sinks):
            if settler:
                self.handoff.turn = index
            sink.owed -= 1  # its turn: from here the sink's own figures hold the entry
            if fast_first and sink.put(entry):
                continue
            try:
                taken = await sink.settle(entry, waited) and taken
            except LogError as exc:
                taken = False
                failure = failure or self._naming_the_others(exc, entry, sink)
            except NotTaken as not_taken:  # the handoff's settler, cancelled: it keeps the rest
                sink.owed += 1
                not_taken.pending = (entry, sinks[index:])
                raise
            except BaseException:  # cancelled: the sinks not reached never get it
                for later in sinks[index + 1 :]:
                    later.owed -= 1
                    later.counters.drop(1)
                raise
        if failure is not None:
            raise failure
        return taken

    def _naming_the_others(self, error: LogError, entry: Entry, failed: SinkRunner) -> LogError:
        """With several sinks, `error` says which of the others have the entry."""
        if self.only is not None:
            return error
        others = [
            sink.name
            for sink in self.sinks
            if sink is not failed and entry[LEVEL] >= sink.min_level
        ]
        took = ", ".join(repr(name) for name in others) or "none"
        renamed = type(error)(f"{error}; the other backends at its level: {took}")
        renamed.__cause__ = error.__cause__
        return renamed

    # ---- from any thread (the Handoff's owner protocol) ------------------------------------

    def hand_in(
        self,
        level: Level | int | str,
        message: object,
        fields: dict[str, Any],
        *,
        at: float | None = None,
        logger: str | None = None,
        bound: Mapping[str, Any] | None = None,
        exception: str | None = None,
        location: Location | None = None,
        args: tuple[Any, ...] = (),
        template: str | None = None,
        trace: Mapping[str, Any] | None = None,
    ) -> None:
        """`write_log_threadsafe`'s work: take the time, the frozen values, the traceback,
        the call site and the trace context here, and format the message with `args` (they
        may change once this returns), then hand the entry to the loop (or write it now, with
        what is left, when the loop has closed). `location`: the call's, when known (a stdlib
        record); `template`: the template of a message formatted already (asynclog.structlog);
        `trace`: the trace fields taken when the call was made (a stdlib record held before
        the manager started; empty: no span was current)."""
        # A `Level`, or stdlib's levelno: a dict look-up, no parsing.
        quick: int | None = QUICK_LEVELS.get(level) if level.__class__ in QUICK_CLASSES else None
        number = quick if quick is not None else parse_level(level)
        loop = self.loop
        if loop is None or self.state is not State.RUNNING:
            raise self.not_accepting_error()
        fields = freeze_fields(fields)  # here, in the calling thread
        if "exc_info" in fields:  # the traceback dies with the caller's frame: format it here
            exception = format_exc_info(fields.pop("exc_info")) or exception
        if "stack_info" in fields or "stacklevel" in fields or self.capture_location:
            exception, location = self._call_site(fields, exception, location)
        gate = self.min_level if logger is None else self.gate(logger).level
        if number >= gate:  # filtered out: nothing is formatted
            if type(message) is not str:  # its __str__ may read what changes once we return
                message = exact_str(message)
            if args:
                template, message = message, format_message(message, args)
        at = time() if at is None else at
        if (trace is not None or self.tracing) and not gives_trace(
            fields, bound, self.context_get()
        ):  # a trace key the user gives leaves out the span's whole
            if trace is not None:  # taken earlier, maybe before this manager's config was known
                if trace and self.otel_context:
                    bound = {**trace, **bound} if bound else trace
            else:  # the caller's span, not the loop's
                bound = _with_trace(bound)
        handed = (number, message, fields, at, logger, bound, exception, template, location)
        if not self.handoff.hand_in(handed, on_loop=_running_loop() is loop):
            with self.direct_lock:  # the loop has closed: write it (and what is left) now
                self.write_leftovers_now(self.take_leftovers(handed))

    def take_record(
        self,
        level: int,
        message: object,
        args: tuple[Any, ...],
        fields: dict[str, Any],
        at: float,
        logger: str,
        exception: str | None,
        location: Location | None,
    ) -> None:
        """A stdlib record (asynclog.stdlib): `take_plain` for the common one (no fields, no
        traceback, no call site), else `hand_in`, or, on the loop's own thread while nothing
        waits in the handoff (no trace to take, no call site to find), `accept` there and then
        as `hand_in` would have it accepted."""
        if (
            not fields
            and exception is None
            and location is None
            and self.take_plain(level, message, args, at, logger)
        ):
            return
        quick = QUICK_LEVELS.get(level)
        if (
            quick is None
            or fields
            or self.tracing
            or self.capture_location
            or get_ident() != self.loop_thread
            or self.state is not State.RUNNING
            or not self.handoff.idle()
            # running, on its thread (above): `_running_loop()` is a system call on 3.11
            or (loop := self.loop) is None
            or not loop.is_running()
        ):
            self.hand_in(
                level,
                message,
                fields,
                at=at,
                logger=logger,
                exception=exception,
                location=location,
                args=args,
            )
            return
        try:
            pending = self.accept(quick, message, fields, at, logger, None, exception, args=args)
        except (LogError, TypeError, ValueError) as exc:  # as the handoff reports it
            self.reporter.failure("write_log_threadsafe", f"{message!r} refused: {exc}")
            return
        if pending:
            self.handoff.join(pending, held=False)

    def take_plain(
        self, level: int, message: object, args: tuple[Any, ...], at: float, logger: str
    ) -> bool:
        """A plain stdlib call or record (a web server's access line: one a request; no
        fields, no traceback, no call site) accepted here and now, with `accept`'s work
        inlined as in the level shortcuts, when their conditions hold: a standard level, on
        the loop's thread while it runs, no processor, location or trace, one sink, nothing
        waiting in the handoff. False when nothing was done: the caller takes the long way.
        Nothing here logs, so the bridge needs no guard against re-entry around it."""
        quick = QUICK_LEVELS.get(level)
        if (
            quick is None
            or get_ident() != self.thread  # running, no processor, location or trace (refresh)
            or (counters := self.counters) is None  # several sinks
            or CAPTURES
            or type(message) is not str
            or len(message) > self.quick_text_limit
            or not self.handoff.idle()
            # on its thread (above), but maybe stopped: `_running_loop()` is a system call on 3.11
            or (loop := self.loop) is None
            or not loop.is_running()
            or self.context_get()
        ):
            return False
        gate = self.gates.get(logger) or self.gate(logger)
        if quick < gate.level:
            self.filtered += 1
            return True
        if args:
            text = format_message(message, args)
            if len(text) > self.quick_text_limit:
                return False  # `accept` cuts it to the bound
            entry: Entry = (at, quick, text, logger, NO_FIELDS, None, message, None)
        else:
            entry = (at, quick, message, logger, NO_FIELDS, None, None, None)
        counters.accepted += 1
        if not self.put(entry):
            self.sinks[0].owed += 1
            self.handoff.join((entry, self.sinks), held=False)
        return True

    def accept_handed_in(
        self, args: HandInArgs, anywhere: bool, hold: bool
    ) -> Pending | Literal[False] | None:
        """`accept` for an entry handed in; `hold`: it must not be queued past the backlog."""
        level, message, fields, at, logger, bound, exception, template, location = args
        return self.accept(
            level,
            message,
            fields,
            at,
            logger,
            bound,
            exception,
            anywhere,
            queue_now=not hold,
            template=template,
            location=location,
            at_call=False,
        )

    def count_dropped(self, pending: Pending) -> None:
        """Count a pending entry dropped on every sink that still had to take it (and the
        entries its call made before it)."""
        if self.preceding:
            for earlier in self.preceding.pop(id(pending), ()):
                self.count_dropped(earlier)
        for sink in pending[1]:
            sink.owed -= 1
            sink.counters.drop(1)

    def set_holding(self, active: bool) -> None:
        """Sync mode: while the backlog holds entries, a coroutine's direct write joins it.
        Async mode keeps its fast path: a coroutine's entry only waits behind handed-in ones
        when they wait for room in the same queue."""
        if self.sync:
            self.holding = active

    # ---- no running loop -----------------------------------------------------------------

    def take_leftovers(self, extra: HandInArgs | None = None) -> list[list[Entry]]:
        """No running loop: per sink, what its worker left (in hand, queued), then the backlog
        (and `extra`, an entry handed in now). The caller holds `direct_lock`."""
        leftovers = [sink.leftovers() for sink in self.sinks]
        taken = [{id(entry) for entry in entries} for entries in leftovers]
        in_hand = self.handoff.in_hand
        settling = None if in_hand is None else in_hand.pending
        turn = self.handoff.turn
        pendings = self.handoff.take_all(extra)
        if self.preceding:  # several entries of one call: the settler may be on an earlier one
            earlier = self.preceding.get(id(settling)) if settling is not None else None
            settling = earlier[0] if earlier else settling
            pendings = self._with_preceding(pendings)
        for pending in pendings:
            entry, sinks = pending
            # Written (or dropped) at exit with the sinks' leftovers: owed no more, except by
            # the sinks whose turn had come already (the settler's entry in hand).
            # The settler's entry in hand: the sinks before its turn have it already, the one
            # at its turn holds it in its own leftovers (queued, waiting for room or the lock).
            in_hands = settling is not None and pending is settling
            first = turn if in_hands else 0
            for sink in sinks[turn + 1 if in_hands else 0 :]:
                sink.owed -= 1
            for index, sink in enumerate(self.sinks):
                if sink in sinks[first:] and id(entry) not in taken[index]:
                    leftovers[index].append(entry)
        return leftovers

    def inside_pipeline(self) -> bool:
        """True in a task of this manager's own pipeline: a worker, the backlog's settler, or
        a handler or backend of a write in progress."""
        return self.handoff.settles_here() or any(sink.runs_here() for sink in self.sinks)

    def forked(self) -> None:
        """In a child process after `fork()`: this copy is disabled (the parent keeps its
        queues and writes them); every call raises, naming fork."""
        self.state = State.FORKED
        self.refresh()
        for sink in self.sinks:
            sink.forget_queued()

    def write_leftovers_now(self, leftovers: list[list[Entry]]) -> None:
        """No running loop: each sink writes its leftovers synchronously."""
        for sink, entries in zip(self.sinks, leftovers, strict=True):
            sink.writer.write_at_exit(entries)
            sink.settle_ended()  # the backend's exit write let its thread end first

    # ---- errors --------------------------------------------------------------------------

    def not_accepting_error(self) -> ManagerClosedError:
        """The error of a call made before `start()` or after `close()` began."""
        if self.state in (State.NEW, State.OPENING):
            return ManagerClosedError(
                f"LogManager {self.name!r} is not started; use `async with LogManager(config)` "
                "or `await lm.start()`"
            )
        if self.state is State.FORKED:
            return ManagerClosedError(
                f"LogManager {self.name!r} was inherited through fork(): this process must "
                "create and start its own LogManager (the parent writes its own entries)"
            )
        return ManagerClosedError(f"LogManager {self.name!r} is closed")

    def wrong_thread_error(self) -> LogError:
        """The error of a coroutine call from a thread that is not the manager's loop's."""
        if _runtime.loop_ended(self.loop):
            return LogError(
                f"LogManager {self.name!r} was started in a trio run that has ended; start a "
                "LogManager in the run that logs (`async with LogManager(config)` in it)"
            )
        return LogError(
            f"write_log of LogManager {self.name!r} was called from a thread other than the one "
            "running the event loop that started it; use lm.write_log_threadsafe(...) there"
        )


def _with_trace(bound: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """`bound` with the current span's ids under it: every field the user gives wins."""
    trace = current_trace_fields()
    if trace is None:
        return bound
    return {**trace, **bound} if bound else trace


def _capture(entry: Entry) -> None:
    """Every open `capture_logs()` gets the entry as a `LogEntry`."""
    captured = as_log_entry(entry)
    for capture in CAPTURES:
        capture.append(captured)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    return _runtime.running_loop()


_Method = TypeVar("_Method", bound=Callable[..., Coroutine[Any, Any, bool]])


# The shortcut's one source, compiled for each kind of call: the level methods (`{level}` is
# the method's own constant), `write_log` (the level is an argument, checked on the quick
# path) and `NoWait`'s level methods (a plain function: no await, the slow way is `log_now`).
# One source, so they cannot drift apart; generated, so none pays a call into another.
_SHORTCUT = """
def make_shortcut(level):
    {kind}def shortcut(self, {level_parameter}message, /, *args, **fields):
        intake = self._intake
        counters = intake.counters
        if (
            get_ident() != intake.thread  # not running (-1), or another thread
            {level_check}
            or {level} < intake.min_level
            or type(message) is not str
            or len(message) > intake.quick_text_limit
            or counters is None  # several sinks
            or CAPTURES
            or intake.context_get()
        ):
            {slow_way}
        elif args or fields:  # the quick way for `%` args and scalar fields, else accept
            pending = intake.accept_quickly({level}, message, args, fields)
            if pending is None:
                return True
            if pending is False:
                return False
        else:
            entry = (time(), {level}, message, intake.name, NO_FIELDS, None, None, None)
            counters.accepted += 1
            if intake.put(entry):
                return True
            intake.sinks[0].owed += 1
            pending = (entry, intake.sinks)
        return {settle}(pending)
    return shortcut
"""

_ACCEPT = """pending = intake.accept(level, message, fields, args=args)
            if pending is None:
                return True
            if pending is False:
                return False"""

# `write_log`'s level: a `Level`, or an int of a standard level (a bool, a float equal to one
# or a custom number is parsed by `accept`, which also raises for bad ones). A `Level` is taken
# as it is: a tuple membership test and a dict lookup (whose int key is compared with an int
# subclass, the slow way) made `write_log` cost more than `info`.
_WRITE_LOG_LEVEL_CHECK = (
    "or (number := level if level.__class__ is Level"
    " else QUICK_LEVELS.get(level) if level.__class__ is int else None) is None"
)


_Stub = TypeVar("_Stub", bound=Callable[..., Any])


def _shortcut(stub: _Stub, level: Level | None, nowait: bool = False) -> _Stub:
    """Compile `_SHORTCUT` for `level` (None: `write_log`, the level is the first argument;
    `nowait`: `NoWait`'s plain function) and give it the stub's name, signature and docstring
    (what users see)."""
    if nowait:
        parts = {
            "kind": "",
            "level_parameter": "",
            "level_check": "or not self._plain  # a view's",
            "level": "level",
            "slow_way": (
                "return intake.log_now(level, message, args, fields, self._logger, self._fields)"
            ),
            "settle": "intake.settle_now",
        }
    else:
        parts = {
            "kind": "async ",
            "level_parameter": "" if level is not None else "level, ",
            "level_check": "" if level is not None else _WRITE_LOG_LEVEL_CHECK,
            "level": "level" if level is not None else "number",
            "slow_way": _ACCEPT,
            "settle": "await intake.settle_call",
        }
    source = _SHORTCUT.format(**parts)
    # Compiled against this module's globals (a test or a debugger patching `_intake.time`
    # reaches the shortcut too), under this file's name (`_callsite` tells asynclog's own
    # frames by their file name); `level` is a closure cell, as in a hand-written one.
    filename = f"{__file__} (the shortcut of {stub.__qualname__})"
    made: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), globals(), made)
    log = made["make_shortcut"](level)
    log.__name__, log.__qualname__ = stub.__name__, stub.__qualname__
    log.__doc__, log.__annotations__ = stub.__doc__, stub.__annotations__
    log.__module__ = stub.__module__
    return cast(_Stub, log)


def level_method(level: Level) -> Callable[[_Method], _Method]:
    """Replace the decorated stub of `LogManager` (its signature and docstring are what users
    see) by the shortcut for `level`: `write_log`'s work with the common case inlined.

    A plain entry (a str message, no fields, no context, no capture, one sink whose queue has
    room) is built and queued right here, with `SinkRunner.accept` inlined: a call to
    `Intake.accept` as well would cost a quarter more per call. `%` args and scalar fields go
    through `Intake.accept_quickly`; everything else through `Intake.accept`, which does the
    full job. The code is `_SHORTCUT`.
    """

    def replace(stub: _Method) -> _Method:
        return _shortcut(stub, level)

    return replace


def write_log_method(stub: _Method) -> _Method:
    """Replace the stub of `LogManager.write_log` by the same shortcut as the level methods',
    with the level checked on the quick path (a `Level` or a standard level's int)."""
    return _shortcut(stub, None)


_Plain = TypeVar("_Plain", bound=Callable[..., bool])


def nowait_method(level: Level) -> Callable[[_Plain], _Plain]:
    """Replace the decorated stub of `NoWait` by the same shortcut in a plain function: an
    entry that cannot be queued at once is settled without waiting (`settle_now`), and the
    slow way is `Intake.log_now`. Only the manager's own `nowait` takes the inline path (a
    view's has a logger name or bound fields)."""

    def replace(stub: _Plain) -> _Plain:
        return _shortcut(stub, level, nowait=True)

    return replace
