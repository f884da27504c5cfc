"""asynclog.structlog with the real structlog: entries reach a file with exact contents."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import asynclog.structlog
from asynclog import Config, FileConfig, Level, LogError, LogManager, contextualize, run_in_thread
from asynclog.structlog import BoundLogger, LoggerFactory, render_entry

from .conftest import GateBackend, RecordingBackend, read_lines

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def json_config(path: Path, **options: Any) -> Config:
    options.setdefault("async_mode", True)
    return Config(
        backend_config=FileConfig(file_path=path, format="json"), name="app", **options
    )


def entries_of(path: Path) -> list[dict[str, Any]]:
    """The JSON entries without their timestamps."""
    entries = [json.loads(line) for line in read_lines(path)]
    for entry in entries:
        assert entry.pop("timestamp").endswith("Z")
    return entries


def entry(
    level: str,
    message: str,
    fields: dict[str, Any] | None = None,
    logger: str = "app",
    exception: str | None = None,
) -> dict[str, Any]:
    return {
        "level": level,
        "logger": logger,
        "message": message,
        "fields": fields or {},
        "exception": exception,
    }


async def test_sync_and_awaited_calls_with_bound_values_and_contextvars(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(lm)
        log = structlog.get_logger("shop").bind(user="ada")
        structlog.contextvars.bind_contextvars(request_id="r-1")
        assert log.info("order placed", order_id=42) is True
        assert await log.ainfo("paid", amount=9.5) is True
        with contextualize(tenant="acme"):
            assert log.warning("slow", ms=250) is True
            assert await log.aerror("failed", code=3) is True
        log.unbind("user").critical("bare")
        await log.new(job=7).adebug("restarted")
        log.msg("as msg")
        log.warn("as warn")
        await log.afatal("as fatal")
        assert log.log(25, "custom level") is True
        await log.alog("warning", "alog by name")
    r = {"request_id": "r-1"}
    assert entries_of(log_path) == [
        entry("INFO", "order placed", {"user": "ada", "order_id": 42, **r}, "shop"),
        entry("INFO", "paid", {"user": "ada", "amount": 9.5, **r}, "shop"),
        entry("WARNING", "slow", {"user": "ada", "ms": 250, **r, "tenant": "acme"}, "shop"),
        entry("ERROR", "failed", {"user": "ada", "code": 3, **r, "tenant": "acme"}, "shop"),
        entry("CRITICAL", "bare", r, "shop"),
        entry("DEBUG", "restarted", {"job": 7, **r}, "shop"),
        # new() clears the logger's own context in place (structlog's semantics)
        entry("INFO", "as msg", r, "shop"),
        entry("WARNING", "as warn", r, "shop"),
        entry("CRITICAL", "as fatal", r, "shop"),
        entry("Level 25", "custom level", r, "shop"),
        entry("WARNING", "alog by name", r, "shop"),
    ]


async def test_positional_arguments_format_the_event_as_structlog_does(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(lm)
        log = structlog.get_logger()
        log.info("user %s logged in %d times", "ada", 3)
        await log.ainfo("by key: %(user)s", {"user": "bob"})
        log.info("no args keeps %s as it is")
        assert log.info("no placeholder", "two", "args") is True  # never raises: a marker
    assert [e["message"] for e in entries_of(log_path)] == [
        "user ada logged in 3 times",
        "by key: bob",
        "no args keeps %s as it is",
        "no placeholder <asynclog: format error: TypeError: not all arguments converted "
        "during string formatting> args: ('two', 'args')",
    ]
    assert {e["logger"] for e in entries_of(log_path)} == {"app"}, "no name: the manager's"


def boom() -> None:
    raise ValueError("bad input")


async def test_exceptions_become_the_entry_traceback(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(lm)
        log = structlog.get_logger("jobs")
        try:
            boom()
        except ValueError as exc:
            log.exception("sync exception")
            await log.aexception("awaited exception", job=1)
            await log.aerror("exc_info=True", exc_info=True)
            caught = exc
        log.error("an exception instance", exc_info=caught)
        log.exception("outside except: no traceback")
    entries = entries_of(log_path)
    assert [(e["message"], e["level"], e["fields"]) for e in entries] == [
        ("sync exception", "ERROR", {}),
        ("awaited exception", "ERROR", {"job": 1}),
        ("exc_info=True", "ERROR", {}),
        ("an exception instance", "ERROR", {}),
        ("outside except: no traceback", "ERROR", {}),
    ]
    for logged in entries[:4]:
        assert logged["exception"]["stack"].startswith("Traceback (most recent call last):\n")
        assert 'in boom\n    raise ValueError("bad input")' in logged["exception"]["stack"]
        assert logged["exception"]["stack"].endswith("\nValueError: bad input")
    assert entries[4]["exception"] is None


async def test_structlog_processors_that_render_exceptions_and_names(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(
            lm,
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,  # "level" is dropped: the entry has its own
                structlog.processors.format_exc_info,  # "exception" becomes the traceback
            ],
        )
        log = structlog.get_logger("billing")
        try:
            boom()
        except ValueError:
            log.exception("rendered by structlog")
        log.info("named explicitly", logger_name="billing.invoices")
    entries = entries_of(log_path)
    assert entries[0]["exception"]["stack"].endswith("ValueError: bad input")
    assert (entries[0]["logger"], entries[0]["fields"]) == ("billing", {})
    assert entries[1] == entry("INFO", "named explicitly", {}, "billing.invoices")


async def test_add_logger_name_and_callsite_fields(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(
            lm,
            processors=[
                structlog.stdlib.add_logger_name,
                structlog.processors.CallsiteParameterAdder(
                    [structlog.processors.CallsiteParameter.FUNC_NAME]
                ),
            ],
        )
        structlog.get_logger("named").info("hello")
        await structlog.get_logger("named").ainfo("awaited")
        structlog.get_logger("named").info("own level", level="high")  # not a level name
    here = {"func_name": "test_add_logger_name_and_callsite_fields"}
    assert entries_of(log_path) == [
        entry("INFO", "hello", here, "named"),
        entry("INFO", "awaited", here, "named"),
        entry("INFO", "own level", {"level": "high", **here}, "named"),
    ]


async def test_levels_below_the_manager_skip_the_processors(log_path: Path) -> None:
    seen: list[str] = []

    def spy(logger: object, method_name: str, event_dict: Any) -> Any:
        seen.append(method_name)
        return event_dict

    async with LogManager(json_config(log_path, level=Level.INFO)) as lm:
        asynclog.structlog.configure(lm, processors=[spy])
        log = structlog.get_logger()
        assert log.debug("not wanted") is False
        assert await log.adebug("not wanted either") is False
        assert log.info("wanted") is True
    assert seen == ["info"]
    assert [e["message"] for e in entries_of(log_path)] == ["wanted"]


async def test_a_processor_dropping_the_event(log_path: Path) -> None:
    def drop_health(logger: object, method_name: str, event_dict: Any) -> Any:
        if event_dict.get("path") == "/health":
            raise structlog.DropEvent
        return event_dict

    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(lm, processors=[drop_health])
        log = structlog.get_logger()
        assert log.info("request", path="/health") is False
        assert await log.ainfo("request", path="/health") is False
        assert await log.ainfo("request", path="/orders") is True
    assert entries_of(log_path) == [entry("INFO", "request", {"path": "/orders"})]


async def test_another_final_processor_renders_the_message(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        structlog.configure(
            processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
            wrapper_class=BoundLogger,
            logger_factory=LoggerFactory(lm),
        )
        log = structlog.get_logger("kv")
        log.warning("rendered", a=1)
        await log.ainfo("awaited", b=2)
    assert entries_of(log_path) == [
        entry("WARNING", "event='rendered' a=1", {}, "kv"),
        entry("INFO", "event='awaited' b=2", {}, "kv"),
    ]


async def test_structlogs_own_filtering_logger_with_our_factory(log_path: Path) -> None:
    async with LogManager(json_config(log_path)) as lm:
        structlog.configure(
            processors=[structlog.contextvars.merge_contextvars, render_entry],
            wrapper_class=structlog.make_filtering_bound_logger(Level.INFO),
            logger_factory=LoggerFactory(lm),
        )
        log = structlog.get_logger("native")
        log.debug("filtered by structlog")
        log.info("sync %s", "native")
        await log.ainfo("awaited through structlog's thread pool")  # our logger, another thread
        log.exception("no exception here")
    assert entries_of(log_path) == [
        entry("INFO", "sync native", {}, "native"),
        entry("INFO", "awaited through structlog's thread pool", {}, "native"),
        entry("ERROR", "no exception here", {}, "native"),
    ]


async def test_awaiting_from_another_thread_is_refused_and_sync_calls_work(
    log_path: Path,
) -> None:
    async with LogManager(json_config(log_path)) as lm:
        asynclog.structlog.configure(lm)
        log = structlog.get_logger("threads")
        errors: list[BaseException] = []

        def in_thread() -> None:
            log.info("from a thread", n=1)
            try:
                asyncio.run(log.ainfo("awaited on another loop"))
            except LogError as exc:
                errors.append(exc)

        await asyncio.to_thread(in_thread)
    assert [type(error) for error in errors] == [LogError]
    assert "called from a thread other than the one" in str(errors[0])
    assert entries_of(log_path) == [entry("INFO", "from a thread", {"n": 1}, "threads")]


def test_a_sync_program_logs_through_run_in_thread(log_path: Path) -> None:
    logs = run_in_thread(json_config(log_path))
    asynclog.structlog.configure(logs, cache_logger_on_first_use=True)
    log = structlog.get_logger("sync")

    def work(index: int) -> None:
        structlog.contextvars.bind_contextvars(thread=index)
        for number in range(200):
            log.info("step %d", number, n=number)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logs.close().written == 800
    entries = entries_of(log_path)
    for index in range(4):
        mine = [e for e in entries if e["fields"]["thread"] == index]
        assert mine == [
            entry("INFO", f"step {n}", {"n": n, "thread": index}, "sync") for n in range(200)
        ]


def test_factory_and_import_errors() -> None:
    with pytest.raises(TypeError, match="LoggerFactory needs a LogManager, got 'app'"):
        LoggerFactory("app")  # type: ignore[arg-type]
    structlog.configure(
        wrapper_class=BoundLogger, logger_factory=structlog.PrintLoggerFactory()
    )
    with pytest.raises(TypeError, match=r"writes through the loggers of asynclog\.structlog"):
        structlog.get_logger().info("where to?")
    code = (
        "import sys; sys.modules['structlog'] = None\n"
        "import asynclog\n"
        "try:\n"
        "    import asynclog.structlog\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "asynclog.structlog needs structlog: pip install 'asynclog[structlog]'\n"
    assert "structlog" not in subprocess.run(
        [sys.executable, "-c", "import sys, asynclog; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout


async def test_levels_by_logger_name_apply_before_the_processors(log_path: Path) -> None:
    seen: list[str] = []

    def spy(logger: object, method_name: str, event_dict: Any) -> Any:
        seen.append(f"{event_dict['event']}")
        return event_dict

    config = json_config(log_path, level="DEBUG", levels={"noisy": "WARNING"})
    async with LogManager(config) as lm:
        asynclog.structlog.configure(lm, processors=[spy])
        noisy, quiet = structlog.get_logger("noisy.db"), structlog.get_logger("app.web")
        assert noisy.info("chatter") is False and await noisy.ainfo("more chatter") is False
        assert noisy.warning("matters") is True
        assert quiet.debug("details") is True
        lm.set_level("noisy", "DEBUG")
        assert noisy.debug("now wanted") is True
    assert seen == ["matters", "details", "now wanted"]
    assert [(e["logger"], e["message"]) for e in entries_of(log_path)] == [
        ("noisy.db", "matters"),
        ("app.web", "details"),
        ("noisy.db", "now wanted"),
    ]


async def test_a_sync_call_on_the_loop_drops_when_the_queue_is_full() -> None:
    backend = GateBackend()  # stalled: the queue fills
    async with LogManager(Config(backend=backend, async_mode=True, queue_size=10)) as lm:
        asynclog.structlog.configure(lm)
        log = structlog.get_logger("burst")
        try:
            outcomes = [log.info("entry %d", number) for number in range(15)]
            dropped = lm.get_stats().dropped
        finally:
            backend.release()
    assert outcomes == [True] * 10 + [False] * 5  # nothing yielded: the worker took none
    assert dropped == 5
    assert backend.messages[0].startswith("asynclog dropped 5 entries between ")  # in-band
    assert backend.messages[1:] == [f"entry {number}" for number in range(10)]


async def test_entries_keep_the_template_of_their_arguments() -> None:
    def shout(logger: object, method_name: str, event_dict: Any) -> Any:
        if event_dict.get("shout"):
            event_dict["event"] = event_dict["event"].upper()
        return event_dict

    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        asynclog.structlog.configure(lm, processors=[shout])
        log = structlog.get_logger()
        log.info("user %s", "ada")
        await log.ainfo("order %(id)s", {"id": 7})
        await asyncio.to_thread(log.warning, "from thread %d", 3)
        log.info("changed %s", "by a processor", shout=True)
        log.info("no arguments")
    assert [(entry.message, entry.template) for entry in backend.entries] == [
        ("user ada", "user %s"),
        ("order 7", "order %(id)s"),
        ("from thread 3", "from thread %d"),
        ("CHANGED BY A PROCESSOR", None),
        ("no arguments", None),
    ]
