"""Size rotation: where a batch must be split (pure), and the renaming itself."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import NamedTuple


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
    runs: list[Run] = []
    start = 0
    rotate_first = False
    size = current_size
    count = 0
    for index, line_size in enumerate(line_sizes):
        count = index + 1
        if size > 0 and size + line_size > max_bytes:
            if index > start:
                runs.append(Run(start, index, rotate_first))
            start, rotate_first, size = index, True, 0
        size += line_size
    if count > start:
        runs.append(Run(start, count, rotate_first))
    return runs


def backup_name(path: str, number: int) -> str:
    """`app.log` -> `app.log.1`."""
    return f"{path}.{number}"


def rotate_files(path: str, max_backups: int) -> None:
    """Shift `path.1`..`path.N-1` up by one, drop the oldest, move `path` to `path.1`.

    With `max_backups == 0` the full file is simply deleted. Blocking: run it off the loop.
    """
    if max_backups == 0:
        _remove_if_present(path)
        return
    _remove_if_present(backup_name(path, max_backups))
    for number in range(max_backups - 1, 0, -1):
        older = backup_name(path, number)
        if os.path.exists(older):
            os.replace(older, backup_name(path, number + 1))
    if os.path.exists(path):
        os.replace(path, backup_name(path, 1))


def _remove_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
