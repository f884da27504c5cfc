"""CPU work on a batch, done in slices so the worker never holds the event loop for long."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TypeVar

from .. import _runtime
from .._entry import Entry

T = TypeVar("T")
E = TypeVar("E", bound=Entry)  # an entry tuple, or a LogEntry

CHUNK = 128
"""Entries converted between two looks at the clock."""
SLICE_SECONDS = 0.0005
"""The longest the worker converts before it lets the loop run other tasks."""


async def convert_in_slices(
    convert_many: Callable[[Sequence[E]], list[T]], entries: Sequence[E]
) -> list[T]:
    """`convert_many(entries)`, done CHUNK entries at a time, yielding to the loop whenever a
    slice of work has taken `SLICE_SECONDS`. A yield costs a whole loop turn, so it is spent
    only when needed."""
    count = len(entries)
    if count <= CHUNK:
        return convert_many(entries)
    result: list[T] = []
    slice_ends = perf_counter() + SLICE_SECONDS
    for start in range(0, count, CHUNK):
        result.extend(convert_many(entries[start : start + CHUNK]))
        if start + CHUNK < count and perf_counter() >= slice_ends:
            await _runtime.sleep(0)
            slice_ends = perf_counter() + SLICE_SECONDS
    return result


async def map_in_slices(convert: Callable[[E], T], entries: Sequence[E]) -> list[T]:
    """`[convert(e) for e in entries]`, in slices (see `convert_in_slices`)."""
    return await convert_in_slices(lambda chunk: [convert(entry) for entry in chunk], entries)
