"""The file backend: one entry per line, size rotation, every batch one write per file."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aiofiles.threadpool import wrap as wrap_file

from .._config import FileConfig
from .._entry import LogEntry
from .._errors import LogError
from ..formatters import Formatter, formatter_for
from ._rotation import plan_runs, rotate_files
from ._slices import map_in_slices
from ._thread import IOThread

if TYPE_CHECKING:
    from aiofiles.threadpool.binary import AsyncFileIO


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate a custom formatter let through becomes a visible escape."""
    return text.encode("utf-8", "backslashreplace")


def _prepare_file(path: str, mode: int) -> int:
    """Create the parent directories, mend a torn last line; return the file's size."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "ab+", opener=_opener(mode)) as handle:
        size = handle.seek(0, os.SEEK_END)
        if size > 0:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
                size += 1
    return size


def _opener(mode: int) -> Callable[[str, int], int]:
    def open_with_mode(path: str, flags: int) -> int:
        return os.open(path, flags, mode)

    return open_with_mode


class FileBackend:
    """Appends formatted lines to `FileConfig.file_path`, rotating by size.

    The file is unbuffered, so each batch reaches the operating system (and other readers) when
    the write returns. Async writes go through aiofiles on a thread of the backend's own;
    `write_batch_blocking` (used by sync mode) writes directly, as the stdlib's handlers do.
    Formatting and the rotation plan are shared by both paths.
    """

    def __init__(
        self, config: FileConfig | None = None, formatter: Formatter | None = None
    ) -> None:
        self.config = config or FileConfig()
        self.path = os.fspath(self.config.file_path)
        self._formatter = formatter or formatter_for(self.config.format)
        self._thread = IOThread("asynclog-file")
        self._raw: io.FileIO | None = None
        self._file: AsyncFileIO | None = None  # aiofiles' view of _raw
        self._size = 0
        self._opened = False  # between open() and close(); the file itself may need reopening

    async def open(self) -> None:
        try:
            await self._thread.run(self._open_blocking)
        except Exception as exc:
            self._thread.shutdown()
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise LogError(f"cannot open log file {self.path!r}: {detail}") from exc
        self._opened = True

    def _ensure_open(self) -> None:
        """Blocking: reopen the file if a failed rotation left it closed."""
        if not self._opened:
            raise LogError(f"file backend for {self.path!r} is not open")
        if self._raw is None:
            self._open_blocking()

    def _open_blocking(self) -> None:
        self._size = _prepare_file(self.path, self.config.mode)
        # Closed in close() or by rotation.
        raw = open(self.path, "ab", buffering=0, opener=_opener(self.config.mode))  # noqa: SIM115
        self._raw = raw
        self._file = wrap_file(raw, executor=self._thread.executor)

    def _encode_batch(self, lines: list[str]) -> bytes:
        return encode("\n".join(lines) + "\n")

    def _fits(self, data: bytes) -> bool:
        return self._size + len(data) <= self.config.max_bytes

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if not self._opened:
            raise LogError(f"file backend for {self.path!r} is not open")
        if self._raw is None:
            await self._thread.run(self._ensure_open)
        lines = await map_in_slices(self._formatter, entries)
        data = self._encode_batch(lines)
        if self._fits(data):  # the common case: one write, no rotation
            await self._write_async(data)
        else:
            await self._thread.run(lambda: self._write_rotating(lines))
        if self.config.fsync:
            await self._thread.run(self._fsync)

    def write_batch_blocking(self, entries: Sequence[LogEntry]) -> None:
        """Write without leaving the calling thread (sync mode): a few microseconds."""
        if self._raw is None:
            self._ensure_open()
        lines = [self._formatter(entry) for entry in entries]
        data = self._encode_batch(lines)
        if self._fits(data):
            self._write_blocking(data)
        else:
            self._write_rotating(lines)
        if self.config.fsync:
            self._fsync()

    def flush_at_exit(self, entries: Sequence[LogEntry]) -> None:
        """Interpreter exit, no event loop: write `entries` directly and close the file."""
        try:
            if entries:
                self.write_batch_blocking(entries)
        finally:
            if self._raw is not None:
                self._raw.close()
            self._raw = self._file = None

    def _fsync(self) -> None:
        if self._raw is not None:
            os.fsync(self._raw.fileno())

    async def _write_async(self, data: bytes) -> None:
        assert self._file is not None
        view = memoryview(data)
        done = 0
        try:
            while view:
                written = await self._file.write(view)
                view = view[written:]
                done += written
        except OSError:
            await self._thread.run(lambda: self._undo_partial_write(done))
            raise
        finally:
            self._size += done

    def _write_blocking(self, data: bytes) -> None:
        assert self._raw is not None
        view = memoryview(data)
        done = 0
        try:
            while view:
                written = self._raw.write(view) or 0
                view = view[written:]
                done += written
        except OSError:
            self._undo_partial_write(done)
            raise
        finally:
            self._size += done

    def _undo_partial_write(self, done: int) -> None:
        """A write that failed part-way (a full disk) must not leave half a line, nor lines
        that the retry writes again: cut off the `done` bytes this write appended, measured
        from the file's real end (another tool may have truncated it meanwhile)."""
        if self._raw is None or done == 0:
            return
        try:
            end = os.fstat(self._raw.fileno()).st_size
            if end >= done:
                os.ftruncate(self._raw.fileno(), end - done)
            self._size = os.fstat(self._raw.fileno()).st_size - done  # the finally adds done
        except OSError:
            pass

    def _write_rotating(self, lines: list[str]) -> None:
        """Write a batch that crosses the size limit: one write per file, no line split."""
        encoded = [encode(line + "\n") for line in lines]
        for run in plan_runs(map(len, encoded), self._size, self.config.max_bytes):
            if run.rotate_first:
                self._rotate_blocking()
            self._write_blocking(b"".join(encoded[run.start : run.stop]))

    def _rotate_blocking(self) -> None:
        assert self._raw is not None
        self._raw.close()
        self._raw = self._file = None
        try:
            rotate_files(self.path, self.config.max_backups)
        finally:
            self._open_blocking()

    async def close(self) -> None:
        raw, self._raw, self._file = self._raw, None, None
        self._opened = False
        try:
            if raw is not None:
                # On the backend's thread: a file on a stuck disk must not block the loop.
                await self._thread.run(raw.close)  # unbuffered: nothing left to flush
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        await self._thread.aclose()
