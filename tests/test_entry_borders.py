"""Inside the pipeline an entry is a plain tuple; everything outside asynclog sees LogEntry."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, FileConfig, LogEntry, LogManager
from asynclog.testing import capture_logs

from .conftest import RecordingBackend, read_lines


class TupleBackend(RecordingBackend):
    """Opts in to the plain tuples, as the built-in backends do."""

    takes_entry_tuples = True

    async def write_batch(self, entries: Sequence[Any]) -> None:  # type: ignore[override]
        self.batches.append(len(entries))
        self.entries.extend(entries)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_user_backend_gets_log_entries_and_one_that_opts_in_gets_tuples(
    async_mode: bool,
) -> None:
    plain, tuples = RecordingBackend(), TupleBackend()
    config = Config(backends=[plain, tuples], async_mode=async_mode)
    async with LogManager(config) as lm:
        await lm.info("plain")
        await lm.warning("fields", user=1)
        await lm.write_log(25, "custom level")
    assert [type(entry) for entry in plain.entries] == [LogEntry] * 3
    assert [type(entry) for entry in tuples.entries] == [tuple] * 3
    assert [tuple(entry) for entry in plain.entries] == tuples.entries
    assert [(e.level, e.message, dict(e.fields)) for e in plain.entries] == [
        (20, "plain", {}),
        (30, "fields", {"user": 1}),
        (25, "custom level", {}),
    ]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_handlers_observers_and_captures_get_log_entries(async_mode: bool) -> None:
    backend = TupleBackend()
    handled: list[object] = []
    observed: list[object] = []
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        lm.register_handler(handled.append)
        lm.observe_writes(lambda name, entries, seconds: observed.extend(entries))
        with capture_logs() as captured:
            await lm.info("one")
            await lm.error("two", code=2)
        await lm.info("three")
        await asyncio.sleep(0)
    assert [type(entry) for entry in handled] == [LogEntry] * 3
    assert [type(entry) for entry in observed] == [LogEntry] * 3
    assert [type(entry) for entry in captured] == [LogEntry] * 2
    assert [entry.message for entry in handled] == ["one", "two", "three"]  # type: ignore[attr-defined]
    assert [entry.message for entry in captured] == ["one", "two"]


async def test_a_custom_formatter_gets_log_entries(tmp_path: Path) -> None:
    seen: list[type] = []

    def formatter(entry: LogEntry) -> str:
        seen.append(type(entry))
        return f"{entry.level} {entry.message}"

    path = tmp_path / "custom.log"
    config = Config(
        backend="file", async_mode=True, backend_config=FileConfig(file_path=path, format=formatter)
    )
    async with LogManager(config) as lm:
        for index in range(300):  # more than one formatting slice
            await lm.info(f"m{index}")
    assert read_lines(path) == [f"20 m{index}" for index in range(300)]
    assert seen == [LogEntry] * 300


async def test_a_caller_cancelled_while_its_entry_is_retried_counts_it_dropped() -> None:
    """With a handler the batch is converted for it; the retry must still be recognised as
    the caller's own batch (review finding: it was left pending for good)."""

    class Failing(RecordingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            raise OSError("down")

    config = Config(backend=Failing(), retry_attempts=3, retry_backoff=0.5, fallback="none")
    lm = LogManager(config)
    await lm.start()
    handled: list[LogEntry] = []
    lm.register_handler(handled.append)
    task = asyncio.create_task(lm.info("hello"))
    await asyncio.sleep(0.1)  # in the first retry's backoff
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.pending) == (1, 0, 1, 0)
    await lm.close()
    assert [entry.message for entry in handled] == ["hello"]


async def test_a_subclass_overriding_a_built_in_backend_gets_log_entries(tmp_path: Path) -> None:
    from asynclog.backends import FileBackend

    class Redacting(FileBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            await super().write_batch(
                [e._replace(message=e.message.replace("secret", "***")) for e in entries]
            )

    class Inheriting(FileBackend):  # overrides nothing: keeps the built-in's tuples
        pass

    redacted, inherited = tmp_path / "redacted.log", tmp_path / "inherited.log"
    backends = [
        Redacting(FileConfig(file_path=redacted)),
        Inheriting(FileConfig(file_path=inherited)),
    ]
    async with LogManager(Config(backends=backends, async_mode=True, fallback="none")) as lm:
        await lm.info("password is secret")
    stats = lm.get_stats()
    assert [line.split(" ", 3)[3] for line in read_lines(redacted)] == ["password is ***"]
    assert [line.split(" ", 3)[3] for line in read_lines(inherited)] == ["password is secret"]
    assert (stats.written, stats.dropped, stats.write_errors) == (2, 0, 0)


async def test_a_write_observer_gets_the_batch_as_a_sequence_of_log_entries() -> None:
    batches: list[Sequence[LogEntry]] = []
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        lm.observe_writes(lambda name, entries, seconds: batches.append(entries))
        for index in range(3):
            await lm.info(f"m{index}", n=index)
    (batch,) = batches  # converted when read: one that only takes len() pays nothing more
    assert len(batch) == 3
    assert batch[0].message == "m0" and batch[-1].message == "m2"
    assert [entry.message for entry in batch[1:]] == ["m1", "m2"]
    assert [dict(entry.fields) for entry in batch] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert batch == backend.entries and batch == tuple(backend.entries)
    assert batch != backend.entries[:2] and batch != "m0m1m2"
    assert list(reversed(batch)) == backend.entries[::-1]
    assert batch.index(backend.entries[1]) == 1 and backend.entries[2] in batch
    with pytest.raises(IndexError):
        batch[3]
    with pytest.raises(TypeError, match="unhashable"):
        hash(batch)
    assert repr(batch).startswith("LogEntries([LogEntry(timestamp=")
