"""The file backend: one entry per line, size and time rotation, every batch one write per
file; gzip and retention of the rotated files; reopening after logrotate moved the file;
several processes appending to one file (`FileConfig.shared`)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable, Sequence

from .._backend_registry import register_backend
from .._config import FileConfig
from .._entry import TIME, Entry, as_log_entries
from .._errors import LogError
from .._json_shapes import configured_format
from .._report import warn
from ..formatters import Formatter, lines_of
from ._on_loop import LoopWrites
from ._retention import Backups, Housekeeper
from ._rotation import RotationLock, lock_name, period_end_function, plan_batch
from ._safe_open import open_or_create
from ._thread import IOThread
from .base import takes_entry_tuples, taking_entry_tuples


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate a custom formatter let through becomes a visible escape."""
    return text.encode("utf-8", "backslashreplace")


def _prepare_file(path: str, mode: int, follow: bool = True) -> int:
    """Create the parent directories, mend a torn last line; return the file's size."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "ab+", opener=_opener(mode, follow)) as handle:
        size = handle.seek(0, os.SEEK_END)
        if size > 0:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
                size += 1
    return size


RENAME_GRACE = 0.05
"""Seconds a file renamed away may stay missing before asynclog creates it: logrotate's
`create` renames, then creates the new file itself, and would move ours aside if we won."""


def _opener(mode: int, follow: bool = True) -> Callable[[str, int], int]:
    """`open()`'s opener: `mode` for a new file; with `follow=False`, `O_NOFOLLOW`, `O_EXCL`
    when it creates, and a regular file only (see `_safe_open`)."""

    def open_with_mode(path: str, flags: int) -> int:
        return os.open(path, flags, mode)

    def open_safely(path: str, flags: int) -> int:
        return open_or_create(path, flags & ~os.O_CREAT, mode)

    return open_with_mode if follow else open_safely


class FileBackend:
    """Appends formatted lines to `FileConfig.file_path`, rotating by size and time.

    The file is unbuffered, so each batch reaches the operating system (and other readers) when
    the write returns. Both paths format a batch on the calling thread and hand the lines to
    `write_lines`: sync mode (`write_batch_blocking`) calls it there, as the stdlib's handlers
    do; async mode (`write_batch`) on a thread of the backend's own. Compression runs on a third
    thread (`Housekeeper`), started per rotation and joined by `close()`.

    Shared (`FileConfig.shared`), every batch is written under an exclusive `flock` of the
    sidecar `<path>.lock`, held by every process writing the file: under it the backend
    compares the path with its open file (another process may have rotated: then it reopens),
    takes the size from that `stat`, rotates if the batch does not fit or starts a new period,
    and writes. The check, the rotation and the write are one step for the other processes.
    """

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(
        self,
        config: FileConfig | None = None,
        formatter: Formatter | None = None,
        *,
        follow_symlink: bool = True,
    ) -> None:
        """`follow_symlink=False` for a path asynclog derived (the dead-letter file): a
        symbolic link there is refused at `open()` instead of followed. The user's own log
        path is followed when the backend opens; every later open of it (after a rotation,
        a deletion, logrotate) never follows a link (docs/reliability.md, "Symlinks")."""
        self.config = config or FileConfig()
        self.path = os.fspath(self.config.file_path)
        self._follow_symlink = follow_symlink
        if formatter is None:
            config = self.config
            self._formatter, self._lines = configured_format(
                config.format, config.json_fields, config.json_style, config.with_process_fields
            )
        else:
            self._formatter, self._lines = formatter, lines_of(formatter)
        self._thread = IOThread("asynclog-file")
        self._loop_writes = LoopWrites(
            self.config.write_on_loop, self.config.loop_write_limit, "file", self.path
        )
        self._write_lines: Callable[[Sequence[Entry], list[str]], None] | None = None
        self._raw: io.FileIO | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of _raw
        self._size = 0
        self._end_seen = -1  # shared: the file's size after our last write to it
        self._opened = False  # between open() and close(); the file itself may need reopening
        period = self.config.rotation_period
        self._end_of = period_end_function(period) if period is not None else None
        self._period_end = math.inf  # entries stamped at or after it start a new file
        self._check_interval = self.config.reopen_check_interval
        self._last_check = 0.0  # time.monotonic() of the last external-rotation check
        self._missing_since: float | None = None
        self._reopen_failed = False  # reported on stderr once per streak of failed reopens
        self._shared = self.config.shared
        self._lock = RotationLock(lock_name(self.path) if self._shared else None, self.config.mode)
        self._noted: str | None = None  # the period note last read or written (shared)
        self._noted_in = 0  # the lock's generation that note is in
        self._backups = Backups(
            self.path,
            self.config.max_backups,
            max_age=self.config.max_age_seconds,
            max_total_bytes=self.config.max_total_bytes,
            lock=self._lock,
        )
        self._housekeeper = (
            Housekeeper(lambda: self._backups.tidy(compress=True), "asynclog-file-gzip")
            if self.config.compress
            else None
        )

    @property
    def rotated_files_deleted(self) -> int:
        """Rotated files this backend deleted since it was made: the oldest pushed out past
        `max_backups` by a rotation, and those removed by retention (`max_age_seconds`,
        `max_total_bytes`). Reported by `LogManager.get_stats()`."""
        return self._backups.deleted

    async def open(self) -> None:
        try:
            await self._thread.run(self._start_blocking)
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

    def _start_blocking(self) -> None:
        if self._shared:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)  # for the sidecar
        try:
            with self._lock:  # shared: mending a torn line must not race another's write
                self._open_blocking(follow=self._follow_symlink)
                assert self._raw is not None
                if self._end_of is not None:
                    # A file written in an earlier period is rotated by the first entry of a
                    # later one.
                    written = os.fstat(self._raw.fileno()).st_mtime
                    self._period_end = self._end_of(written) if self._size else -math.inf
                    self._share_period(reopened=True)
        except BaseException:
            self._lock.close()
            raise
        self._last_check = time.monotonic()
        self._tidy_backups()  # what a crash or an earlier run left: compress, expire

    def _open_blocking(self, follow: bool = False) -> None:
        """Open (creating if needed) the log file. `follow` only at `open()`: whatever is at the
        path later was put there after the user chose it (see `__init__`)."""
        self._size = _prepare_file(self.path, self.config.mode, follow)
        self._end_seen = self._size
        # Closed in close() or by rotation. Shared, also readable: see _mend_torn_end.
        opener = _opener(self.config.mode, follow)
        if self._shared:
            raw = open(self.path, "ab+", buffering=0, opener=opener)  # noqa: SIM115
        else:
            raw = open(self.path, "ab", buffering=0, opener=opener)  # noqa: SIM115
        try:
            info = os.fstat(raw.fileno())
        except OSError:
            raw.close()
            raise
        self._identity = (info.st_dev, info.st_ino)
        self._raw = raw

    def _encode_batch(self, lines: list[str]) -> bytes:
        return encode("\n".join(lines) + "\n")

    def _fits(self, data: bytes) -> bool:
        return self._size + len(data) <= self.config.max_bytes

    def _new_period_in(self, entries: Sequence[Entry]) -> bool:
        return (
            self._end_of is not None
            and bool(entries)
            and max(entry[TIME] for entry in entries) >= self._period_end
        )

    def _check_due(self) -> bool:
        interval = self._check_interval
        return interval is not None and time.monotonic() - self._last_check >= interval

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        """Format the batch on the loop in one go (a microsecond or two an entry), then write
        it on the backend's thread in one hand-off. On a saturated loop every yield or
        hand-off waits a whole loop turn (tens of milliseconds when hundreds of requests are
        ready): formatting in slices with a yield between them, then a hand-off per write
        call, kept the queue full and made one log call in six wait for room (issue 12)."""
        if not self._opened:
            raise LogError(f"file backend for {self.path!r} is not open")
        lines = self._lines(entries)
        write = self._write_lines or self._lines_writer()
        if self._loop_writes.on:
            self._loop_writes.run(lambda: write(entries, lines))
        else:
            await self._thread.run_batch(lambda: write(entries, lines))

    def write_batch_blocking(self, entries: Sequence[Entry]) -> None:
        """Write without leaving the calling thread (sync mode): a few microseconds."""
        (self._write_lines or self._lines_writer())(entries, self._lines(entries))

    def _lines_writer(self) -> Callable[[Sequence[Entry], list[str]], None]:
        """`write_lines` (looked up once); given `LogEntry` objects when a subclass overrides
        it without saying `takes_entry_tuples` (see `backends.base.takes_entry_tuples`)."""
        write = self.write_lines
        if not takes_entry_tuples(self, "write_lines"):
            bound = write

            def write(entries: Sequence[Entry], lines: list[str]) -> None:
                bound(as_log_entries(entries), lines)

        self._write_lines = write
        return write

    def write_lines(self, entries: Sequence[Entry], lines: list[str]) -> None:
        """Blocking: write the formatted `lines` of `entries` as one write (rotating first
        when they do not fit or start a new period; shared, under the sidecar's lock), then
        fsync if configured. Async mode calls it on the backend's thread, sync mode on the
        caller's: the one place to override to wrap every write of the file."""
        if not self._opened:
            raise LogError(f"file backend for {self.path!r} is not open")
        data = self._encode_batch(lines)
        if self._shared:
            self._write_shared(entries, lines, data)
            return
        self._before_write()
        if self._fits(data) and not self._new_period_in(entries):
            self._write_blocking(data)
        else:
            self._write_rotating(entries, lines)
        if self.config.fsync:
            self._fsync()

    def _before_write(self) -> None:
        """Blocking: reopen a file a failed rotation left closed, or, every
        `reopen_check_interval`, one another program moved, deleted or truncated."""
        if self._raw is None:
            self._ensure_open()
        elif self._check_due():
            self._check_external()

    def _check_external(self) -> bool:
        """Compare the path with the open file (one `stat` of the path, about 2 µs; a second
        one, of the open file, only when they differ). True when it reopened the path.

        Renamed away (logrotate `create`, or another process's rotation when shared): keep
        writing to it until the path holds another file, or has been empty for
        `RENAME_GRACE`, then open the path. Deleted: reopen now, and if the path cannot be
        created again, raise (`_reopen`). Truncated (`copytruncate`): take the new size;
        O_APPEND puts the next write at its end. Either way `_size` is the real size of the
        file the next write goes to (other processes append too).
        """
        now = self._last_check = time.monotonic()
        assert self._raw is not None
        known = True
        try:
            theirs: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            theirs = None
        except OSError:
            theirs, known = None, False  # e.g. ENOTDIR: a directory of the path was replaced
        if theirs is not None and (theirs.st_dev, theirs.st_ino) == self._identity:
            self._missing_since = None
            self._size = theirs.st_size
            return False
        try:
            ours = os.fstat(self._raw.fileno())
        except OSError:
            return False
        self._size = ours.st_size
        if ours.st_nlink == 0:
            return self._reopen(orphaned=True)
        if not known:
            return False  # cannot tell, and our file still has a name: keep writing to it
        if theirs is None:
            if self._missing_since is None:
                self._missing_since = now
            if now - self._missing_since < RENAME_GRACE:
                return False
        return self._reopen()

    def _reopen(self, orphaned: bool = False) -> bool:
        """Open the path again. If that fails, a file that still has a name (renamed away)
        keeps taking the lines, reported once on stderr; an `orphaned` one (deleted: what is
        written to it is lost) is closed and the error raised, so that the batch is a write
        failure (retried, then the fallback) until the path can be created again."""
        old = self._raw
        try:
            self._open_blocking()
        except OSError as exc:
            if orphaned:
                self._raw = None
                if old is not None:
                    old.close()
                raise OSError(
                    exc.errno, f"{self.path!r} was deleted and cannot be created again: {exc}"
                ) from exc
            if not self._reopen_failed:
                self._reopen_failed = True
                warn(
                    f"cannot open {self.path!r} again ({exc}); lines keep going to the file "
                    "it was renamed to",
                    "file",
                )
            return False  # the old file still takes the lines; the next check tries again
        self._missing_since = None
        self._reopen_failed = False
        if old is not None:
            old.close()
        return True

    # Shared: several processes, one file

    def _write_shared(self, entries: Sequence[Entry], lines: list[str], data: bytes) -> None:
        """Blocking: check, rotate if needed and write, all under the sidecar's flock; then
        fsync (outside it: the file stays ours to sync even if another process rotates it)."""
        with self._lock:
            if self._raw is None:  # first batch after a failed rotation (never after close)
                self._ensure_open()
                reopened = True
            else:
                reopened = self._check_external()
            if self._end_of is not None:
                self._share_period(reopened)
            self._mend_torn_end()
            if self._fits(data) and not self._new_period_in(entries):
                self._write_blocking(data)
            else:
                self._write_rotating(entries, lines)
            self._end_seen = self._size
            if self._end_of is not None:
                self._note_period()
        if self.config.fsync:
            self._fsync()

    def _mend_torn_end(self) -> None:
        """Under the lock: if another process wrote since our last write and its write stopped
        inside a line (a process killed during a large write: the kernel stops between pages),
        end that line first, so that ours do not join it. One `pread` (about 0.5 µs), only
        when the file grew under another process's hand."""
        if self._size == 0 or self._size == self._end_seen or self._raw is None:
            return
        try:
            last = os.pread(self._raw.fileno(), 1, self._size - 1)
        except OSError:
            return
        if last not in (b"\n", b""):
            self._write_blocking(b"\n")

    def _share_period(self, reopened: bool) -> None:
        """Under the lock: learn the period of the live file from the sidecar's note, which the
        process that rotated to it (or first wrote into it, or first saw it) left there.

        Needed after a reopen (another process rotated: whether our entries need a rotation
        too depends on the period it rotated to), and when this process opened the file empty
        (its period was undecided) and another has written the first entries since."""
        if not self._shared:
            return
        if not reopened and not (self._period_end == -math.inf and self._size > 0):
            return
        note = self._lock.read_note()
        parts = note.split()
        identity = self._identity
        if len(parts) == 3 and identity is not None:
            with contextlib.suppress(ValueError):
                if (int(parts[0]), int(parts[1])) == identity:
                    self._period_end = float(parts[2])
                    self._noted, self._noted_in = note, self._lock.generation
                    return
        if self._period_end == -math.inf and self._size > 0 and self._raw is not None:
            # Nobody noted it (a file from a run without `shared`): its last write decides,
            # as at start.
            assert self._end_of is not None
            with contextlib.suppress(OSError):
                self._period_end = self._end_of(os.fstat(self._raw.fileno()).st_mtime)
        self._note_period()

    def _note_period(self) -> None:
        """Under the lock: record the live file's period in the sidecar, if it changed."""
        if not self._shared or self._identity is None or self._period_end == -math.inf:
            return
        note = f"{self._identity[0]} {self._identity[1]} {self._period_end!r}\n"
        if note != self._noted or self._noted_in != self._lock.generation:
            self._lock.write_note(note)
            self._noted, self._noted_in = note, self._lock.generation

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit, no event loop: write `entries` directly and close the file."""
        # A batch the backend's thread still writes (its worker was cancelled: asyncio.run's
        # end) goes first: the file must not be written from two threads, nor closed under it.
        self._thread.shutdown()
        try:
            if entries:
                taking_entry_tuples(self, "write_batch_blocking")(entries)
        finally:
            if self._raw is not None:
                self._raw.close()
            self._raw = None
            self._backups.abort.set()  # a half-compressed file stays plain until the next start
            self._finish_housekeeping()
            self._lock.close()

    def _fsync(self) -> None:
        if self._raw is not None:
            os.fsync(self._raw.fileno())

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
        from the file's real end (another tool may have truncated it meanwhile). Shared, this
        runs under the flock every writer takes for its writes: the last `done` bytes are
        still ours."""
        if self._raw is None or done == 0:
            return
        try:
            end = os.fstat(self._raw.fileno()).st_size
            if end >= done:
                os.ftruncate(self._raw.fileno(), end - done)
            self._size = os.fstat(self._raw.fileno()).st_size - done  # the finally adds done
        except OSError:
            pass

    def _write_rotating(self, entries: Sequence[Entry], lines: list[str]) -> None:
        """Write a batch that crosses the size limit or a period's end: one write per file,
        no line split."""
        encoded = [encode(line + "\n") for line in lines]
        stamps = [entry[TIME] for entry in entries] if self._end_of is not None else None
        plan = plan_batch(
            map(len, encoded),
            self._size,
            self.config.max_bytes,
            stamps,
            self._period_end,
            self._end_of,
        )
        for run, period_end in plan:
            if run.rotate_first:
                self._rotate_blocking()
            self._period_end = period_end
            self._write_blocking(b"".join(encoded[run.start : run.stop]))

    def _rotate_blocking(self) -> None:
        assert self._raw is not None
        self._raw.close()
        self._raw = None
        try:
            self._backups.rotate()
        finally:
            self._open_blocking()
        self._tidy_backups()

    def _tidy_backups(self) -> None:
        """gzip on the housekeeping thread (never inline: sync mode runs this on the loop);
        without compression, retention is a few stat and unlink calls, done here."""
        if self._housekeeper is not None:
            self._housekeeper.kick()
        elif self._backups.has_retention:
            self._backups.apply_retention()

    def _finish_housekeeping(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.finish()

    async def close(self) -> None:
        """Close the file and wait for the compression in progress; nothing outlives it."""
        self._opened = False  # first: a batch its thread still writes must not reopen the file

        def close_blocking() -> None:
            # The file as the thread left it: a rotation it was in opened a new one.
            raw, self._raw = self._raw, None
            if raw is not None:
                raw.close()  # unbuffered: nothing left to flush
            self._finish_housekeeping()
            self._lock.close()  # after the gzip thread's last rename

        try:
            if self._thread.started or self._raw is not None or self._housekeeper or self._shared:
                # On the backend's thread, after what it is writing: a file on a stuck disk
                # must not block the loop.
                await self._thread.finish(close_blocking)
        except BaseException:
            self._backups.abort.set()  # the compression stops within a chunk; originals stay
            self._thread.shutdown(wait=False)
            raise
        await self._thread.aclose()


register_backend("file", FileConfig, FileBackend)
