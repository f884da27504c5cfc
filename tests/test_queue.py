"""FairQueue: bounded, first come first served for blocked producers, cancellation-safe."""

from __future__ import annotations

import asyncio

import pytest

from asynclog import ManagerClosedError, QueueFullError
from asynclog._queue import FairQueue


async def test_try_put_refuses_when_full_and_get_batch_takes_in_order() -> None:
    queue: FairQueue[int] = FairQueue(3)
    assert [queue.try_put(i) for i in range(4)] == [True, True, True, False]
    assert await queue.get_batch(2) == [0, 1]
    assert await queue.get_batch(10) == [2]
    assert len(queue) == 0


async def test_waiting_producers_are_admitted_in_arrival_order_before_newcomers() -> None:
    queue: FairQueue[str] = FairQueue(2)
    queue.try_put("a")
    queue.try_put("b")
    waiting = [asyncio.create_task(queue.put(name, None)) for name in ("w1", "w2", "w3")]
    await asyncio.sleep(0)
    assert queue.waiting_producers == 3
    assert await queue.get_batch(1) == ["a"]  # one slot frees: it goes to w1
    assert not queue.try_put("newcomer"), "a newcomer must not overtake waiting producers"
    assert await queue.get_batch(10) == ["b", "w1"]
    assert await queue.get_batch(10) == ["w2", "w3"]
    await asyncio.gather(*waiting)
    assert queue.try_put("newcomer")


async def test_put_raises_queue_full_after_its_wait_and_leaves_no_trace() -> None:
    queue: FairQueue[int] = FairQueue(1)
    queue.try_put(1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(QueueFullError, match=r"log queue full \(1 entries\) for 0.05s"):
        await queue.put(2, 0.05)
    assert loop.time() - began >= 0.045
    assert queue.waiting_producers == 0
    assert await queue.get_batch(10) == [1]


async def test_put_with_zero_wait_fails_at_once_when_full() -> None:
    queue: FairQueue[int] = FairQueue(1)
    await queue.put(1, 0)
    with pytest.raises(QueueFullError):
        await queue.put(2, 0)


async def test_cancelled_producer_leaves_the_queue_consistent() -> None:
    queue: FairQueue[str] = FairQueue(1)
    queue.try_put("in")
    task = asyncio.create_task(queue.put("cancelled", None))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert queue.waiting_producers == 0
    assert await queue.get_batch(10) == ["in"]
    assert queue.try_put("next")


async def test_close_rejects_waiting_producers_but_keeps_queued_items() -> None:
    queue: FairQueue[str] = FairQueue(1)
    queue.try_put("queued")
    waiter = asyncio.create_task(queue.put("late", None))
    await asyncio.sleep(0)
    assert queue.close() == 1
    with pytest.raises(ManagerClosedError, match="closed while this entry waited"):
        await waiter
    with pytest.raises(ManagerClosedError):
        await queue.put("after", None)
    assert await queue.get_batch(10) == ["queued"]
    assert await queue.get_batch(10) == []


async def test_close_wakes_a_waiting_consumer_with_an_empty_batch() -> None:
    queue: FairQueue[int] = FairQueue(4)
    consumer = asyncio.create_task(queue.get_batch(10))
    await asyncio.sleep(0)
    queue.close()
    assert await consumer == []


async def test_waiters_with_different_waits_each_expire_on_time_with_one_shared_timer() -> None:
    queue: FairQueue[str] = FairQueue(1)
    queue.try_put("in")
    loop = asyncio.get_running_loop()
    began = loop.time()
    ended: dict[str, float] = {}

    async def put(name: str, wait: float | None) -> None:
        try:
            await queue.put(name, wait)
        except QueueFullError:
            ended[name] = loop.time() - began

    long_wait = asyncio.create_task(put("long", 0.3))
    await asyncio.sleep(0)
    short_wait = asyncio.create_task(put("short", 0.05))  # behind "long", but due first
    no_limit = asyncio.create_task(put("patient", None))
    await short_wait
    assert 0.045 <= ended["short"] < 0.25
    assert queue.waiting_producers == 2  # "long" and "patient" still in line
    await long_wait
    assert ended["long"] >= 0.295
    assert queue.waiting_producers == 1
    assert await queue.get_batch(10) == ["in"]  # the room goes to the one still waiting
    await no_limit
    assert await queue.get_batch(10) == ["patient"]
    assert "patient" not in ended


async def test_an_admitted_waiter_is_not_expired_by_the_shared_timer() -> None:
    queue: FairQueue[int] = FairQueue(1)
    queue.try_put(0)
    first = asyncio.create_task(queue.put(1, 0.05))
    await asyncio.sleep(0)
    assert await queue.get_batch(10) == [0]  # admits 1 long before its deadline
    await first
    second = asyncio.create_task(queue.put(2, 0.2))  # the timer is still due at 1's deadline
    await asyncio.sleep(0.1)
    assert not second.done(), "expired at an admitted waiter's deadline"
    assert await queue.get_batch(10) == [1]
    await second
    assert await queue.get_batch(10) == [2]
