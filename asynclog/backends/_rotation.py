"""Rotation: where a batch must be split by size or time (pure), and the renaming itself."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

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


def rotate_files(path: str, max_backups: int) -> None:
    """Shift `path.1`..`path.N-1` up by one, drop the oldest, move `path` to `path.1`.

    Each number moves in every form it exists in (`.N`, `.N.gz`, `.N.gz.tmp`). With
    `max_backups == 0` the full file is simply deleted. Blocking: run it off the loop.
    """
    if max_backups == 0:
        _remove_if_present(path)
        return
    for suffix in BACKUP_SUFFIXES:
        _remove_if_present(backup_name(path, max_backups) + suffix)
    for number in range(max_backups - 1, 0, -1):
        for suffix in BACKUP_SUFFIXES:
            older = backup_name(path, number) + suffix
            if os.path.exists(older):
                os.replace(older, backup_name(path, number + 1) + suffix)
    if os.path.exists(path):
        os.replace(path, backup_name(path, 1))


def _remove_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
