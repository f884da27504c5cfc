"""The bridge from the standard library's logging: AsyncLogHandler and install()."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import logging.config
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, Level, LogManager
from asynclog.stdlib import PENDING_LIMIT, AsyncLogHandler, install

from .conftest import RecordingBackend, assert_settled


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Leave the root logger and the test loggers as they were."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


async def test_a_record_carries_level_logger_message_time_extra_and_traceback(
    clean_logging: None,
) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        install(lm, level="DEBUG")
        log = logging.getLogger("app.orders")
        log.info("order %s for %d items", "A-17", 3, extra={"user_id": 42, "region": "eu"})
        try:
            raise KeyError("missing")
        except KeyError:
            log.exception("lookup failed")
        log.log(5, "below DEBUG")  # filtered by the logger's level, not ours
        log.log(15, "a custom level")
    first, second, third = backend.entries
    assert (first.level, first.logger) == (20, "app.orders")
    assert first.message == "order A-17 for 3 items"
    assert dict(first.fields) == {"user_id": 42, "region": "eu"}
    assert first.exception is None
    assert second.level == Level.ERROR and second.message == "lookup failed"
    assert second.exception is not None
    assert second.exception.startswith("Traceback (most recent call last):")
    assert "raise KeyError(\"missing\")" in second.exception
    assert second.exception.endswith("KeyError: 'missing'")
    assert (third.level, third.message) == (15, "a custom level")
    assert len(backend.entries) == 3


async def test_the_record_time_is_kept(clean_logging: None) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        handler = AsyncLogHandler(lm)
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "then", None, None)
        record.created = 1_700_000_000.25
        handler.handle(record)
        await asyncio.sleep(0.01)  # sync mode from the loop's thread: written by a task
    assert [(e.timestamp, e.message) for e in backend.entries] == [(1_700_000_000.25, "then")]


async def test_threads_of_a_pool_and_plain_threads_lose_nothing(clean_logging: None) -> None:
    backend = RecordingBackend()
    # A small queue, so most records wait in line; "block": none may time out on a slow run.
    config = Config(backend=backend, async_mode=True, queue_size=100, overflow="block")
    async with LogManager(config) as lm:
        install(lm, level="INFO")
        log = logging.getLogger("app.workers")
        loop = asyncio.get_running_loop()

        def work(worker: int) -> None:
            for index in range(500):
                log.info("w%d %d", worker, index)

        await asyncio.gather(*(loop.run_in_executor(None, work, w) for w in range(4)))
        threads = [threading.Thread(target=work, args=(w,)) for w in range(4, 8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
    stats = lm.get_stats()
    assert_settled(stats)
    assert stats.dropped == 0 and stats.written == 4000
    by_worker: dict[str, list[int]] = {}
    for entry in backend.entries:
        worker, index = entry.message.split()
        by_worker.setdefault(worker, []).append(int(index))
    assert by_worker == {f"w{w}": list(range(500)) for w in range(8)}


async def test_asyncio_own_logging_goes_through_without_deadlock(clean_logging: None) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        install(lm, level="DEBUG")

        async def fails() -> None:
            raise RuntimeError("never retrieved")

        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        del task
        gc.collect()  # asyncio logs "Task exception was never retrieved" from the finalizer
        await asyncio.sleep(0.01)
    # Filtered on this test's exception: a task another test left behind may be collected too.
    from_asyncio = [
        entry
        for entry in backend.entries
        if entry.logger == "asyncio" and "never retrieved')>" in entry.message
    ]
    assert len(from_asyncio) == 1
    assert from_asyncio[0].message.startswith("Task exception was never retrieved\nfuture: <Task")
    assert from_asyncio[0].exception is not None
    assert "RuntimeError: never retrieved" in from_asyncio[0].exception


async def test_install_routes_named_loggers_and_close_undoes_it(clean_logging: None) -> None:
    own = logging.getLogger("uvicorn.test")
    own.setLevel(logging.WARNING)
    previous = logging.StreamHandler()
    own.addHandler(previous)
    backend = RecordingBackend()
    try:
        async with LogManager(Config(backend=backend)) as lm:
            installation = install(lm, level="INFO", loggers=["uvicorn.test"], replace=True)
            assert own.handlers == [installation.handler] and own.level == logging.INFO
            own.info("routed")
            logging.getLogger("elsewhere").warning("not routed")
            await asyncio.sleep(0.01)
        assert own.handlers == [previous] and own.level == logging.WARNING
        assert [entry.message for entry in backend.entries] == ["routed"]
    finally:
        own.removeHandler(previous)
        own.setLevel(logging.NOTSET)


async def test_dictconfig_by_name_holds_records_until_the_manager_starts(
    clean_logging: None,
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "asynclog": {"class": "asynclog.stdlib.AsyncLogHandler", "manager": "svc"}
            },
            "loggers": {"svc.app": {"handlers": ["asynclog"], "level": "INFO"}},
        }
    )
    log = logging.getLogger("svc.app")
    try:
        for index in range(3):
            log.info("early %d", index)  # no manager named "svc" yet: held
        backend = RecordingBackend()
        async with LogManager(Config(backend=backend, name="svc", async_mode=True)):
            log.info("running")
        assert [entry.message for entry in backend.entries] == [
            "early 0",
            "early 1",
            "early 2",
            "running",
        ]
    finally:
        log.handlers.clear()


def test_records_beyond_the_pending_limit_go_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = AsyncLogHandler("nobody")
    log = logging.getLogger("held.overflow")
    log.propagate = False
    log.addHandler(handler)
    try:
        for index in range(PENDING_LIMIT + 2):
            log.warning("r%d", index)
    finally:
        log.removeHandler(handler)
    assert handler.overflowed == 2
    assert capsys.readouterr().err.splitlines() == [
        f"WARNING:held.overflow:r{PENDING_LIMIT}",
        f"WARNING:held.overflow:r{PENDING_LIMIT + 1}",
    ]


async def test_after_close_records_go_to_stderr_and_nothing_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend))
    handler = AsyncLogHandler(lm)
    log = logging.getLogger("after.close")
    log.propagate = False
    log.addHandler(handler)
    try:
        async with lm:
            log.error("inside")
            await asyncio.sleep(0.01)
        log.error("outside")
    finally:
        log.removeHandler(handler)
    assert [entry.message for entry in backend.entries] == ["inside"]
    assert capsys.readouterr().err == "ERROR:after.close:outside\n"


async def test_write_log_threadsafe_from_the_loop_thread_outside_a_coroutine() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def callback() -> None:
            lm.write_log_threadsafe("INFO", "from a callback", via="call_soon")
            done.set()

        loop.call_soon(callback)
        await done.wait()
    assert [(e.message, dict(e.fields)) for e in backend.entries] == [
        ("from a callback", {"via": "call_soon"})
    ]


_AFTER_THE_LOOP = """
import asyncio, logging, sys
from asynclog import Config, FileConfig, LogManager
from asynclog.stdlib import install

async def main():
    lm = LogManager(Config(async_mode={async_mode}, backend_config=FileConfig(sys.argv[1])))
    await lm.start()
    install(lm, level="INFO")
    for index in range(10):
        logging.getLogger("app").info("in the loop %d", index)
    while lm.get_stats().pending:
        await asyncio.sleep(0.01)
    return lm  # the program forgets close()

lm = asyncio.run(main())
for index in range(5):
    logging.getLogger("app").info("after the loop %d", index)
print(lm.get_stats().written, lm.get_stats().dropped)
"""


@pytest.mark.parametrize("async_mode", [True, False])
def test_records_after_the_loop_closed_are_written_synchronously(
    tmp_path: Path, async_mode: bool
) -> None:
    path = tmp_path / "app.log"
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_THE_LOOP.format(async_mode=async_mode), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["15", "0"]
    messages = [line.split(" ", 3)[3] for line in path.read_text().splitlines()]
    assert messages == [f"in the loop {i}" for i in range(10)] + [
        f"after the loop {i}" for i in range(5)
    ]


async def test_json_file_through_the_bridge(tmp_path: Path, clean_logging: None) -> None:
    path = tmp_path / "app.jsonl"
    config = Config(backend_config=FileConfig(path, format="json"), async_mode=True)
    async with LogManager(config) as lm:
        install(lm, level="INFO")
        logging.getLogger("api").warning("slow request", extra={"ms": 812})
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["logger"], record["level"], record["message"]) == (
        "api",
        "WARNING",
        "slow request",
    )
    assert record["fields"] == {"ms": 812}


async def test_a_logger_and_its_ancestor_both_routed_write_a_record_once(
    clean_logging: None,
) -> None:
    backend = RecordingBackend()
    parent, child = logging.getLogger("svc2"), logging.getLogger("svc2.error")
    try:
        async with LogManager(Config(backend=backend, async_mode=True)) as lm:
            install(lm, level="INFO", loggers=["svc2", "svc2.error"], replace=True)
            child.info("started")
            parent.info("parent only")
        assert [(e.logger, e.message) for e in backend.entries] == [
            ("svc2.error", "started"),
            ("svc2", "parent only"),
        ]
    finally:
        parent.setLevel(logging.NOTSET)
        child.setLevel(logging.NOTSET)


async def test_aiosqlite_debug_logs_do_not_feed_back(tmp_path: Path, clean_logging: None) -> None:
    from asynclog import SQLiteConfig

    config = Config(backend="sqlite", backend_config=SQLiteConfig(tmp_path / "a.db"))
    async with LogManager(config) as lm:
        install(lm, level="DEBUG")
        logging.getLogger("app").info("one record")
        await asyncio.sleep(0.2)
        stats = lm.get_stats()
    assert stats.written == 1


_HELD_BY_NAME = """
import asyncio, logging, logging.config, sys
from asynclog import Config, FileConfig, LogManager

logging.config.dictConfig({
    "version": 1,
    "handlers": {"a": {"class": "asynclog.stdlib.AsyncLogHandler", "manager": "svc"}},
    "root": {"handlers": ["a"], "level": "INFO"},
})
logging.warning("before start")

async def main():
    async with LogManager(Config(name="svc", backend_config=FileConfig(sys.argv[1]))) as lm:
        await lm.info("native")

asyncio.run(main())
logging.warning("after close")
logging.getLogger("never").error("held for a manager that never starts")
"""


def test_records_held_by_name_are_written_at_start_and_after_close_go_to_stderr(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    done = subprocess.run(
        [sys.executable, "-c", _HELD_BY_NAME, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    messages = [line.split(" ", 3)[3] for line in path.read_text().splitlines()]
    assert messages == ["before start", "native"]
    assert done.stderr.splitlines() == [
        "WARNING:root:after close",
        "ERROR:never:held for a manager that never starts",
    ]


def test_a_paused_loop_keeps_handed_in_entries_for_its_next_run(tmp_path: Path) -> None:
    from asynclog import SQLiteConfig

    loop = asyncio.new_event_loop()
    try:
        config = Config(backend="sqlite", backend_config=SQLiteConfig(tmp_path / "a.db"))
        lm = LogManager(config)
        loop.run_until_complete(lm.start())
        loop.run_until_complete(lm.info("one"))
        lm.write_log_threadsafe("INFO", "two")  # the loop is paused, not gone
        stats = lm.get_stats()  # handed in, not accepted until the loop runs again
        assert (stats.accepted, stats.written, stats.pending) == (1, 1, 0)
        loop.run_until_complete(lm.info("three"))
        report = loop.run_until_complete(lm.close())
    finally:
        loop.close()
    assert (report.written, report.dropped, report.dead_lettered) == (3, 0, 0)
    import sqlite3

    with sqlite3.connect(tmp_path / "a.db") as db:
        rows = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    assert rows == ["one", "two", "three"]


async def test_a_loop_thread_record_comes_after_those_other_threads_handed_in_before_it(
    clean_logging: None,
) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        install(lm, level="INFO", loggers=["bridge.order"])
        log = logging.getLogger("bridge.order")
        worker = threading.Thread(target=lambda: [log.info("thread %d", n) for n in range(3)])
        worker.start()
        worker.join()  # the loop has not run: the three wait in the handoff
        log.info("loop %d", 0)
        log.info("loop %d", 1)
    assert [entry.message for entry in backend.entries] == [
        "thread 0",
        "thread 1",
        "thread 2",
        "loop 0",
        "loop 1",
    ]
    assert backend.entries[3].template == "loop %d"


async def test_loop_thread_records_past_a_full_queue_keep_their_order(clean_logging: None) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True, queue_size=2)) as lm:
        install(lm, level="INFO", loggers=["bridge.full"])
        log = logging.getLogger("bridge.full")
        for n in range(20):  # no await: the worker takes none of them meanwhile
            log.info("record %d", n, extra={"n": n} if n % 2 else None)
    assert [entry.message for entry in backend.entries] == [f"record {n}" for n in range(20)]
    assert [dict(entry.fields) for entry in backend.entries[:2]] == [{}, {"n": 1}]
    assert lm.get_stats().dropped == 0
