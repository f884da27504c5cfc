"""Review 19, adversarial: `FileConfig(write_on_loop=True)`, the file backend's close on its
thread, and stdlib records taken on the loop's thread while that loop is not running."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from asynclog import (
    Config,
    FileBackend,
    FileConfig,
    LogEntry,
    LogError,
    LogManager,
)
from asynclog.backends.file import SLOW_LOOP_WRITE_SECONDS
from asynclog.stdlib import AsyncLogHandler

from .conftest import message_of, read_lines
from .portable import wait_until

needs_proc_fd = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)"
)


def _open_paths_under(directory: Path) -> list[str]:
    """Every path under `directory` this process has a descriptor open on."""
    paths = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target.startswith(str(directory)):
            paths.append(target)
    return paths


class Stuck(FileBackend):
    """`write_lines` (the documented override point) waits for `go_on` after saying
    `in_write`."""

    def __init__(self, config: FileConfig) -> None:
        super().__init__(config)
        self.in_write = threading.Event()
        self.go_on = threading.Event()

    def write_lines(self, entries: Sequence[Any], lines: list[str]) -> None:
        self.in_write.set()
        self.go_on.wait(10)
        super().write_lines(entries, lines)


# ---- change 2: FileBackend.close() -------------------------------------------------------


@pytest.mark.parametrize("option", ["compress", "shared"])
async def test_a_second_close_is_harmless(tmp_path: Path, option: str) -> None:
    # Found: with compress=True or shared=True the second close() raises
    # RuntimeError("the asynclog-file thread is closed"): `close()` hands `close_blocking` to
    # `IOThread.run` whenever `self._housekeeper` / `self._shared` is set, and the first
    # close's `aclose()` marked the thread closed for good. Plain backends close twice fine.
    backend = FileBackend(FileConfig(file_path=tmp_path / "app.log", **{option: True}))
    await backend.open()
    await backend.write_batch([LogEntry(1.0, 20, "x", "app")])
    await backend.close()
    await backend.close()
    assert message_of(read_lines(tmp_path / "app.log")[0]) == "x"


@pytest.mark.parametrize("option", ["compress", "shared"])
async def test_close_after_a_failed_open_is_harmless(tmp_path: Path, option: str) -> None:
    # Found: as above. `open()` failed and shut the thread down; `close()` then asks the closed
    # thread to run `close_blocking` and raises RuntimeError instead of returning.
    (tmp_path / "app.log").mkdir()
    backend = FileBackend(FileConfig(file_path=tmp_path / "app.log", **{option: True}))
    with pytest.raises(LogError, match="cannot open log file .*: Is a directory"):
        await backend.open()
    await backend.close()


@needs_proc_fd
async def test_a_close_cut_short_by_a_deadline_still_closes_the_file_once_the_write_ends(
    tmp_path: Path,
) -> None:
    # Found: the file stays open for as long as the backend lives. Cancelled while its thread
    # is stuck in a write, `close()` cancels the queued `close_blocking` (run_in_executor's
    # future is cancelled before it starts) and only sets `abort` and shuts the executor down
    # without waiting; nothing closes `self._raw` once the write returns. (Before change 2 the
    # loop took the file object out of `_raw`, so at least the garbage collector closed it.)
    backend = Stuck(FileConfig(file_path=tmp_path / "app.log"))
    await backend.open()
    writing = asyncio.ensure_future(backend.write_batch([LogEntry(1.0, 20, "x", "app")]))
    assert await asyncio.to_thread(backend.in_write.wait, 10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(backend.close(), 0.05)
    backend.go_on.set()
    with pytest.raises(LogError, match=r"file backend for .* is not open"):
        await writing  # close() began first: the write is refused, not done to a closed file
    await wait_until(lambda: not _open_paths_under(tmp_path))
    assert (tmp_path / "app.log").read_text() == ""


# ---- change 3: a stdlib record on the loop's thread while that loop does not run ----------


def test_a_record_between_two_runs_of_the_loop_and_one_from_another_loop_wait_their_turn(
    tmp_path: Path,
) -> None:
    # `Intake.take_record` now asks `loop.is_running()` instead of asyncio for the running
    # loop. On the loop's own thread, with the loop paused, and then from inside a second loop
    # run on that thread, a record must be handed in (kept for the next run), never put into
    # the paused loop's queue from outside it.
    path = tmp_path / "app.log"
    logger = logging.getLogger("review19.paused")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    loop = asyncio.new_event_loop()
    lm = LogManager(Config(backends=[FileConfig(file_path=path)], async_mode=True))
    handler = AsyncLogHandler(lm)
    logger.addHandler(handler)
    seen_inside: list[int] = []

    async def in_another_loop() -> None:
        logger.warning("three")
        stats = lm.get_stats()
        seen_inside.append(stats.accepted)

    try:
        loop.run_until_complete(lm.start())
        loop.run_until_complete(lm.info("one"))
        logger.warning("two %s", "args")
        stats = lm.get_stats()
        assert stats.accepted == 1  # "two" is handed in: the loop is paused
        asyncio.run(in_another_loop())
        assert seen_inside == [1]
        loop.run_until_complete(lm.info("four"))
        report = loop.run_until_complete(lm.close())
    finally:
        logger.removeHandler(handler)
        loop.close()
    assert (report.written, report.dropped, report.abandoned) == (4, 0, 0)
    assert [message_of(line) for line in read_lines(path)] == ["one", "two args", "three", "four"]


_AFTER_RUN = """
import asyncio, json, logging, sys
from asynclog import Config, FileConfig, LogManager
from asynclog.stdlib import AsyncLogHandler

file = FileConfig(sys.argv[1], write_on_loop=sys.argv[2] == "1")
lm = LogManager(Config(backends=[file], async_mode=True))
logging.getLogger().addHandler(AsyncLogHandler(lm))

async def main():
    await lm.start()
    await lm.info("one")  # never closed: asyncio.run's end cancels the worker

asyncio.run(main())
logging.warning("after the run")  # the loop's thread, its loop closed
stats = lm.get_stats()
print(json.dumps([stats.accepted, stats.written, stats.dropped, stats.pending]))
"""


@pytest.mark.parametrize("on_loop", [False, True], ids=["thread", "write_on_loop"])
def test_a_record_after_asyncio_run_returned_is_written_and_counted(
    tmp_path: Path, on_loop: bool
) -> None:
    # Found (thread, not new in this session: 9c67028 does the same): the lines are right but
    # the counts never settle: `written` is 1 and `pending` stays 1 for good. The worker,
    # cancelled at asyncio.run's end while its batch ("one") was on the backend's thread, left
    # it detached (`Writer.detached`, WriteContinues); the thread wrote it, but the loop closed
    # before the thread could report back, so nothing ever counts it written. With
    # write_on_loop the teardown drain writes "one" on the loop and the counts are exact.
    path = tmp_path / "app.log"
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_RUN, str(path), "1" if on_loop else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [message_of(line) for line in read_lines(path)] == ["one", "after the run"]
    assert done.stdout.splitlines() == ["[2, 2, 0, 0]"]
