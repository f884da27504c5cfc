"""Review of issue 12 (b): stdlib records logged on the loop's thread, accepted at once when
the handoff is idle, keep their order with records handed in from other threads."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from asynclog import Config, LogManager
from asynclog.stdlib import install

from .conftest import GateBackend, RecordingBackend, assert_settled


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def _in_thread(log: logging.Logger, message: str) -> None:
    thread = threading.Thread(target=log.warning, args=(message,))
    thread.start()
    thread.join()  # handed in; it lands on the loop only when the loop runs again


@pytest.mark.parametrize("async_mode", [True, False])
async def test_loop_records_come_after_thread_records_handed_in_before_them(
    clean_logging: None, async_mode: bool
) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        install(lm, level="DEBUG")
        log = logging.getLogger("review12.order")
        log.warning("loop 1")
        _in_thread(log, "thread 2")
        log.warning("loop 3")
        _in_thread(log, "thread 4")
        _in_thread(log, "thread 5")
        log.warning("loop 6")
        await asyncio.sleep(0)
        log.warning("loop 7")
    assert backend.messages == [
        "loop 1",
        "thread 2",
        "loop 3",
        "thread 4",
        "thread 5",
        "loop 6",
        "loop 7",
    ]
    assert_settled(lm.get_stats())


async def test_loop_records_wait_behind_a_full_queue_in_order(clean_logging: None) -> None:
    backend = GateBackend()
    config = Config(backend=backend, async_mode=True, queue_size=2, overflow="block")
    async with LogManager(config) as lm:
        install(lm, level="DEBUG")
        log = logging.getLogger("review12.full")
        log.warning("w0")
        await backend.writing.wait()  # the worker holds w0
        for i in range(1, 6):
            log.warning("w%d", i)  # the queue takes two, the rest wait in the backlog
            if i == 3:
                _in_thread(log, "t")
        backend.release()
    assert backend.messages == ["w0", "w1", "w2", "w3", "t", "w4", "w5"]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped) == (7, 7, 0)


async def test_records_held_before_start_come_before_the_first_loop_record(
    clean_logging: None,
) -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=True))
    install(lm, level="DEBUG")
    log = logging.getLogger("review12.held")
    log.warning("held 1")
    _in_thread(log, "held 2")
    async with lm:
        log.warning("loop 3")
        _in_thread(log, "thread 4")
        log.warning("loop 5")
    assert backend.messages == ["held 1", "held 2", "loop 3", "thread 4", "loop 5"]
    assert_settled(lm.get_stats())
