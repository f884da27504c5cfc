"""The CPU one request's logging costs, without a web server.

    python -m bench.request_cost [--requests 100000]

Each "request" logs what a request to `bench/app.py` logs: uvicorn's access line through the
stdlib logger `uvicorn.access` (the same format and arguments) and the app's entry with two
fields; the loop turns every 20 requests. Configs, each in a fresh process, alternated over
`--reps`: `stdlib` (one `FileHandler` with bench/app.py's `JsonFormatter` on both loggers),
`asynclog` (async mode to a JSON file, the access logger through `asynclog.stdlib.install`),
`asynclog-loop` (the same with `FileConfig(write_on_loop=True)`), `limit` (bench/app.py's
hand-written `FloorLog`: the least work for the same two lines) and `stdlib-null` (the access
line into a handler that does nothing: what logging's own machinery costs; stdlib's config
pays it, asynclog's `install()` skips it with `DirectLogger`). Prints the median process CPU
µs per request (the writer thread included) and asynclog's cost as a fraction of stdlib's and
of the limit's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("stdlib-null", "stdlib", "asynclog", "asynclog-loop", "limit")
ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'
ACCESS_ARGS = ("127.0.0.1:50000", "GET", "/hello?user=ada", "1.1", 200)


async def _measure(config: str, requests: int, directory: str) -> float:
    from asynclog import Config, FileConfig, LogManager
    from asynclog.stdlib import install

    from . import app as service

    access = logging.getLogger("uvicorn.access")
    app = logging.getLogger("app")
    for logger in (access, app):
        logger.propagate = False
        logger.setLevel(logging.INFO)
    manager = None
    path = os.path.join(directory, "app.log")

    def log_app(index: int) -> object:
        return None

    if config == "stdlib-null":
        access.handlers[:] = [logging.NullHandler()]
    elif config == "stdlib":
        handler = logging.FileHandler(path)
        handler.setFormatter(service.JsonFormatter())
        access.handlers[:] = app.handlers[:] = [handler]

        def log_app(index: int) -> object:
            app.info("hello", extra={"user": "ada", "request": index})
            return None

    elif config == "limit":
        floor = service.FLOOR = service.FloorLog(Path(path))
        access.__class__ = service.FloorLogger

        def log_app(index: int) -> object:
            fields = {"user": "ada", "request": index}
            floor.add(time.time(), logging.INFO, "app", "hello", (), fields)
            return None

    else:
        backend = FileConfig(
            file_path=path,
            format="json",
            max_file_size_mb=100_000,
            max_backups=0,
            write_on_loop=config == "asynclog-loop",
        )
        manager = LogManager(Config(name="app", async_mode=True, backends=[backend]))
        await manager.start()
        install(manager, level="INFO", loggers=[access.name], replace=True)

        def log_app(index: int) -> object:
            return manager.info("hello", user="ada", request=index)

    started = time.process_time()
    for index in range(requests):
        pending = log_app(index)
        if pending is not None:
            await pending  # type: ignore[misc]
        access.info(ACCESS_FORMAT, *ACCESS_ARGS)
        if index % 20 == 19:
            await asyncio.sleep(0)
    if service.FLOOR is not None:
        service.FLOOR.close()
    if manager is not None:
        await manager.close()
        stats = manager.get_stats()
        if stats.dropped:
            raise SystemExit(f"asynclog dropped {stats.dropped} entries")
    return (time.process_time() - started) / requests * 1e6


def _run_one(config: str, requests: int) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "bench.request_cost", "--one", config, "--requests", str(requests)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as directory:
            print(asyncio.run(_measure(args.one, args.requests, directory)))
        return
    results: dict[str, list[float]] = {config: [] for config in CONFIGS}
    for _ in range(args.reps):
        for config in CONFIGS:
            results[config].append(_run_one(config, args.requests))
    medians = {config: statistics.median(values) for config, values in results.items()}
    for config in CONFIGS:
        values = ", ".join(f"{value:.1f}" for value in results[config])
        print(f"{config:12} {medians[config]:6.1f} µs CPU per request ({values})")
    print(f"asynclog ÷ stdlib: {medians['asynclog'] / medians['stdlib']:.2f}")
    print(f"asynclog ÷ limit: {medians['asynclog'] / medians['limit']:.2f}")


if __name__ == "__main__":
    main()
