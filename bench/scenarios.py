"""The scenarios, each run inside one `bench.run_one` process against one contender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

import sniffio

from .contenders import Contender, Sink
from .limit import QUEUE_SIZE
from .verify import message, verify


@dataclass(frozen=True)
class Params:
    tasks: int = 100  # e2e: producer tasks ...
    per_task: int = 1000  # ... times entries each
    calls: int = 1000  # caller1k: calls per timed round
    rounds: int = 5  # caller1k: timed rounds, after one warm-up round
    attempts: int = 1_000_000  # stalled: attempted writes


@dataclass
class Result:
    value: float | None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    peak_rss_mib: float | None = None  # taken before verification reads the output back


@dataclass(frozen=True)
class Scenario:
    name: str
    unit: str
    higher_is_better: bool
    run: Callable[[Contender, Path, Params], Awaitable[Result]]
    stuck: bool = False  # uses `Contender.make_stuck`; the process is abandoned, not closed
    processes: int = 0  # >0: `shared_worker` processes writing one file (`Contender.shared`)

    def applies_to(self, contender: Contender) -> bool:
        if self.stuck:
            return contender.make_stuck is not None
        if self.processes:
            return contender.shared is not None
        return True


def peak_rss_kib() -> int:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mib() -> float:
    return peak_rss_kib() / 1024


def _proc_status_kib(name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def start_rss_window() -> int:
    """Reset the kernel's peak-RSS mark (VmHWM) where possible; return the RSS now (KiB).

    Without the reset, a peak from start-up would hide any growth smaller than it.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return peak_rss_kib()  # fall back to ru_maxrss before vs after
    return _proc_status_kib("VmRSS") or peak_rss_kib()


def rss_window_peak() -> int:
    """The peak RSS (KiB) since `start_rss_window`."""
    return _proc_status_kib("VmHWM") or peak_rss_kib()


def _verify(sink: Sink, tasks: int, per_task: int) -> str | None:
    """Check the output and the library's own counters (after close)."""
    return verify(sink.output, tasks, per_task) or sink.check(tasks * per_task)


async def caller1k(contender: Contender, directory: Path, p: Params) -> Result:
    """µs per awaited call: only the loop of calls is timed, the median of `rounds` rounds
    after a warm-up; the logger catches up between rounds (`settle`), outside the timing."""
    sink = await contender.make(directory)
    log = sink.log
    samples: list[float] = []
    cpu_samples: list[float] = []
    for round_ in range(p.rounds + 1):
        messages = [message(round_, i) for i in range(p.calls)]
        cpu = process_time()
        start = perf_counter()
        for text in messages:
            await log(text)
        elapsed = perf_counter() - start
        cpu = process_time() - cpu
        if round_:
            samples.append(elapsed / p.calls * 1e6)
            cpu_samples.append(cpu / p.calls * 1e6)
        await sink.settle((round_ + 1) * p.calls)
    await sink.close()
    rss = peak_rss_mib()
    error = _verify(sink, p.rounds + 1, p.calls)
    extra = {"rounds_us": samples, "cpu_us": statistics.median(cpu_samples)}
    return Result(statistics.median(samples), error, extra, rss)


async def _ticker(lags: list[float]) -> None:
    """Sleep 1 ms at a time and record how late each wake-up is (until cancelled)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        lags.append(max(0.0, loop.time() - due))


async def _e2e(contender: Contender, directory: Path, p: Params, yield_each: bool) -> Result:
    sink = await contender.make(directory)
    log = sink.log

    async def produce(t: int) -> None:
        for i in range(p.per_task):
            await log(f"task {t} msg {i}")
            if yield_each:
                await asyncio.sleep(0)

    lags: list[float] = []
    ticker = asyncio.get_running_loop().create_task(_ticker(lags)) if yield_each else None
    cpu = process_time()
    start = perf_counter()
    await _all_at_once([produce(t) for t in range(p.tasks)])
    if ticker is not None:  # lag is measured while producing, not during close
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    await sink.close()
    elapsed = perf_counter() - start
    cpu = process_time() - cpu
    rss = peak_rss_mib()
    error = _verify(sink, p.tasks, p.per_task)
    entries = p.tasks * p.per_task
    extra: dict[str, Any] = {
        "seconds": elapsed,
        "entries": entries,
        "cpu_us": cpu / entries * 1e6,
    }
    if yield_each:
        ms = sorted(lag * 1000 for lag in lags) or [0.0]
        extra |= {
            "lag_p99_ms": ms[int(0.99 * (len(ms) - 1))],
            "lag_max_ms": ms[-1],
            "ticks": len(lags),
        }
    return Result(p.tasks * p.per_task / elapsed, error, extra, rss)


async def _all_at_once(coroutines: list[Coroutine[Any, Any, None]]) -> None:
    """`asyncio.gather`, or a trio nursery under `--loop trio`."""
    if "trio" in sys.modules and sniffio.current_async_library() == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            for coroutine in coroutines:
                nursery.start_soon(_awaited, coroutine)
        return
    await asyncio.gather(*coroutines)


async def _awaited(coroutine: Coroutine[Any, Any, None]) -> None:
    await coroutine


async def e2e100k(contender: Contender, directory: Path, p: Params) -> Result:
    """entries/s from the first call until everything is written and the logger closed."""
    return await _e2e(contender, directory, p, yield_each=False)


async def e2e100k_yield(contender: Contender, directory: Path, p: Params) -> Result:
    """As e2e100k with `await asyncio.sleep(0)` after each call, and event-loop lag."""
    return await _e2e(contender, directory, p, yield_each=True)


async def stalled(contender: Contender, directory: Path, p: Params) -> Result:
    """A backend that never finishes a write: memory must stay bounded, refusals counted.

    The producer yields once every 1000 attempts so the worker can take its (stuck) batch.
    """
    assert contender.make_stuck is not None
    logger = await contender.make_stuck()
    before = start_rss_window()
    accepted = 0
    cpu = process_time()
    start = perf_counter()
    for n in range(p.attempts):
        if await logger.attempt(f"task 0 msg {n}"):
            accepted += 1
        if n % 1000 == 999:
            await asyncio.sleep(0)
    elapsed = perf_counter() - start
    cpu = process_time() - cpu
    growth = (rss_window_peak() - before) / 1024
    dropped = logger.dropped()
    bound = 2 * QUEUE_SIZE  # the queue plus the batch stuck in the worker
    problems = []
    if accepted + dropped != p.attempts:
        problems.append(f"accepted {accepted} + dropped {dropped} != attempted {p.attempts}")
    if accepted > bound:
        problems.append(f"accepted {accepted} > queue + one batch ({bound})")
    extra = {
        "attempted": p.attempts,
        "accepted": accepted,
        "dropped": dropped,
        "us_per_attempt": elapsed / p.attempts * 1e6,
        "cpu_us": cpu / p.attempts * 1e6,
    }
    return Result(growth, "; ".join(problems) or None, extra, peak_rss_mib())


async def _start_worker(
    path: Path, first_task: int, tasks: int, per_task: int, async_mode: bool
) -> asyncio.subprocess.Process:
    command = [sys.executable, "-m", "bench.shared_worker", "--path", str(path)]
    command += ["--first-task", str(first_task), "--tasks", str(tasks)]
    command += ["--per-task", str(per_task)] + (["--async-mode"] if async_mode else [])
    worker = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert worker.stdout is not None
    ready = await worker.stdout.readline()
    if ready.strip() != b"READY":
        raise RuntimeError(f"shared_worker did not start (said {ready[:200]!r})")
    return worker


async def _shared(contender: Contender, directory: Path, p: Params, processes: int) -> Result:
    """`processes` processes (each asynclog, `FileConfig(shared=True)`) split the tasks and
    write one file; entries/s = all entries / (last end - first start), once all are ready."""
    assert contender.shared is not None
    if p.tasks % processes:
        raise ValueError(f"{p.tasks} tasks do not split over {processes} processes")
    path = directory / "shared.log"
    share = p.tasks // processes
    workers = [
        await _start_worker(path, k * share, share, p.per_task, contender.shared.async_mode)
        for k in range(processes)
    ]
    for worker in workers:  # the start signal, as close together as the pipes allow
        assert worker.stdin is not None
        worker.stdin.write(b"GO\n")
    outputs = await asyncio.gather(*(worker.communicate() for worker in workers))
    runs = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    seconds = max(run["end"] for run in runs) - min(run["start"] for run in runs)
    entries = p.tasks * p.per_task
    problems = [
        f"process {k}: written={run['written']} dropped={run['dropped']} "
        f"write_errors={run['write_errors']}, expected {share * p.per_task}"
        for k, run in enumerate(runs)
        if (run["written"], run["dropped"], run["write_errors"]) != (share * p.per_task, 0, 0)
    ]
    found = verify(contender.shared.output(path), p.tasks, p.per_task)
    if found is not None:
        problems.append(found)
    extra = {
        "seconds": seconds,
        "entries": entries,
        "processes": processes,
        "cpu_us": sum(run["cpu"] for run in runs) / entries * 1e6,
    }
    rss = max(run["rss_mib"] for run in runs)
    return Result(entries / seconds, "; ".join(problems) or None, extra, rss)


async def shared_1proc(contender: Contender, directory: Path, p: Params) -> Result:
    """One process writes every entry to a `shared=True` file (the baseline for 4)."""
    return await _shared(contender, directory, p, 1)


async def shared_4proc(contender: Contender, directory: Path, p: Params) -> Result:
    """Four processes, a quarter of the tasks each, write one `shared=True` file."""
    return await _shared(contender, directory, p, 4)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("caller1k", "µs/call", False, caller1k),
        Scenario("e2e100k", "entries/s", True, e2e100k),
        Scenario("e2e100k_yield", "entries/s", True, e2e100k_yield),
        Scenario("stalled", "MiB RSS growth", False, stalled, stuck=True),
        Scenario("shared_1proc", "entries/s", True, shared_1proc, processes=1),
        Scenario("shared_4proc", "entries/s", True, shared_4proc, processes=4),
    ]
}
