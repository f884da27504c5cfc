"""write_log_threadsafe: any thread may log; the loop applies the same rules."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, Level, LogManager, ManagerClosedError

from .conftest import GateBackend, RecordingBackend, assert_settled, message_of, read_lines


@pytest.mark.parametrize("async_mode", [True, False])
async def test_threads_in_a_pool_log_everything_in_their_own_order(
    log_path: Path, async_mode: bool
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        backend_config=FileConfig(file_path=log_path),
        overflow="block",  # a loaded machine must not turn this into a put_timeout test
    )

    def work(lm: LogManager, number: int) -> None:
        for index in range(500):
            lm.write_log_threadsafe(Level.INFO, f"t{number} {index}")

    async with LogManager(config) as lm:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=4) as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, work, lm, n) for n in range(4)))
        lm.write_log_threadsafe("warning", "from the loop's own thread")
    per_thread: dict[str, list[int]] = {}
    lines = [message_of(line) for line in read_lines(log_path)]
    assert len(lines) == 2001
    assert lines[-1] == "from the loop's own thread"
    for line in lines[:-1]:
        name, index = line.split()
        per_thread.setdefault(name, []).append(int(index))
    assert per_thread == {f"t{n}": list(range(500)) for n in range(4)}
    assert_settled(lm.get_stats())


async def test_the_time_is_taken_in_the_calling_thread() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        stamps: list[float] = []

        def call() -> None:
            stamps.append(time.time())
            lm.write_log_threadsafe(Level.INFO, "stamped")
            time.sleep(0.05)  # the loop only sees it later

        thread = threading.Thread(target=call)
        thread.start()
        await asyncio.sleep(0.1)
        thread.join()
    (entry,) = backend.entries
    assert stamps[0] <= entry.timestamp <= stamps[0] + 0.04


async def test_bad_levels_raise_in_the_thread_and_closed_managers_refuse() -> None:
    lm = LogManager(Config(backend=RecordingBackend(), async_mode=True))
    with pytest.raises(ManagerClosedError, match="is not started"):
        lm.write_log_threadsafe(Level.INFO, "early")
    async with lm:
        with pytest.raises(ValueError, match="unknown level name 'loud'"):
            await asyncio.to_thread(lm.write_log_threadsafe, "loud", "x")
    with pytest.raises(ManagerClosedError, match="is closed"):
        await asyncio.to_thread(lm.write_log_threadsafe, Level.INFO, "late")


async def test_a_full_queue_counts_thread_entries_dropped_instead_of_raising() -> None:
    backend = GateBackend()
    lm = LogManager(Config(backend=backend, async_mode=True, queue_size=5, put_timeout=0.01))
    await lm.start()
    await lm.info("in the worker's hands")
    await backend.writing.wait()

    def flood() -> None:
        for index in range(20):
            lm.write_log_threadsafe(Level.INFO, f"m{index}")  # never raises

    await asyncio.to_thread(flood)
    # Handed-in entries wait for room one after another (in arrival order), each up to
    # put_timeout: 15 of them time out within about 15 x 10 ms.
    async with asyncio.timeout(5):
        while lm.get_stats().dropped < 15:  # noqa: ASYNC110 (polling the stats is the point)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    stats = lm.get_stats()
    assert stats.accepted == 21 and stats.dropped == 15
    backend.release()
    await lm.close()
    assert_settled(lm.get_stats())
