"""Running one async test body on asyncio, uvloop and trio, through `anyio.run`.

The portable tests are plain (sync) test functions parametrised with `loop`, which call
`run_on(loop, body, ...)`. They are not `async def` tests on purpose: the suite runs
pytest-asyncio in auto mode, which claims every `async def` test for asyncio (anyio's pytest
plugin would never see the trio ones), so each portable test runs its own event loop instead.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import pytest

from asynclog import LogEntry

LOOPS = ["asyncio", "uvloop", "trio"]
if sys.platform == "win32":  # uvloop does not exist there
    LOOPS.remove("uvloop")

loops = pytest.mark.parametrize("loop", LOOPS)
"""Parametrise a test over every event loop asynclog supports (its `loop` argument)."""


def run_on(loop: str, body: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run `body(*args, **kwargs)` to the end in a fresh run of `loop`; return its result."""
    call = functools.partial(body, *args, **kwargs)
    if loop == "trio":
        return anyio.run(call, backend="trio")
    options = {"use_uvloop": loop == "uvloop"}
    return anyio.run(call, backend="asyncio", backend_options=options)


class RecordingGate:
    """A backend (portable: anyio's events) whose writes wait until `release()`, then keep
    the entries in memory. `writing` is set once a write has begun."""

    def __init__(self, released: bool = False) -> None:
        self.entries: list[LogEntry] = []
        self.gate = anyio.Event()
        self.writing = anyio.Event()
        if released:
            self.gate.set()

    async def open(self) -> None:
        pass

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.writing.set()
        await self.gate.wait()
        self.entries.extend(entries)

    async def close(self) -> None:
        pass

    def release(self) -> None:
        self.gate.set()

    @property
    def messages(self) -> list[str]:
        return [entry.message for entry in self.entries]


async def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll `condition` on every loop turn (sleeping a little) until it holds, at most `limit`
    seconds (then fail)."""
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - polls public stats, no event to wait on
            await anyio.sleep(0.001)
