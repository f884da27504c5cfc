"""Review 19: a file backend closed while its thread is in the middle of a rotation."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from asynclog import FileBackend, FileConfig, LogEntry


def _open_paths() -> list[str]:
    """Every path this process has a descriptor open on."""
    paths = []
    for name in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:  # the directory's own descriptor, closed by now
            continue
    return paths


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
async def test_a_close_during_a_rotation_leaves_no_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.log"
    backend = FileBackend(FileConfig(file_path=path, max_file_size_mb=0.0001, max_backups=2))
    await backend.open()
    await backend.write_batch([LogEntry(1.0, 20, "x" * 80, "app")])  # 105 bytes: the limit's
    in_rename, go_on = threading.Event(), threading.Event()
    replace = os.replace

    def slow_replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if os.fspath(source) == os.fspath(path):  # the live file moving to .1: the rotation
            in_rename.set()
            go_on.wait(10)
        replace(source, target)

    monkeypatch.setattr(os, "replace", slow_replace)
    writing = asyncio.ensure_future(backend.write_batch([LogEntry(2.0, 20, "y" * 80, "app")]))
    assert await asyncio.to_thread(in_rename.wait, 10)
    closing = asyncio.ensure_future(backend.close())
    await asyncio.sleep(0.05)  # close() has begun: it waits for the thread
    go_on.set()
    await writing
    await closing
    assert [p for p in _open_paths() if p.startswith(str(tmp_path))] == []
    assert (tmp_path / "app.log.1").read_text().count("\n") == 1
    assert path.read_text().count("\n") == 1  # the second entry, in the file rotation opened
