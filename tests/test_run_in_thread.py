"""run_in_thread(): a manager on its own loop in a daemon thread, for programs without a loop."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import logging.config
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import asynclog
from asynclog import (
    CloseReport,
    Config,
    FileConfig,
    LogError,
    LogManager,
    ManagerClosedError,
    ThreadedManager,
    run_in_thread,
)
from asynclog.stdlib import install

from .conftest import GateBackend, RecordingBackend, assert_settled, read_lines

ROOT = Path(__file__).resolve().parent.parent
THREADS = 8
PER_THREAD = 500


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def json_config(path: Path, **options: object) -> Config:
    return Config(
        backend_config=FileConfig(file_path=path, format="json"), async_mode=True, **options
    )


def in_threads(count: int, target: object) -> None:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("async_mode", [True, False])
def test_threads_log_through_it_and_close_drains_everything(
    log_path: Path, clean_logging: None, async_mode: bool
) -> None:
    logs = run_in_thread(
        Config(
            backend_config=FileConfig(file_path=log_path, format="json"),
            async_mode=async_mode,
            queue_size=THREADS * PER_THREAD * 5,  # room for all: this test counts exactly
        )
    )
    assert isinstance(logs, ThreadedManager) and logs.running and logs.thread.daemon
    install(logs, level="INFO", loggers=["worker"])
    stdlib_log = logging.getLogger("worker")
    view = logs.bind(component="jobs")
    named = logs.get_logger("jobs.mail")

    def work(index: int) -> None:
        for number in range(PER_THREAD):
            assert logs.nowait.info(f"direct {index}-{number}", n=number) is True
            assert view.nowait.warning(f"bound {index}-{number}") is True
            assert named.nowait.error("named %d-%d", index, number) is True
            logs.write_log_threadsafe("debug", f"threadsafe {index}-{number}")
            stdlib_log.info("stdlib %d-%d", index, number)

    in_threads(THREADS, work)
    report = logs.close()
    total = THREADS * PER_THREAD * 5
    assert report == CloseReport(written=total, dropped=0, abandoned=0, dead_lettered=0)
    assert not logs.running and not logs.thread.is_alive() and logs.loop.is_closed()
    entries = [json.loads(line) for line in read_lines(log_path)]
    assert len(entries) == total
    messages = {entry["message"] for entry in entries}
    for index in range(THREADS):
        for number in range(PER_THREAD):
            assert {f"direct {index}-{number}", f"bound {index}-{number}"} <= messages
            assert f"stdlib {index}-{number}" in messages
            assert {f"named {index}-{number}", f"threadsafe {index}-{number}"} <= messages
    # each thread's entries stay in the order it logged them
    for index in range(THREADS):
        mine = [e["message"] for e in entries if e["message"].startswith(f"direct {index}-")]
        assert mine == [f"direct {index}-{number}" for number in range(PER_THREAD)]
    bound = next(e for e in entries if e["message"] == "bound 3-7")
    assert (bound["level"], bound["fields"]) == ("WARNING", {"component": "jobs"})
    named_entry = next(e for e in entries if e["message"] == "named 5-1")
    assert (named_entry["logger"], named_entry["level"]) == ("jobs.mail", "ERROR")
    stdlib_entry = next(e for e in entries if e["message"] == "stdlib 2-9")
    assert stdlib_entry["logger"] == "worker"
    assert logging.getLogger("worker").handlers == [], "close() undid install()"
    assert_settled(logs.get_stats())


def test_close_is_idempotent_from_several_threads_and_the_with_block_closes() -> None:
    backend = RecordingBackend()
    with run_in_thread(Config(backend=backend, async_mode=True)) as logs:
        for number in range(100):
            logs.write_log_threadsafe("info", f"m{number}")
        reports: list[CloseReport] = []
        in_threads(4, lambda _: reports.append(logs.close()))
    assert reports == [CloseReport(100, 0, 0, 0)] * 4
    assert logs.close() == reports[0]
    assert backend.messages == [f"m{number}" for number in range(100)] and backend.closed
    with pytest.raises(ManagerClosedError, match="is closed"):
        logs.write_log_threadsafe("info", "late")


def test_close_with_a_timeout_abandons_what_a_stuck_backend_holds() -> None:
    backend = GateBackend()  # never released: a backend that hangs forever
    logs = run_in_thread(Config(backend=backend, async_mode=True, queue_size=100))
    for number in range(50):
        logs.write_log_threadsafe("info", f"m{number}")
    report = logs.close(timeout=0.2)
    assert (report.written, report.abandoned, report.dropped) == (0, 50, 50)
    assert backend.closed and not logs.thread.is_alive()


async def test_it_refuses_to_start_where_a_loop_runs() -> None:
    with pytest.raises(LogError, match=r"run_in_thread\(\) is for code without a running event"):
        run_in_thread(Config(backend=RecordingBackend()))


def test_a_second_manager_of_the_same_name_is_refused_until_the_first_closes() -> None:
    first = run_in_thread(Config(backend=RecordingBackend(), name="jobs"))
    try:
        with pytest.raises(LogError, match=r"a LogManager named 'jobs' already runs in a thread"):
            run_in_thread(Config(backend=RecordingBackend(), name="jobs"))
        other = run_in_thread(Config(backend=RecordingBackend(), name="mail"))
        other.close()
    finally:
        first.close()
    again = run_in_thread(Config(backend=RecordingBackend(), name="jobs"))
    assert again.running
    again.close()


def test_a_started_manager_is_refused(log_path: Path) -> None:
    logs = run_in_thread(json_config(log_path))
    with pytest.raises(LogError, match="was already started; run_in_thread"):
        run_in_thread(logs.manager)
    logs.close()
    with pytest.raises(LogError, match="was already started; run_in_thread"):
        run_in_thread(logs.manager)


def test_a_backend_that_cannot_open_raises_here_and_frees_the_name() -> None:
    class Unopenable(RecordingBackend):
        async def open(self) -> None:
            raise OSError(13, "Permission denied")

    before = {thread.name for thread in threading.enumerate()}
    with pytest.raises(LogError, match=r"cannot open backend .*Permission denied"):
        run_in_thread(Config(backend=Unopenable(), name="broken"))
    assert {thread.name for thread in threading.enumerate()} == before
    logs = run_in_thread(Config(backend=RecordingBackend(), name="broken"))
    logs.close()


def test_close_from_its_own_thread_is_refused() -> None:
    backend = RecordingBackend()
    logs = run_in_thread(Config(backend=backend, async_mode=True))
    errors: list[BaseException] = []

    def handler(entry: asynclog.LogEntry) -> None:
        try:
            logs.close()
        except LogError as exc:
            errors.append(exc)

    logs.manager.register_handler(handler)
    logs.write_log_threadsafe("info", "one")
    assert logs.close().written == 1
    assert [str(error) for error in errors] == [
        "close() of the manager 'asynclog' was called from its own thread (a handler or "
        "backend); it would wait for itself"
    ]


def test_an_unstarted_manager_can_be_given(log_path: Path) -> None:
    manager = LogManager(json_config(log_path, name="given"))
    logs = run_in_thread(manager)
    assert logs.manager is manager and manager.running and logs.name == "given"
    logs.write_log_threadsafe("error", "from a given manager")
    logs.close()
    assert [json.loads(line)["message"] for line in read_lines(log_path)] == [
        "from a given manager"
    ]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


NEVER_CLOSED = """
    import logging, sys, threading
    import asynclog, asynclog.stdlib
    from asynclog import Config, FileConfig, SQLiteConfig

    kind, path, queue_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    target = FileConfig(file_path=path) if kind == "file" else SQLiteConfig(db_path=path)
    logs = asynclog.run_in_thread(
        Config(backend_config=target, async_mode=True, queue_size=queue_size, put_timeout=30)
    )
    asynclog.stdlib.install(logs, loggers=["job"])

    def work(index):
        for number in range(2000):
            logs.write_log_threadsafe("info", f"t{index} {number}")
            logging.getLogger("job").info("std t%d %d", index, number)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("pending", logs.get_stats().pending, flush=True)
    # no close(): the interpreter exit drains it
"""


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_interpreter_exit_drains_a_manager_nobody_closed(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("app.log" if kind == "file" else "app.db")
    done = run_python(NEVER_CLOSED, kind, str(path), "100000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pending ")
    assert "ResourceWarning" not in done.stderr and "abandoned" not in done.stderr, done.stderr
    expected = {f"t{i} {n}" for i in range(4) for n in range(2000)}
    expected |= {f"std t{i} {n}" for i in range(4) for n in range(2000)}
    if kind == "file":
        messages = [line.split(" ", 3)[3] for line in read_lines(path)]
    else:
        import sqlite3

        with sqlite3.connect(path) as db:
            messages = [row[0] for row in db.execute("SELECT message FROM logs")]
    assert len(messages) == len(expected) and set(messages) == expected


FORKED = """
    import os, sys
    import asynclog
    from asynclog import Config, FileConfig, ManagerClosedError

    parent_log, child_log = sys.argv[1], sys.argv[2]
    logs = asynclog.run_in_thread(Config(backend_config=FileConfig(file_path=parent_log)))
    logs.write_log_threadsafe("info", "parent before fork")
    pid = os.fork()
    if pid == 0:
        try:
            logs.write_log_threadsafe("info", "child through the inherited manager")
        except ManagerClosedError as exc:
            print("child refused:", exc, flush=True)
        print("child close:", logs.close(), "running:", logs.running, flush=True)
        own = asynclog.run_in_thread(Config(backend_config=FileConfig(file_path=child_log)))
        own.write_log_threadsafe("info", "child on its own manager")
        own.close()
        os._exit(0)
    os.waitpid(pid, 0)
    logs.write_log_threadsafe("info", "parent after fork")
    print("parent close:", logs.close(), flush=True)
"""


def test_a_forked_child_does_not_inherit_a_working_manager(tmp_path: Path) -> None:
    parent_log, child_log = tmp_path / "parent.log", tmp_path / "child.log"
    done = run_python(FORKED, str(parent_log), str(child_log))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "child refused: LogManager 'asynclog' was inherited through fork(): this process must "
        "create and start its own LogManager (the parent writes its own entries)",
        "child close: CloseReport(written=0, dropped=0, abandoned=0, dead_lettered=0) "
        "running: False",
        "parent close: CloseReport(written=2, dropped=0, abandoned=0, dead_lettered=0)",
    ]
    assert [line.split(" ", 3)[3] for line in read_lines(parent_log)] == [
        "parent before fork",
        "parent after fork",
    ]
    assert [line.split(" ", 3)[3] for line in read_lines(child_log)] == [
        "child on its own manager"
    ]



def test_asynclog_get_logger_finds_it_and_a_loop_factory_makes_its_loop(log_path: Path) -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        made.append(asyncio.new_event_loop())
        return made[-1]

    # default=True: other tests of the suite may leave managers running
    config = json_config(log_path, name="threaded-default", default=True)
    logs = run_in_thread(config, loop_factory=factory)
    try:
        assert made == [logs.loop]
        log = asynclog.get_logger("jobs")
        assert log.manager is logs.manager
        in_threads(2, lambda index: log.nowait.info("from thread %d", index))
    finally:
        logs.close()
    assert sorted((e["logger"], e["message"]) for e in map(json.loads, read_lines(log_path))) == [
        ("jobs", "from thread 0"),
        ("jobs", "from thread 1"),
    ]


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_uvloop_as_the_loop(log_path: Path) -> None:
    import uvloop

    with run_in_thread(json_config(log_path), loop_factory=uvloop.new_event_loop) as logs:
        assert isinstance(logs.loop, uvloop.Loop)
        in_threads(4, lambda index: logs.nowait.warning("uv %d", index))
    assert sorted(json.loads(line)["message"] for line in read_lines(log_path)) == [
        f"uv {index}" for index in range(4)
    ]


def test_dictconfig_by_name_before_it_starts_as_django_settings_do(
    log_path: Path, clean_logging: None
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "asynclog": {"class": "asynclog.stdlib.AsyncLogHandler", "manager": "site"}
            },
            "root": {"handlers": ["asynclog"], "level": "INFO"},
        }
    )
    logging.getLogger("site.boot").info("settings loaded")  # no manager yet: held
    logs = run_in_thread(json_config(log_path, name="site"))
    in_threads(3, lambda index: logging.getLogger("site.views").info("view %d", index))
    logs.close()
    entries = [json.loads(line) for line in read_lines(log_path)]
    assert (entries[0]["logger"], entries[0]["message"]) == ("site.boot", "settings loaded")
    assert sorted(e["message"] for e in entries[1:]) == [f"view {index}" for index in range(3)]


SIGTERMED = """
    import signal, sys, threading, time
    import asynclog
    from asynclog import Config, FileConfig

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logs = asynclog.run_in_thread(
        Config(backend_config=FileConfig(file_path=sys.argv[1]), queue_size=100000)
    )
    for number in range(5000):
        logs.nowait.info("entry %d", number)
    print("ready", flush=True)
    time.sleep(60)
"""


def test_a_script_that_turns_sigterm_into_an_exit_is_drained(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    script = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGTERMED), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert script.stdout is not None and script.stdout.readline() == "ready\n"
    script.send_signal(signal.SIGTERM)
    _, stderr = script.communicate(timeout=30)
    assert script.returncode == 0, stderr
    assert [line.split(" ", 3)[3] for line in read_lines(path)] == [
        f"entry {number}" for number in range(5000)
    ]
