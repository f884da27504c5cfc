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
