"""`python -m bench protocols`: asynclog's network backends against the limit of their protocol.

For each protocol (PostgreSQL, TCP syslog, RELP, OTLP/HTTP) the limit (bench/protocol_limits.py,
the simplest correct asyncio client) and asynclog's backend (async mode) send the same entries
to the same receiver, each run in a fresh `python -m bench.protocol_run` process; runs go
rep-major, the two contenders alternating which goes first. Receivers: the PostgreSQL server of
`ASYNCLOG_TEST_PG_DSN`, a real rsyslogd started here (imtcp and imrelp into a file), and
`python -m bench.otlp_receiver`. A protocol whose receiver cannot run is skipped, saying why.

Prints the table; writes it into docs/benchmarks.md (its own section per Python version)
unless `--quick` (or `--no-write`).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .protocol_run import CONTENDERS, PROTOCOLS
from .report import DASH, num, replace_section, times
from .run_one import RESULT_MARK

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
TARGET_RATIO = 0.8
LABELS = {
    "postgres": "PostgreSQL (COPY)",
    "tcp": "syslog TCP (RFC 5424, octet counting)",
    "relp": "syslog RELP (window 128)",
    "otlp": "OTLP/HTTP (protobuf)",
}
RECEIVERS = {
    "postgres": "the local PostgreSQL server of `ASYNCLOG_TEST_PG_DSN`",
    "tcp": "rsyslogd (imtcp, one file via omfile)",
    "relp": "rsyslogd (imrelp, one file via omfile)",
    "otlp": "`python -m bench.otlp_receiver` (asyncio, decodes each request, answers 200)",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_listening(process: subprocess.Popen[bytes], ports: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    waiting = set(ports)
    while waiting and time.monotonic() < deadline and process.poll() is None:
        for port in list(waiting):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.5),
            ):
                waiting.discard(port)
        time.sleep(0.05)
    return not waiting


# ---- receivers -------------------------------------------------------------------------------

RSYSLOG_CONFIG = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imrelp")
module(load="imtcp")
template(name="bench_msg" type="string" string="%msg%\\n")
# Direct: imrelp acknowledges a message once omfile has written it.
ruleset(name="bench_out" queue.type="Direct") {{
    action(type="omfile" file="{output}" template="bench_msg" flushOnTXEnd="on" asyncWriting="off")
}}
input(type="imrelp" address="127.0.0.1" port="{relp}" ruleset="bench_out")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="bench_out")
"""


def rsyslogd_missing() -> str | None:
    daemon = shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
    )
    if daemon is None:
        return "rsyslogd is not installed (.ci/rsyslog.sh installs it)"
    modules = glob.glob("/usr/lib/*/rsyslog/imrelp.so") + glob.glob("/usr/lib/rsyslog/imrelp.so")
    if not modules:
        return "rsyslog's imrelp module is missing (package rsyslog-relp)"
    return None


@contextlib.contextmanager
def rsyslogd(folder: Path) -> Iterator[dict[str, Any]]:
    """A foreground rsyslogd with TCP and RELP inputs writing every MSG as one line."""
    daemon = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    ports = {"relp": free_port(), "tcp": free_port()}
    output = folder / "out.log"
    (folder / "work").mkdir()
    conf = folder / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONFIG.format(work=folder / "work", output=output, **ports))
    log = (folder / "rsyslogd.log").open("wb")
    command = [daemon, "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid")]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        if not _wait_listening(process, list(ports.values()), 10.0):
            said = (folder / "rsyslogd.log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"rsyslogd did not start listening: {said}")
        yield {"host": "127.0.0.1", "output": str(output), **ports}
    finally:
        _stop(process)
        log.close()


@contextlib.contextmanager
def otlp_receiver() -> Iterator[dict[str, Any]]:
    port = free_port()
    command = [sys.executable, "-m", "bench.otlp_receiver", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        if ready.strip() != b"READY":
            raise RuntimeError(f"bench.otlp_receiver did not start (said {ready[:200]!r})")
        yield {"host": "127.0.0.1", "port": port}
    finally:
        _stop(process)


def postgres_target() -> dict[str, Any]:
    dsn = os.environ.get("ASYNCLOG_TEST_PG_DSN")
    if not dsn:
        raise RuntimeError(
            "ASYNCLOG_TEST_PG_DSN is not set (a postgresql:// DSN of a server to write to; "
            '`eval "$(.ci/postgres.sh)"` starts one and exports it)'
        )
    probe = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(sys.argv[1], timeout=5)\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, dsn], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"cannot connect to ASYNCLOG_TEST_PG_DSN: {last}")
    return {"dsn": dsn}


# ---- runs ------------------------------------------------------------------------------------


@dataclass
class Row:
    protocol: str
    contender: str
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rates) and not self.errors

    @property
    def rate(self) -> float | None:
        return statistics.median(self.rates) if self.ok else None

    @property
    def cpu_us(self) -> float | None:
        return statistics.median(self.cpu) if self.ok else None


def run_once(
    protocol: str, contender: str, target: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.protocol_run", protocol, contender]
    command += ["--target", json.dumps(target), "--entries", str(args.entries)]
    command += [] if args.fields else ["--no-fields"]
    command += ["--otlp-client", args.otlp_client]
    timeout = args.timeout
    failed: dict[str, Any] = {"protocol": protocol, "contender": contender, "ok": False}
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return failed | {"error": f"timed out after {timeout:g} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return failed | {"error": f"crashed (exit {done.returncode}): {last}"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench protocols",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 5; 1 with --quick)")
    parser.add_argument(
        "--entries", type=int, help="entries per run, over 100 tasks (default 100000; 5000 quick)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5000 entries, 1 rep")
    parser.add_argument(
        "--only", default=",".join(PROTOCOLS), help=f"comma-separated, of {', '.join(PROTOCOLS)}"
    )
    parser.add_argument(
        "--fields",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log(msg, task=t, seq=i): two fields per entry (default); --no-fields: msg only",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the section of docs/benchmarks.md (default: yes, except with --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write every run's result here")
    parser.add_argument(
        "--otlp-client",
        choices=("builtin", "httpx"),
        default="builtin",
        help="the OTLP backend's HTTP client (OTLPConfig.http_client; default builtin); "
        "httpx runs are compared in docs/otlp.md, never written into docs/benchmarks.md",
    )
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in PROTOCOLS]
    if unknown:
        parser.error(f"unknown protocols: {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    args.only = [name for name in PROTOCOLS if name in only]
    args.reps = args.reps or (1 if args.quick else 5)
    args.entries = args.entries or (5_000 if args.quick else 100_000)
    if args.entries < 100 or args.entries % 100:
        parser.error(f"--entries must be a multiple of 100 (100 tasks), got {args.entries}")
    if args.otlp_client != "builtin":
        if args.write:
            parser.error("--otlp-client httpx runs are a comparison, never written: --no-write")
        args.write = False
    args.write = (not args.quick) if args.write is None else args.write
    return args


def targets(
    only: list[str], stack: contextlib.ExitStack, folder: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Start the receivers needed; the ones that cannot run give a reason instead."""
    found: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    if "postgres" in only:
        try:
            found["postgres"] = postgres_target()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            skipped["postgres"] = str(exc)
    syslog = [name for name in ("tcp", "relp") if name in only]
    if syslog:
        missing = rsyslogd_missing()
        if missing is None:
            try:
                server = stack.enter_context(rsyslogd(folder))
            except (RuntimeError, OSError) as exc:
                missing = str(exc)
        for name in syslog:
            if missing is None:
                found[name] = {"host": server["host"], "port": server[name]}
                found[name]["output"] = server["output"]
            else:
                skipped[name] = missing
    if "otlp" in only:
        try:
            found["otlp"] = stack.enter_context(otlp_receiver())
        except (RuntimeError, OSError) as exc:
            skipped["otlp"] = str(exc)
    return found, skipped


def render(
    rows: dict[tuple[str, str], Row], skipped: dict[str, str], env: dict[str, str]
) -> list[str]:
    lines = [
        f"Generated by `{env['command']}` on {env['date']}: {env['python']}, {env['machine']}; "
        f"asynclog at {env['revision']}. {env['sizes']}.",
        "",
        "| protocol | client | entries/s | min" + DASH + "max | ratio to limit | CPU µs/entry "
        "| CPU min" + DASH + "max | verified |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for protocol in PROTOCOLS:
        if protocol in skipped:
            lines.append(
                f"| {LABELS[protocol]} | — | skipped | — | — | — | — | {skipped[protocol]} |"
            )
            continue
        limit = rows.get((protocol, "limit"))
        for contender in CONTENDERS:
            row = rows.get((protocol, contender))
            if row is None:
                continue
            name = "limit" if contender == "limit" else "asynclog (async mode)"
            if not row.ok:
                reason = "; ".join(row.errors)[:200].replace("|", "/")
                lines.append(
                    f"| {LABELS[protocol]} | {name} | **FAILED** | — | — | — | — | {reason} |"
                )
                continue
            ratio = None
            if limit is not None and limit.rate and row.rate:
                ratio = row.rate / limit.rate
            lines.append(
                f"| {LABELS[protocol]} | {name} | **{num(row.rate, 'entries/s')}** | "
                f"{num(min(row.rates), 'entries/s')} {DASH} {num(max(row.rates), 'entries/s')} | "
                f"{times(ratio)} | {num(row.cpu_us)} | "
                f"{num(min(row.cpu))} {DASH} {num(max(row.cpu))} | ✓ |"
            )
    lines += ["", *summary(rows, skipped)]
    return lines


def summary(rows: dict[tuple[str, str], Row], skipped: dict[str, str]) -> list[str]:
    """One line per protocol: the ratio (target ≥ 0.8, reported, not asserted) and CPU."""
    out = []
    for protocol in PROTOCOLS:
        if protocol in skipped:
            out.append(f"- {protocol}: skipped: {skipped[protocol]}")
            continue
        limit, ours = rows.get((protocol, "limit")), rows.get((protocol, "asynclog"))
        if limit is None or ours is None:
            continue
        if not (limit.ok and ours.ok) or not limit.rate or not ours.rate:
            out.append(f"- {protocol}: FAILED ({'; '.join(limit.errors + ours.errors)[:300]})")
            continue
        ratio = ours.rate / limit.rate
        met = "met" if ratio >= TARGET_RATIO else "MISSED"
        paired = [a / b for a, b in zip(ours.rates, limit.rates, strict=False)]
        spread = f"per rep {times(min(paired))}{DASH}{times(max(paired))}; " if paired else ""
        out.append(
            f"- {protocol}: asynclog = {times(ratio)} limit ({spread}target ≥ {TARGET_RATIO}: "
            f"{met}); "
            f"CPU {num(ours.cpu_us)} µs/entry vs limit {num(limit.cpu_us)} µs/entry"
        )
    return out


METHOD = """\
Each run is a fresh `python -m bench.protocol_run` process: 100 tasks each `await log(msg,
task=t, seq=i)` their share of the entries; entries/s and the process's CPU (`time.process_time`,
all its threads; the receivers' CPU is not counted) run from the first call until the client is
closed: for PostgreSQL every batch committed, RELP every message acknowledged (rsyslogd's ruleset
is `Direct`, so acknowledged means written to its file), OTLP every request answered 200, TCP
every byte written to the socket. Then what the receiver got is read back (the table's rows by
id, rsyslogd's output file, the OTLP receiver's record bodies) and checked: every entry once, in
each task's order; a run that fails that is FAILED. Cells: median over the reps, min-max.

asynclog runs `Config(async_mode=True, queue_size=1000, overflow="block")` with the protocol's
backend and its defaults (`PostgresConfig(dsn, table)`, `SyslogConfig(transport="tcp"|"relp")`,
RELP window 128, `OTLPConfig(endpoint)`). The **limit** (bench/protocol_limits.py) is fed the same
way: an `asyncio.Queue(maxsize=1000)` whose one worker takes everything queued as a batch and
sends it with the simplest correct client: asyncpg `copy_records_to_table` of (timestamptz, level,
logger, message, jsonb fields) into a table with asynclog's identity key and two indexes (asynclog
also fills exception, host, pid and batch_id, inside a transaction with an advisory lock); RFC
5424 messages like asynclog's (same header, `[fields@32473 ...]`, BOM) encoded by one f-string
each and written octet-counted, one write per batch (TCP), or as RELP `syslog` commands with
at most 128 unacknowledged (RELP); one `ExportLogsServiceRequest` per batch built with
opentelemetry-proto's classes and POSTed over a kept-alive HTTP/1.1 connection (OTLP). The
target is asynclog ≥ 0.8 times the limit; it is reported, not asserted.
"""


def _revision() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def shown_args(argv: list[str]) -> list[str]:
    """The arguments that shape the tables (`--json PATH` and `--write` do not)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith(("--json=", "--write", "--no-write")):
            shown.append(arg)
    return shown


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    rows: dict[tuple[str, str], Row] = {}
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-proto-")))
        found, skipped = targets(args.only, stack, folder)
        for protocol, reason in skipped.items():
            print(f"{protocol}: skipped: {reason}", file=sys.stderr, flush=True)
        for rep in range(1, args.reps + 1):
            order = CONTENDERS if rep % 2 else CONTENDERS[::-1]
            for protocol in [p for p in args.only if p in found]:
                for contender in order:
                    began = time.perf_counter()
                    run = run_once(protocol, contender, found[protocol], args)
                    run["rep"] = rep
                    runs.append(run)
                    row = rows.setdefault((protocol, contender), Row(protocol, contender))
                    if run.get("ok"):
                        row.rates.append(run["entries_per_s"])
                        row.cpu.append(run["cpu_us_per_entry"])
                        status = (
                            f"{num(run['entries_per_s'], 'entries/s')} entries/s, "
                            f"CPU {num(run['cpu_us_per_entry'])} µs/entry"
                        )
                    else:
                        row.errors.append(f"rep {rep}: {run.get('error')}")
                        status = f"FAILED: {run.get('error')}"
                    print(
                        f"[rep {rep}/{args.reps}] {protocol:<8} {contender:<8} {status} "
                        f"({time.perf_counter() - began:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env = {
        "command": " ".join(["python -m bench protocols", *shown_args(argv)]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}",
        "revision": _revision(),
        "sizes": (
            f"reps: {args.reps}; {args.entries:,} entries per run (100 tasks), "
            + ("each with two fields (task, seq)" if args.fields else "without fields")
        ),
    }
    table = render(rows, skipped, env)
    print("\n".join(table))
    print(f"({len(runs)} runs in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": runs, "skipped": skipped}, indent=1))
    if args.write:
        kind = "" if args.fields else ", entries without fields"
        heading = f"## Network backends against their protocols' limits (Python {python}{kind})"
        body = "\n".join([heading, "", *table, ""])
        if python == "3.11" and args.fields:
            body += "\n### How the protocol benchmark is measured\n\n" + METHOD
        key = f"protocols {python}" + ("" if args.fields else " no-fields")
        DOCS.write_text(replace_section(DOCS.read_text(encoding="utf-8"), key, body))
        print(f"wrote the Python {python} section of {DOCS}", file=sys.stderr)
