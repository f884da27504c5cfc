"""Issue 13, scenario 5: with `overflow="block"`, entries handed in from a thread wait for room
(the first one inside the queue's wait, the rest in line behind it) when the loop ends without
`close()`.

Usage: python blocked_hand_in_at_loop_end.py HOW LOG_PATH, HOW being
  loop-closed:  the loop is closed without close(); the exit hook must write what is left;
  asyncio-run:  a program under asyncio.run forgets close().
The script logs c0..c10 from the loop (c0 held by the worker's handler, c1..c10 fill the queue)
and t0..t4 from a thread; every one of them must end in LOG_PATH exactly once. It prints the
stats before the loop ends, and (from an atexit hook, which runs after asynclog's exit flush)
the stats at the very end."""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading

from asynclog import Config, FileConfig, LogEntry, LogManager

how, path = sys.argv[1], sys.argv[2]
QUEUE_SIZE = 10
HANDED_IN = 5


async def main() -> LogManager:
    never, holding = asyncio.Event(), asyncio.Event()

    async def hold_up(entry: LogEntry) -> None:
        # Holds the worker on its first entry until the worker is cancelled (asyncio.run) or
        # for good (the loop closed); an entry re-delivered after that passes at once. So no
        # write is ever under way when the loop ends, and no entry may appear twice.
        if not holding.is_set():
            holding.set()
            await never.wait()

    config = Config(
        backend_config=FileConfig(file_path=path),
        async_mode=True,
        queue_size=QUEUE_SIZE,
        overflow="block",
    )
    lm = LogManager(config)
    lm.register_handler(hold_up)
    await lm.start()
    await lm.info("c0")
    await holding.wait()  # the worker holds c0
    for index in range(1, QUEUE_SIZE + 1):
        await lm.info(f"c{index}")  # the queue is full

    def hand_in() -> None:
        for index in range(HANDED_IN):
            lm.write_log_threadsafe("INFO", f"t{index}")

    thread = threading.Thread(target=hand_in)
    thread.start()
    await asyncio.to_thread(thread.join)
    while lm.get_stats().accepted < 1 + QUEUE_SIZE + HANDED_IN:  # noqa: ASYNC110 (the stats)
        await asyncio.sleep(0.01)  # t0 waits for room, t1..t4 in line behind it
    stats = lm.get_stats()
    print(f"before the end: accepted={stats.accepted} pending={stats.pending}", flush=True)
    return lm  # forgets close()


def final_stats() -> None:
    stats = manager.get_stats()
    print(
        f"at exit: accepted={stats.accepted} written={stats.written} dropped={stats.dropped} "
        f"pending={stats.pending}",
        flush=True,
    )


atexit.register(final_stats)
if how == "loop-closed":
    loop = asyncio.new_event_loop()
    manager = loop.run_until_complete(main())
    loop.close()
else:
    manager = asyncio.run(main())
print("the loop is gone", flush=True)
