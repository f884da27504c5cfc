"""Unit tests of `asynclog._sink`: `SinkRunner` (accept, settle, the worker, stop, leftovers,
pending/queued) and `DeliveryLock`, built directly from a Writer, a BurstReporter and a Config."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Any

import pytest

from asynclog import BackendWriteError, Config, Level, LogEntry, LogError, ManagerClosedError
from asynclog._entry import EMPTY_FIELDS, Entry
from asynclog._report import BurstReporter
from asynclog._sink import DeliveryLock, SinkRunner
from asynclog.formatters import iso_utc

from .conftest import FailingBackend, GateBackend, RecordingBackend, make_writer


def _entry(message: str, level: int = Level.INFO) -> Entry:
    return (time.time(), level, message, "unit", EMPTY_FIELDS, None, None, None)


def _sink(
    backend: Any,
    *,
    async_mode: bool,
    fallback: Any = None,
    retry_attempts: int = 0,
    handlers: Sequence[Any] = (),
    **options: Any,
) -> SinkRunner:
    writer = make_writer(
        backend,
        blocking=not async_mode,
        fallback=fallback,
        retry_attempts=retry_attempts,
        handlers=handlers,
    )
    reporter = BurstReporter("unit")
    config = Config(backend=backend, async_mode=async_mode, **options)
    return SinkRunner("unit-sink", config.min_level, writer, reporter, config, "unit-manager")


def _worker_task() -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "asynclog-worker"]
    return task


def _accounted(sink: SinkRunner) -> bool:
    c = sink.counters
    return c.accepted == c.written + c.dropped + c.dead_lettered + sink.pending


class DelayedBackend(RecordingBackend):
    """Each write sleeps the next of `delays`: without serialisation, later calls would finish
    first."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self.delays = delays

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        await asyncio.sleep(self.delays.pop(0))
        await super().write_batch(entries)


class BlockingRecorder(RecordingBackend):
    def __init__(self) -> None:
        super().__init__()
        self.blocking_calls = 0

    def write_batch_blocking(self, entries: Sequence[LogEntry]) -> None:
        self.blocking_calls += 1
        self.batches.append(len(entries))
        self.entries.extend(entries)


class _Fatal(BaseException):
    """Not an Exception: gets past the writer's error handling (a bug in the worker)."""


# ---- DeliveryLock -------------------------------------------------------------------------


async def test_delivery_lock_knows_its_holder_and_counts_its_users() -> None:
    lock = DeliveryLock()
    seen: list[tuple[str, bool]] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with lock.hold():
            seen.append(("holder", lock.held_by_current_task()))
            await release.wait()

    async def waiter() -> None:
        seen.append(("waiter before", lock.held_by_current_task()))
        async with lock.hold():
            seen.append(("waiter", lock.held_by_current_task()))

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert lock.users == 2
    assert not lock.held_by_current_task()
    release.set()
    await asyncio.gather(first, second)
    assert seen == [("holder", True), ("waiter before", False), ("waiter", True)]
    assert lock.users == 0
    assert not lock.held_by_current_task()


# ---- sync mode ----------------------------------------------------------------------------


async def test_sync_accept_counts_and_never_queues() -> None:
    sink = _sink(RecordingBackend(), async_mode=False)
    assert sink.accept(_entry("m0")) is False
    assert sink.accept(_entry("m1"), queue_now=True) is False
    assert sink.counters.accepted == 2
    assert (sink.queue, sink.queued, sink.pending) == (None, 0, 0)


async def test_sync_settle_writes_through_the_writer_in_call_order() -> None:
    backend = DelayedBackend([0.05, 0.03, 0.01, 0.0])
    sink = _sink(backend, async_mode=False)
    entries = [_entry(f"m{index}") for index in range(4)]
    for entry in entries:
        assert not sink.accept(entry)
    await asyncio.wait_for(asyncio.gather(*(sink.settle(entry) for entry in entries)), 1.0)
    assert backend.messages == ["m0", "m1", "m2", "m3"]
    assert backend.batches == [1, 1, 1, 1]
    assert (sink.counters.accepted, sink.counters.written) == (4, 4)
    assert sink.pending == 0


async def test_sync_settle_with_a_blocking_backend_writes_immediately() -> None:
    backend = BlockingRecorder()
    sink = _sink(backend, async_mode=False)
    sink.accept(_entry("m0"))
    await sink.settle(_entry("m0"))
    assert backend.blocking_calls == 1
    assert backend.messages == ["m0"]
    assert sink.counters.written == 1


async def test_sync_settle_of_a_lost_entry_raises_backend_write_error() -> None:
    sink = _sink(FailingBackend({0}), async_mode=False)
    entry = _entry("m0")
    sink.accept(entry)
    with pytest.raises(BackendWriteError, match="No space left on device"):
        await sink.settle(entry)
    assert (sink.counters.dropped, sink.counters.write_errors) == (1, 1)
    assert _accounted(sink)


async def test_sync_settle_goes_to_the_fallback_without_raising() -> None:
    fallback = RecordingBackend()
    sink = _sink(FailingBackend({0}), async_mode=False, fallback=fallback)
    entry = _entry("m0")
    sink.accept(entry)
    await sink.settle(entry)
    assert fallback.messages == ["m0"]
    assert sink.counters.dead_lettered == 1
    assert _accounted(sink)


async def test_sync_pending_counts_the_entry_being_written() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=False)
    sink.accept(_entry("m0"))
    writing = asyncio.create_task(sink.settle(_entry("m0")))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    assert (sink.pending, sink.queued) == (1, 0)
    backend.release()
    await writing
    assert (sink.pending, sink.counters.written) == (0, 1)
    assert await sink.stop(None) == 0


async def test_sync_a_handler_that_logs_again_does_not_wait_for_itself() -> None:
    backend = RecordingBackend()
    sink: SinkRunner

    async def logs_again(entry: LogEntry) -> None:
        if entry.message == "outer":
            nested = _entry("nested")
            sink.accept(nested)
            await sink.settle(nested)  # the delivery lock is this task's: no deadlock

    sink = _sink(backend, async_mode=False, handlers=[logs_again])
    outer = _entry("outer")
    sink.accept(outer)
    await asyncio.wait_for(sink.settle(outer), 1.0)
    assert backend.messages == ["nested", "outer"]
    assert (sink.counters.accepted, sink.counters.written) == (2, 2)


@pytest.mark.parametrize("backend_type", [RecordingBackend, BlockingRecorder])
async def test_sync_settle_after_the_backend_closed_drops_without_writing(
    backend_type: type[RecordingBackend],
) -> None:
    # Writer.backend_closed: "a late write is dropped, not reopened" (LogManager sets it
    # before closing the backend). The awaited way checks it under the delivery lock; the
    # immediate way (a backend with write_batch_blocking, no handlers) must not skip it.
    backend = backend_type()
    sink = _sink(backend, async_mode=False)
    sink.writer.backend_closed = True
    entry = _entry("late")
    sink.accept(entry)
    with pytest.raises(
        ManagerClosedError, match=r"^LogManager 'unit-manager' closed before the write$"
    ):
        await sink.settle(entry)
    assert backend.entries == []
    assert (sink.counters.dropped, sink.counters.written) == (1, 0)


# ---- async mode ---------------------------------------------------------------------------


async def test_async_accept_queues_and_the_worker_writes_batches_of_at_most_batch_size() -> None:
    backend = RecordingBackend()
    sink = _sink(backend, async_mode=True, queue_size=100, batch_size=3)
    sink.start()
    assert all(sink.accept(_entry(f"m{index}")) for index in range(10))
    assert (sink.counters.accepted, sink.queued, sink.pending) == (10, 10, 10)
    assert await asyncio.wait_for(sink.stop(asyncio.get_running_loop().time() + 1.0), 2.0) == 0
    assert backend.batches == [3, 3, 3, 1]
    assert backend.messages == [f"m{index}" for index in range(10)]
    c = sink.counters
    assert (c.accepted, c.written, c.dropped) == (10, 10, 0)
    assert (sink.queued, sink.pending) == (0, 0)


async def test_async_accept_with_queue_now_false_counts_but_does_not_queue() -> None:
    sink = _sink(RecordingBackend(), async_mode=True)
    sink.start()
    assert sink.accept(_entry("m0"), queue_now=False) is False
    assert (sink.counters.accepted, sink.queued) == (1, 0)
    await sink.settle(_entry("m0"))  # room: the policy lets it in
    assert sink.queued == 1
    assert await sink.stop(None) == 0
    assert sink.counters.written == 1


async def test_async_stop_drains_everything_before_the_deadline() -> None:
    backend = RecordingBackend(delay=0.01)
    sink = _sink(backend, async_mode=True, queue_size=50, batch_size=4)
    sink.start()
    for index in range(20):
        assert sink.accept(_entry(f"m{index}"))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    assert await sink.stop(loop.time() + 2.0) == 0
    assert backend.messages == [f"m{index}" for index in range(20)]
    assert all(size <= 4 for size in backend.batches)
    assert (sink.counters.written, sink.counters.dropped, sink.pending) == (20, 0, 0)


async def test_async_stop_at_the_deadline_abandons_and_counts_what_is_left() -> None:
    backend = GateBackend()  # never released
    sink = _sink(backend, async_mode=True, queue_size=10, batch_size=2)
    sink.start()
    for index in range(5):
        sink.accept(_entry(f"m{index}"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)  # m0, m1 in flight; 3 queued
    assert (sink.queued, sink.pending) == (3, 5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await sink.stop(loop.time() + 0.05) == 5
    assert loop.time() - began < 0.5
    c = sink.counters
    assert (c.accepted, c.written, c.dropped) == (5, 0, 5)
    assert (sink.queued, sink.pending) == (0, 0)
    assert backend.entries == []


async def test_async_pending_counts_queued_waiting_and_in_flight() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=3, batch_size=2, overflow="block")
    sink.start()
    for index in range(3):
        assert sink.accept(_entry(f"m{index}"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)  # m0, m1 in flight
    assert (sink.queued, sink.pending) == (1, 3)
    for index in (3, 4):
        assert sink.accept(_entry(f"m{index}"))
    last = _entry("m5")
    assert not sink.accept(last)  # full
    waiting = asyncio.create_task(sink.settle(last))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert (sink.queued, sink.pending) == (3, 6)
    backend.release()
    await asyncio.wait_for(waiting, 1.0)
    assert await sink.stop(None) == 0
    assert backend.messages == [f"m{index}" for index in range(6)]
    assert (sink.pending, sink.counters.written) == (0, 6)


async def test_async_settle_on_a_full_queue_applies_the_policy() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=1, put_timeout=0.02)
    sink.start()
    sink.accept(_entry("m0"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    assert sink.accept(_entry("m1"))
    late = _entry("late")
    assert not sink.accept(late)
    with pytest.raises(LogError, match=r"^log queue full \(1 entries\) for 0\.02s"):
        await sink.settle(late)
    assert sink.counters.dropped == 1
    backend.release()
    assert await sink.stop(None) == 0
    assert _accounted(sink)


async def test_the_drop_report_is_written_first_in_the_next_batch_and_counted() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=2, batch_size=10, overflow="drop_newest")
    sink.start()
    sink.accept(_entry("m0"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)  # m0 in the worker's hands
    assert sink.accept(_entry("m1")) and sink.accept(_entry("m2"))
    dropped = _entry("m3")
    assert not sink.accept(dropped)
    await sink.settle(dropped)  # drop_newest: counted dropped, no error
    assert sink.counters.dropped == 1
    backend.release()
    assert await sink.stop(None) == 0
    assert backend.batches == [1, 3]
    report = backend.entries[1]
    assert backend.messages[2:] == ["m1", "m2"]
    assert (report.level, report.logger) == (Level.WARNING, "asynclog")
    assert report.fields["dropped"] == 1
    first, last = report.fields["first_drop"], report.fields["last_drop"]
    expected = f"asynclog dropped 1 entries between {iso_utc(first)} and {iso_utc(last)}"
    assert report.message == expected
    assert re.fullmatch(r"asynclog dropped 1 entries between \S+Z and \S+Z", report.message)
    assert report.timestamp == last
    c = sink.counters
    assert (c.accepted, c.written, c.dropped) == (5, 4, 1)  # the report is accepted+written
    assert _accounted(sink)


async def test_cancelling_the_worker_mid_write_hands_over_to_direct_writes_in_order() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=10, batch_size=2)
    sink.start()
    for index in range(5):
        sink.accept(_entry(f"m{index}"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)  # m0, m1 in the worker's hands
    worker = _worker_task()
    worker.cancel()
    await asyncio.sleep(0)
    assert sink.worker_gone
    late = _entry("m5")
    assert not sink.accept(late)  # the queue is closed: written directly from now on
    direct = asyncio.create_task(sink.settle(late))
    await asyncio.sleep(0.01)
    assert not direct.done(), "the direct write waits behind the leftovers"
    backend.release()
    await asyncio.wait_for(direct, 1.0)
    assert backend.messages == [f"m{index}" for index in range(6)]
    assert await asyncio.wait_for(sink.stop(None), 1.0) == 0
    c = sink.counters
    assert (c.accepted, c.written, c.dropped) == (6, 6, 0)
    assert sink.worker_failure is None


async def test_a_worker_cancelled_mid_write_still_writes_what_was_accepted() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=10, batch_size=2)
    sink.start()
    for index in range(5):
        sink.accept(_entry(f"m{index}"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)  # m0, m1 in the worker's hands
    worker = _worker_task()
    worker.cancel()
    await asyncio.sleep(0)
    backend.release()
    await asyncio.wait({worker}, timeout=1.0)
    assert worker.done() and not worker.cancelled()  # it drained what was left, then ended
    assert backend.messages == [f"m{index}" for index in range(5)]
    assert backend.batches == [2, 2, 1]
    assert (sink.queued, sink.pending, sink.counters.written) == (0, 0, 5)
    assert sink.worker_gone
    assert await sink.stop(None) == 0


async def test_a_worker_cancelled_before_it_ran_leaves_leftovers_for_the_next_settle() -> None:
    backend = RecordingBackend()
    sink = _sink(backend, async_mode=True, queue_size=10, batch_size=2)
    sink.start()
    for index in range(3):
        assert sink.accept(_entry(f"m{index}"))
    worker = _worker_task()
    worker.cancel()  # before it ever ran: nothing drained
    await asyncio.wait({worker})
    assert worker.cancelled()
    assert sink.worker_gone
    assert sink.queued == 3
    late = _entry("m3")
    assert not sink.accept(late)
    await asyncio.wait_for(sink.settle(late), 1.0)
    assert backend.messages == ["m0", "m1", "m2", "m3"]
    assert backend.batches == [2, 1, 1]
    assert sink.queued == 0
    assert await sink.stop(None) == 0
    assert (sink.counters.written, sink.counters.dropped) == (4, 0)


async def test_a_producer_waiting_when_the_worker_goes_writes_directly_uncounted() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=2, batch_size=10, overflow="block")
    sink.start()
    sink.accept(_entry("m0"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    assert sink.accept(_entry("m1")) and sink.accept(_entry("m2"))
    blocked = _entry("m3")
    assert not sink.accept(blocked)
    waiting = asyncio.create_task(sink.settle(blocked))
    await asyncio.sleep(0.01)
    assert sink.queue is not None and sink.queue.waiting_producers == 1
    _worker_task().cancel()
    await asyncio.sleep(0.01)
    assert sink.worker_gone
    backend.release()
    await asyncio.wait_for(waiting, 1.0)
    assert backend.messages == ["m0", "m1", "m2", "m3"]
    assert await sink.stop(None) == 0
    c = sink.counters
    assert (c.accepted, c.written, c.dropped) == (4, 4, 0)


async def test_stop_refuses_producers_waiting_for_room_and_drains_the_queue() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=2, batch_size=10, overflow="block")
    sink.start()
    sink.accept(_entry("m0"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    assert sink.accept(_entry("m1")) and sink.accept(_entry("m2"))
    refused = _entry("refused")
    assert not sink.accept(refused)
    waiting = asyncio.create_task(sink.settle(refused))
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(sink.stop(None))
    with pytest.raises(ManagerClosedError):
        await asyncio.wait_for(waiting, 1.0)
    assert sink.counters.dropped == 1
    backend.release()
    assert await asyncio.wait_for(stopping, 1.0) == 0
    kept = [m for m in backend.messages if not m.startswith("asynclog dropped")]
    assert kept == ["m0", "m1", "m2"]
    assert _accounted(sink)


async def test_drop_oldest_settle_during_stop_does_not_evict_accepted_entries() -> None:
    # stop() closes the queue and lets the worker drain it. A settle that arrives meanwhile
    # (LogManager: another sink's settle resumed after close began) must not push out what
    # was accepted before: stop() returned 0, so all of it must be written.
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=3, batch_size=10, overflow="drop_oldest")
    sink.start()
    sink.accept(_entry("m0"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    assert sink.accept(_entry("m1")) and sink.accept(_entry("m2"))
    stopping = asyncio.create_task(sink.stop(None))
    await asyncio.sleep(0)  # stop() has closed the queue and waits for the worker
    late = _entry("late")
    assert not sink.accept(late)
    await sink.settle(late)
    backend.release()
    assert await asyncio.wait_for(stopping, 1.0) == 0
    kept = [m for m in backend.messages if not m.startswith("asynclog dropped")]
    assert kept[:3] == ["m0", "m1", "m2"]
    assert sink.counters.dropped <= 1  # at most the late entry


async def test_a_worker_killed_by_a_bug_refuses_settles_and_stop_abandons_the_rest() -> None:
    class Fatal(RecordingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            raise _Fatal("bug")

    sink = _sink(Fatal(), async_mode=True, queue_size=1, batch_size=1)
    sink.start()
    sink.accept(_entry("m0"))
    await asyncio.sleep(0.01)  # the worker dies writing m0 (in flight)
    assert isinstance(sink.worker_failure, _Fatal)
    assert not sink.worker_gone
    late = _entry("late")
    assert not sink.accept(late)
    with pytest.raises(
        LogError, match=r"^the asynclog worker stopped unexpectedly: _Fatal\('bug'\)$"
    ):
        await sink.settle(late)
    assert sink.counters.dropped == 1
    assert await sink.stop(None) == 1  # m0, in the dead worker's hands
    c = sink.counters
    assert (c.accepted, c.written, c.dropped) == (2, 0, 2)


async def test_leftovers_returns_in_flight_then_queued_and_empties_both() -> None:
    backend = GateBackend()
    sink = _sink(backend, async_mode=True, queue_size=10, batch_size=2)
    sink.start()
    for index in range(5):
        sink.accept(_entry(f"m{index}"))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    assert [entry[2] for entry in sink.leftovers()] == [f"m{index}" for index in range(5)]
    assert (sink.queued, sink.pending) == (0, 0)
    assert sink.leftovers() == []
    assert await sink.stop(asyncio.get_running_loop().time()) == 0  # nothing left to abandon


async def test_sync_leftovers_is_empty() -> None:
    sink = _sink(RecordingBackend(), async_mode=False)
    assert sink.leftovers() == []
    assert await sink.stop(None) == 0
