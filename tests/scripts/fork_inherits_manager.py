"""Issue 13, scenario 4: a process forked (multiprocessing's "fork" start method) while an
async-mode manager runs with 500 entries still queued (its worker is held up by a handler).

Usage: python fork_inherits_manager.py OUT_DIR. The parent logs to OUT_DIR/parent.log; child N
writes what its calls on the inherited manager did to OUT_DIR/child-N.txt, and logs through a
manager of its own to OUT_DIR/child-N.log. The parent prints the children's exit codes and its
CloseReport."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from pathlib import Path

from asynclog import Config, FileConfig, LogEntry, LogManager

CHILDREN = 4
ENTRIES = 500


def outcome(call: object) -> str:
    """What running `call()` did: "returned", or the exception's type and message."""
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    return "returned"


def child(lm: LogManager, index: int, out: Path) -> None:
    # Python 3.12+ does this in every forked child; 3.11 leaves the parent's loop marked as
    # running in this thread, and no new loop could run here.
    asyncio._set_running_loop(None)
    findings = [
        "info: " + outcome(lambda: asyncio.run(lm.info(f"child {index} via the parent's manager"))),
        "threadsafe: "
        + outcome(lambda: lm.write_log_threadsafe("INFO", f"child {index} handed in")),
    ]

    async def own() -> None:
        config = Config(backend_config=FileConfig(file_path=out / f"child-{index}.log"))
        async with LogManager(config) as mine:
            await mine.info(f"own {index}")

    findings.append("own manager: " + outcome(lambda: asyncio.run(own())))
    (out / f"child-{index}.txt").write_text("\n".join(findings) + "\n")


async def main(out: Path) -> None:
    gate, holding = asyncio.Event(), asyncio.Event()

    async def hold_up(entry: LogEntry) -> None:
        holding.set()
        await gate.wait()

    config = Config(backend_config=FileConfig(file_path=out / "parent.log"), async_mode=True)
    lm = LogManager(config)
    lm.register_handler(hold_up)
    await lm.start()
    await lm.info("p0")
    await holding.wait()  # the worker holds p0; everything after it stays queued
    for index in range(1, ENTRIES):
        await lm.info(f"p{index}")
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=child, args=(lm, i, out)) for i in range(CHILDREN)]
    for process in children:
        process.start()
    for process in children:
        await asyncio.to_thread(process.join, 15)
    print("exit codes:", *[process.exitcode for process in children], flush=True)
    gate.set()
    report = await lm.close()
    print(f"parent report: written={report.written} dropped={report.dropped}", flush=True)


asyncio.run(main(Path(sys.argv[1])))
