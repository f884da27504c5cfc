"""One of the processes of the `shared_*` scenarios: asynclog writing to a file that other
processes write too (`FileConfig(shared=True)`).

    python -m bench.shared_worker --path FILE --first-task T --tasks N --per-task M [--async-mode]

It opens the logger, prints `READY`, waits for a line on stdin (the start signal every worker
gets at once), logs `task t msg i` for its tasks, closes, and prints one JSON line: when it
started and ended (`time.monotonic()`, one clock for every process), its CPU seconds, peak
RSS and the manager's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path


async def run(args: argparse.Namespace) -> dict[str, object]:
    from asynclog import Config, FileConfig, LogManager

    config = Config(
        backend="file",
        backend_config=FileConfig(
            file_path=args.path,
            max_file_size_mb=1000,
            max_backups=0,
            format="text",
            shared=True,
            # The lines the verifier reads (and the one-process run writes): `shared` adds
            # host= and pid= to each line by default.
            process_fields=False,
        ),
        async_mode=args.async_mode,
        queue_size=1000,
        put_timeout=0.1,
    )
    lm = LogManager(config)
    await lm.start()
    info = lm.info
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def produce(t: int) -> None:
        for i in range(args.per_task):
            await info(f"task {t} msg {i}")

    cpu = time.process_time()
    start = time.monotonic()
    await asyncio.gather(*(produce(args.first_task + k) for k in range(args.tasks)))
    await lm.close()
    end = time.monotonic()
    cpu = time.process_time() - cpu
    stats = lm.get_stats()
    return {
        "start": start,
        "end": end,
        "cpu": cpu,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "written": stats.written,
        "dropped": stats.dropped,
        "write_errors": stats.write_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_worker", description=__doc__)
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--first-task", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--per-task", type=int, required=True)
    parser.add_argument("--async-mode", action="store_true")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
