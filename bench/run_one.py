"""Run one contender x scenario in this process and print the result as one JSON line.

    python -m bench.run_one <contender> <scenario> --dir DIR [--tasks N --per-task N ...]

The line starts with `RESULT_MARK`, so anything a library prints on stdout cannot be taken
for it. A run that raises is reported with `ok: false` and the error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from .contenders import CONTENDERS
from .scenarios import SCENARIOS, Params, Result, peak_rss_mib

RESULT_MARK = "BENCH-RESULT "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run_one", description=__doc__)
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--dir", type=Path, required=True, help="empty directory to write in")
    parser.add_argument("--loop", choices=("asyncio", "trio"), default="asyncio")
    for f in fields(Params):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    contender, scenario = CONTENDERS[args.contender], SCENARIOS[args.scenario]
    params = Params(**{f.name: getattr(args, f.name) for f in fields(Params)})
    try:
        result = await scenario.run(contender, args.dir, params)
    except Exception as exc:
        result = Result(None, f"{type(exc).__name__}: {exc}")
    payload = {
        "contender": contender.name,
        "scenario": scenario.name,
        "ok": result.error is None and result.value is not None,
        "value": result.value,
        "error": result.error,
        "extra": result.extra,
        "peak_rss_mib": result.peak_rss_mib or peak_rss_mib(),
    }
    print(RESULT_MARK + json.dumps(payload), flush=True)
    if scenario.stuck or result.error is not None:
        # A stuck or failed logger cannot be closed cleanly: leave without waiting for it.
        sys.stderr.flush()
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.loop == "trio":
        import trio

        trio.run(run, args)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
