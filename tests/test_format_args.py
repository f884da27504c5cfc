"""`%` arguments on every call: `await lm.info("user %s", name)` formats at the call."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from asynclog import Config, Level, LogManager
from asynclog.testing import capture_logs

from .conftest import RecordingBackend, assert_settled


class Counted:
    """Counts how often it is formatted."""

    def __init__(self) -> None:
        self.formatted = 0

    def __str__(self) -> str:
        self.formatted += 1
        return "counted"


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "<RaisingStr>"


class RaisingBoth:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


async def _written(
    *calls: tuple[str, tuple[object, ...]], async_mode: bool = True
) -> list[tuple[str, str | None]]:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        for template, args in calls:
            assert await lm.info(template, *args) is True
    assert_settled(lm.get_stats())
    return [(entry.message, entry.template) for entry in backend.entries]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_every_call_formats_its_args_and_keeps_the_template(async_mode: bool) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        await lm.debug("debug %d", 1)
        await lm.info("info %s and %r", "a", "b")
        await lm.warning("warning %.1f", 2.25)
        await lm.error("error %x", 255)
        await lm.critical("critical %s", None)
        await lm.write_log(Level.INFO, "write_log %s", "w", user="ann")
        try:
            raise ValueError("bad")
        except ValueError:
            await lm.exception("exception %s", "e")
        await lm.bind(request="r1").info("bound %s", "b")
        await lm.get_logger("app.db").warning("named %s", "n")
    assert [(e.message, e.template) for e in backend.entries] == [
        ("debug 1", "debug %d"),
        ("info a and 'b'", "info %s and %r"),
        ("warning 2.2", "warning %.1f"),
        ("error ff", "error %x"),
        ("critical None", "critical %s"),
        ("write_log w", "write_log %s"),
        ("exception e", "exception %s"),
        ("bound b", "bound %s"),
        ("named n", "named %s"),
    ]
    assert dict(backend.entries[5].fields) == {"user": "ann"}
    assert backend.entries[6].exception is not None
    assert dict(backend.entries[7].fields) == {"request": "r1"}
    assert backend.entries[8].logger == "app.db"


async def test_without_args_the_message_is_used_as_is() -> None:
    assert await _written(("100% done, %s and %(x)s stay", ())) == [
        ("100% done, %s and %(x)s stay", None)
    ]


async def test_a_single_mapping_formats_names_as_stdlib_does() -> None:
    assert await _written(
        ("%(user)s has %(count)d", ({"user": "ann", "count": 3},)),
        ("empty mapping: %s", ({},)),  # an empty mapping is an ordinary argument (as stdlib)
        ("two mappings: %s %s", ({"a": 1}, {"b": 2})),
    ) == [
        ("ann has 3", "%(user)s has %(count)d"),
        ("empty mapping: {}", "empty mapping: %s"),
        ("two mappings: {'a': 1} {'b': 2}", "two mappings: %s %s"),
    ]


async def test_the_message_is_what_it_was_at_the_call() -> None:
    backend = RecordingBackend()
    items = ["first"]
    async with LogManager(Config(backend=backend)) as lm:
        await lm.info("items %s", items)  # queued, written later by the worker
        items.append("changed after the call")
    assert backend.messages == ["items ['first']"]


async def test_a_format_error_never_loses_the_entry() -> None:
    written = await _written(
        ("%s%s%s%n", (1,)),
        ("%(x)s", ("a tuple",)),
        ("value %s", (RaisingStr(),)),
        ("%d apples", ("not a number",)),
        ("one %s", (1, 2)),
        ("both %s", (RaisingBoth(),)),
    )
    assert written == [
        (
            "%s%s%s%n <asynclog: format error: TypeError: not enough arguments for format "
            "string> args: (1)",
            "%s%s%s%n",
        ),
        (
            "%(x)s <asynclog: format error: TypeError: format requires a mapping> "
            "args: ('a tuple')",
            "%(x)s",
        ),
        (
            "value %s <asynclog: format error: RuntimeError: no str for you> args: (<RaisingStr>)",
            "value %s",
        ),
        (
            "%d apples <asynclog: format error: TypeError: %d format: a real number is required, "
            "not str> args: ('not a number')",
            "%d apples",
        ),
        (
            "one %s <asynclog: format error: TypeError: not all arguments converted during string "
            "formatting> args: (1, 2)",
            "one %s",
        ),
        (
            "both %s <asynclog: format error: RuntimeError: no str> "
            "args: (<unrepresentable RaisingBoth: RuntimeError>)",
            "both %s",
        ),
    ]


async def test_a_filtered_call_formats_nothing() -> None:
    counted = Counted()
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, level="WARNING")) as lm:
        assert await lm.info("not %s", counted) is False
        assert await lm.write_log("DEBUG", "not %s", counted) is False
        assert await lm.bind(a=1).debug("not %s", counted) is False
        assert await lm.get_logger("x").info("not %s", counted) is False
        lm.write_log_threadsafe("INFO", "not %s", counted)
        await asyncio.to_thread(lm.write_log_threadsafe, "INFO", "not %s", counted)
        for _ in range(5):
            await asyncio.sleep(0)
        assert await lm.warning("yes %s", counted) is True
        assert lm.get_stats().filtered == 4  # a view's filtered level method counts nothing
    assert counted.formatted == 1
    assert backend.messages == ["yes counted"]


async def test_the_bound_applies_to_the_formatted_message() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, max_entry_bytes=256)) as lm:
        await lm.info("long: %s", "x" * 1000)
    (entry,) = backend.entries
    assert entry.message.startswith("long: xxxx")
    assert entry.message.endswith("...[truncated 798 bytes]")
    assert len(entry.message.encode()) <= 256
    assert entry.template == "long: %s"


async def test_threadsafe_calls_format_in_the_calling_thread() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        state = {"step": 1}

        def work() -> None:
            lm.write_log_threadsafe(Level.INFO, "step %(step)d", state)
            state["step"] = 2  # after the call: the entry keeps step 1
            lm.bind(worker="w").write_log_threadsafe("WARNING", "from %s", "a thread")

        await asyncio.to_thread(work)
        for _ in range(5):
            await asyncio.sleep(0)
    assert [(e.message, e.template, dict(e.fields)) for e in backend.entries] == [
        ("step 1", "step %(step)d", {}),
        ("from a thread", "from %s", {"worker": "w"}),
    ]


async def test_captures_and_stdlib_records_carry_the_template() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        from asynclog.stdlib import install

        install(lm, level=logging.DEBUG, loggers=["fmt.test"])
        logging.getLogger("fmt.test").propagate = False  # pytest's handler raises on a bad format
        with capture_logs() as captured:
            await lm.info("captured %s", 1)
        logging.getLogger("fmt.test").info("stdlib %s %d", "rec", 7)
        logging.getLogger("fmt.test").info("stdlib %(k)s", {"k": "mapping"})
        logging.getLogger("fmt.test").info("stdlib bad %d", "x")
        thread = threading.Thread(
            target=logging.getLogger("fmt.test").warning, args=("thread %s", "t")
        )
        thread.start()
        thread.join()
        for _ in range(5):
            await asyncio.sleep(0)
    logging.getLogger("fmt.test").propagate = True
    assert [(e.message, e.template) for e in captured] == [("captured 1", "captured %s")]
    assert [(e.logger, e.message, e.template) for e in backend.entries[1:]] == [
        ("fmt.test", "stdlib rec 7", "stdlib %s %d"),
        ("fmt.test", "stdlib mapping", "stdlib %(k)s"),
        (
            "fmt.test",
            "stdlib bad %d <asynclog: format error: TypeError: %d format: a real number is "
            "required, not str> args: ('x')",
            "stdlib bad %d",
        ),
        ("fmt.test", "thread t", "thread %s"),
    ]
