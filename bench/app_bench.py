"""`python -m bench app`: a real service under a real load generator.

bench/app.py (a Starlette app, one log entry with two fields per request plus uvicorn's access
line) is served by uvicorn in a subprocess (uvloop and httptools when they are installed), and
driven to saturation by `wrk` in another process. Seven logging configs run interleaved (for
each rep: for each config), each in a fresh server process: no logging, stdlib `FileHandler`
with the same JSON shape, asynclog async to a JSON file, asynclog async to SQLite, both of
those with `write_on_loop=True`, and a hand-written limit (the least work for the same lines).
Prints a markdown table and the target ratios; writes
docs/bench-app.md (docs/bench-app-3.13.md under Python 3.13, and so on; not with --quick or
--burn-us unless --write is given).

wrk is required: `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk` (macOS).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .app import CONFIGS
from .report import DASH, MAIN_PYTHON, num, times

ROOT = Path(__file__).resolve().parent.parent
def doc_paths(version: tuple[int, int]) -> tuple[Path, Path, str]:
    """The report, its chart and the chart's link for a run under Python `version`:
    docs/bench-app.md for the main one (`report.MAIN_PYTHON`), docs/bench-app-3.13.md (and so
    on) for the others."""
    suffix = "" if version == MAIN_PYTHON else f"-{version[0]}.{version[1]}"
    chart = f"img/bench-app{suffix}.png"
    link = f"![req/s and server CPU per request, per config]({chart})"
    return ROOT / "docs" / f"bench-app{suffix}.md", ROOT / "docs" / chart, link


DOC, CHART, CHART_LINK = doc_paths((sys.version_info.major, sys.version_info.minor))
INSTALL_HINT = (
    "wrk, the HTTP load generator `python -m bench app` drives the server with, is not "
    "installed: `apt-get install wrk` (Debian/Ubuntu; as root), `brew install wrk` (macOS)"
)
URL_PATH = "/hello?user=ada"
ASYNCLOG_CONFIGS = (
    "asynclog-file",
    "asynclog-sqlite",
    "asynclog-file-loop",
    "asynclog-sqlite-loop",
)
SQLITE_CONFIGS = ("asynclog-sqlite", "asynclog-sqlite-loop")
LIMIT = "limit"  # bench/app.py's FloorLog: the least work for the same lines, no library
OVERHEAD_SHARE_TARGET = 0.5  # asynclog's overhead at most half of stdlib FileHandler's
SQLITE_TO_FILE_TARGET = 0.8
BATCH_P99_TARGET_MS = 50.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench app",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument(
        "--duration", type=float, help="seconds of load per run (default 15; 3 with --quick)"
    )
    parser.add_argument(
        "--connections", type=int, help="wrk connections (default 200; 20 with --quick)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 rep x 3 s, 20 connections"
    )
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help="comma-separated configs (default: all)"
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/bench-app.md, or docs/bench-app-3.X.md under another Python than "
        "3.11 (default: yes, except with --quick or --burn-us)",
    )
    parser.add_argument("--json", type=Path, help="also write every run's raw result here")
    parser.add_argument(
        "--burn-us",
        type=float,
        default=0.0,
        help="each request also spends about this many µs of CPU in plain Python, in every "
        "config alike (default 0; the docs are not written unless --write is given)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs: {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    args.configs = [name for name in CONFIGS if name in chosen]
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (3.0 if args.quick else 15.0)
    args.connections = args.connections or (20 if args.quick else 200)
    if args.burn_us < 0:
        parser.error(f"--burn-us must be 0 or more, got {args.burn_us:g}")
    if args.write is None:
        args.write = not args.quick and not args.burn_us
    return args


# ---- the server ------------------------------------------------------------------------------


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def server_stack() -> tuple[str, str]:
    """uvicorn's `--loop` and `--http`: uvloop and httptools when installed."""
    return (
        "uvloop" if _installed("uvloop") else "asyncio",
        "httptools" if _installed("httptools") else "h11",
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no output"


@contextlib.contextmanager
def serving(
    config: str, directory: Path, burn_us: float = 0.0
) -> Iterator[tuple[int, Callable[[], dict[str, Any]]]]:
    """A uvicorn process serving bench/app.py with `config` on 127.0.0.1. Yields its port and
    `stop()`, which ends it with SIGINT (the lifespan closes the logging) and returns its
    result JSON. The process is killed if anything goes wrong."""
    loop, http = server_stack()
    port = _free_port()
    result_path = directory / "result.json"
    command = [
        sys.executable, "-m", "uvicorn", "bench.app:app",
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", loop, "--http", http, "--log-level", "info",
        "--timeout-graceful-shutdown", "30",
    ]  # fmt: skip
    if config == "none":
        command.append("--no-access-log")  # no logging at all, uvicorn's access line included
    env = os.environ | {
        "BENCH_APP_LOGGING": config,
        "BENCH_APP_DIR": str(directory),
        "BENCH_APP_RESULT": str(result_path),
        "BENCH_APP_BURN_US": str(burn_us),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    output = directory / "server.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> dict[str, Any]:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired as timeout:
            raise RuntimeError("the server did not stop within 60 s of SIGINT") from timeout
        # The result file, written at the end of the lifespan (after the logging closed), is
        # what says the shutdown went well; uvicorn re-raises the signal once it is done.
        if not result_path.exists():
            raise RuntimeError(f"the server exited {code} without a result: {_tail(output)}")
        result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        return result

    try:
        deadline = time.monotonic() + 30
        while not _listening(port):  # uvicorn listens once the lifespan has started
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited {proc.returncode}: {_tail(output)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen within 30 s: {_tail(output)}")
            time.sleep(0.1)
        yield port, stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- the load --------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(text: str) -> dict[str, Any]:
    """req/s, latency percentiles (ms), requests, non-2xx/3xx and socket errors from the output
    of `wrk --latency`."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    requests = re.search(r"^\s*(\d+) requests in ([\d.]+\w+)", text, re.M)
    if rps is None or requests is None:
        raise ValueError(f"unexpected wrk output: {text.strip()[-300:]!r}")
    latency = {
        int(pct): _ms(value) for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return {
        "rps": float(rps[1]),
        "requests": int(requests[1]),
        "p50_ms": latency.get(50),
        "p99_ms": latency.get(99),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def run_once(config: str, args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    """One fresh server under one wrk run; the merged measurements, or an error."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench-app-{config}-"))
    run: dict[str, Any] = {"config": config, "connections": args.connections}
    try:
        with serving(config, directory, args.burn_us) as (port, stop):
            command = [
                wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration:g}s",
                "--latency", "--timeout", "10s", f"http://127.0.0.1:{port}{URL_PATH}",
            ]  # fmt: skip
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=args.duration + 60, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
            run |= parse_wrk(done.stdout)
            run["server"] = server = stop()
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        return run | {"ok": False, "error": str(error)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    served = server["served"]
    run["cpu_us_per_request"] = server["cpu_seconds"] / served * 1e6 if served else None
    problems = []
    if config != "none":
        # Every request logs two entries (the app's and uvicorn's access line, except when the
        # client has gone: wrk's last requests); asynclog adds one WARNING entry per burst of
        # drops. Each is written or counted dropped.
        reports = server.get("output", {}).get("asynclog", 0)
        expected = served + server["access_lines"] + reports
        if server["written"] + server["dropped"] != expected:
            problems.append(
                f"written {server['written']} + dropped {server['dropped']} != {served} served "
                f"+ {server['access_lines']} access lines + {reports} drop reports"
            )
        in_output = sum(server.get("output", {}).values())
        if in_output != server["written"]:
            problems.append(f"{in_output} entries in the output, {server['written']} written")
    return run | {"ok": not problems, "error": "; ".join(problems) or None}


def progress(rep: int, reps: int, run: dict[str, Any], seconds: float) -> None:
    if run.get("rps") is not None:
        server = run.get("server") or {}
        status = (
            f"{run['rps']:,.0f} req/s, p99 {num(run['p99_ms'])} ms, non-2xx {run['non_2xx']}, "
            f"written {server.get('written', '-')}, dropped {server.get('dropped', '-')}, "
            f"CPU {num(run.get('cpu_us_per_request'))} µs/req"
        )
    else:
        status = ""
    if not run["ok"]:
        status += f" FAILED: {run['error']}"
    print(
        f"[rep {rep}/{reps}] {run['config']:<16} {status.strip()} ({seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


# ---- the report ------------------------------------------------------------------------------


def _values(runs: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> list[float]:
    values = []
    for run in runs:
        with contextlib.suppress(KeyError, TypeError):
            value = get(run)
            if value is not None:
                values.append(float(value))
    return values


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _cell(values: list[float], fmt: Callable[[float | None], str] = num) -> str:
    if not values:
        return "—"
    middle = fmt(statistics.median(values))
    if len(values) == 1 or min(values) == max(values):
        return middle
    return f"{middle} ({fmt(min(values))}{DASH}{fmt(max(values))})"


def _per_batch(batches: dict[str, Any]) -> float | None:
    return batches["entries"] / batches["count"] if batches["count"] else None


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any], Callable[[float | None], str]]] = [
    ("req/s", lambda r: r["rps"], _count),
    ("p50 ms", lambda r: r["p50_ms"], num),
    ("p99 ms", lambda r: r["p99_ms"], num),
    ("non-2xx", lambda r: r["non_2xx"], _count),
    ("socket errors", lambda r: r["socket_errors"], _count),
    ("requests served", lambda r: r["server"]["served"], _count),
    ("entries written", lambda r: r["server"]["written"], _count),
    ("dropped", lambda r: r["server"]["dropped"], _count),
    ("CPU µs/request", lambda r: r["cpu_us_per_request"], num),
    ("entries/batch", lambda r: _per_batch(r["server"]["batches"]), num),
    ("batch write p99 ms", lambda r: r["server"]["batches"]["p99_ms"], num),
]


def table(by_config: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| config | " + " | ".join(name for name, _, _ in COLUMNS) + " | verified |",
        "|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    for config, runs in by_config.items():
        measured = [run for run in runs if run.get("rps") is not None]
        cells = [_cell(_values(measured, get), fmt) for _, get, fmt in COLUMNS]
        failures = [f"rep {run['rep']}: {run['error']}" for run in runs if not run["ok"]]
        verified = ("**FAILED** " + "; ".join(failures)).replace("|", "/") if failures else "✓"
        lines.append(f"| {config} | " + " | ".join(cells) + f" | {verified} |")
    return lines


def _overhead(rps: float | None, floor: float | None) -> float | None:
    return None if rps is None or not floor else 1 - rps / floor


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def target_lines(by_config: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The issue's targets, from the medians over the reps (and per rep, where a ratio of two
    configs is involved: each rep's configs ran back to back)."""

    def runs(config: str) -> list[dict[str, Any]]:
        return [run for run in by_config.get(config, []) if run.get("rps") is not None]

    def rps(config: str) -> float | None:
        return _median(_values(runs(config), lambda r: r["rps"]))

    def per_rep(config: str, other: str, ratio: Callable[[float, float], float]) -> list[float]:
        theirs = {run["rep"]: run["rps"] for run in runs(other)}
        return [
            ratio(run["rps"], theirs[run["rep"]]) for run in runs(config) if run["rep"] in theirs
        ]

    def span(values: list[float], fmt: Callable[[float | None], str]) -> str:
        if len(values) < 2:
            return ""
        return f" (per rep {fmt(min(values))}{DASH}{fmt(max(values))})"

    lines = []
    none, stdlib = rps("none"), rps("stdlib")
    stdlib_overhead = _overhead(stdlib, none)
    if stdlib_overhead is not None:
        lines.append(
            f"- logging overhead (1 - req/s ÷ no-logging req/s): stdlib FileHandler "
            f"{_pct(stdlib_overhead)}"
            + span(per_rep("stdlib", "none", lambda a, b: 1 - a / b), _pct)
        )
    limit_overhead = _overhead(rps(LIMIT), none)
    for config in (*ASYNCLOG_CONFIGS, LIMIT):
        overhead = _overhead(rps(config), none)
        if overhead is None:
            continue
        line = f"- logging overhead {config}: {_pct(overhead)}" + span(
            per_rep(config, "none", lambda a, b: 1 - a / b), _pct
        )
        if stdlib_overhead is not None and stdlib_overhead > 0:
            share = overhead / stdlib_overhead
            line += f"; {share:.2f} of stdlib's"
            if config != LIMIT:
                line += (
                    f" (target ≤ {OVERHEAD_SHARE_TARGET:g}: "
                    f"{_met(share <= OVERHEAD_SHARE_TARGET)})"
                )
        if config != LIMIT and limit_overhead is not None and limit_overhead > 0:
            line += f"; {times(overhead / limit_overhead)} the limit's"
        lines.append(line)
    for config in ASYNCLOG_CONFIGS:
        measured = runs(config)
        if measured:
            non_2xx = [run["non_2xx"] for run in measured]
            lines.append(
                f"- non-2xx responses {config}: {sum(non_2xx)} over {len(measured)} runs "
                f"(target 0: {_met(sum(non_2xx) == 0)}); dropped entries "
                f"{sum(run['server']['dropped'] for run in measured):,}, log calls refused "
                f"{sum(run['server']['refused'] for run in measured):,}"
            )
    file_rps = rps("asynclog-file")
    for config in SQLITE_CONFIGS:
        sqlite_rps = rps(config)
        if file_rps and sqlite_rps:
            ratio = sqlite_rps / file_rps
            lines.append(
                f"- {config} req/s ÷ asynclog-file req/s: {times(ratio)}"
                + span(per_rep(config, "asynclog-file", lambda a, b: a / b), times)
                + f" (target ≥ {SQLITE_TO_FILE_TARGET}: {_met(ratio >= SQLITE_TO_FILE_TARGET)})"
            )
        batch_p99 = _values(runs(config), lambda r: r["server"]["batches"]["p99_ms"])
        if batch_p99:
            batches = runs(config)[0]["server"]["batches"]
            worst = max(batch_p99)
            lines.append(
                f"- {config} batch write latency p99: worst rep {num(worst)} ms, median "
                f"{num(_median(batch_p99))} ms (target ≤ {BATCH_P99_TARGET_MS:g} ms: "
                f"{_met(worst <= BATCH_P99_TARGET_MS)}); rep 1: {batches['count']:,} batches of "
                f"{num(_per_batch(batches))} entries on average, max {num(batches['max_ms'])} ms"
            )
    cpu = {c: _median(_values(runs(c), lambda r: r["cpu_us_per_request"])) for c in by_config}
    floor = cpu.get("none")
    if floor is not None:
        parts = [
            f"{config} +{num(value - floor)}"
            for config, value in cpu.items()
            if config != "none" and value is not None
        ]
        if parts:
            lines.append(
                f"- server CPU per request above no-logging ({num(floor)} µs): "
                + ", ".join(parts)
                + " µs"
            )
    return lines


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def environment(args: argparse.Namespace, argv: list[str], wrk: str) -> dict[str, str]:
    versions = []
    for package in ("asynclog", "starlette", "uvicorn", "uvloop", "httptools", "aiosqlite"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    dirty = _git("status", "--porcelain", "--", "asynclog")
    loop, http = server_stack()
    return {
        "command": " ".join(["python -m bench app", *argv]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}",
        "revision": (_git("rev-parse", "--short", "HEAD") or "unknown")
        + (" + uncommitted changes in asynclog/" if dirty else ""),
        "versions": ", ".join(versions),
        "server": f"uvicorn --loop {loop} --http {http}, one worker process",
        "load": (
            f"{wrk_version(wrk)}: `wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration:g}s --latency` on GET {URL_PATH}; {args.reps} reps"
            + (f"; {args.burn_us:g} µs of CPU burnt in each request" if args.burn_us else "")
        ),
    }


METHOD = """\
Each run starts a fresh uvicorn process serving `bench/app.py` on 127.0.0.1 (uvloop and
httptools when installed), waits until it listens, drives it with `wrk` for the whole duration,
then stops it with SIGINT: the lifespan closes the logging (asynclog writes every entry it
accepted) and the process writes its own counts. Runs are interleaved (for each rep: for each
config), so machine noise spreads over all configs. Cells show the median over the reps and the
min-max range. Every request to `/hello` logs one entry with two fields, and uvicorn logs its
access line: two entries per request, JSON lines with the same keys in every config
(`timestamp`, `level`, `logger`, `message`, `fields`, `exception`).

- **none**: no logging at all (uvicorn runs with `--no-access-log`).
- **stdlib**: one `logging.FileHandler` with a JSON formatter on the `app` logger and on
  `uvicorn.access` (uvicorn's own stdout handler removed); it writes and flushes in the request.
- **asynclog-file**: `LogManager(Config(async_mode=True, backends=[FileConfig(format="json")]))`
  with every other setting at its default (`queue_size=1000`, `put_timeout=0.1`,
  `overflow="timeout"`, `raise_errors=False`); rotation is off (as with the FileHandler). The
  app awaits `log.info("hello", user=..., request=...)`; uvicorn's access log goes through
  `asynclog.stdlib.install(log, loggers=["uvicorn.access"], replace=True)`.
- **asynclog-sqlite**: the same with `SQLiteConfig()`.
- **asynclog-file-loop**: asynclog-file with `FileConfig(write_on_loop=True)`: each batch is
  written on the event loop's thread (as sync mode and the FileHandler write) instead of being
  handed to the backend's thread; an opt-in for a local disk, since a stuck disk would stall
  the loop for as long as one write (then the backend goes back to its thread).
- **asynclog-sqlite-loop**: asynclog-sqlite with `SQLiteConfig(write_on_loop=True)`: each
  batch's transaction runs on the event loop's thread instead of aiosqlite's; it never waits
  there for a lock (a locked database sends that batch to the thread), and one slow
  transaction sends the later ones to the thread.
- **limit**: no logging library around the formatter: bench/app.py's `FloorLog`, about forty
  hand-written lines that do the least work for the same two JSON lines a request. The app's
  call appends a tuple to a list; uvicorn's access logger is given a class whose `_log`
  appends one too (no record, as asynclog's `DirectLogger`); once a loop turn, the list is
  formatted with asynclog's own `formatters.json_format` (the same bytes; `json.dumps` of the
  same dict costs twice as much) and written with one `os.write` on the loop's thread. No
  queue bound, no thread, no counts, no error handling: not a logger to ship, but what any
  in-process logger writing these bytes pays at least, so the loggers' overheads can be read
  against it.

With asynclog, `LogManager.observe_writes` records the size and write time of every batch the
worker writes: **entries/batch** is their mean over a run, **batch write p99** the p99 over a
run's batches (the backend's write, formatting included).

**req/s**, **p50/p99** and **non-2xx** are wrk's (latency is wrk's, per request, over all
connections). **requests served** is the server's count; **entries written** and **dropped**
are asynclog's `get_stats()` after close (stdlib: the lines in the file), and each run checks
that written + dropped = requests served + uvicorn's access records (one per request, but none
for the few wrk abandons at its deadline) + asynclog's one in-band report per burst of drops,
and that the output holds exactly the entries written. **CPU µs/request** is the server
process's user + system CPU time from the end of its startup until its logging was closed,
divided by the requests it served. wrk runs on the same machine and takes CPU from the same
cores: the numbers are for comparing the configs with each other, not an absolute capacity.
With 200 connections on 2 cores, a few connections wait for their turn much longer than the
others even without logging: p99 latency varies widely from run to run, so compare req/s, p50
and CPU first.

Targets (issue 12): asynclog's logging overhead (1 - req/s ÷ no-logging req/s) at most half of
stdlib FileHandler's; 0 non-2xx responses with asynclog's default config; asynclog to SQLite at
least 0.8x the req/s of asynclog to a file, with a batch write p99 ≤ 50 ms under saturation.
"""


def chart(by_config: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Two panels of horizontal bars, a config a row: req/s and the server's CPU µs a request
    (the median of the reps; the whiskers span min to max), no logging's median dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {
        config: [run for run in runs if run.get("rps") is not None]
        for config, runs in by_config.items()
    }
    names = [config for config, runs in measured.items() if runs]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * len(names) + 2.2), sharey=True)
    panels = [
        (axes[0], "req/s (higher is better)", lambda r: r["rps"], "#1f77b4"),
        (axes[1], "server CPU µs per request (lower is better)",
         lambda r: r["cpu_us_per_request"], "#2ca02c"),
    ]  # fmt: skip
    for axis, label, get, colour in panels:
        for row, name in enumerate(names):
            values = _values(measured[name], get)
            if not values:
                continue
            middle = statistics.median(values)
            axis.barh(row, middle, height=0.6, color=colour,
                      xerr=[[middle - min(values)], [max(values) - middle]],
                      error_kw={"elinewidth": 0.8, "capsize": 3})  # fmt: skip
            axis.text(max(values) * 1.02, row, num(middle), va="center", fontsize=8)
        floor = _median(_values(measured.get("none", []), get))
        if floor is not None:
            axis.axvline(floor, color="#555555", linestyle="--", linewidth=0.8)
        axis.set_xlabel(label)
        axis.grid(axis="x", alpha=0.3)
        axis.margins(x=0.18)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    for tick in axes[0].get_yticklabels():
        if tick.get_text().startswith("asynclog"):
            tick.set_fontweight("bold")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render(
    by_config: dict[str, list[dict[str, Any]]], env: dict[str, str], with_chart: bool = False
) -> str:
    return "\n".join(
        [
            "# Real service: Starlette under uvicorn",
            "",
            f"Generated by `{env['command']}` on {env['date']}: {env['python']}, "
            f"{env['machine']}. asynclog at {env['revision']}; {env['versions']}.",
            f"Server: {env['server']}. Load: {env['load']}.",
            "",
            *([CHART_LINK, ""] if with_chart else []),
            "## Targets",
            "",
            *target_lines(by_config),
            "",
            "## Results",
            "",
            *table(by_config),
            "",
            "## How it is measured",
            "",
            METHOD,
        ]
    )


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2)
    by_config: dict[str, list[dict[str, Any]]] = {config: [] for config in args.configs}
    started = time.perf_counter()
    for rep in range(1, args.reps + 1):
        for config in args.configs:
            began = time.perf_counter()
            run = run_once(config, args, wrk) | {"rep": rep}
            progress(rep, args.reps, run, time.perf_counter() - began)
            by_config[config].append(run)
    env = environment(args, argv, wrk)
    text = render(by_config, env, with_chart=args.write)
    print(text)
    print(f"({args.reps * len(args.configs)} runs in {time.perf_counter() - started:.0f} s)",
          file=sys.stderr)  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps({"env": env, "runs": by_config}, indent=1))
    if args.write:
        DOC.write_text(text, encoding="utf-8")
        title = (
            f"Starlette under uvicorn, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration:g}s, {args.reps} reps ({env['date']}, asynclog at "
            f"{env['revision']})"
        )
        chart(by_config, CHART, title)
        print(f"wrote {DOC} and {CHART}", file=sys.stderr)
    if any(not run["ok"] for runs in by_config.values() for run in runs):
        raise SystemExit(1)
