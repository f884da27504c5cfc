"""Nothing the manager starts outlives it; cancellation leaves it consistent."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, LogError, LogManager, SQLiteConfig

from .conftest import GateBackend, RecordingBackend, message_of, read_lines


def _threads() -> dict[int | None, str]:
    return {thread.ident: thread.name for thread in threading.enumerate()}


@pytest.mark.parametrize("async_mode", [True, False])
@pytest.mark.parametrize("backend", ["file", "sqlite", "console"])
async def test_no_task_or_thread_outlives_the_manager(
    tmp_path: Path, backend: str, async_mode: bool
) -> None:
    options = {
        "file": FileConfig(file_path=tmp_path / "a.log"),
        "sqlite": SQLiteConfig(db_path=tmp_path / "a.db"),
        "console": None,
    }[backend]
    tasks_before = asyncio.all_tasks()
    # By identity, not by count: an earlier test's thread (a trio test's) may end meanwhile.
    threads_before = _threads()
    config = Config(backend=backend, backend_config=options, async_mode=async_mode)
    async with LogManager(config) as lm:
        started = set(_threads()) - set(threads_before)
        for index in range(300):
            await lm.info(f"m{index}")
    assert asyncio.all_tasks() == tasks_before
    outlived = {ident: name for ident, name in _threads().items() if ident not in threads_before}
    assert outlived == {}
    if backend != "console" and async_mode:
        assert started, "the backend's thread ran while the manager was open"
    assert lm.get_stats().written == 300


async def test_cancelling_the_task_that_closes_still_finishes_the_close(log_path: Path) -> None:
    config = Config(backend="file", async_mode=True, backend_config=FileConfig(file_path=log_path))
    lm = LogManager(config)
    await lm.start()
    for index in range(2000):
        await lm.info(f"m{index}")
    closer = asyncio.create_task(lm.close())
    await asyncio.sleep(0)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    await lm.close()  # returns once the (uncancelled) close is done
    assert [message_of(line) for line in read_lines(log_path)] == [f"m{i}" for i in range(2000)]
    assert lm.get_stats().written == 2000


async def test_cancelling_a_producer_waiting_for_room_leaves_the_queue_consistent() -> None:
    backend = GateBackend()
    lm = LogManager(Config(backend=backend, async_mode=True, queue_size=2, put_timeout=5))
    await lm.start()
    await lm.info("taken by the worker")
    await backend.writing.wait()
    await lm.info("q1")
    await lm.info("q2")
    blocked = asyncio.create_task(lm.info("cancelled"))
    await asyncio.sleep(0.01)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    backend.release()
    await lm.info("after")
    await lm.close()
    assert backend.messages[0] == "taken by the worker"
    assert backend.messages[1].startswith("asynclog dropped 1 entries between")
    assert backend.messages[2:] == ["q1", "q2", "after"]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.pending) == (6, 5, 1, 0)


async def test_start_twice_is_refused() -> None:
    lm = LogManager(Config(backend=RecordingBackend()))
    async with lm:
        with pytest.raises(LogError, match="was already started"):
            await lm.start()


async def test_a_backend_whose_open_fails_leaves_the_manager_closed() -> None:
    class Broken(RecordingBackend):
        async def open(self) -> None:
            raise ConnectionError("no route")

    lm = LogManager(Config(backend=Broken(), async_mode=True))
    with pytest.raises(LogError, match=r"cannot open backend .*no route"):
        await lm.start()
    assert lm.closed
    await lm.close()
