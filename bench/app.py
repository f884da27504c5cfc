"""The service `python -m bench app` loads: a small Starlette app for uvicorn whose logging is
chosen by environment variables, so one module serves every config of the real-service bench.

    BENCH_APP_LOGGING=asynclog-file BENCH_APP_DIR=/tmp/x BENCH_APP_RESULT=/tmp/x/result.json \\
        python -m uvicorn bench.app:app --loop uvloop

`BENCH_APP_LOGGING` is one of `CONFIGS`:

- `none`: nothing is logged (the bench also passes `--no-access-log` to uvicorn).
- `stdlib`: a `logging.FileHandler` with `JsonFormatter` (the keys of asynclog's JSON:
  timestamp, level, logger, message, fields, exception) on the `app` logger and on
  `uvicorn.access` (uvicorn's own stdout handler is taken off it).
- `asynclog-file`: a `LogManager` in async mode with a `FileConfig(format="json")`, the rest of
  `Config` at its defaults; uvicorn's access log goes through `asynclog.stdlib.install`.
- `asynclog-sqlite`: the same with a `SQLiteConfig`.
- `asynclog-file-loop`: `asynclog-file` with `write_on_loop=True` (the batches written on the
  loop's thread, as sync mode and the stdlib FileHandler do).
- `asynclog-sqlite-loop`: `asynclog-sqlite` with `write_on_loop=True` (each batch's
  transaction on the loop's thread).
- `limit`: the least a process can do for the same two JSON lines a request, hand-written
  (`FloorLog`): no logging library, no queue bound, no thread, no error handling. A floor to
  measure the others against, not a logger anyone should ship.

With asynclog, the size and write time of every batch are recorded with
`LogManager.observe_writes`.

Each request to `/hello?user=<name>` logs one entry with two fields (`user`, `request`), plus
uvicorn's access line: two entries per request (uvicorn skips the access line of a request
whose client has gone before the response: the process counts the access records). When the
lifespan ends (SIGINT/SIGTERM), the process writes what it did to the JSON file
`BENCH_APP_RESULT`: requests served, its CPU time from the end of startup until logging was
closed, and the entries written and dropped.

`BENCH_APP_BURN_US` (default 0): each request also spends about that many microseconds of CPU
in a plain Python loop, in every config alike (`python -m bench app --burn-us`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import asynclog.stdlib
from asynclog import Config, FileConfig, LogManager, SQLiteConfig
from asynclog.formatters import json_format

CONFIGS = (
    "none",
    "stdlib",
    "asynclog-file",
    "asynclog-sqlite",
    "asynclog-file-loop",
    "asynclog-sqlite-loop",
    "limit",
)
ACCESS_LOGGER = "uvicorn.access"
APP_LOGGER = "app"

_STANDARD_ATTRIBUTES = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"}
)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class JsonFormatter(logging.Formatter):
    """One JSON object per record with the keys and shape of asynclog's `json` format:
    `timestamp` (ISO 8601 UTC, microseconds), `level`, `logger`, `message`, `fields` (what
    `extra=` added to the record) and `exception` (the formatted traceback, or null)."""

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        seconds = int(created)
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        }
        exception = None
        if record.exc_info:
            exception = self.formatException(record.exc_info)
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            exception = f"{exception}\n{stack}" if exception else stack
        return json.dumps(
            {
                "timestamp": f"{timestamp}.{int((created - seconds) * 1e6):06d}Z",
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "fields": fields,
                "exception": exception,
            },
            ensure_ascii=False,
            default=repr,
        )


class Counts:
    """What the process did, written to `BENCH_APP_RESULT` at the end."""

    def __init__(self) -> None:
        self.served = 0
        self.refused = 0  # asynclog log calls that returned False (entry not accepted)
        self.access_lines = 0  # uvicorn's access records (none when the client had gone)

    def count_access_lines(self, access: logging.Logger) -> None:
        """Count the lines uvicorn logs to `access` (in every config that logs; uvicorn skips
        the line of a request whose client went away before the response: wrk's last ones),
        at the call. Not with a filter: a filter needs logging's record, which asynclog's
        bridge (`DirectLogger`) otherwise never makes; the bench would measure its own probe."""
        info = type(access).info  # the class's, after install() gave the logger its own

        def counted(message: object, *args: Any, **kwargs: Any) -> None:
            self.access_lines += 1
            info(access, message, *args, **kwargs)

        access.info = counted  # type: ignore[method-assign]


COUNTS = Counts()
log_call: Callable[[str, str, int], Any] | None = None
"""How a request logs its entry under the current config (None: it does not log)."""


def burner(microseconds: float) -> Callable[[], None] | None:
    """A function that spends about `microseconds` of CPU in plain Python (None for 0): the
    same extra work in every request of every config (`BENCH_APP_BURN_US`), to see how the
    server's cost answers CPU spent in a request whoever spends it."""
    if microseconds <= 0:
        return None
    probe = range(100_000)
    timings = []
    for _attempt in range(5):  # the fastest of five: an interrupted probe counts for none
        started = time.perf_counter()
        for _ in probe:
            pass
        timings.append(time.perf_counter() - started)
    per_iteration = min(timings) / len(probe)
    loops = range(max(1, round(microseconds * 1e-6 / per_iteration)))

    def burn() -> None:
        for _ in loops:
            pass

    return burn


BURN = burner(float(os.environ.get("BENCH_APP_BURN_US", "0")))


async def hello(request: Request) -> Response:
    COUNTS.served += 1
    if BURN is not None:
        BURN()
    user = request.query_params.get("user", "world")
    if log_call is not None:
        accepted = log_call("hello", user, COUNTS.served)
        if accepted is not None and not await accepted:
            COUNTS.refused += 1
    return JSONResponse({"hello": user})


def _lines_by_logger(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    with path.open(encoding="utf-8") as file:
        for line in file:
            name = json.loads(line)["logger"]
            counts[name] = counts.get(name, 0) + 1
    return counts


def _rows_by_logger(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT logger, count(*) FROM logs GROUP BY logger").fetchall()
    finally:
        connection.close()
    return {name: count for name, count in rows}


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.asynccontextmanager
async def _no_logging(directory: Path, result: dict[str, Any]) -> AsyncIterator[None]:
    yield
    result["cpu_end"] = cpu_seconds()


@contextlib.asynccontextmanager
async def _stdlib(directory: Path, result: dict[str, Any]) -> AsyncIterator[None]:
    global log_call
    path = directory / "app.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    app_logger, access = logging.getLogger(APP_LOGGER), logging.getLogger(ACCESS_LOGGER)
    saved = access.handlers[:], access.propagate
    access.handlers[:] = [handler]  # uvicorn's own handler prints to stdout: not measured
    access.propagate = False
    app_logger.handlers[:] = [handler]
    app_logger.setLevel(logging.INFO)
    app_logger.propagate = False

    def call(message: str, user: str, request: int) -> None:
        app_logger.info(message, extra={"user": user, "request": request})

    log_call = call
    try:
        yield
    finally:
        log_call = None
        access.handlers[:], access.propagate = saved
        app_logger.handlers.clear()
        handler.close()
        result["cpu_end"] = cpu_seconds()
        by_logger = _lines_by_logger(path)
        result["output"] = by_logger
        result["written"] = sum(by_logger.values())
        result["dropped"] = 0  # FileHandler blocks; it never drops


@contextlib.asynccontextmanager
async def _asynclog(
    directory: Path, result: dict[str, Any], sqlite: bool, on_loop: bool
) -> AsyncIterator[None]:
    global log_call
    path = directory / ("app.db" if sqlite else "app.log")
    backend = (
        SQLiteConfig(db_path=path, write_on_loop=on_loop)
        if sqlite
        # No rotation during the run, as with the stdlib FileHandler it is compared with.
        else FileConfig(
            file_path=path,
            format="json",
            max_file_size_mb=100_000,
            max_backups=0,
            write_on_loop=on_loop,
        )
    )
    # Everything else at its defaults: queue_size 1000, put_timeout 0.1 s, raise_errors False.
    config = Config(name=APP_LOGGER, async_mode=True, backends=[backend])
    batches: list[tuple[int, float]] = []
    async with LogManager(config) as manager:
        manager.observe_writes(
            lambda name, entries, seconds: batches.append((len(entries), seconds))
        )
        asynclog.stdlib.install(manager, level="INFO", loggers=[ACCESS_LOGGER], replace=True)

        def call(message: str, user: str, request: int) -> Any:
            return manager.info(message, user=user, request=request)

        log_call = call
        try:
            yield
        finally:
            log_call = None
    result["cpu_end"] = cpu_seconds()
    stats = manager.get_stats()
    result.update(
        written=stats.written,
        dropped=stats.dropped,
        accepted=stats.accepted,
        write_errors=stats.write_errors,
        dead_lettered=stats.dead_lettered,
        pending=stats.pending,
    )
    result["output"] = _rows_by_logger(path) if sqlite else _lines_by_logger(path)
    seconds = [s for _, s in batches]
    result["batches"] = {
        "count": len(batches),
        "entries": sum(n for n, _ in batches),
        "p50_ms": _ms(_percentile(seconds, 0.50)),
        "p99_ms": _ms(_percentile(seconds, 0.99)),
        "max_ms": _ms(max(seconds, default=None)),
    }


class FloorLog:
    """The least work for a request's two JSON lines, to measure the loggers against: each
    entry is appended to a list, and once a loop turn the list is formatted and written with
    one `os.write` on the loop's thread, as `write_on_loop=True` does. The lines are the bytes
    asynclog writes, made by asynclog's own `formatters.json_format` (the fastest code known
    for them: stdlib's `json.dumps` of the same dict costs twice as much, and orjson writes
    other bytes), so what the limit leaves out is the logger around the formatter: no queue
    bound, no counts, no thread, no error handling. A floor, not a logger."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.loop = asyncio.get_running_loop()
        self.entries: list[tuple[float, int, str, Any, Any, dict[str, Any]]] = []
        self.written = 0

    def add(
        self, at: float, level: int, logger: str, message: Any, args: Any, fields: dict[str, Any]
    ) -> None:
        if not self.entries:
            self.loop.call_soon(self.flush)
        self.entries.append((at, level, logger, message, args, fields))

    def flush(self) -> None:
        entries, self.entries = self.entries, []
        lines = [
            json_format(
                (at, level, message % args if args else message, logger, fields, None, None, None)
            )
            for at, level, logger, message, args, fields in entries
        ]
        data = memoryview(("\n".join(lines) + "\n").encode()) if lines else memoryview(b"")
        while data:
            data = data[os.write(self.fd, data) :]
        self.written += len(entries)

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


class FloorLogger(logging.Logger):
    """uvicorn's access logger under `limit`: a call past the level check goes to `FLOOR`
    without logging's record (as asynclog's `DirectLogger` does when it can)."""

    def _log(  # type: ignore[override]
        self, level: int, msg: object, args: Any, *rest: Any, **options: Any
    ) -> None:
        assert FLOOR is not None
        FLOOR.add(time.time(), level, self.name, msg, args, {})


FLOOR: FloorLog | None = None


@contextlib.asynccontextmanager
async def _limit(directory: Path, result: dict[str, Any]) -> AsyncIterator[None]:
    global log_call, FLOOR
    path = directory / "app.log"
    FLOOR = floor = FloorLog(path)
    access = logging.getLogger(ACCESS_LOGGER)
    saved = access.handlers[:], access.propagate, access.__class__
    # uvicorn makes its access line only for a logger with a handler: one that is never called.
    access.handlers[:] = [logging.NullHandler()]
    access.propagate = False
    access.__class__ = FloorLogger

    def call(message: str, user: str, request: int) -> None:
        floor.add(
            time.time(), logging.INFO, APP_LOGGER, message, (), {"user": user, "request": request}
        )

    log_call = call
    try:
        yield
    finally:
        log_call = None
        access.handlers[:], access.propagate, access.__class__ = saved
        floor.close()
        FLOOR = None
        result["cpu_end"] = cpu_seconds()
        by_logger = _lines_by_logger(path)
        result["output"] = by_logger
        result["written"] = floor.written
        result["dropped"] = 0  # unbounded: it never drops


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    config = os.environ.get("BENCH_APP_LOGGING", "none")
    if config not in CONFIGS:
        raise SystemExit(f"BENCH_APP_LOGGING must be one of {', '.join(CONFIGS)}: {config!r}")
    directory = Path(os.environ.get("BENCH_APP_DIR", "."))
    result: dict[str, Any] = {"config": config, "cpu_start": cpu_seconds()}
    wall = time.perf_counter()
    if config == "none":
        logging_of = _no_logging(directory, result)
    elif config == "stdlib":
        logging_of = _stdlib(directory, result)
    elif config == "limit":
        logging_of = _limit(directory, result)
    else:
        logging_of = _asynclog(
            directory,
            result,
            sqlite=config.startswith("asynclog-sqlite"),
            on_loop=config.endswith("-loop"),
        )
    access = logging.getLogger(ACCESS_LOGGER)
    try:
        async with logging_of:
            COUNTS.count_access_lines(access)
            yield
    finally:
        access.__dict__.pop("info", None)
    result.update(
        served=COUNTS.served,
        refused=COUNTS.refused,
        access_lines=COUNTS.access_lines,
        cpu_seconds=result.pop("cpu_end") - result.pop("cpu_start"),
        wall_seconds=time.perf_counter() - wall,
    )
    target = os.environ.get("BENCH_APP_RESULT")
    if target:
        Path(target).write_text(json.dumps(result), encoding="utf-8")


app = Starlette(routes=[Route("/hello", hello)], lifespan=lifespan)
