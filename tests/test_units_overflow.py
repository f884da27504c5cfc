"""Unit tests of `asynclog._overflow`: `admit`, `wait_for_room`, `POLICIES`, `HandedOver`, each
policy applied to a full `FairQueue` directly (no manager, no worker)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from asynclog import Config, Level, ManagerClosedError, QueueFullError
from asynclog._config import OVERFLOW_POLICIES
from asynclog._entry import EMPTY_FIELDS, MESSAGE, Entry
from asynclog._overflow import POLICIES, HandedOver, admit, wait_for_room
from asynclog._queue import FairQueue
from asynclog._stats import Counters


def _entry(message: str, level: int = Level.INFO) -> Entry:
    return (time.time(), level, message, "unit", EMPTY_FIELDS, None, None, None)


def _config(overflow: str = "timeout", **options: object) -> Config:
    return Config(async_mode=True, queue_size=2, overflow=overflow, **options)  # type: ignore[arg-type]


def _full(*entries: Entry, reserve: int = 0) -> FairQueue[Entry]:
    queue: FairQueue[Entry] = FairQueue(len(entries), reserve=reserve)
    for entry in entries:
        assert queue.try_put(entry)
    assert not queue.try_put(_entry("probe")), "the queue must be full for these tests"
    return queue


def _messages(entries: list[Entry]) -> list[str]:
    return [entry[MESSAGE] for entry in entries]


async def _until_waiting(queue: FairQueue[Entry], count: int = 1) -> None:
    for _ in range(100):
        if queue.waiting_producers == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"expected {count} waiting producers, got {queue.waiting_producers}")


def test_every_configurable_policy_has_a_function() -> None:
    assert set(POLICIES) == set(OVERFLOW_POLICIES)
    assert all(callable(policy) for policy in POLICIES.values())


# ---- timeout ------------------------------------------------------------------------------


async def test_timeout_waits_put_timeout_minus_waited_then_raises_and_counts_one_drop() -> None:
    queue = _full(_entry("a"), _entry("b"))
    counters = Counters()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(QueueFullError) as raised:
        await admit(queue, _entry("new"), counters, _config(put_timeout=1.0), 0.95)
    elapsed = loop.time() - began
    assert str(raised.value) == "log queue full (2 entries) for 0.05s; entry dropped"
    assert 0.04 <= elapsed < 0.5, elapsed  # 1.0 - 0.95, not the whole put_timeout
    assert (counters.dropped, counters.unreported_drops) == (1, 1)
    assert queue.waiting_producers == 0
    assert _messages(queue.clear()) == ["a", "b"]


async def test_timeout_already_used_up_elsewhere_refuses_at_once() -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(
        QueueFullError, match=r"^log queue full \(1 entries\) for 0s; entry dropped$"
    ):
        await admit(queue, _entry("new"), counters, _config(put_timeout=0.2), 0.5)
    assert loop.time() - began < 0.05
    assert counters.dropped == 1
    assert queue.waiting_producers == 0


async def test_timeout_admits_when_room_comes_in_time() -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    waiter = asyncio.create_task(
        admit(queue, _entry("new"), counters, _config(put_timeout=5.0), 0.0)
    )
    await _until_waiting(queue)
    assert _messages(queue.take(10)) == ["a"]  # frees the room: the waiter gets in
    await asyncio.wait_for(waiter, 1.0)
    assert _messages(queue.clear()) == ["new"]
    assert counters.dropped == 0


# ---- block --------------------------------------------------------------------------------


async def test_block_waits_past_put_timeout_and_is_admitted_when_a_batch_is_taken() -> None:
    queue = _full(_entry("a"), _entry("b"))
    counters = Counters()
    waiter = asyncio.create_task(
        admit(queue, _entry("new"), counters, _config("block", put_timeout=0.01), 0.0)
    )
    await asyncio.sleep(0.08)  # eight times put_timeout
    assert not waiter.done()
    assert queue.waiting_producers == 1
    assert counters.dropped == 0
    assert _messages(queue.take(1)) == ["a"]  # the consumer takes a batch: the waiter gets in
    await asyncio.wait_for(waiter, 1.0)
    assert _messages(queue.clear()) == ["b", "new"]
    assert (counters.dropped, queue.waiting_producers) == (0, 0)


# ---- drop_newest --------------------------------------------------------------------------


async def test_drop_newest_counts_one_drop_and_leaves_the_queue_as_it_was() -> None:
    queue = _full(_entry("a"), _entry("b"))
    counters = Counters()
    await admit(queue, _entry("new"), counters, _config("drop_newest"), 0.0)
    assert (counters.dropped, counters.unreported_drops) == (1, 1)
    assert queue.waiting_producers == 0
    assert _messages(queue.clear()) == ["a", "b"]


# ---- drop_oldest --------------------------------------------------------------------------


async def test_drop_oldest_evicts_the_oldest_non_priority_entry() -> None:
    queue = _full(_entry("a"), _entry("P", Level.ERROR), _entry("b"))
    counters = Counters()
    config = _config("drop_oldest")
    await admit(queue, _entry("c"), counters, config, 0.0)
    assert counters.dropped == 1
    await admit(queue, _entry("d"), counters, config, 0.0)
    assert counters.dropped == 2
    assert _messages(queue.clear()) == ["P", "c", "d"]


async def test_drop_oldest_never_evicts_priority_entries_and_drops_the_new_one() -> None:
    queue = _full(_entry("P1", Level.ERROR), _entry("P2", Level.CRITICAL))
    counters = Counters()
    await admit(queue, _entry("new"), counters, _config("drop_oldest"), 0.0)
    assert counters.dropped == 1
    assert _messages(queue.clear()) == ["P1", "P2"]


async def test_drop_oldest_evicts_as_many_as_the_byte_bound_needs_and_counts_each() -> None:
    queue: FairQueue[Entry] = FairQueue(10, max_bytes=10, size_of=lambda entry: len(entry[MESSAGE]))
    for entry in (_entry("aaa"), _entry("PPP", Level.ERROR), _entry("bbb")):
        assert queue.try_put(entry)
    counters = Counters()
    await admit(queue, _entry("cccccc"), counters, _config("drop_oldest"), 0.0)
    assert counters.dropped == 2  # aaa and bbb; PPP stays
    assert _messages(queue.clear()) == ["PPP", "cccccc"]


async def test_drop_oldest_on_a_closed_queue_evicts_nothing_already_accepted() -> None:
    # close() (SinkRunner.stop) leaves the queued entries for the worker to drain; a late
    # entry must not push them out. timeout/block raise ManagerClosedError and drop_newest
    # drops the new entry only: drop_oldest must not count the queued ones dropped either.
    queue = _full(_entry("a"), _entry("b"))
    queue.close()
    counters = Counters()
    with contextlib.suppress(ManagerClosedError):
        await admit(queue, _entry("late"), counters, _config("drop_oldest"), 0.0)
    assert _messages(queue.clear()) == ["a", "b"]
    assert counters.dropped == 1


# ---- priority entries ---------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["timeout", "drop_newest", "drop_oldest"])
async def test_priority_entries_use_the_reserve_then_wait_whatever_the_policy(
    overflow: str,
) -> None:
    queue = _full(_entry("a"), _entry("b"), reserve=1)
    counters = Counters()
    config = _config(overflow, put_timeout=0.01)
    await admit(queue, _entry("P1", Level.ERROR), counters, config, 0.0)  # into the reserve
    assert len(queue) == 3
    waiter = asyncio.create_task(admit(queue, _entry("P2", Level.CRITICAL), counters, config, 0.0))
    await asyncio.sleep(0.05)  # five times put_timeout: still waiting, never dropped
    assert not waiter.done()
    assert (counters.dropped, queue.waiting_producers) == (0, 1)
    assert _messages(queue.take(2)) == ["a", "b"]
    await asyncio.wait_for(waiter, 1.0)
    assert _messages(queue.clear()) == ["P1", "P2"]
    assert counters.dropped == 0


async def test_priority_level_none_sends_every_entry_through_the_policy() -> None:
    queue = _full(_entry("a"), reserve=5)
    counters = Counters()
    config = _config("drop_newest", priority_level=None)
    await admit(queue, _entry("E", Level.CRITICAL), counters, config, 0.0)
    assert counters.dropped == 1
    assert _messages(queue.clear()) == ["a"]


# ---- waking a waiter: HandedOver, close, cancellation -------------------------------------


@pytest.mark.parametrize(
    ("overflow", "level"),
    [("timeout", Level.INFO), ("block", Level.INFO), ("drop_newest", Level.ERROR)],
)
async def test_a_waiter_woken_with_handed_over_propagates_it_and_counts_nothing(
    overflow: str, level: int
) -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    waiter = asyncio.create_task(
        admit(queue, _entry("new", level), counters, _config(overflow, put_timeout=5.0), 0.0)
    )
    await _until_waiting(queue)
    assert queue.close(HandedOver()) == 1
    with pytest.raises(HandedOver):
        await waiter
    assert (counters.dropped, counters.unreported_drops) == (0, 0)
    assert _messages(queue.clear()) == ["a"]


async def test_wait_for_room_lets_handed_over_through_uncounted() -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    waiter = asyncio.create_task(wait_for_room(queue, _entry("new"), counters, None))
    await _until_waiting(queue)
    queue.close(HandedOver())
    with pytest.raises(HandedOver):
        await waiter
    assert counters.dropped == 0


@pytest.mark.parametrize(
    ("overflow", "level"),
    [("timeout", Level.INFO), ("block", Level.INFO), ("drop_oldest", Level.ERROR)],
)
async def test_a_waiter_refused_by_close_raises_manager_closed_and_counts_one_drop(
    overflow: str, level: int
) -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    waiter = asyncio.create_task(
        admit(queue, _entry("new", level), counters, _config(overflow, put_timeout=5.0), 0.0)
    )
    await _until_waiting(queue)
    queue.close()
    with pytest.raises(
        ManagerClosedError, match=r"^the log manager closed while this entry waited for room$"
    ):
        await waiter
    assert counters.dropped == 1


@pytest.mark.parametrize(
    ("overflow", "level"),
    [("timeout", Level.INFO), ("block", Level.INFO), ("drop_newest", Level.ERROR)],
)
async def test_cancelled_while_waiting_counts_one_drop_exactly_once(
    overflow: str, level: int
) -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    waiter = asyncio.create_task(
        admit(queue, _entry("new", level), counters, _config(overflow, put_timeout=5.0), 0.0)
    )
    await _until_waiting(queue)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert counters.dropped == 1
    assert queue.waiting_producers == 0
    assert _messages(queue.take(10)) == ["a"]  # the cancelled entry is not let in later
    assert queue.close() == 0
    await asyncio.sleep(0)
    assert _messages(queue.clear()) == []
    assert counters.dropped == 1


async def test_cancelled_just_after_admission_counts_nothing_and_stays_queued() -> None:
    queue = _full(_entry("a"))
    counters = Counters()
    waiter = asyncio.create_task(admit(queue, _entry("new"), counters, _config("block"), 0.0))
    await _until_waiting(queue)
    assert _messages(queue.take(1)) == ["a"]  # admits the waiter...
    waiter.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert counters.dropped == 0
    assert _messages(queue.clear()) == ["new"]
