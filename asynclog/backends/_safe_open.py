"""Opening the files asynclog names itself beside a log (the lock, `.gz.tmp`, rotated files, the
live file when asynclog creates it again) without following a link planted at the name.

Anyone who can write the log's directory can put a symbolic link at such a name, pointing at a
file the process may write (or at a FIFO, whose open would block). Every open here uses
`O_NOFOLLOW` (the link is refused with `ELOOP`, never followed), creates with `O_EXCL` where a
new file is meant, opens an existing one with `O_NONBLOCK` and accepts only a regular file.
"""

from __future__ import annotations

import errno
import os
import stat

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CREATING = os.O_CREAT | os.O_EXCL


class UnsafeFileError(OSError):
    """A name asynclog derives holds a symbolic link or something other than a regular file."""


def _refusal(path: str, mode: int) -> UnsafeFileError:
    if stat.S_ISLNK(mode):
        return UnsafeFileError(
            errno.ELOOP,
            f"{path!r} is a symbolic link: asynclog never follows a link at a name it derives "
            "from the log's path",
        )
    return UnsafeFileError(errno.EINVAL, f"{path!r} is not a regular file (mode {oct(mode)})")


def _checked(fd: int, path: str) -> int:
    """`fd` if it is a regular file (non-blocking mode cleared), else closed and refused."""
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refusal(path, mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_new(path: str, flags: int, mode: int) -> int:
    """Create `path` (`O_CREAT | O_EXCL | O_NOFOLLOW`): `FileExistsError` if anything, a link
    included, is at the name."""
    return os.open(path, (flags & ~NONBLOCK) | _CREATING | NOFOLLOW | CLOEXEC, mode)


def open_existing(path: str, flags: int) -> int:
    """Open the regular file at `path`, never through a symbolic link: `UnsafeFileError` for a
    link, a FIFO, a device or a directory."""
    try:
        fd = os.open(path, (flags & ~_CREATING) | NOFOLLOW | NONBLOCK | CLOEXEC)
    except OSError as exc:
        # ELOOP (EMLINK on some BSDs): a link; ENXIO: a FIFO with no reader, or a device
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                mode = stat.S_IFREG  # gone meanwhile: the open's own error says so
            if not stat.S_ISREG(mode):
                raise _refusal(path, mode) from exc
        raise
    return _checked(fd, path)


def open_or_create(path: str, flags: int, mode: int) -> int:
    """Create `path` (`O_EXCL`), or open the regular file already there (`O_NOFOLLOW`)."""
    for _ in range(3):  # another process created or deleted it between the two opens
        try:
            return create_new(path, flags, mode)
        except FileExistsError:
            pass
        try:
            return open_existing(path, flags)
        except FileNotFoundError:
            continue
    return open_existing(path, flags)
