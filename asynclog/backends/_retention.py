"""The rotated files of one log: gzip and retention, on a thread the file backend owns.

Renaming (`rotate_files`), compression and deletion all take one lock, so a rotation that
shifts `app.log.1` to `app.log.2` can run while `app.log.1` is being compressed: the lock
is held only for renames and deletions, never while compressing.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from ._rotation import backup_name, rotate_files

CHUNK = 1024 * 1024
COMPRESS_LEVEL = 6  # gzip(1)'s default: most of level 9's ratio at a third of its time


class Backup(NamedTuple):
    number: int
    path: str
    size: int
    mtime: float


def _warn(detail: str) -> None:
    try:
        sys.stderr.write(f"asynclog[file]: {detail}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
    ) -> None:
        self.path = path
        self.max_backups = max_backups
        self.max_age = max_age
        self.max_total_bytes = max_total_bytes
        self.clock = clock
        self.lock = threading.Lock()
        self.abort = threading.Event()
        """Set to make a compression in progress give up (its original stays)."""
        self._compressing: int | None = None  # the number being compressed; moved by rotate()
        directory, name = os.path.split(path)
        self._directory = directory or "."
        self._pattern = re.compile(re.escape(name) + r"\.([1-9][0-9]*)(\.gz|\.gz\.tmp)?")

    @property
    def has_retention(self) -> bool:
        return self.max_age is not None or self.max_total_bytes is not None

    def rotate(self) -> None:
        """Move the live file to `.1`, shifting the others; the oldest past `max_backups` goes."""
        with self.lock:
            rotate_files(self.path, self.max_backups)
            number = self._compressing
            if number is not None and number <= self.max_backups:  # past it: not renamed
                self._compressing = number + 1 if number < self.max_backups else None

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
        """gzip every plain rotated file, newest first, unless `abort` is set meanwhile."""
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
                self._compress(*job)

    def _remove_stale_temporaries(self) -> None:
        """A `.gz.tmp` nobody is writing is what a crash left: its original still exists."""
        for number, suffix, path in self._scan():
            if suffix == ".gz.tmp" and number != self._compressing:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    def _start_compression(self, number: int) -> tuple[int, int, os.stat_result] | None:
        """Under the lock: open `.N` and create `.N.gz.tmp`; return (source, target, stat)."""
        source_path = backup_name(self.path, number)
        try:
            source = os.open(source_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            _warn(f"cannot compress {source_path!r}: {exc}")
            return None
        try:
            info = os.fstat(source)
            target = os.open(source_path + ".gz.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            os.close(source)
            _warn(f"cannot compress {source_path!r}: {exc}")
            return None
        self._compressing = number
        return source, target, info

    def _compress(self, source: int, target: int, info: os.stat_result) -> None:
        """Write the gzip of `source` into `target`, fsync it, then (under the lock, at the
        number the file has by now) rename `.N.gz.tmp` to `.N.gz` and delete `.N`."""
        try:
            completed = self._gzip(source, target, info)
        except OSError as exc:
            _warn(f"compressing a rotated file of {self.path!r} failed: {exc}")
            completed = False
        finally:
            os.close(source)
            os.close(target)
        with self.lock:
            number, self._compressing = self._compressing, None
            if number is None:  # deleted meanwhile (max_backups or retention)
                return
            name = backup_name(self.path, number)
            if not completed:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name + ".gz.tmp")
                return
            try:
                os.replace(name + ".gz.tmp", name + ".gz")
                self._fsync_directory()
                os.remove(name)
            except OSError as exc:
                _warn(f"cannot finish compressing {name!r}: {exc}")

    def _gzip(self, source: int, target: int, info: os.stat_result) -> bool:
        """False when `abort` stopped it."""
        os.fchmod(target, stat.S_IMODE(info.st_mode))
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
            handle = os.open(self._directory, os.O_RDONLY)
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
                _warn(f"cannot list the rotated files of {self.path!r}: {exc}")
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
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    _warn(f"cannot delete {backup.path!r}: {exc}")
                    continue
                if backup not in expired:
                    total -= backup.size
                deleted.append(backup.path)
                if backup.number == self._compressing:
                    self._compressing = None
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(backup_name(self.path, backup.number) + ".gz.tmp")
        return deleted

    def _backups(self) -> list[Backup]:
        found = []
        for number, suffix, path in self._scan():
            if suffix == ".gz.tmp":
                continue
            try:
                info = os.stat(path)
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
                _warn(f"housekeeping failed: {exc!r}")

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
