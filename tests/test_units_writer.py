"""Unit tests of `asynclog._writer.Writer`: handlers, one backend call, retries with capped
backoff, the fallback, immediate (blocking) writes, the exit flush, observers, counting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from asynclog import BackendWriteError, Level, LogEntry, LogError
from asynclog import _writer as writer_module
from asynclog._entry import EMPTY_FIELDS, Entry
from asynclog._writer import MAX_RETRY_DELAY, Writer
from asynclog.backends.base import WouldBlock

from .conftest import FailingBackend, GateBackend, RecordingBackend, make_writer


def _entry(message: str, level: int = Level.INFO) -> Entry:
    return (time.time(), level, message, "unit", EMPTY_FIELDS, None, None, None)


def _batch(*messages: str) -> list[Entry]:
    return [_entry(message) for message in messages]


_writer = make_writer


def _figures(writer: Writer) -> dict[str, int]:
    c = writer.counters
    return {
        "written": c.written,
        "dropped": c.dropped,
        "dead_lettered": c.dead_lettered,
        "write_errors": c.write_errors,
        "retries": c.retries,
    }


class _FakeAsyncio:
    """Stands in for the `asyncio` module inside `asynclog._writer` only: `sleep` records its
    delay and returns at once; everything else is the real module."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, delay: float, result: object = None) -> object:
        self.delays.append(delay)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    fake = _FakeAsyncio()
    monkeypatch.setattr(writer_module, "asyncio", fake)
    return fake.delays


class AlwaysFailing(RecordingBackend):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


class CountingFallback(RecordingBackend):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.opens = 0
        self.fail = fail

    async def open(self) -> None:
        self.opens += 1
        await super().open()

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if self.fail:
            raise OSError(5, "Input/output error")
        await super().write_batch(entries)


class TupleBackend(RecordingBackend):
    takes_entry_tuples = True

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        await super().write_batch(entries)


class BlockingBackend(RecordingBackend):
    """Offers `write_batch_blocking`; `mode` says what it does: "ok", "would_block", "fail"."""

    def __init__(self, mode: str = "ok") -> None:
        super().__init__()
        self.mode = mode
        self.blocking_calls = 0
        self.awaited_calls = 0

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.awaited_calls += 1
        await super().write_batch(entries)

    def write_batch_blocking(self, entries: Sequence[LogEntry]) -> None:
        self.blocking_calls += 1
        if self.mode == "would_block":
            raise WouldBlock()
        if self.mode == "fail":
            raise OSError(28, "No space left on device")
        self.batches.append(len(entries))
        self.entries.extend(entries)


class CancelledInside(RecordingBackend):
    """Raises CancelledError on the calls in `on` (a future its own client cancelled)."""

    def __init__(self, on: set[int]) -> None:
        super().__init__()
        self.on = on
        self.calls = 0

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        call, self.calls = self.calls, self.calls + 1
        if call in self.on:
            raise asyncio.CancelledError()
        await super().write_batch(entries)


# ---- handlers -----------------------------------------------------------------------------


async def test_handlers_run_before_the_write_and_see_log_entries_in_order() -> None:
    backend = RecordingBackend()
    seen: list[tuple[object, int]] = []

    def plain(entry: LogEntry) -> None:
        seen.append((entry, len(backend.entries)))

    async def coroutine(entry: LogEntry) -> None:
        seen.append((("async", entry.message), len(backend.entries)))

    writer = _writer(backend, handlers=[plain, coroutine])
    batch = _batch("m0", "m1")
    await writer.write(batch)
    assert [type(item) for item, _ in seen[::2]] == [LogEntry, LogEntry]
    assert [item for item, _ in seen[::2]] == [LogEntry(*entry) for entry in batch]
    assert [item for item, _ in seen[1::2]] == [("async", "m0"), ("async", "m1")]
    assert {written for _, written in seen} == {0}, "handlers run before the backend write"
    assert backend.entries == [LogEntry(*entry) for entry in batch]
    assert all(type(entry) is LogEntry for entry in backend.entries)
    assert _figures(writer)["written"] == 2
    assert writer.in_flight == ()


async def test_a_raising_handler_is_counted_and_the_batch_still_written() -> None:
    backend = RecordingBackend()

    def broken(entry: LogEntry) -> None:
        raise ValueError("handler bug")

    writer = _writer(backend, handlers=[broken])
    await writer.write(_batch("m0", "m1"))
    assert writer.counters.handler_errors == 2
    assert backend.messages == ["m0", "m1"]


async def test_a_backend_taking_entry_tuples_gets_them_while_handlers_get_log_entries() -> None:
    backend = TupleBackend()
    seen: list[object] = []
    writer = _writer(backend, handlers=[seen.append])
    batch = _batch("m0")
    await writer.write(batch)
    assert [type(entry) for entry in backend.entries] == [tuple]
    assert [type(entry) for entry in seen] == [LogEntry]


# ---- retries, fallback, drops -------------------------------------------------------------


async def test_a_failing_batch_is_retried_until_it_is_written(sleeps: list[float]) -> None:
    backend = FailingBackend({0, 1})
    writer = _writer(backend, retry_attempts=3, retry_backoff=0.05)
    await writer.write(_batch("m0", "m1"))
    assert backend.calls == 3
    assert backend.messages == ["m0", "m1"]
    assert _figures(writer) == {
        "written": 2,
        "dropped": 0,
        "dead_lettered": 0,
        "write_errors": 2,
        "retries": 2,
    }
    assert sleeps == [0.05, 0.1]
    assert writer.in_flight == ()


async def test_retries_exhausted_the_batch_goes_to_the_fallback(sleeps: list[float]) -> None:
    backend = AlwaysFailing()
    fallback = CountingFallback()
    writer = _writer(backend, fallback=fallback, retry_attempts=3, retry_backoff=0.01)
    first, second = _batch("m0", "m1"), _batch("m2")
    await writer.write(first, raise_if_lost=True)  # dead-lettered is not lost: no error
    await writer.write(second)
    assert backend.calls == 8  # 1 + 3 retries per batch
    assert _figures(writer) == {
        "written": 0,
        "dropped": 0,
        "dead_lettered": 3,
        "write_errors": 8,
        "retries": 6,
    }
    assert fallback.entries == [LogEntry(*entry) for entry in first + second]
    assert fallback.opens == 1, "the fallback is opened once, on first use"
    assert writer.in_flight == ()


async def test_retries_exhausted_without_fallback_the_batch_is_dropped(
    sleeps: list[float],
) -> None:
    writer = _writer(AlwaysFailing(), retry_attempts=2)
    await writer.write(_batch("m0", "m1"))  # not asked to raise
    assert _figures(writer) == {
        "written": 0,
        "dropped": 2,
        "dead_lettered": 0,
        "write_errors": 3,
        "retries": 2,
    }
    assert writer.counters.unreported_drops == 2
    assert writer.in_flight == ()


async def test_raise_if_lost_raises_backend_write_error_from_the_last_error(
    sleeps: list[float],
) -> None:
    writer = _writer(AlwaysFailing(), retry_attempts=1)
    with pytest.raises(BackendWriteError) as raised:
        await writer.write(_batch("m0"), raise_if_lost=True)
    assert str(raised.value) == "log entry not written: [Errno 28] No space left on device"
    assert isinstance(raised.value.__cause__, OSError)
    assert (writer.counters.dropped, writer.counters.retries) == (1, 1)


async def test_a_failing_fallback_drops_the_batch_and_raises_when_asked(
    sleeps: list[float],
) -> None:
    writer = _writer(AlwaysFailing(), fallback=CountingFallback(fail=True))
    with pytest.raises(BackendWriteError, match=r"^log entry not written: \[Errno 28\]"):
        await writer.write(_batch("m0", "m1"), raise_if_lost=True)
    assert _figures(writer) == {
        "written": 0,
        "dropped": 2,
        "dead_lettered": 0,
        "write_errors": 1,
        "retries": 0,
    }


async def test_once_the_backend_is_closed_the_fallback_is_not_used() -> None:
    fallback = CountingFallback()
    writer = _writer(AlwaysFailing(), fallback=fallback)
    await writer.close_fallback()
    assert writer.backend_closed
    await writer.write(_batch("m0"))
    assert (writer.counters.dropped, writer.counters.dead_lettered) == (1, 0)
    assert fallback.opens == 0


async def test_every_retry_hands_the_backend_the_same_batch_object(sleeps: list[float]) -> None:
    seen: list[int] = []

    class Remembering(FailingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            seen.append(id(entries))
            await super().write_batch(entries)

    writer = _writer(Remembering({0, 1}), retry_attempts=2)
    await writer.write(_batch("m0"))
    assert len(seen) == 3
    assert len(set(seen)) == 1


# ---- the delay between retries ------------------------------------------------------------


async def test_the_delay_doubles_and_never_exceeds_max_retry_delay(sleeps: list[float]) -> None:
    assert MAX_RETRY_DELAY == 30.0
    writer = _writer(AlwaysFailing(), retry_attempts=5, retry_backoff=10.0)
    await writer.write(_batch("m0"))
    assert sleeps == [10.0, 20.0, 30.0, 30.0, 30.0]
    assert writer.counters.retries == 5


async def test_thousands_of_retries_with_backoff_one_do_not_overflow(
    sleeps: list[float],
) -> None:
    backend = AlwaysFailing()
    writer = _writer(backend, retry_attempts=2000, retry_backoff=1.0)
    await writer.write(_batch("m0"))  # 2.0 ** 2000 would raise OverflowError
    assert len(sleeps) == 2000
    assert sleeps[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert max(sleeps) == MAX_RETRY_DELAY
    assert backend.calls == 2001
    assert _figures(writer) == {
        "written": 0,
        "dropped": 1,
        "dead_lettered": 0,
        "write_errors": 2001,
        "retries": 2000,
    }


# ---- CancelledError -----------------------------------------------------------------------


async def test_a_backend_cancelled_error_without_cancellation_is_a_failed_write(
    sleeps: list[float],
) -> None:
    backend = CancelledInside({0})
    writer = _writer(backend, retry_attempts=1)
    await writer.write(_batch("m0"))
    assert backend.messages == ["m0"]
    assert _figures(writer) == {
        "written": 1,
        "dropped": 0,
        "dead_lettered": 0,
        "write_errors": 1,
        "retries": 1,
    }
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_backend_cancelled_error_without_retries_goes_to_the_fallback() -> None:
    fallback = CountingFallback()
    writer = _writer(CancelledInside({0}), fallback=fallback)
    await writer.write(_batch("m0"))
    assert fallback.messages == ["m0"]
    assert _figures(writer)["dead_lettered"] == 1
    assert _figures(writer)["write_errors"] == 1


async def test_a_backend_cancelled_error_lost_raises_backend_write_error() -> None:
    writer = _writer(CancelledInside({0}))
    with pytest.raises(BackendWriteError) as raised:
        await writer.write(_batch("m0"), raise_if_lost=True)
    assert str(raised.value) == (
        "log entry not written: the backend's write was cancelled from inside: CancelledError()"
    )
    assert type(raised.value.__cause__) is LogError
    assert writer.counters.dropped == 1


async def test_a_real_cancellation_propagates_and_leaves_the_batch_in_flight() -> None:
    backend = GateBackend()
    fallback = CountingFallback()
    writer = _writer(backend, fallback=fallback, retry_attempts=3)
    batch = _batch("m0", "m1")
    task = asyncio.create_task(writer.write(batch))
    await asyncio.wait_for(backend.writing.wait(), 1.0)
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    stuck = not task.done()  # a cancellation taken for a failed write would retry for ever
    in_flight = writer.in_flight
    figures = _figures(writer)
    backend.release()  # (lets such a retry finish, so the loop can close)
    await asyncio.wait({task}, timeout=1.0)
    assert not stuck, "the cancellation did not propagate"
    assert task.cancelled()
    assert figures == {
        "written": 0,
        "dropped": 0,
        "dead_lettered": 0,
        "write_errors": 0,
        "retries": 0,
    }
    assert fallback.opens == 0
    assert in_flight is batch  # whoever stopped it settles the batch
    await writer.rewrite_interrupted()  # at least once: written again, in_flight cleared
    assert backend.messages == ["m0", "m1"]
    assert writer.in_flight == ()
    assert writer.counters.written == 2


# ---- write_immediately (blocking backends) ------------------------------------------------


async def test_write_immediately_uses_the_blocking_method_and_counts() -> None:
    backend = BlockingBackend()
    writer = _writer(backend, blocking=True)
    assert writer.immediate
    batch = _batch("m0", "m1")
    assert writer.write_immediately(batch) is None
    assert (backend.blocking_calls, backend.awaited_calls) == (1, 0)
    assert backend.entries == [LogEntry(*entry) for entry in batch]
    assert _figures(writer)["written"] == 2


async def test_immediate_needs_blocking_mode_and_no_handlers() -> None:
    assert not _writer(BlockingBackend(), blocking=False).immediate
    assert not _writer(BlockingBackend(), blocking=True, handlers=[lambda entry: None]).immediate
    assert not _writer(RecordingBackend(), blocking=True).immediate


async def test_write_in_blocking_mode_does_not_await_the_backend() -> None:
    backend = BlockingBackend()
    writer = _writer(backend, blocking=True, handlers=[lambda entry: None])
    await writer.write(_batch("m0"))
    assert (backend.blocking_calls, backend.awaited_calls) == (1, 0)


async def test_would_block_is_raised_uncounted_and_write_falls_back_to_write_batch() -> None:
    backend = BlockingBackend("would_block")
    writer = _writer(backend, blocking=True)
    batch = _batch("m0")
    with pytest.raises(WouldBlock):
        writer.write_immediately(batch)
    assert _figures(writer) == {
        "written": 0,
        "dropped": 0,
        "dead_lettered": 0,
        "write_errors": 0,
        "retries": 0,
    }
    assert backend.entries == []
    await writer.write(batch)
    assert (backend.blocking_calls, backend.awaited_calls) == (2, 1)
    assert backend.messages == ["m0"]
    assert _figures(writer)["written"] == 1


async def test_a_failed_immediate_write_returns_its_error_for_recover(
    sleeps: list[float],
) -> None:
    backend = BlockingBackend("fail")
    writer = _writer(backend, blocking=True, retry_attempts=2, retry_backoff=0.5)
    batch = _batch("m0")
    error = writer.write_immediately(batch)
    assert isinstance(error, OSError)
    assert _figures(writer)["write_errors"] == 1
    backend.mode = "ok"
    await writer.recover(batch, error)
    assert sleeps == [0.5]
    assert backend.messages == ["m0"]
    assert _figures(writer) == {
        "written": 1,
        "dropped": 0,
        "dead_lettered": 0,
        "write_errors": 1,
        "retries": 1,
    }
    assert writer.in_flight == ()


async def test_recover_raises_when_lost_and_asked(sleeps: list[float]) -> None:
    backend = BlockingBackend("fail")
    writer = _writer(backend, blocking=True, retry_attempts=1)
    batch = _batch("m0")
    error = writer.write_immediately(batch)
    assert error is not None
    with pytest.raises(BackendWriteError):
        await writer.recover(batch, error, raise_if_lost=True)
    assert _figures(writer) == {
        "written": 0,
        "dropped": 1,
        "dead_lettered": 0,
        "write_errors": 2,
        "retries": 1,
    }


# ---- write_at_exit ------------------------------------------------------------------------


class Flushing(RecordingBackend):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.flushed: list[object] = []
        self.fail = fail

    def flush_at_exit(self, entries: Sequence[LogEntry]) -> None:
        if self.fail:
            raise OSError(9, "Bad file descriptor")
        self.flushed.extend(entries)


def test_write_at_exit_uses_flush_at_exit_and_counts_written() -> None:
    backend = Flushing()
    writer = _writer(backend)
    observed: list[int] = []
    writer.observers.append(lambda entries, seconds: observed.append(len(entries)))
    batch = _batch("m0", "m1")
    writer.write_at_exit(batch)
    assert backend.flushed == [LogEntry(*entry) for entry in batch]
    assert _figures(writer) == {
        "written": 2,
        "dropped": 0,
        "dead_lettered": 0,
        "write_errors": 0,
        "retries": 0,
    }
    assert observed == [2]


def test_write_at_exit_without_flush_at_exit_drops() -> None:
    backend = RecordingBackend()
    writer = _writer(backend)
    writer.write_at_exit(_batch("m0", "m1", "m2"))
    assert backend.entries == []
    assert _figures(writer)["dropped"] == 3
    assert _figures(writer)["written"] == 0


def test_write_at_exit_with_a_failing_flush_drops() -> None:
    writer = _writer(Flushing(fail=True))
    writer.write_at_exit(_batch("m0", "m1"))
    assert _figures(writer)["dropped"] == 2
    assert _figures(writer)["written"] == 0


# ---- observers ----------------------------------------------------------------------------


async def test_observers_get_the_written_entries_and_seconds_after_each_success(
    sleeps: list[float],
) -> None:
    backend_got: list[object] = []

    class Remembering(FailingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            backend_got.append(entries)
            await super().write_batch(entries)

    writer = _writer(Remembering({0}), retry_attempts=1)
    calls: list[tuple[object, float]] = []
    writer.observers.append(lambda entries, seconds: calls.append((entries, seconds)))
    batch = _batch("m0", "m1")
    await writer.write(batch)
    assert len(calls) == 1, "observers see successful writes only"
    entries, seconds = calls[0]
    assert entries == [LogEntry(*entry) for entry in batch]
    assert entries is backend_got[-1]
    assert isinstance(seconds, float)
    assert 0.0 <= seconds < 1.0


async def test_a_raising_observer_does_not_stop_the_others_or_the_count() -> None:
    writer = _writer(RecordingBackend())
    calls: list[str] = []

    def broken(entries: Sequence[LogEntry], seconds: float) -> None:
        calls.append("broken")
        raise RuntimeError("observer bug")

    writer.observers.extend([broken, lambda entries, seconds: calls.append("next")])
    await writer.write(_batch("m0"))
    assert calls == ["broken", "next"]
    assert writer.counters.written == 1


async def test_observers_see_immediate_writes_too() -> None:
    writer = _writer(BlockingBackend(), blocking=True)
    calls: list[list[str]] = []
    writer.observers.append(lambda entries, seconds: calls.append([e.message for e in entries]))
    assert writer.write_immediately(_batch("m0", "m1")) is None
    assert calls == [["m0", "m1"]]
