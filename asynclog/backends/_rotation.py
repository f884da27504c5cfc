"""Rotation: where a batch must be split by size or time (pure), the renaming itself, and the
lock that serialises rotations (between processes too, with `FileConfig.shared`)."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import NamedTuple

from ._safe_open import UnsafeFileError, open_existing, open_or_create

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so no shared mode
    fcntl = None  # type: ignore[assignment]

RELOCK_ATTEMPTS = 5
"""Tries to lock the file at the sidecar's name when something keeps replacing it."""

BACKUP_SUFFIXES = ("", ".gz", ".gz.tmp")
"""The forms a rotated file `app.log.N` takes: plain, compressed, being compressed."""


class Run(NamedTuple):
    """Lines `start:stop` of a batch go to one file; `rotate_first` rotates before them."""

    start: int
    stop: int
    rotate_first: bool


def plan_runs(line_sizes: Iterable[int], current_size: int, max_bytes: int) -> list[Run]:
    """Split a batch so that no file grows past `max_bytes` and no line is split.

    A file that already holds something is rotated before a line that would push it past the
    limit. A line longer than the limit on its own gets a fresh file to itself.
    """
    return [run for run, _ in plan_batch(line_sizes, current_size, max_bytes)]


def plan_batch(
    line_sizes: Iterable[int],
    current_size: int,
    max_bytes: int,
    stamps: Sequence[float] | None = None,
    period_end: float = math.inf,
    end_of: Callable[[float], float] | None = None,
) -> list[tuple[Run, float]]:
    """`plan_runs`, plus time rotation: with `stamps` (one per line), a line whose timestamp
    reaches `period_end` also rotates a non-empty file first, and its period, ending at
    `end_of(stamp)`, becomes the current one. A line stamped before the current period (a late
    entry) stays in the current file. Each run comes with the period end of its file."""
    plan: list[tuple[Run, float]] = []
    start = 0
    rotate_first = False
    size = current_size
    count = 0
    end = period_end
    for index, line_size in enumerate(line_sizes):
        count = index + 1
        new_period = stamps is not None and stamps[index] >= end
        if size > 0 and (new_period or size + line_size > max_bytes):
            if index > start:
                plan.append((Run(start, index, rotate_first), end))
            start, rotate_first, size = index, True, 0
        if new_period:
            assert stamps is not None and end_of is not None
            end = end_of(stamps[index])
        size += line_size
    if count > start:
        plan.append((Run(start, count, rotate_first), end))
    return plan


def period_end_function(period: float | str) -> Callable[[float], float]:
    """`end_of(t)` for a parsed `FileConfig.rotate_every`: when the period holding `t` ends."""
    if period == "midnight":
        return next_local_midnight
    assert isinstance(period, float)
    seconds = period
    return lambda stamp: (math.floor(stamp / seconds) + 1) * seconds


def next_local_midnight(stamp: float) -> float:
    """The first local midnight after `stamp` (the process's time zone, daylight saving
    included)."""
    local = time.localtime(stamp)
    midnight = time.mktime(
        (local.tm_year, local.tm_mon, local.tm_mday + 1, 0, 0, 0, 0, 0, -1)  # mktime normalises
    )
    return midnight if midnight > stamp else stamp + 86400  # a zone that skips its midnight


def backup_name(path: str, number: int) -> str:
    """`app.log` -> `app.log.1`."""
    return f"{path}.{number}"


def rotate_files(path: str, max_backups: int) -> int:
    """Shift `path.1`..`path.N-1` up by one, drop the oldest, move `path` to `path.1`.

    Each number moves in every form it exists in (`.N`, `.N.gz`, `.N.gz.tmp`). With
    `max_backups == 0` the full file is simply deleted. Returns how many log files were
    deleted (`.N` and `.N.gz`, or the full file; not a compression's `.gz.tmp`). Blocking:
    run it off the loop.
    """
    if max_backups == 0:
        return int(_remove_if_present(path))
    deleted = 0
    for suffix in BACKUP_SUFFIXES:
        if _remove_if_present(backup_name(path, max_backups) + suffix) and suffix != ".gz.tmp":
            deleted += 1
    for number in range(max_backups - 1, 0, -1):
        for suffix in BACKUP_SUFFIXES:
            older = backup_name(path, number) + suffix
            if os.path.lexists(older):  # a link is moved as a name, never followed
                os.replace(older, backup_name(path, number + 1) + suffix)
    if os.path.exists(path):
        os.replace(path, backup_name(path, 1))
    return deleted


def _remove_if_present(path: str) -> bool:
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


def lock_name(path: str) -> str:
    """`app.log` -> `app.log.lock`: the sidecar file the processes sharing a log lock."""
    return f"{path}.lock"


class RotationLock:
    """Serialises renames and deletions of a log's files, and, shared, its writes.

    A reentrant thread lock (the writing thread and the gzip thread of one backend), plus, with
    a `sidecar` path, `fcntl.flock(LOCK_EX)` on that file, so that every process sharing the
    log (each with its own open file description) waits for the others. The flock is taken by
    the outermost `with` and released with it. The sidecar also holds one line of text, the
    `note` (the period of the live file): read and written only under the lock.

    The sidecar is never deleted: a process that deleted it while another held it locked would
    let a third create and lock a new one, and two processes would hold "the" lock. If another
    program deletes it anyway, or puts something else at its name, each process notices at its
    next lock (one `lstat`) and moves to what the name holds now (a new file, or an error).
    """

    def __init__(self, sidecar: str | None = None, mode: int = 0o640) -> None:
        self.sidecar = sidecar
        self._mode = mode
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._identity = (0, 0)  # (st_dev, st_ino) of _fd
        self.generation = 0
        """Counts the sidecars replaced under this lock (whose note was lost with them)."""
        self._writable = False

    @property
    def shared(self) -> bool:
        return self.sidecar is not None

    def open(self) -> None:
        """Blocking: create or open the sidecar (read-only if it belongs to another user:
        flock needs no write permission; the note is then not written)."""
        with self._thread_lock:
            self._open_locked()

    def _open_locked(self) -> None:
        if self.sidecar is None or self._fd is not None:
            return
        if fcntl is None:  # pragma: no cover
            raise OSError("FileConfig(shared=True) needs fcntl.flock (a POSIX system)")
        try:
            try:
                fd = open_or_create(self.sidecar, os.O_RDWR, self._mode)
            except FileNotFoundError:  # the directory was deleted: the log's open creates it too
                os.makedirs(os.path.dirname(self.sidecar) or ".", exist_ok=True)
                fd = open_or_create(self.sidecar, os.O_RDWR, self._mode)
            writable = True
        except PermissionError:
            fd = open_existing(self.sidecar, os.O_RDONLY)
            writable = False
        try:
            info = os.fstat(fd)
            # The note is rewritten in place: through a second name of another file (a hard
            # link planted at the sidecar's name) that file would be overwritten.
            if writable and info.st_nlink != 1:
                raise UnsafeFileError(
                    errno.EMLINK,
                    f"{self.sidecar!r} has {info.st_nlink} hard links; the lock file of a "
                    "shared log must have one name only",
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._writable, self._identity = fd, writable, (info.st_dev, info.st_ino)

    def close(self) -> None:
        """Blocking: waits for the holder; a later `with` opens the sidecar again."""
        with self._thread_lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)  # releases the flock, if held

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._depth == 0 and self.sidecar is not None:
                self._lock_the_named_file(self.sidecar)
        except BaseException:
            self._thread_lock.release()
            raise
        self._depth += 1

    def _lock_the_named_file(self, sidecar: str) -> None:
        """flock the sidecar, then check that its name still holds that file; if the name was
        deleted or replaced, close it (releasing the flock) and lock what the name holds now."""
        for _ in range(RELOCK_ATTEMPTS):
            self._open_locked()
            assert self._fd is not None and fcntl is not None
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # EINTR is retried (PEP 475)
            try:
                named = os.lstat(sidecar)
            except FileNotFoundError:
                pass
            except OSError:
                return  # cannot tell: keep the file we hold
            else:
                if (named.st_dev, named.st_ino) == self._identity:
                    return
            fd, self._fd = self._fd, None
            os.close(fd)
            self.generation += 1
        raise OSError(errno.EAGAIN, f"the lock file {sidecar!r} keeps being replaced")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass  # cannot happen on a valid descriptor; closing it releases the lock anyway
        finally:
            self._thread_lock.release()

    def read_note(self) -> str:
        """Under the lock: the note, "" when there is none or it cannot be read."""
        if self._fd is None:
            return ""
        try:
            return os.pread(self._fd, 256, 0).decode("ascii", "replace")
        except OSError:
            return ""

    def write_note(self, text: str) -> None:
        """Under the lock: replace the note (best effort: a read-only sidecar keeps none)."""
        if self._fd is None or not self._writable:
            return
        data = text.encode("ascii")
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))


def lock_exclusively(fd: int) -> bool:
    """`flock(LOCK_EX | LOCK_NB)`: False when another open file (this process's or another's)
    holds a lock on it. Marks a compression in progress: its `.gz.tmp` stays locked."""
    if fcntl is None:  # pragma: no cover - without flock, one process: the caller knows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
