"""The file backend: one entry per line, size rotation, every batch one write per file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiofiles

from .._config import FileConfig
from .._entry import LogEntry
from .._errors import LogError
from ..formatters import FORMATTERS, Formatter
from ._rotation import plan_runs, rotate_files
from ._slices import map_in_slices
from ._thread import IOThread

if TYPE_CHECKING:
    from aiofiles.threadpool.binary import AsyncFileIO


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate a custom formatter let through becomes a visible escape."""
    return text.encode("utf-8", "backslashreplace")


def _prepare_file(path: str) -> int:
    """Create the parent directories, mend a torn last line; return the file's size."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size > 0:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
                size += 1
    return size


class FileBackend:
    """Appends formatted lines to `FileConfig.file_path`, rotating by size.

    Writes go through aiofiles on an unbuffered file, on a thread of the backend's own, so each
    batch reaches the operating system (and other readers) when `write_batch` returns.
    """

    def __init__(
        self, config: FileConfig | None = None, formatter: Formatter | None = None
    ) -> None:
        self.config = config or FileConfig()
        self.path = os.fspath(self.config.file_path)
        self._formatter = formatter or FORMATTERS[self.config.format]
        self._thread = IOThread("asynclog-file")
        self._file: AsyncFileIO | None = None
        self._size = 0

    async def open(self) -> None:
        try:
            await self._reopen()
        except OSError as exc:
            self._thread.shutdown()
            raise LogError(f"cannot open log file {self.path!r}: {exc.strerror or exc}") from exc

    async def _reopen(self) -> None:
        self._size = await self._thread.run(lambda: _prepare_file(self.path))
        handle: Any = await aiofiles.open(
            self.path, "ab", buffering=0, executor=self._thread.executor
        )
        self._file = handle

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if self._file is None:
            raise LogError(f"file backend for {self.path!r} is not open")
        lines = await map_in_slices(self._formatter, entries)
        data = encode("\n".join(lines) + "\n")
        if self._size + len(data) <= self.config.max_bytes:
            await self._write_all(data)  # the common case: no rotation in this batch
            return
        encoded = [encode(line + "\n") for line in lines]
        for run in plan_runs(map(len, encoded), self._size, self.config.max_bytes):
            if run.rotate_first:
                await self._rotate()
            await self._write_all(b"".join(encoded[run.start : run.stop]))

    async def _write_all(self, data: bytes) -> None:
        assert self._file is not None
        view = memoryview(data)
        try:
            while view:
                written = await self._file.write(view)
                view = view[written:]
                self._size += written
        except OSError:
            # The size we track may be off after a partial write; ask the file system.
            self._size = await self._thread.run(lambda: os.path.getsize(self.path))
            raise

    async def _rotate(self) -> None:
        assert self._file is not None
        await self._file.close()
        self._file = None
        try:
            await self._thread.run(lambda: rotate_files(self.path, self.config.max_backups))
        finally:
            await self._reopen()

    async def close(self) -> None:
        try:
            if self._file is not None:
                await self._file.close()
        finally:
            self._file = None
            self._thread.shutdown()
