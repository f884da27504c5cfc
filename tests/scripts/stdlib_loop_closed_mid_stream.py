"""The stdlib bridge's thread hand-in under a loop that is stopped, then closed, while a thread
keeps logging (`overflow="block"`, a small queue, a slow worker).

Usage: python stdlib_loop_closed_mid_stream.py LOG_PATH. A thread logs records "r0", "r1", ...
through `logging.getLogger("app")` until it has logged 200 after the loop closed. The loop is
stopped by the worker's handler, after 300 entries, at a moment the queue is full (so a record
from the line waits for room) and no batch write is under way (so no entry may legitimately be
written twice), then closed without `close()`. Prints the number of records, and (from an
atexit hook, after asynclog's exit flush) the final stats."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time

from asynclog import Config, FileConfig, LogEntry, LogManager
from asynclog.stdlib import install

STOP_AFTER = 300
AFTER_CLOSE = 200
LIMIT = 50_000

loop = asyncio.new_event_loop()


handled = [0]


async def slow(entry: LogEntry) -> None:
    handled[0] += 1
    full = lm.get_stats().queue_size == config.queue_size  # a record waits for room
    if handled[0] >= STOP_AFTER and full and loop.is_running():
        loop.stop()  # the loop stops after this turn, with the worker in here
    await asyncio.sleep(0.001)


config = Config(
    backend_config=FileConfig(file_path=sys.argv[1]),
    async_mode=True,
    queue_size=10,
    overflow="block",
)
lm = LogManager(config)
lm.register_handler(slow)
loop.run_until_complete(lm.start())
install(lm, level="INFO", loggers=["app"])
closed = threading.Event()
logged = [0]


def produce() -> None:
    log = logging.getLogger("app")
    after = 0
    while after < AFTER_CLOSE and logged[0] < LIMIT:
        log.info("r%d", logged[0])
        logged[0] += 1
        if closed.is_set():
            after += 1
        if logged[0] % 20 == 0:
            time.sleep(0.001)  # a pace the slow worker cannot keep up with


def final_stats() -> None:
    stats = lm.get_stats()
    print(
        f"at exit: accepted={stats.accepted} written={stats.written} dropped={stats.dropped} "
        f"dead_lettered={stats.dead_lettered} pending={stats.pending}",
        flush=True,
    )


atexit.register(final_stats)
producer = threading.Thread(target=produce)
producer.start()
loop.run_forever()  # until the handler stops it
loop.close()
closed.set()
producer.join(30)
print(f"records: {logged[0]}", flush=True)
