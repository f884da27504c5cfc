"""Unit tests of `asynclog._handoff.Handoff` with a small fake `Owner` that records every call:
hand-ins from threads and from the loop, landing, the backlog and its settler, the backlog
limit, `refuse_and_land`, `finish(deadline)`, `take_all(extra)` and `wait_behind`."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from asynclog import Level, LogError, ManagerClosedError
from asynclog._entry import EMPTY_FIELDS, MESSAGE, Entry
from asynclog._handoff import YIELD_EVERY, HandInArgs, Handoff
from asynclog._report import BurstReporter
from asynclog._sink import Pending

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("unit_handoff_var")


def _args(message: str) -> HandInArgs:
    return (Level.INFO, message, {}, time.time(), None, None, None)


def _pending(message: str) -> Pending:
    entry: Entry = (time.time(), Level.INFO, message, "unit", EMPTY_FIELDS, None, None, None)
    return (entry, ())


def _message(pending: Pending) -> str:
    return pending[0][MESSAGE]


class FakeOwner:
    """Implements the `Owner` protocol and records each call. Every accepted entry stays
    pending (joins the backlog) unless `queue_all`; `settle` waits for `gate` if one is set."""

    def __init__(self, *, queue_all: bool = False, gate: asyncio.Event | None = None) -> None:
        self.queue_all = queue_all
        self.gate = gate
        self.refuse: set[str] = set()
        self.fail: dict[str, LogError] = {}
        self.accepted: list[tuple[str, bool, bool]] = []  # (message, anywhere, hold)
        self.accept_context: list[str | None] = []
        self.settled: list[tuple[str, bool, float]] = []  # (message, fast_first, since)
        self.settle_context: list[str | None] = []
        self.cancelled: list[str] = []
        self.dropped: list[str] = []
        self.holding: list[bool] = []

    def accept_handed_in(self, args: HandInArgs, anywhere: bool, hold: bool) -> Pending | None:
        message = args[1]
        if message in self.refuse:
            raise LogError("refused by the owner")
        self.accepted.append((message, anywhere, hold))
        self.accept_context.append(VAR.get(None))
        if self.queue_all:
            return None
        entry: Entry = (args[3], args[0], message, "unit", EMPTY_FIELDS, None, None, None)
        return (entry, ())

    async def settle(self, pending: Pending, fast_first: bool, since: float) -> None:
        message = _message(pending)
        self.settle_context.append(VAR.get(None))
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(message)
                raise
        if message in self.fail:
            raise self.fail[message]
        self.settled.append((message, fast_first, since))

    def count_dropped(self, pending: Pending) -> None:
        self.dropped.append(_message(pending))

    def set_holding(self, active: bool) -> None:
        self.holding.append(active)

    @property
    def accepted_messages(self) -> list[str]:
        return [message for message, _, _ in self.accepted]

    @property
    def settled_messages(self) -> list[str]:
        return [message for message, _, _ in self.settled]


def _handoff(owner: FakeOwner, limit: int = 1000, loop: Any = None) -> Handoff:
    handoff = Handoff(owner, BurstReporter("unit"), limit, "unit")
    handoff.bind(loop if loop is not None else asyncio.get_running_loop())
    return handoff


def _from_thread(handoff: Handoff, *messages: str) -> list[object]:
    """Hand `messages` in from a new thread (joined before returning): each result or error."""
    results: list[object] = []

    def run() -> None:
        for message in messages:
            try:
                results.append(handoff.hand_in(_args(message), on_loop=False))
            except Exception as exc:
                results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive()
    return results


async def _until(condition: Any, seconds: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


# ---- handing in and landing ---------------------------------------------------------------


async def test_entries_from_several_threads_land_in_hand_in_order_per_thread() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner)
    threads, per_thread = 4, 50
    barrier = threading.Barrier(threads, timeout=5.0)

    def run(index: int) -> list[bool]:
        barrier.wait()
        return [handoff.hand_in(_args(f"t{index}-{n}"), on_loop=False) for n in range(per_thread)]

    results = await asyncio.gather(*(asyncio.to_thread(run, i) for i in range(threads)))
    assert all(all(result) for result in results)
    await _until(lambda: len(owner.settled) == threads * per_thread)
    accepted = owner.accepted_messages
    assert len(accepted) == threads * per_thread
    for index in range(threads):
        mine = [m for m in accepted if m.startswith(f"t{index}-")]
        assert mine == [f"t{index}-{n}" for n in range(per_thread)]
    assert owner.settled_messages == accepted, "the backlog is settled in landing order"
    for index in range(threads):
        since = [s for m, _, s in owner.settled if m.startswith(f"t{index}-")]
        assert since == sorted(since)
    assert owner.holding[0] is True and owner.holding[-1] is False
    assert not handoff.active
    assert handoff.waiting == 0


async def test_a_hand_in_on_the_loop_thread_lands_what_threads_handed_in_first() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner)
    assert _from_thread(handoff, "A", "B") == [True, True]
    assert owner.accepted == []  # not landed: the loop has not run since
    assert handoff.hand_in(_args("C"), on_loop=True) is True
    assert owner.accepted_messages == ["A", "B", "C"]
    await _until(lambda: len(owner.settled) == 3)
    await asyncio.sleep(0.01)  # the callback scheduled for A and B finds nothing left
    assert owner.accepted_messages == ["A", "B", "C"]
    assert owner.settled_messages == ["A", "B", "C"]


async def test_entries_landing_behind_a_non_empty_backlog_are_held() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner)
    _from_thread(handoff, "m0", "m1", "m2")
    await _until(lambda: len(owner.settled) == 3)
    assert owner.accepted == [("m0", False, False), ("m1", False, True), ("m2", False, True)]
    assert [fast for _, fast, _ in owner.settled] == [False, True, True]
    assert owner.holding == [True, False]


async def test_entries_the_owner_settles_at_once_never_join_the_backlog() -> None:
    owner = FakeOwner(queue_all=True)
    handoff = _handoff(owner)
    _from_thread(handoff, "m0", "m1")
    await _until(lambda: len(owner.accepted) == 2)
    await asyncio.sleep(0.01)
    assert owner.accepted == [("m0", False, False), ("m1", False, False)]
    assert (owner.settled, owner.holding, handoff.waiting) == ([], [], 0)


async def test_an_entry_the_owner_refuses_is_reported_and_the_rest_go_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    owner = FakeOwner()
    owner.refuse.add("bad")
    handoff = _handoff(owner)
    assert _from_thread(handoff, "m0", "bad", "m1") == [True, True, True]
    await _until(lambda: len(owner.settled) == 2)
    assert owner.settled_messages == ["m0", "m1"]
    assert (
        "asynclog[unit]: write_log_threadsafe failed: 'bad' refused: refused by the owner"
        in capsys.readouterr().err
    )


async def test_the_callers_context_travels_with_the_entry_but_not_into_the_settler() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner)
    VAR.set("loop")

    def run() -> None:
        VAR.set("first")
        handoff.hand_in(_args("m0"), on_loop=False)
        VAR.set("second")  # both land in one callback: each in its own caller's context
        handoff.hand_in(_args("m1"), on_loop=False)

    await asyncio.to_thread(run)
    await _until(lambda: len(owner.settled) == 2)
    assert owner.accept_context == ["first", "second"]
    assert owner.settle_context == [None, None]  # an empty context


async def test_the_settler_gives_the_loop_a_turn_every_yield_every_entries() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner, limit=10_000)
    total = 3 * YIELD_EVERY + 8
    for index in range(total):
        handoff.hand_in(_args(f"m{index}"), on_loop=False)
    observed: list[int] = []
    while len(owner.settled) < total:
        observed.append(len(owner.settled))
        await asyncio.sleep(0)
        assert len(observed) < 1000
    assert YIELD_EVERY - 1 in observed
    assert owner.settled_messages == [f"m{index}" for index in range(total)]


# ---- refusing, a closed loop, the backlog limit -------------------------------------------


async def test_after_refuse_and_land_hand_in_raises_manager_closed() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner)
    assert _from_thread(handoff, "before") == [True]
    handoff.refuse_and_land()
    assert owner.accepted_messages == ["before"]  # landed at once, on the loop's thread
    (error,) = _from_thread(handoff, "after")
    assert isinstance(error, ManagerClosedError)
    assert str(error) == "LogManager 'unit' is closing"
    await _until(lambda: len(owner.settled) == 1)
    assert owner.accepted_messages == ["before"]
    assert owner.settled_messages == ["before"]


def test_hand_in_returns_false_once_the_loop_is_closed() -> None:
    owner = FakeOwner()
    loop = asyncio.new_event_loop()
    handoff = _handoff(owner, loop=loop)
    loop.close()
    assert handoff.hand_in(_args("m0"), on_loop=False) is False
    assert _from_thread(handoff, "m1") == [False]
    assert owner.accepted == []
    assert handoff.take_all() == []


async def test_the_backlog_limit_counts_the_excess_dropped() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner, limit=2)
    for index in range(5):
        assert handoff.hand_in(_args(f"m{index}"), on_loop=False)
    await _until(lambda: len(owner.settled) == 2)
    await asyncio.sleep(0.01)
    assert owner.accepted_messages == [f"m{index}" for index in range(5)]
    assert owner.dropped == ["m2", "m3", "m4"]
    assert owner.settled_messages == ["m0", "m1"]


# ---- finish -------------------------------------------------------------------------------


async def test_finish_without_a_deadline_lets_the_settler_settle_everything() -> None:
    owner = FakeOwner(gate=asyncio.Event())
    handoff = _handoff(owner)
    _from_thread(handoff, "m0", "m1", "m2")
    await _until(lambda: handoff.in_hand is not None)
    assert owner.gate is not None
    asyncio.get_running_loop().call_later(0.02, owner.gate.set)
    assert await asyncio.wait_for(handoff.finish(None), 1.0) == 0
    assert owner.settled_messages == ["m0", "m1", "m2"]
    assert owner.dropped == []
    assert owner.holding == [True, False]


async def test_finish_at_the_deadline_abandons_what_is_left_and_returns_the_count() -> None:
    owner = FakeOwner(gate=asyncio.Event())  # never set: a stalled backend
    handoff = _handoff(owner)
    _from_thread(handoff, "m0", "m1", "m2")
    await _until(lambda: handoff.in_hand is not None)
    assert handoff.waiting == 2
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await handoff.finish(loop.time() + 0.05) == 3
    assert 0.04 <= loop.time() - began < 0.5
    assert owner.cancelled == ["m0"]  # in hand: its own route counts it when cancelled
    assert owner.dropped == ["m1", "m2"]
    assert owner.settled == []
    assert owner.holding == [True, False]
    assert (handoff.active, handoff.waiting, handoff.in_hand) == (False, 0, None)


async def test_finish_with_nothing_handed_in_returns_zero() -> None:
    owner = FakeOwner()
    handoff = _handoff(owner)
    assert await handoff.finish(asyncio.get_running_loop().time()) == 0
    assert (owner.dropped, owner.holding) == ([], [])


# ---- take_all -----------------------------------------------------------------------------


def test_take_all_after_the_loop_closed_accepts_what_landed_then_extra_in_order() -> None:
    owner = FakeOwner()
    loop = asyncio.new_event_loop()
    try:
        handoff = _handoff(owner, loop=loop)
        assert _from_thread(handoff, "m0", "m1") == [True, True]  # the loop never runs again
    finally:
        loop.close()
    assert _from_thread(handoff, "m2") == [False]  # the caller writes it (as extra)
    taken = handoff.take_all(_args("m2"))
    assert [_message(pending) for pending in taken] == ["m0", "m1", "m2"]
    assert owner.accepted == [("m0", True, True), ("m1", True, True), ("m2", True, True)]
    assert owner.holding == [True, False]
    assert (owner.settled, owner.dropped) == ([], [])
    assert (handoff.waiting, handoff.active) == (0, False)
    assert handoff.take_all() == []


async def test_take_all_returns_the_backlog_then_the_landing_then_extra() -> None:
    owner = FakeOwner(gate=asyncio.Event())
    handoff = _handoff(owner)
    _from_thread(handoff, "A", "B", "C")
    await _until(lambda: handoff.in_hand is not None)  # A in the settler's hand
    assert handoff.waiting == 2
    assert handoff.count(lambda pending: _message(pending) == "C") == 1
    _from_thread(handoff, "D")  # handed in, not landed yet
    # take_all is called with no loop running: the settler never resumes, so the entry in
    # its hand (A) is taken first, with the rest.
    taken = handoff.take_all(_args("E"))
    assert [_message(pending) for pending in taken] == ["A", "B", "C", "D", "E"]
    assert [(m, anywhere) for m, anywhere, _ in owner.accepted[3:]] == [("D", True), ("E", True)]
    assert handoff.waiting == 0
    assert handoff.in_hand is None
    assert not handoff.active
    assert owner.holding == [True, False]


# ---- wait_behind (a coroutine's entry behind the backlog) ---------------------------------


async def test_wait_behind_waits_for_its_turn_then_returns() -> None:
    owner = FakeOwner(gate=asyncio.Event())
    handoff = _handoff(owner)
    _from_thread(handoff, "A")
    await _until(lambda: handoff.in_hand is not None)
    behind = asyncio.create_task(handoff.wait_behind(_pending("X")))
    await asyncio.sleep(0.01)
    assert not behind.done()
    assert handoff.waiting == 1
    assert owner.gate is not None
    owner.gate.set()
    await asyncio.wait_for(behind, 1.0)
    assert owner.settled_messages == ["A", "X"]
    assert owner.settled[1][1] is True  # held back from the queues: the quick way first


async def test_wait_behind_raises_what_the_settle_raised() -> None:
    owner = FakeOwner()
    owner.fail["X"] = LogError("log queue full")
    handoff = _handoff(owner)
    with pytest.raises(LogError, match=r"^log queue full$"):
        await asyncio.wait_for(handoff.wait_behind(_pending("X")), 1.0)
    assert owner.holding == [True, False]


async def test_wait_behind_cancelled_before_its_turn_counts_it_dropped() -> None:
    owner = FakeOwner(gate=asyncio.Event())
    handoff = _handoff(owner)
    _from_thread(handoff, "A")
    await _until(lambda: handoff.in_hand is not None)
    behind = asyncio.create_task(handoff.wait_behind(_pending("X")))
    await asyncio.sleep(0.01)
    behind.cancel()
    with pytest.raises(asyncio.CancelledError):
        await behind
    assert owner.dropped == ["X"]
    assert handoff.waiting == 0
    assert owner.gate is not None
    owner.gate.set()
    await _until(lambda: owner.holding == [True, False])
    assert owner.settled_messages == ["A"]


async def test_wait_behind_left_at_finish_gets_manager_closed() -> None:
    owner = FakeOwner(gate=asyncio.Event())
    handoff = _handoff(owner)
    _from_thread(handoff, "A")
    await _until(lambda: handoff.in_hand is not None)
    behind = asyncio.create_task(handoff.wait_behind(_pending("X")))
    await asyncio.sleep(0.01)
    assert await handoff.finish(asyncio.get_running_loop().time() + 0.02) == 2
    with pytest.raises(ManagerClosedError, match=r"^LogManager 'unit' closed first$"):
        await asyncio.wait_for(behind, 1.0)
    assert owner.dropped == ["X"]
