"""`asynclog tail`: the last records of a log file or database, and following new ones.

A record is a line plus the continuation lines after it (lines starting with four spaces, as
the text format writes a traceback); records are always handed out whole.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from ._entry import LogEntry
from ._read_filters import NO_FILTERS
from .query import Filters, LogDB, QueryError

CONTINUATION = b"    "
_BLOCK = 64 * 1024

T = TypeVar("T")


def _decode(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", "backslashreplace")


def _record_starts(data: bytes, at_file_start: bool) -> list[int]:
    """Offsets in `data` of the lines that begin a record (not continuation lines).

    The first line counts only when `data` begins at the start of the file.
    """
    index = 0 if at_file_start else data.find(b"\n") + 1
    if index == 0 and not at_file_start:
        return []
    starts: list[int] = []
    while index < len(data):
        if not data.startswith(CONTINUATION, index):
            starts.append(index)
        newline = data.find(b"\n", index)
        if newline < 0:
            break
        index = newline + 1
    return starts


def complete_end(handle: BinaryIO, size: int) -> int:
    """The offset just after the last newline before `size` (0 if there is none)."""
    position = size
    while position > 0:
        start = max(0, position - _BLOCK)
        handle.seek(start)
        newline = handle.read(position - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def last_records_start(handle: BinaryIO, end: int, count: int) -> int:
    """The offset where the last `count` whole records before `end` begin.

    Reads backwards in growing blocks.
    """
    if count <= 0 or end == 0:
        return end
    position, block = end, _BLOCK
    while True:
        position = max(0, position - block)
        handle.seek(position)
        data = handle.read(end - position)
        starts = _record_starts(data, position == 0)
        if len(starts) >= count:
            return position + starts[-count]
        if position == 0:
            return 0
        block *= 2


class FileFollower:
    """Whole records from a log file that grows, is rotated (renamed away and recreated) or is
    truncated in place (copytruncate). Drive it with `start()` then `poll()`; no threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._handle: BinaryIO | None = None
        self._identity = (0, 0)
        self._position = 0
        self._partial = b""
        self._record: list[str] = []

    def start(self, last: int = 10, *, partial: bool = False) -> list[str]:
        """Open the file and return its last `last` records; the follow starts after them.

        An unfinished last line (no newline yet) is left for `poll()`, unless `partial` (no
        follow: print it as it is). Raises `OSError` when the file cannot be opened.
        """
        handle = open(self.path, "rb")  # noqa: SIM115 (kept open while following)
        self._adopt(handle)
        size = os.fstat(handle.fileno()).st_size
        end = size if partial else complete_end(handle, size)
        begin = last_records_start(handle, end, last)
        handle.seek(begin)
        data = handle.read(end - begin)
        self._position = end
        records: list[str] = []
        lines = data.split(b"\n")
        if not lines[-1]:
            lines.pop()
        for line in lines:
            self._take(_decode(line), records)
        self._flush(records)
        return records

    def _adopt(self, handle: BinaryIO) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = handle
        stat = os.fstat(handle.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        self._position = 0
        self._partial = b""

    def _take(self, line: str, records: list[str]) -> None:
        if self._record and line.startswith("    "):
            self._record.append(line)
            return
        self._flush(records)
        self._record = [line]

    def _flush(self, records: list[str]) -> None:
        if self._record:
            records.append("\n".join(self._record))
            self._record = []

    def _read(self, records: list[str]) -> bool:
        """Read what was appended; True if anything was."""
        assert self._handle is not None, "start() first"
        self._handle.seek(self._position)
        data = self._handle.read()
        if not data:
            return False
        self._position += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._take(_decode(line), records)
        return True

    def _finish(self, records: list[str]) -> None:
        """The current file is done: its unfinished last line and last record go out."""
        if self._partial:
            self._take(_decode(self._partial), records)
            self._partial = b""
        self._flush(records)

    def poll(self) -> list[str]:
        """The records completed since the last call.

        The last record read is held back until a later poll shows that no continuation lines
        follow it (a poll that finds nothing new), or the file is rotated or truncated.
        """
        records: list[str] = []
        got = self._read(records)
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:  # renamed away, the new file not created yet
            stat = None
        if stat is not None and (stat.st_dev, stat.st_ino) != self._identity:
            self._read(records)  # whatever reached the old file before it was renamed
            self._finish(records)
            try:
                handle = open(self.path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                return records
            self._adopt(handle)
            self._read(records)
            got = True
        elif stat is not None and stat.st_size < self._position:  # truncated in place
            self._finish(records)
            self._position = 0
            self._read(records)
            got = True
        if not got:  # quiet: the held record is complete (an unfinished line stays)
            self._flush(records)
        return records

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class DbFollower:
    """New rows of an asynclog table, by id. Each poll opens the database afresh, so a
    database that was deleted and recreated is followed too (from its first row)."""

    def __init__(
        self, path: str | os.PathLike[str], table: str = "logs", filters: Filters = NO_FILTERS
    ) -> None:
        self.path = os.fspath(path)
        self.table = table
        self.filters = filters
        """Only the rows that match (its `limit` is not used)."""
        self._last_id = 0

    def start(self, last: int = 10) -> list[LogEntry]:
        """The last `last` entries (raises `QueryError` for a bad database)."""
        with LogDB(self.path, self.table) as db:
            self._last_id = db.max_id()
            rows = db.last(last, self.filters) if last > 0 else []
        return [entry for row_id, entry in rows if row_id <= self._last_id]

    def poll(self) -> list[LogEntry]:
        """The entries added since the last call; nothing while the database is unreadable."""
        try:
            with LogDB(self.path, self.table) as db:
                newest = db.max_id()
                if newest < self._last_id:  # a new database: start over
                    self._last_id = 0
                rows = [row for row in db.after(self._last_id, self.filters) if row[0] <= newest]
        except QueryError:
            return []
        self._last_id = newest
        return [entry for _, entry in rows]

    def close(self) -> None:
        """Nothing to release: each poll closes its connection."""


def follow(
    poll: Callable[[], list[T]],
    emit: Callable[[T], None],
    *,
    interval: float = 0.5,
    stop: Callable[[], bool] | None = None,
    max_records: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Call `poll` every `interval` seconds and `emit` each record, until `stop()` is true or
    `max_records` were emitted (or forever). Returns the number emitted."""
    emitted = 0
    while True:
        for record in poll():
            emit(record)
            emitted += 1
            if max_records is not None and emitted >= max_records:
                return emitted
        if stop is not None and stop():
            return emitted
        sleep(interval)
