"""`lm.nowait`: the logging calls as plain functions that never wait."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from asynclog import (
    Config,
    FileConfig,
    Level,
    LogManager,
    ManagerClosedError,
    NoWait,
    QueueFullError,
    Sink,
)

from .conftest import GateBackend, RecordingBackend, assert_settled, message_of, read_lines


async def _stalled(**options: object) -> tuple[LogManager, GateBackend]:
    backend = GateBackend()
    options.setdefault("queue_size", 10)
    lm = LogManager(Config(backend=backend, async_mode=True, **options))  # type: ignore[arg-type]
    await lm.start()
    await lm.info("in flight")  # the worker takes it and stalls in write_batch
    await backend.writing.wait()
    return lm, backend


def _kept(messages: list[str]) -> list[str]:
    return [m for m in messages if not m.startswith("asynclog dropped ")]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_every_nowait_method_is_a_plain_call_returning_true(async_mode: bool) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        nowait = lm.nowait
        assert isinstance(nowait, NoWait)
        assert lm.nowait is nowait
        results = [
            nowait.debug("debug %d", 1),
            nowait.info("info"),
            nowait.warning("warning %s", "w", user="ann"),
            nowait.error("error"),
            nowait.critical("critical"),
            nowait.write_log("INFO", "write_log %s/%s", "a", "b"),
        ]
        try:
            raise RuntimeError("nowait boom")
        except RuntimeError:
            results.append(nowait.exception("exception"))
        assert results == [True] * 7
    assert [(e.level, e.message, e.template) for e in backend.entries] == [
        (Level.DEBUG, "debug 1", "debug %d"),
        (Level.INFO, "info", None),
        (Level.WARNING, "warning w", "warning %s"),
        (Level.ERROR, "error", None),
        (Level.CRITICAL, "critical", None),
        (Level.INFO, "write_log a/b", "write_log %s/%s"),
        (Level.ERROR, "exception", None),
    ]
    assert dict(backend.entries[2].fields) == {"user": "ann"}
    exception = backend.entries[6].exception
    assert exception is not None and "RuntimeError: nowait boom" in exception
    assert_settled(lm.get_stats())


async def test_nowait_of_views_carries_their_name_and_fields() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, name="app")) as lm:
        db = lm.get_logger("app.db")
        assert db.nowait is db.nowait
        assert db.nowait.info("query") is True
        assert db.bind(table="users").nowait.info("row") is True
        assert lm.bind(request="r1").nowait.info("bound") is True
    assert [(e.logger, e.message, dict(e.fields)) for e in backend.entries] == [
        ("app.db", "query", {}),
        ("app.db", "row", {"table": "users"}),
        ("app", "bound", {"request": "r1"}),
    ]


async def test_from_a_loop_callback_that_is_not_a_coroutine() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        results: list[bool] = []
        done = asyncio.Event()

        def callback() -> None:
            results.append(lm.nowait.info("from call_soon"))
            done.set()

        asyncio.get_running_loop().call_soon(callback)
        await done.wait()
    assert results == [True]
    assert backend.messages == ["from call_soon"]


async def test_filtered_out_returns_false_and_formats_nothing() -> None:
    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("formatted although filtered out")

    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, level="WARNING")) as lm:
        assert lm.nowait.info("below %s", Exploding()) is False
        assert lm.nowait.debug("below") is False
        assert lm.get_stats().filtered == 2
    assert backend.entries == []


async def test_not_started_and_closed_raise() -> None:
    lm = LogManager(Config(backend=RecordingBackend()))
    with pytest.raises(ManagerClosedError, match="is not started"):
        lm.nowait.info("too early")
    await lm.start()
    await lm.close()
    with pytest.raises(ManagerClosedError, match="is closed"):
        lm.nowait.info("too late")


# ---- a full queue ----------------------------------------------------------------------------


async def test_a_full_queue_drops_at_once_counted_and_reported_and_priority_uses_the_reserve() -> (
    None
):
    lm, backend = await _stalled()  # overflow="timeout": a nowait call never waits
    for index in range(10):
        assert lm.nowait.info(f"m{index}") is True
    assert [lm.nowait.info(f"d{index}") for index in range(3)] == [False] * 3
    stats = lm.get_stats()
    assert (stats.queue_size, stats.dropped, stats.accepted) == (10, 3, 14)
    for index in range(16):  # the reserve: max(16, queue_size // 10)
        assert lm.nowait.error(f"e{index}") is True
    assert lm.nowait.critical("beyond the reserve") is True  # waits in the backlog, never dropped
    stats = lm.get_stats()
    assert (stats.queue_size, stats.dropped, stats.pending) == (26, 3, 28)
    backend.release()
    await lm.close()
    assert _kept(backend.messages) == (
        ["in flight"]
        + [f"m{i}" for i in range(10)]
        + [f"e{i}" for i in range(16)]
        + ["beyond the reserve"]
    )
    reports = [e for e in backend.entries if e.message.startswith("asynclog dropped ")]
    assert [report.fields["dropped"] for report in reports] == [3]
    stats = lm.get_stats()
    assert stats.dropped == 3
    assert_settled(stats)


async def test_a_full_queue_raises_queue_full_with_raise_errors() -> None:
    lm, backend = await _stalled(queue_size=2, raise_errors=True, overflow="block")
    assert lm.nowait.info("a") is True
    assert lm.nowait.info("b") is True
    with pytest.raises(QueueFullError, match="a nowait call does not wait"):
        lm.nowait.info("c")
    assert lm.get_stats().dropped == 1
    backend.release()
    await lm.close()
    assert _kept(backend.messages) == ["in flight", "a", "b"]
    assert_settled(lm.get_stats())


async def test_drop_oldest_evicts_without_waiting() -> None:
    lm, backend = await _stalled(queue_size=3, overflow="drop_oldest")
    results = [lm.nowait.info(f"m{index}") for index in range(5)]
    assert results == [True] * 5
    assert lm.get_stats().dropped == 2
    backend.release()
    await lm.close()
    assert _kept(backend.messages) == ["in flight", "m2", "m3", "m4"]
    assert_settled(lm.get_stats())


# ---- another thread --------------------------------------------------------------------------


async def test_from_another_thread_it_hands_the_entry_in_formatted_there() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        items = ["a"]

        def work() -> bool:
            handed = lm.nowait.info("items %s", items, worker=threading.current_thread().name)
            items.append("changed after the call")  # the message was formatted at the call
            return handed

        thread_result = await asyncio.to_thread(work)
        assert thread_result is True
        for _ in range(5):
            await asyncio.sleep(0)
    assert [(e.message, e.template) for e in backend.entries] == [("items ['a']", "items %s")]
    assert backend.entries[0].fields["worker"] != threading.current_thread().name
    assert_settled(lm.get_stats())


async def test_from_another_thread_a_filtered_entry_is_not_formatted() -> None:
    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("formatted although filtered out")

    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, level="INFO")) as lm:
        assert await asyncio.to_thread(lm.nowait.debug, "x %s", Exploding()) is True
        for _ in range(5):
            await asyncio.sleep(0)
        assert lm.get_stats().filtered == 1
    assert backend.entries == []


# ---- sync mode -------------------------------------------------------------------------------


async def test_sync_mode_writes_a_file_before_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = Config(backend="file", backend_config=FileConfig(file_path=path), async_mode=False)
    async with LogManager(config) as lm:
        assert lm.nowait.info("on disk %d", 1) is True
        assert [message_of(line) for line in read_lines(path)] == ["on disk 1"]
        stats = lm.get_stats()
        assert (stats.written, stats.pending) == (1, 0)


async def test_sync_mode_an_awaited_backend_gets_it_from_the_pipeline_in_order() -> None:
    backend = RecordingBackend()  # its write is a coroutine: no write without awaiting
    async with LogManager(Config(backend=backend, async_mode=False)) as lm:
        assert lm.nowait.info("first") is True
        assert lm.nowait.info("second") is True
        assert backend.entries == []
        assert lm.get_stats().pending == 2
        await lm.info("third")  # a coroutine's sync write waits behind them
        assert backend.messages == ["first", "second", "third"]
    assert_settled(lm.get_stats())


async def test_with_several_backends_only_the_full_one_drops() -> None:
    slow, fast = GateBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(slow, name="slow"), Sink(fast, name="fast")],
        async_mode=True,
        queue_size=2,
    )
    async with LogManager(config) as lm:
        await lm.info("in flight")
        await slow.writing.wait()
        try:
            assert [lm.nowait.info("m0"), lm.nowait.info("m1")] == [True, True]
            for _ in range(3):
                await asyncio.sleep(0)  # the fast worker empties its queue; the slow one cannot
            assert lm.nowait.info("m2") is False  # dropped by one backend: False
            stats = lm.get_stats()
            assert (stats.backends["slow"].dropped, stats.backends["fast"].dropped) == (1, 0)
        finally:
            slow.release()
    assert _kept(slow.messages) == ["in flight", "m0", "m1"]
    assert fast.messages == ["in flight", "m0", "m1", "m2"]
    assert_settled(lm.get_stats())


async def test_sync_mode_with_a_handler_the_pipeline_writes_it_and_runs_the_handler() -> None:
    backend = RecordingBackend()
    handled: list[str] = []
    async with LogManager(Config(backend=backend, async_mode=False)) as lm:
        lm.register_handler(lambda entry: handled.append(entry.message))
        assert lm.nowait.warning("handled %s", "later") is True
        assert handled == []
        await lm.info("after")
    assert handled == backend.messages == ["handled later", "after"]
    assert_settled(lm.get_stats())
