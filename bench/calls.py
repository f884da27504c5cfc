"""`python -m bench calls`: what one log call costs the caller, by the shape of the call.

Every case runs in this one process, interleaved (for each rep: each case), so that the
ratios come from the same run. A case times `--calls` calls in a row, in async mode, into a
queue with room for all of them: nothing waits, so the time is the caller's own (the worker
writes the batch afterwards, untimed). Each case gives wall ns and CPU ns per call (medians
over the reps), and the ratio the issue's target is stated in.

    python -m bench calls [--reps 7] [--calls 20000] [--write]

`--write` puts the tables in docs/benchmarks.md, in the section marked `calls`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asynclog
from asynclog import Config, FileConfig, LogManager
from asynclog.processors import redact

from .report import replace_section

ROOT = Path(__file__).resolve().parent.parent

@dataclass(frozen=True)
class Target:
    """`case` costs at most `limit` x `base` (the issue's speed targets)."""

    case: str
    base: str
    limit: float | None  # None: reported, no target


TARGETS = (
    Target("info, one int field", "info, plain", 2.0),
    Target("info, %-arg", "info, plain", 1.5),
    Target("named logger, filtered out", "await no-op coroutine", 1.2),
    Target("nowait.info, plain", "info, plain", 0.5),
    Target("info, capture_location", "info, plain", None),
    Target("info, 2 fields, one redact processor", "info, 2 fields", None),
    Target("info, a 10-element list field", "info, one int field", None),
)


async def _noop(message: object, /, *args: Any, **fields: Any) -> bool:
    """The bar for a filtered call: a coroutine of the same signature that does nothing."""
    return False


def _managers(directory: Path, calls: int) -> dict[str, LogManager]:
    def config(name: str, **options: Any) -> Config:
        return Config(
            name=name,
            async_mode=True,
            queue_size=calls + 16,
            backend_config=FileConfig(file_path=str(directory / f"{name}.log")),
            levels={"bench.quiet": "WARNING"},
            **options,
        )

    return {
        "plain": LogManager(config("plain")),
        "location": LogManager(config("location", capture_location=True)),
        "redact": LogManager(config("redact", processors=[redact(keys=["password"])])),
    }


def _cases(
    managers: dict[str, LogManager],
) -> dict[str, Callable[[int], Awaitable[tuple[float, float]]]]:
    """Each case: `calls` calls written as an application writes them (no wrapper in the
    loop, the method looked up each time), timed; returns (wall, CPU) seconds."""
    lm, located, redacting = managers["plain"], managers["location"], managers["redact"]
    quiet = lm.get_logger("bench.quiet")
    items = list(range(10))

    async def noop(calls: int) -> None:
        for _ in range(calls):
            await _noop("not written")

    async def plain(calls: int) -> None:
        for _ in range(calls):
            await lm.info("request handled")

    async def one_field(calls: int) -> None:
        for _ in range(calls):
            await lm.info("request handled", status=200)

    async def two_fields(calls: int) -> None:
        for _ in range(calls):
            await lm.info("login", user="ada", password="hunter2")

    async def percent_arg(calls: int) -> None:
        for _ in range(calls):
            await lm.info("user %s logged in", 1234)

    async def filtered(calls: int) -> None:
        for _ in range(calls):
            await quiet.debug("not written")

    async def nowait(calls: int) -> None:
        for _ in range(calls):
            lm.nowait.info("request handled")

    async def location(calls: int) -> None:
        for _ in range(calls):
            await located.info("request handled")

    async def redacted(calls: int) -> None:
        for _ in range(calls):
            await redacting.info("login", user="ada", password="hunter2")

    async def a_list(calls: int) -> None:
        for _ in range(calls):
            await lm.info("request handled", items=items)

    loops = {
        "await no-op coroutine": noop,
        "info, plain": plain,
        "info, one int field": one_field,
        "info, 2 fields": two_fields,
        "info, %-arg": percent_arg,
        "named logger, filtered out": filtered,
        "nowait.info, plain": nowait,
        "info, capture_location": location,
        "info, 2 fields, one redact processor": redacted,
        "info, a 10-element list field": a_list,
    }
    return {name: _timed(loop) for name, loop in loops.items()}


def _timed(
    loop: Callable[[int], Awaitable[None]],
) -> Callable[[int], Awaitable[tuple[float, float]]]:
    async def timed(calls: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        await loop(calls)
        return time.perf_counter() - wall, time.process_time() - cpu

    return timed


async def _drain(managers: dict[str, LogManager]) -> None:
    """Let the workers write what the last case queued (untimed)."""
    while any(lm.get_stats().pending for lm in managers.values()):  # noqa: ASYNC110 (polls stats)
        await asyncio.sleep(0.005)


async def measure(reps: int, calls: int) -> dict[str, tuple[list[float], list[float]]]:
    """ns per call, wall and CPU, for every case and rep."""
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="asynclog-bench-calls-") as tmp:
        managers = _managers(Path(tmp), calls)
        for lm in managers.values():
            await lm.start()
        try:
            cases = _cases(managers)
            for _ in range(reps):
                for name, timed in cases.items():
                    gc.collect()  # every case starts from the same heap (untimed)
                    wall, cpu = await timed(calls)
                    walls, cpus = results.setdefault(name, ([], []))
                    walls.append(wall / calls * 1e9)
                    cpus.append(cpu / calls * 1e9)
                    await _drain(managers)
        finally:
            for lm in managers.values():
                await lm.close()
    return results


def render(results: dict[str, tuple[list[float], list[float]]], reps: int, calls: int) -> str:
    """The two tables: cost per case, then each target's ratio."""
    median = {name: statistics.median(walls) for name, (walls, _) in results.items()}
    lines = [
        f"`python -m bench calls --reps {reps} --calls {calls}`, Python "
        f"{sys.version.split()[0]}, asynclog {asynclog.__version__}, {calls:,} calls a case "
        "per rep, reps interleaved; medians (min-max) in ns per call.",
        "",
        "| call | wall ns | CPU ns |",
        "|---|---|---|",
    ]
    for name, (walls, cpus) in results.items():
        lines.append(
            f"| {name} | {median[name]:.0f} ({min(walls):.0f}-{max(walls):.0f}) | "
            f"{statistics.median(cpus):.0f} |"
        )
    lines += ["", "| ratio | measured | target |", "|---|---|---|"]
    for target in TARGETS:
        ratio = median[target.case] / median[target.base]
        goal = "-"
        if target.limit is not None:
            verdict = "met" if ratio <= target.limit else "not met"
            goal = f"at most {target.limit}x ({verdict})"
        lines.append(f"| {target.case} / {target.base} | {ratio:.2f}x | {goal} |")
    return "\n".join(lines) + "\n"


def write_docs(table: str) -> None:
    """Replace this command's section of docs/benchmarks.md (appended when absent; `python
    -m bench` keeps it when it rewrites the page)."""
    path = ROOT / "docs" / "benchmarks.md"
    body = "## The cost of one call, by its shape\n\n" + table
    path.write_text(replace_section(path.read_text(encoding="utf-8"), "calls", body), "utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench calls", description=__doc__)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.reps, args.calls))
    table = render(results, args.reps, args.calls)
    print(table)
    if args.write:
        write_docs(table)


if __name__ == "__main__":
    main()
