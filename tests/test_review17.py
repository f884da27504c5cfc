"""Review of f461bf5 (file batches written on the backend's thread, plain dict fields, plain
stdlib records accepted inline)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from asynclog import Config, FileBackend, FileConfig, LogEntry, LogManager
from asynclog._entry import FIELDS, MESSAGE
from asynclog.testing import capture_logs

from .conftest import RecordingBackend
from .test_shutdown import run_python


class BlockingFile(FileBackend):
    """A file backend whose writes hold its thread until released (a stuck disk)."""

    def __init__(self, config: FileConfig) -> None:
        super().__init__(config, formatter=lambda entry: entry.message)
        self.entered = threading.Event()
        self.release = threading.Event()

    def write_lines(self, entries: Sequence[LogEntry], lines: list[str]) -> None:  # type: ignore[override]
        self.entered.set()
        self.release.wait(10)
        super().write_lines(entries, lines)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)


def cancel_worker() -> None:
    for task in asyncio.all_tasks():
        if task.get_name() == "asynclog-worker":
            task.cancel()


async def a_batch_left_to_the_thread(tmp_path: Path) -> tuple[LogManager, BlockingFile, Path]:
    """A manager whose worker was cancelled (an application cancelling every task) while its
    file thread writes the batch "one": the batch goes on there (WriteContinues)."""
    path = tmp_path / "app.log"
    backend = BlockingFile(FileConfig(file_path=path))
    lm = LogManager(Config(backend=backend, async_mode=True))
    await lm.start()
    await lm.info("one")
    await backend.wait_entered()
    cancel_worker()
    await asyncio.sleep(0.05)
    return lm, backend, path


async def test_close_waits_for_a_batch_the_thread_still_writes_after_the_worker_was_cancelled(
    tmp_path: Path,
) -> None:
    # close() with no deadline must let the thread finish the batch before closing the file,
    # not pull the file from under it.
    lm, backend, path = await a_batch_left_to_the_thread(tmp_path)
    assert lm.get_stats().pending == 1
    asyncio.get_running_loop().call_later(0.2, backend.release.set)
    report = await lm.close()
    assert (report.written, report.dropped, report.abandoned) == (1, 0, 0)
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.pending) == (1, 1, 0, 0)
    assert path.read_text() == "one\n"


async def test_close_deadline_abandons_a_batch_the_thread_still_writes_once(
    tmp_path: Path,
) -> None:
    lm, backend, _ = await a_batch_left_to_the_thread(tmp_path)
    try:
        report = await lm.close(timeout=0.2)
    finally:
        backend.release.set()
    assert (report.written, report.dropped, report.abandoned) == (0, 1, 1)
    await asyncio.sleep(0.2)  # whatever the thread does now counts nothing
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.pending) == (1, 0, 1, 0)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_subclass_overriding_write_lines_gets_log_entries(
    tmp_path: Path, async_mode: bool
) -> None:
    # FileBackend takes the pipeline's plain tuples and hands them to write_lines (on its
    # thread in async mode): an override of that method (which never said
    # `takes_entry_tuples`) must still get LogEntry objects with read-only fields.
    seen: list[object] = []

    class Audited(FileBackend):
        def write_lines(self, entries: Sequence[LogEntry], lines: list[str]) -> None:  # type: ignore[override]
            for entry in entries:
                seen.append((type(entry), entry.message, type(entry.fields)))
            super().write_lines(entries, lines)

    path = tmp_path / "app.log"
    async with LogManager(
        Config(backend=Audited(FileConfig(file_path=path, format="json")), async_mode=async_mode)
    ) as lm:
        await lm.info("with", user="ada")
        await lm.info("plain")
    assert seen == [
        (LogEntry, "with", MappingProxyType),
        (LogEntry, "plain", MappingProxyType),
    ]
    assert [json.loads(line)["fields"] for line in path.read_text().splitlines()] == [
        {"user": "ada"},
        {},
    ]
    assert lm.get_stats().written == 2


class MutatingTupleBackend:
    """A backend that opts in to the plain tuples (docs/backends-and-formats.md) and tries to
    add a field to each entry in place."""

    takes_entry_tuples = True

    def __init__(self) -> None:
        self.refused: list[str] = []

    async def open(self) -> None:
        return None

    async def write_batch(self, entries: Sequence[Any]) -> None:
        for entry in entries:
            try:
                entry[FIELDS]["added"] = True
            except TypeError:
                self.refused.append(entry[MESSAGE])

    async def close(self) -> None:
        return None


async def test_a_tuple_backend_cannot_change_the_shared_empty_fields() -> None:
    # Entries without fields share one mapping: changed in place by one backend, every later
    # entry of every sink (and every capture) would carry the change.
    mutating, recording = MutatingTupleBackend(), RecordingBackend()
    # Sync mode: each entry is written when its call returns.
    async with LogManager(Config(backends=[mutating, recording], async_mode=False)) as lm:
        await lm.info("first")
        with capture_logs() as captured:
            await lm.info("second")
    assert mutating.refused == ["first", "second"]
    assert [dict(entry.fields) for entry in recording.entries] == [{}, {}]
    assert [dict(entry.fields) for entry in captured] == [{}]


SPAN_FIELDS_CHANGED_IN_PLACE = """
    import asyncio
    from opentelemetry.sdk.trace import TracerProvider
    from asynclog import Config, LogManager
    from tests.conftest import RecordingBackend
    from tests.test_review17 import MutatingTupleBackend

    async def main():
        tracer = TracerProvider().get_tracer("review17")
        mutating, recording = MutatingTupleBackend(), RecordingBackend()
        async with LogManager(Config(backends=[mutating, recording], async_mode=False)) as lm:
            with tracer.start_as_current_span("request"):
                await lm.info("first")
                await lm.info("second")
        print("refused", mutating.refused)
        print("fields", [sorted(entry.fields) for entry in recording.entries])

    asyncio.run(main())
"""


def test_a_tuple_backend_cannot_change_the_fields_a_span_shares() -> None:
    # In a process of its own: OpenTelemetry imported here would follow every later test.
    pytest.importorskip("opentelemetry.sdk.trace")
    done = run_python(SPAN_FIELDS_CHANGED_IN_PLACE)
    assert done.returncode == 0, done.stderr
    keys = ["span_id", "trace_flags", "trace_id"]
    assert done.stdout.splitlines() == [
        "refused ['first', 'second']",
        f"fields {[keys, keys]}",
    ]


def open_fds() -> int | None:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


async def test_a_shared_file_is_not_reopened_by_a_batch_abandoned_at_the_close_deadline(
    tmp_path: Path,
) -> None:
    # Abandoned at the deadline, the batch goes on on the file thread after close() released
    # the file: it must not open the file again (a descriptor nothing closes) and write there.
    path = tmp_path / "app.log"
    fds = open_fds()
    backend = BlockingFile(FileConfig(file_path=path, shared=True))
    lm = LogManager(Config(backend=backend, async_mode=True))
    await lm.start()
    await lm.info("one")
    await backend.wait_entered()
    try:
        report = await lm.close(timeout=0.1)
    finally:
        backend.release.set()
    assert (report.written, report.dropped, report.abandoned) == (0, 1, 1)
    await asyncio.sleep(0.2)  # the thread ends the batch
    assert path.read_text() == ""
    assert open_fds() == fds


FORGETS_CLOSE_DURING_A_SLOW_WRITE = """
    import asyncio, sys, threading, time
    from asynclog import Config, FileConfig, FileBackend, LogManager
    entered = threading.Event()
    managers = []

    class SlowDisk(FileBackend):
        def write_lines(self, entries, lines):
            entered.set()
            time.sleep(0.5)  # a slow disk, on the file backend's thread
            super().write_lines(entries, lines)

    async def main():
        backend = SlowDisk(FileConfig(file_path=sys.argv[1]), formatter=lambda e: e.message)
        lm = LogManager(Config(backend=backend, async_mode=True))
        managers.append(lm)  # kept alive, never closed
        await lm.start()
        await lm.info("one")
        await asyncio.to_thread(entered.wait, 5)

    asyncio.run(main())  # cancels the worker while the thread writes "one"
    print("pending after run", managers[0].get_stats().pending, flush=True)
"""


def test_the_exit_flush_lets_the_file_thread_finish_its_batch(tmp_path: Path) -> None:
    # asyncio.run cancelled the worker while the file thread writes a batch: the batch goes
    # on there (WriteContinues). The exit flush must not close the file under it.
    path = tmp_path / "app.log"
    done = run_python(FORGETS_CLOSE_DURING_A_SLOW_WRITE, str(path))
    assert done.returncode == 0, done.stderr
    assert "pending after run 1" in done.stdout  # the loop is gone: nothing can count it now
    assert "writing 0 pending entries at exit" in done.stderr
    assert path.read_text() == "one\n"


# Forking while the parent's file thread writes is the case under test; Python 3.12 warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
async def test_a_forked_child_does_not_count_the_batch_the_parents_thread_writes(
    tmp_path: Path,
) -> None:
    # The parent's worker was cancelled while its file thread writes a batch (pending: 1). A
    # child forked now has no such thread: its copy of the manager owes nothing.
    lm, backend, path = await a_batch_left_to_the_thread(tmp_path)
    assert lm.get_stats().pending == 1
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        stats = lm.get_stats()
        os.write(write, f"{stats.pending} {stats.accepted}".encode())
        os._exit(0)
    os.close(write)
    try:
        assert (await asyncio.to_thread(os.read, read, 100)).decode() == "0 1"
        assert (await asyncio.to_thread(os.waitpid, child, 0))[1] == 0
    finally:
        os.close(read)
        backend.release.set()
    report = await lm.close()
    assert (report.written, report.dropped, report.abandoned) == (1, 0, 0)
    assert path.read_text() == "one\n"
