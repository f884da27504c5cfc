"""The rotated files of one log: gzip and retention, on a thread the file backend owns.

Renaming (`rotate_files`), compression and deletion all take one lock (`RotationLock`: between
processes too when the log is shared), so a rotation that shifts `app.log.1` to `app.log.2` can
run while `app.log.1` is being compressed: the lock is held only for renames and deletions,
never while compressing. A compression keeps its `.gz.tmp` flock-ed until it is renamed: a
locked `.gz.tmp` is in progress (in this process or another), an unlocked one is a crash's
leftover. When it ends, the compression finds its file's number by the inode of its `.gz.tmp`
(rotations, in any process, move `.N` and `.N.gz.tmp` together).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .._report import warn
from ._rotation import RotationLock, backup_name, lock_exclusively, rotate_files
from ._safe_open import CLOEXEC, UnsafeFileError, create_new, open_existing

CHUNK = 1024 * 1024
COMPRESS_LEVEL = 6  # gzip(1)'s default: most of level 9's ratio at a third of its time
PERMISSION_BITS = 0o777
"""What a gzip copies of its original's mode: never setuid, setgid or sticky."""


class Backup(NamedTuple):
    number: int
    path: str
    size: int
    mtime: float


class Job(NamedTuple):
    """A compression: `source` (`.number`), `target` (its `.gz.tmp`, flock-ed) and their
    stat results."""

    number: int
    source: int
    target: int
    info: os.stat_result
    target_info: os.stat_result


class Backups:
    """Rotation, compression and retention of `path.1`, `path.2`, ... (`.gz` when compressed).

    Numbers run from 1 (newest) upwards; retention deletes from the highest number down.
    """

    def __init__(
        self,
        path: str,
        max_backups: int,
        *,
        max_age: float | None = None,
        max_total_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
        lock: RotationLock | None = None,
    ) -> None:
        self.path = path
        self.max_backups = max_backups
        self.max_age = max_age
        self.max_total_bytes = max_total_bytes
        self.clock = clock
        self.lock = lock if lock is not None else RotationLock()
        """Held for every rename and deletion; the file backend holds it while rotating."""
        self.abort = threading.Event()
        """Set to make a compression in progress give up (its original stays)."""
        self.deleted = 0
        """Rotated files this object deleted: pushed out past `max_backups`, or by retention
        (written under the lock, from whichever thread rotates or tidies)."""
        directory, name = os.path.split(path)
        self._directory = directory or "."
        self._pattern = re.compile(re.escape(name) + r"\.([1-9][0-9]*)(\.gz|\.gz\.tmp)?")

    @property
    def has_retention(self) -> bool:
        return self.max_age is not None or self.max_total_bytes is not None

    def rotate(self) -> None:
        """Move the live file to `.1`, shifting the others; the oldest past `max_backups` goes."""
        with self.lock:
            self.deleted += rotate_files(self.path, self.max_backups)

    def _scan(self) -> list[tuple[int, str, str]]:
        """(number, suffix, path) of every rotated file of this log, in any form."""
        found = []
        with os.scandir(self._directory) as entries:
            for entry in entries:
                match = self._pattern.fullmatch(entry.name)
                if match:
                    found.append((int(match[1]), match[2] or "", entry.path))
        return found

    def tidy(self, compress: bool) -> None:
        """The housekeeping after a rotation (and at start): compress what is not compressed
        yet, then apply retention. Failures are reported on stderr and retried next time."""
        if compress:
            self.compress_all()
        if self.has_retention:
            self.apply_retention()

    # Compression

    def compress_all(self) -> None:
        """gzip every plain rotated file, newest first, unless `abort` is set meanwhile. A file
        another process is compressing (its `.gz.tmp` locked) is left to it."""
        with self.lock:
            self._remove_stale_temporaries()
        done: set[int] = set()
        while not self.abort.is_set():
            with self.lock:
                plain = [n for n, suffix, _ in self._scan() if suffix == "" and n not in done]
                if not plain:
                    return
                number = min(plain)
                done.add(number)
                job = self._start_compression(number)
            if job is not None:
                self._compress(job)

    def _remove_stale_temporaries(self) -> None:
        """Under the lock: remove every `.gz.tmp` that is not a compression in progress."""
        for _, suffix, path in self._scan():
            if suffix == ".gz.tmp":
                self._remove_if_stale(path)

    def _remove_if_stale(self, path: str) -> bool:
        """Under the lock: a `.gz.tmp` nobody holds locked is what a crash left (its original
        still exists), one that is locked is being written, here or by another process; a
        link or anything but a regular file was not made by asynclog. All but the locked one
        are removed (the name only: a link's target is untouched). True when the name is free.
        """
        try:
            handle = open_existing(path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        except UnsafeFileError:
            pass  # not ours: removed below, never followed
        except OSError:
            return False  # another user's, unreadable: not ours to judge
        else:
            try:
                if not lock_exclusively(handle):
                    return False  # in progress
            finally:
                os.close(handle)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            warn(f"cannot remove the stale {path!r}: {exc}", "file")
            return False
        return True

    def _start_compression(self, number: int) -> Job | None:
        """Under the lock: open `.N` (a regular file, not through a link), remove a stale
        `.N.gz.tmp`, create a new one and lock it. None when `.N` is gone or refused, or its
        `.gz.tmp` is locked: another compression has it."""
        source_path = backup_name(self.path, number)
        temporary = source_path + ".gz.tmp"
        try:
            source = open_existing(source_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            warn(f"cannot compress {source_path!r}: {exc}", "file")
            return None
        target = -1
        try:
            info = os.fstat(source)
            if not self._remove_if_stale(temporary):
                os.close(source)
                return None  # another compression has it
            # A new file, never one found at the name: a link or a second name of another
            # file planted there after the check above is refused (EEXIST), not written.
            target = create_new(temporary, os.O_WRONLY, 0o600)
            if not lock_exclusively(target):  # cannot happen under the lock: belt and braces
                os.close(source)
                os.close(target)
                return None
            return Job(number, source, target, info, os.fstat(target))
        except OSError as exc:
            os.close(source)
            if target >= 0:
                os.close(target)
            warn(f"cannot compress {source_path!r}: {exc}", "file")
            return None

    def _compress(self, job: Job) -> None:
        """Write the gzip of `.N` into `.N.gz.tmp`, fsync it, then (under the lock, at the
        number the file has by now) rename `.N.gz.tmp` to `.N.gz` and delete `.N`. The
        `.gz.tmp` stays open, so locked, until then."""
        try:
            try:
                completed = self._gzip(job.source, job.target, job.info)
            except OSError as exc:
                warn(f"compressing a rotated file of {self.path!r} failed: {exc}", "file")
                completed = False
            finally:
                os.close(job.source)
            with self.lock:
                self._finish(job, completed)
        finally:
            os.close(job.target)

    def _finish(self, job: Job, completed: bool) -> None:
        number = self._current_number(job)
        if number is None:  # deleted meanwhile (max_backups or retention)
            return
        name = backup_name(self.path, number)
        if not completed or not self._is_source(name, job):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name + ".gz.tmp")
            return
        try:
            os.replace(name + ".gz.tmp", name + ".gz")
            self._fsync_directory()
            os.remove(name)
        except OSError as exc:
            warn(f"cannot finish compressing {name!r}: {exc}", "file")

    @staticmethod
    def _is_source(name: str, job: Job) -> bool:
        """Under the lock: `name` is still the file the job compressed (not a file, or a link,
        put in its place since)."""
        try:
            info = os.lstat(name)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == (job.info.st_dev, job.info.st_ino)

    def _current_number(self, job: Job) -> int | None:
        """Under the lock: the number the job's `.gz.tmp` has now (rotations only move files
        up), found by its inode; None when it was deleted."""
        identity = (job.target_info.st_dev, job.target_info.st_ino)
        for number in range(job.number, max(job.number, self.max_backups) + 1):
            try:
                info = os.lstat(backup_name(self.path, number) + ".gz.tmp")
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == identity:
                return number
        return None

    def _gzip(self, source: int, target: int, info: os.stat_result) -> bool:
        """False when `abort` stopped it."""
        os.fchmod(target, stat.S_IMODE(info.st_mode) & PERMISSION_BITS)
        header_mtime = int(info.st_mtime)
        with (
            open(target, "wb", closefd=False) as raw,
            gzip.GzipFile("", "wb", COMPRESS_LEVEL, raw, header_mtime) as packed,
        ):
            while chunk := os.read(source, CHUNK):
                if self.abort.is_set():
                    return False
                packed.write(chunk)
        os.fsync(target)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))  # retention ages by mtime
        return True

    def _fsync_directory(self) -> None:
        with contextlib.suppress(OSError):
            handle = os.open(self._directory, os.O_RDONLY | CLOEXEC)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)

    # Retention

    def apply_retention(self) -> list[str]:
        """Delete the rotated files last written more than `max_age` ago, then, highest number
        (oldest) first, others until the rest fit in `max_total_bytes`. Returns the deleted
        paths."""
        deleted: list[str] = []
        with self.lock:
            try:
                backups = self._backups()
            except OSError as exc:
                warn(f"cannot list the rotated files of {self.path!r}: {exc}", "file")
                return deleted
            now = self.clock()
            max_age = self.max_age
            expired = {b for b in backups if max_age is not None and now - b.mtime > max_age}
            total = sum(backup.size for backup in backups if backup not in expired)
            for backup in sorted(backups, key=lambda b: b.number, reverse=True):
                too_big = self.max_total_bytes is not None and total > self.max_total_bytes
                if backup not in expired and not too_big:
                    continue
                try:
                    os.remove(backup.path)
                    self.deleted += 1
                except FileNotFoundError:
                    pass  # another process's retention was first
                except OSError as exc:
                    warn(f"cannot delete {backup.path!r}: {exc}", "file")
                    continue
                if backup not in expired:
                    total -= backup.size
                deleted.append(backup.path)
                with contextlib.suppress(FileNotFoundError):  # a compression of it is moot
                    os.remove(backup_name(self.path, backup.number) + ".gz.tmp")
        return deleted

    def _backups(self) -> list[Backup]:
        found = []
        for number, suffix, path in self._scan():
            if suffix == ".gz.tmp":
                continue
            try:
                info = os.lstat(path)  # a link counts as what it is, not as its target
            except FileNotFoundError:
                continue
            found.append(Backup(number, path, info.st_size, info.st_mtime))
        return found


class Housekeeper:
    """Runs `work` on a thread of its own, started when kicked and ending when idle, so that
    nothing lingers between rotations; `finish` waits for it, and no thread starts after."""

    def __init__(self, work: Callable[[], None], name: str) -> None:
        self._work = work
        self._name = name
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None
        self._closed = False

    def kick(self) -> None:
        """Have `work` run (again) soon; returns at once."""
        with self._lock:
            if self._closed:
                return
            self._pending = True
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name)
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutdown: left for the next start
                    return
                self._thread = thread

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
                self._pending = False
            try:
                self._work()
            except Exception as exc:  # a bug must not kill housekeeping silently
                warn(f"housekeeping failed: {exc!r}", "file")

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def finish(self) -> None:
        """Blocking: refuse new work, wait for the running work to end."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join()
