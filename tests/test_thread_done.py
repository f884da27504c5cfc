"""`backends._wakeup.ThreadDone`: what a thread's call ended with, awaited on the loop; the
waiting task resumes in the loop turn after the thread's end (an asyncio.Future set from a
thread takes one more)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asynclog.backends._wakeup import ThreadDone


async def test_the_waiter_resumes_when_a_thread_finishes() -> None:
    done = ThreadDone(asyncio.get_running_loop())
    thread = threading.Thread(target=done.finish_threadsafe)
    thread.start()
    await asyncio.wait_for(done, 5)
    thread.join()
    assert done.done() and not done.cancelled()
    assert done.exception() is None


async def test_the_waiter_gets_what_the_thread_raised() -> None:
    done = ThreadDone(asyncio.get_running_loop())
    error = OSError("disk full")
    threading.Thread(target=done.finish_threadsafe, args=(error,)).start()
    with pytest.raises(OSError, match="disk full") as raised:
        await asyncio.wait_for(done, 5)
    assert raised.value is error


async def test_the_waiter_resumes_one_loop_turn_after_the_end_and_a_future_two() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []

    async def wait(awaitable: object, name: str) -> None:
        await awaitable  # type: ignore[misc]
        order.append(name)

    done = ThreadDone(loop)
    future: asyncio.Future[None] = loop.create_future()
    waiters = [
        asyncio.ensure_future(wait(done, "ThreadDone")),
        asyncio.ensure_future(wait(future, "Future")),
    ]
    await asyncio.sleep(0)  # both wait
    # What a thread does when its call ends (call_soon_threadsafe works from any thread).
    done.finish_threadsafe()
    loop.call_soon_threadsafe(future.set_result, None)
    loop.call_soon(order.append, "the turn of the thread's callbacks")
    await asyncio.gather(*waiters)
    assert order == ["ThreadDone", "the turn of the thread's callbacks", "Future"]


async def test_a_cancelled_waiter_learns_later_whether_the_call_succeeded() -> None:
    loop = asyncio.get_running_loop()
    for error, succeeded in ((None, True), (OSError("locked"), False)):
        done = ThreadDone(loop)
        inner = asyncio.ensure_future(_await(done))
        await asyncio.sleep(0)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await inner
        assert done.cancelled()
        continuing = done.continuing()
        assert not continuing.done()
        done.finish_threadsafe(error)
        assert await asyncio.wait_for(continuing, 5) is succeeded


async def test_continuing_after_the_end_is_already_resolved() -> None:
    done = ThreadDone(asyncio.get_running_loop())
    done.finish_threadsafe()
    await done
    assert done.continuing().result() is True


async def test_cancel_after_the_end_does_nothing() -> None:
    done = ThreadDone(asyncio.get_running_loop())
    done.finish_threadsafe(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        await done
    assert done.cancel() is False
    assert not done.cancelled()
    assert isinstance(done.exception(), ValueError)


async def _await(done: ThreadDone) -> None:
    await done


def test_ended_tells_the_outcome_once_the_loop_has_closed() -> None:
    # The loop closed before the thread's call ended: the thread cannot resume anyone, but
    # `ended()` (what `WriteContinues.ended` reads) says how the call went.
    for error, succeeded in ((None, True), (OSError("disk full"), False)):
        loop = asyncio.new_event_loop()
        done = ThreadDone(loop)
        loop.close()
        assert done.ended() is None
        thread = threading.Thread(target=done.finish_threadsafe, args=(error,))
        thread.start()
        thread.join()
        assert done.ended() is succeeded
        assert not done.done()
