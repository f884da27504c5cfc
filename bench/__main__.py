"""`python -m bench`: run every contender x scenario in fresh subprocesses, then report.

Runs go rep-major (for each rep: for each contender: for each scenario) so that machine noise
spreads over everyone. Prints the tables and ratios; writes docs/benchmarks.md and
docs/img/bench.png (not in --quick mode unless --write is given).

`python -m bench app [--quick] ...` is the real-service benchmark instead (bench/app_bench.py:
a Starlette app under uvicorn driven by wrk; `python -m bench app --help`).
`python -m bench protocols [--quick] ...` measures the network backends against their
protocols' limits (bench/protocols.py; `python -m bench protocols --help`).
`python -m bench concurrency` measures `concurrency=1` against 4 batches in flight with a
collector that answers after 20 ms (bench/concurrency.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report
from .contenders import CONTENDERS
from .report import DASH
from .run_one import RESULT_MARK
from .scenarios import SCENARIOS, Params

ROOT = Path(__file__).resolve().parent.parent
QUICK = Params(tasks=100, per_task=100, calls=1000, rounds=3, attempts=100_000)
PACKAGES = ("asynclog", "aiosqlite", "aiologger", "loguru", "structlog")


def _names(text: str, known: dict[str, Any], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 5; 1 with --quick)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 100x100 entries, 100k stalled attempts, 1 rep",
    )
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated contenders (default: all)"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated scenarios (default: all)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds per subprocess before it counts as FAILED",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and docs/img/bench.png (default: yes, except with --quick)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="the event loop of every run: asyncio (default) or trio (asynclog's contenders "
        "and the caller1k and e2e100k scenarios only; never writes the docs)",
    )
    args = parser.parse_args(argv)
    if args.loop == "trio":
        _trio_defaults(args, argv)
    only = _names(args.only, CONTENDERS, "contenders")
    chosen = _names(args.scenarios, SCENARIOS, "scenarios")
    args.only = [name for name in CONTENDERS if name in only]  # canonical order
    args.scenarios = [name for name in SCENARIOS if name in chosen]
    args.reps = args.reps or (1 if args.quick else 5)
    args.write = (not args.quick) if args.write is None else args.write
    args.params = QUICK if args.quick else Params()
    return args


LOOPS = ("asyncio", "trio")
TRIO_CONTENDERS = ("asynclog-async-file", "asynclog-async-sqlite", "asynclog-sync-file",
                   "asynclog-sync-sqlite")
TRIO_SCENARIOS = ("caller1k", "e2e100k")


def _trio_defaults(args: argparse.Namespace, argv: list[str]) -> None:
    """Under trio only asynclog runs (the peers are asyncio-only), on the scenarios that need
    nothing but the logger; the tables go to stdout, not to docs/benchmarks.md."""
    if not any(arg.startswith("--only") for arg in argv):
        args.only = ",".join(TRIO_CONTENDERS)
    if not any(arg.startswith("--scenarios") for arg in argv):
        args.scenarios = ",".join(TRIO_SCENARIOS)
    wrong = [n for n in args.only.split(",") if n.strip() and n.strip() not in TRIO_CONTENDERS]
    wrong += [n for n in args.scenarios.split(",") if n.strip() and n.strip() not in TRIO_SCENARIOS]
    if wrong:
        raise SystemExit(f"not measured under trio: {', '.join(wrong)}")
    if args.write:
        raise SystemExit("--loop trio does not write the docs: drop --write")
    args.write = False


def run_once(
    contender: str, scenario: str, params: Params, timeout: float, loop: str = "asyncio"
) -> dict[str, Any]:
    """One subprocess; its JSON result, or a FAILED result naming why there is none."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{contender}-"))
    command = [sys.executable, "-m", "bench.run_one", contender, scenario, "--dir", str(directory)]
    command += ["--loop", loop]
    for name, value in asdict(params).items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    failed = {"contender": contender, "scenario": scenario, "ok": False, "value": None}
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return failed | {"error": f"timed out after {timeout:g} s"}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return failed | {"error": f"crashed (exit {proc.returncode}): {last}"}


def progress(rep: int, reps: int, run: dict[str, Any], seconds: float) -> None:
    scenario = SCENARIOS[run["scenario"]]
    status = (
        f"{report.num(run['value'], scenario.unit)} {scenario.unit}"
        if run["ok"]
        else f"FAILED: {run.get('error')}"
    )
    print(
        f"[rep {rep}/{reps}] {run['contender']:<22} {run['scenario']:<14} {status} "
        f"({seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def revision() -> str:
    """The commit, and whether asynclog/ differs from it (read-only git calls)."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "asynclog")
    return commit + (" + uncommitted changes in asynclog/" if dirty else "")


def environment(
    args: argparse.Namespace, argv: list[str], before: str, after: str
) -> dict[str, str]:
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    moved = "" if after == before else f" (changed during the run; at the end: {after})"
    p = args.params
    return {
        "command": " ".join(["python -m bench", *argv]),
        "loop": args.loop,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}",
        "revision": before + moved,
        "versions": ", ".join(versions),
        "sizes": (
            f"reps: {args.reps}; e2e {p.tasks} tasks x {p.per_task} entries; caller "
            f"{p.rounds} timed rounds of {p.calls} calls; stalled {p.attempts:,} attempts"
        ),
    }


METHOD = """\
Every contender x scenario runs in a fresh `python -m bench.run_one` process, writing to a fresh
temp directory; runs go rep-major so machine noise spreads over everyone. Each run reads its
output back and checks the exact count, that every message is there once, and per-producer order;
a run that loses, duplicates or reorders anything, crashes or times out is **FAILED**, whatever
its speed. Cells show the median over the reps and the min-max range.

- **caller1k**: µs per `await log(msg)`, 1000 calls in one coroutine; only the call loop is timed
  (median of the timed rounds after one warm-up round; the logger catches up between rounds).
- **e2e100k**: 100 tasks x 1000 entries, from the first call until everything is written and the
  logger closed; entries/s.
- **e2e100k_yield**: the same with `await asyncio.sleep(0)` after each call, while a ticker task
  sleeps 1 ms at a time; lag = actual - scheduled wake-up, measured while the producers run.
- **stalled**: a backend whose write never returns, attempts with `put_timeout=0`; the producer
  yields every 1000 attempts. Checks accepted + dropped = attempted and accepted ≤ queue + one
  batch; reports the growth of peak RSS over the attempts (VmHWM, reset through
  /proc/self/clear_refs first, minus VmRSS before). The process exits without closing.
- **shared_1proc / shared_4proc**: asynclog writing one file with `FileConfig(shared=True)`
  (each batch under an exclusive `flock`) from 1 process, or from 4 processes with a quarter of
  the 100 tasks each (`bench/shared_worker.py`); every process opens its logger, then all get
  the start signal at once; entries/s = all entries / (last process's end - first one's start),
  aggregate over the processes. CPU is the sum over the processes.
- **CPU µs/entry** (µs/call for caller1k, µs/attempt for stalled): `time.process_time()` delta
  of the run's process (every thread: a listener, loguru's or aiosqlite's thread included) over
  the same window as the wall time, divided by the entries (calls, attempts) in it.
- **peak RSS**: `ru_maxrss` of the run's process, taken before the output is read back.
- **ratio to limit**: the contender's median ÷ the limit's (limit-sqlite for SQLite contenders,
  limit-file otherwise). For entries/s above 1 beats the limit; for µs/call below 1 does.

Contenders all write `f"{ts:.6f} INFO {msg}"` lines (asynclog: its own text format,
`<ISO time> INFO asynclog <msg>`) to a fresh file, or SQLite rows. Synchronous APIs (stdlib,
loguru) are wrapped in an `async def`; the **no-op** row is that wrapper around nothing, the
harness's floor. The **limit** is the pipeline in `bench/limit.py`: `asyncio.Queue(maxsize=1000)`,
one worker that drains what is queued and does one blocking `write` + `flush` per batch on the
loop (limit-file), or one aiosqlite `executemany` + commit per batch with asynclog's pragmas
(WAL, synchronous=NORMAL) into a table without indexes (limit-sqlite), and the same with the two
indexes asynclog's table carries, on `ts` and `(level, ts) WHERE level >= 30`
(limit-sqlite-indexed: the same work per row as asynclog's SQLite backend). asynclog runs with
`queue_size=1000, put_timeout=0.1`, the file backend with `max_file_size_mb=1000, max_backups=0`.
Peers: stdlib `FileHandler`; stdlib `QueueHandler` + `QueueListener` (listener thread writes via
`FileHandler`); aiologger `await logger.info` with `AsyncFileHandler`; loguru `enqueue=True` file
sink (`complete()` then `remove()` at the end); structlog `await log.ainfo` with a
`WriteLoggerFactory` on the open file.
"""


REAL_SERVICE = (
    "A real service (a Starlette app under uvicorn, driven by wrk, with no logging, stdlib "
    "FileHandler, asynclog to a file and to SQLite, and a hand-written limit) is measured by "
    "`python -m bench app`: "
    "see [Real service: Starlette under uvicorn](bench-app.md), which has the targets, the "
    "table (median and min-max of the reps) and this chart (the same under Python 3.13: "
    "[bench-app-3.13.md](bench-app-3.13.md)):\n\n"
    "![req/s and server CPU per request in the web service](img/bench-app.png)"
)


ON_MAIN_PYTHON = sys.version_info[:2] == report.MAIN_PYTHON
"""Running under the project's main Python: this run owns docs/benchmarks.md and the chart; a
run on another Python writes its tables into a section of its own
(`<!-- bench micro 3.13: ... -->`)."""


def write_docs(path: Path, text: str) -> None:
    """Write the micro bench's page, keeping the sections other commands and Pythons wrote."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if ON_MAIN_PYTHON:
        path.write_text(text + report.sections(old), encoding="utf-8")
        return
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    body = text.replace("# Benchmarks", f"## Micro benchmarks on Python {python}", 1)
    body = body.replace("\n## ", "\n### ").split("\n### How it is measured")[0]
    body += "\nMeasured as the Python 3.11 tables above (see How it is measured).\n"
    body = body.replace("![entries/s and caller cost per contender](img/bench.png)\n\n", "")
    body = body.replace(REAL_SERVICE + "\n\n", "").replace(PROTOCOLS_NOTE + "\n\n", "")
    path.write_text(report.replace_section(old, f"micro {python}", body), encoding="utf-8")


PROTOCOLS_NOTE = (
    "The network backends (PostgreSQL, syslog over TCP and RELP, OTLP/HTTP) against the "
    "simplest correct client of each protocol are measured by `python -m bench protocols`: "
    "their tables are the sections after the micro benchmarks below."
)


def render(cells: report.Cells, env: dict[str, str], scenarios: list[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{env['command']}` on {env['date']}: {env['python']}, {env['machine']}.",
        f"asynclog at {env['revision']}; {env['versions']}. {env['sizes']}.",
        "",
        "![entries/s and caller cost per contender](img/bench.png)",
        "",
        REAL_SERVICE,
        "",
        PROTOCOLS_NOTE,
        "",
        "## Ratios",
        "",
        *report.ratio_lines(cells),
        "",
    ]
    for name in scenarios:
        scenario = SCENARIOS[name]
        if not any(key[1] == name for key in cells):
            continue
        better = "higher" if scenario.higher_is_better else "lower"
        lines += [
            f"## {name} ({scenario.unit}, {better} is better)",
            "",
            *report.scenario_table(cells, scenario),
            "",
        ]
    lines += ["## How it is measured", "", METHOD]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["calls"]:
        from . import calls

        calls.main(argv[1:])
        return
    if argv[:1] == ["app"]:
        from . import app_bench

        app_bench.main(argv[1:])
        return
    if argv[:1] == ["protocols"]:
        from . import protocols

        protocols.main(argv[1:])
        return
    if argv[:1] == ["concurrency"]:
        from . import concurrency

        concurrency.main(argv[1:])
        return
    args = parse_args(argv)
    plan = [
        (c, s) for c in args.only for s in args.scenarios if SCENARIOS[s].applies_to(CONTENDERS[c])
    ]
    runs: list[dict[str, Any]] = []
    started, before = time.perf_counter(), revision()
    for rep in range(1, args.reps + 1):
        for contender, scenario in plan:
            began = time.perf_counter()
            run = run_once(contender, scenario, args.params, args.timeout, args.loop)
            run["rep"] = rep
            progress(rep, args.reps, run, time.perf_counter() - began)
            runs.append(run)
    env = environment(args, argv, before, revision())
    cells = report.collect(runs)
    text = render(cells, env, args.scenarios)
    print(text)
    print(f"({len(runs)} runs in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.write:
        docs = ROOT / "docs"
        write_docs(docs / "benchmarks.md", text)
        title = (
            f"asynclog vs peers: bars = median of {args.reps} reps, whiskers = min{DASH}max "
            f"({env['python']}, nproc {os.cpu_count()}, {env['date'][:10]})"
        )
        p = args.params
        e2e_title = f"end to end: {p.tasks} tasks x {p.per_task:,} entries, until written"
        if ON_MAIN_PYTHON:
            report.chart(cells, docs / "img" / "bench.png", title, e2e_title)
        print(f"wrote {docs / 'benchmarks.md'} (and the chart on 3.11)", file=sys.stderr)


if __name__ == "__main__":
    main()
