"""The cost of a filtered call on a named logger against `await` of a no-op coroutine.

    python -m bench.filtered_call

Each figure is the best of many short runs (the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asynclog import Config, LogEntry, LogManager

CALLS = 100_000
ROUNDS = 30


class NullBackend:
    """Writes nothing."""

    async def open(self) -> None:
        pass

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        pass

    async def close(self) -> None:
        pass


async def _noop(message: object, /, *args: Any, **fields: Any) -> bool:
    return False


async def _noop_calls(target: Any) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        await _noop("x")
    return time.perf_counter() - started


async def _named_calls(target: Any) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        await target.debug("x")  # as written in an application: the lookup counts too
    return time.perf_counter() - started


Round = Callable[[Any], Awaitable[float]]


async def _best(rounds: dict[str, tuple[Round, Any]]) -> dict[str, float]:
    """Nanoseconds per call, the best round of each; the rounds interleave, so that a busy
    moment of the machine hits them all alike."""
    best = dict.fromkeys(rounds, float("inf"))
    for _ in range(ROUNDS):
        for name, (run, target) in rounds.items():
            best[name] = min(best[name], await run(target) / CALLS * 1e9)
    return best


async def main() -> None:
    config = Config(backend=NullBackend(), level="INFO", levels={"app": "INFO"})
    async with LogManager(config) as lm:
        rounds = {
            "noop": (_noop_calls, None),
            "named": (_named_calls, lm.get_logger("app.db")),
            "bound": (_named_calls, lm.bind(request="r1")),
            "own": (_named_calls, lm),
        }
        best = await _best(rounds)
    noop = best["noop"]
    print(f"await a no-op coroutine             {noop:6.1f} ns")
    for name, label in (
        ("named", "await named.debug(...), filtered"),
        ("bound", "await lm.bind(...).debug, filtered"),
        ("own", "await lm.debug(...), filtered"),
    ):
        print(f"{label:35} {best[name]:6.1f} ns  ({best[name] / noop:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())
