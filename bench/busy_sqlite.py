"""SQLite batch write latency under a saturated event loop, without a web server.

    python -m bench.busy_sqlite [--seconds 5] [--tasks 200] [--work-us 100]

`--tasks` coroutines each loop: a sync chunk of CPU work (`--work-us` of busy Python), one
`await log.info("hello", user=..., request=...)` and one stdlib-bridge-like entry of another
logger (`uvicorn.access`, no fields), then `await asyncio.sleep(0)`. The loop always has ready
work, as a web server's under wrk. The SQLite sink runs with `Config`'s defaults in async mode;
`LogManager.observe_writes` records each batch's size and write time (the backend's write,
row conversion included). Prints one JSON line: requests done, entries written and dropped,
batch count, mean batch size, batch p50/p99/max ms, and loop turns (how many times the loop
ran a task's chunk per second of wall time).

Meant for before/after comparisons within one run, interleaved, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from asynclog import Config, LogManager, SQLiteConfig


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def run(seconds: float, tasks: int, work_us: float, directory: Path) -> dict[str, object]:
    sink = SQLiteConfig(db_path=directory / "b.db")
    config = Config(name="app", async_mode=True, backends=[sink])
    batches: list[tuple[int, float]] = []
    done = 0
    work = work_us / 1e6
    async with LogManager(config) as log:
        log.observe_writes(lambda name, entries, secs: batches.append((len(entries), secs)))
        access = log.get_logger("uvicorn.access")
        stop_at = time.perf_counter() + seconds

        async def request_loop(task: int) -> None:
            nonlocal done
            clock = time.perf_counter
            while clock() < stop_at:
                end = clock() + work
                while clock() < end:
                    pass
                done += 1
                await log.info("hello", user=f"user{task}", request=done)
                await access.info('127.0.0.1:5000 - "GET /hello?user=ada HTTP/1.1" 200')
                await asyncio.sleep(0)

        await asyncio.gather(*(request_loop(t) for t in range(tasks)))
        # Batches written after the load (the close's drain) are not under saturation.
        loaded = len(batches)
    stats = log.get_stats()
    times = [s for _, s in batches[:loaded]]
    return {
        "requests_per_s": round(done / seconds),
        "written": stats.written,
        "dropped": stats.dropped,
        "batches": loaded,
        "mean_batch": round(sum(n for n, _ in batches[:loaded]) / max(loaded, 1)),
        "p50_ms": round(_percentile(times, 0.5) * 1000, 2),
        "p99_ms": round(_percentile(times, 0.99) * 1000, 2),
        "max_ms": round(max(times, default=0.0) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.busy_sqlite", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--work-us", type=float, default=100.0)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        coro = run(args.seconds, args.tasks, args.work_us, Path(directory))
        if args.uvloop:
            import uvloop

            result = uvloop.run(coro)
        else:
            result = asyncio.run(coro)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
