"""What keeps asynclog cheap on a saturated event loop (issue 12): a queued entry is one object
for the garbage collector, and the file backend hands each batch to its thread once."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

import asynclog.stdlib
from asynclog import Config, FileBackend, FileConfig, LogEntry, LogManager
from asynclog._entry import Entry

from .conftest import GateBackend, message_of, read_lines


async def test_a_queued_entry_is_one_object_for_the_garbage_collector() -> None:
    backend = GateBackend()
    lm = LogManager(Config(backend=backend, async_mode=True, queue_size=10_000))
    await lm.start()
    access = logging.getLogger("test.saturated.access")
    access.propagate = False  # pytest's capture handler on the root would keep each record
    installation = asynclog.stdlib.install(lm, level="INFO", loggers=[access.name], replace=True)
    try:
        await lm.info("first")  # the worker takes it and waits at the gate
        await backend.writing.wait()
        gc.collect()
        before = len(gc.get_objects())
        for index in range(2000):
            await lm.info("hello", user="ada", request=index)
            await lm.info("plain")
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/", "1.1", 200)
        gc.collect()
        grown = len(gc.get_objects()) - before
        assert lm.get_stats().queue_size == 6000
        # Its tuple only: with a read-only proxy of its fields, an entry with fields was two
        # objects that every collection traversed until the entry was written. (A few of an
        # earlier test's objects may be freed meanwhile: the count can fall short by those.)
        assert 5900 <= grown < 6100, f"{grown} objects tracked for 6,000 queued entries"
    finally:
        installation.undo()
        access.propagate = True
        backend.release()
        await lm.close()
    assert len(backend.entries) == 6001
    assert backend.entries[1].fields == {"user": "ada", "request": 0}
    assert backend.entries[3].message == '127.0.0.1:5000 - "GET / HTTP/1.1" 200'


async def test_code_outside_asynclog_sees_read_only_fields() -> None:
    backend = GateBackend()
    backend.release()
    seen: list[LogEntry] = []
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        lm.observe_writes(lambda name, entries, seconds: seen.extend(entries))
        await lm.info("with", user="ada")
        await lm.info("without")
    for entry in [*backend.entries, *seen]:
        with pytest.raises(TypeError):
            entry.fields["added"] = 1  # type: ignore[index]
    assert [dict(entry.fields) for entry in backend.entries] == [{"user": "ada"}, {}]


async def test_a_file_write_outlives_the_cancelled_worker_without_duplicates(
    log_path: Path,
) -> None:
    release, writing = threading.Event(), threading.Event()

    class SlowDisk(FileBackend):
        def write_lines(self, entries: Sequence[Entry], lines: list[str]) -> None:
            writing.set()
            release.wait(5)  # on the backend's thread
            super().write_lines(entries, lines)

    lm = LogManager(Config(backend=SlowDisk(FileConfig(file_path=log_path)), async_mode=True))
    await lm.start()
    for index in range(3):
        await lm.info(f"before {index}")
    await asyncio.to_thread(writing.wait, 5)
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:  # an app's "graceful shutdown" cancels the worker mid-write
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    assert lm.get_stats().pending >= 1  # the batch the thread holds: neither written nor lost
    release.set()
    await lm.info("after")
    report = await lm.close()
    messages = [message_of(line) for line in read_lines(log_path)]
    assert sorted(messages) == ["after", "before 0", "before 1", "before 2"]
    assert len(messages) == len(set(messages))
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.pending) == (4, 4, 0, 0)
    assert report.abandoned == 0
