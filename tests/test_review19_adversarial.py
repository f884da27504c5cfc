"""Review 19, adversarial: `FileConfig(write_on_loop=True)`, the file backend's close on its
thread, and stdlib records taken on the loop's thread while that loop is not running."""

from __future__ import annotations

import asyncio
import logging
import os
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
