"""DirectLogger: the loggers `install()` names skip logging's LogRecord when asynclog alone takes
their calls, and write exactly the entries the record's way writes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asynclog import Config, Location, LogEntry, LogManager
from asynclog.stdlib import AsyncLogHandler, DirectLogger, install

from .conftest import RecordingBackend, assert_settled

ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'
ACCESS_ARGS = ("127.0.0.1:50000", "GET", "/hello?user=ada", "1.1", 200)
BAD_FORMAT = (
    "%d items <asynclog: format error: TypeError: %d format: a real number is required, not str>"
    " args: ('many')"
)


class RecordCount:
    def __init__(self) -> None:
        self.made = 0


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordCount]:
    """Counts the LogRecords logging makes (in `LogRecord.__init__`: a patched
    `Logger.makeRecord` would make every call take the record's way)."""
    count = RecordCount()
    init = logging.LogRecord.__init__

    def counting(self: logging.LogRecord, *args: Any, **kwargs: Any) -> None:
        count.made += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(logging.LogRecord, "__init__", counting)
    yield count


@pytest.fixture
def fresh_logger() -> Iterator[Callable[[str], logging.Logger]]:
    """Loggers under `direct.` for one test, left without handlers, filters or levels."""
    made: list[logging.Logger] = []

    def make(name: str) -> logging.Logger:
        logger = logging.getLogger(f"direct.{name}")
        logger.propagate = False  # as uvicorn's access logger: the root has pytest's handlers
        made.append(logger)
        return logger

    yield make
    for logger in made:
        logger.handlers.clear()
        logger.filters.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False


def _calls(log: logging.Logger) -> None:
    log.info(ACCESS_FORMAT, *ACCESS_ARGS)
    log.warning("user %(user)s from %(region)s", {"user": "ada", "region": "eu"})
    log.log(25, "a custom level")
    log.info(42)  # not a str: logging's str(msg)
    log.info("%d items", "many")  # a bad format: reported in the message, not raised
    log.debug("below the logger's level")


def _shape(entry: LogEntry) -> tuple[Any, ...]:
    return (
        entry.level,
        entry.logger,
        entry.message,
        entry.template,
        dict(entry.fields),
        entry.exception,
        entry.location,
    )


async def test_install_makes_the_named_loggers_direct_and_close_puts_them_back(
    fresh_logger: Callable[[str], logging.Logger],
) -> None:
    class Mine(logging.Logger):
        pass

    plain = fresh_logger("plain")
    mine = Mine("direct.mine")
    logging.Logger.manager.loggerDict["direct.mine"] = mine
    try:
        async with LogManager(Config(backend=RecordingBackend(), async_mode=True)) as lm:
            install(lm, loggers=["direct.plain", "direct.mine"], replace=True)
            assert type(plain) is DirectLogger
            assert type(mine) is Mine  # a class of the user's is left alone
            assert type(logging.getLogger()) is logging.RootLogger
        assert type(plain) is logging.Logger
    finally:
        del logging.Logger.manager.loggerDict["direct.mine"]


async def test_a_direct_call_makes_no_record_and_writes_what_the_record_way_writes(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    direct, by_record = fresh_logger("a"), fresh_logger("b")
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        install(lm, level="DEBUG", loggers=[direct.name, by_record.name], replace=True)
        direct.setLevel(logging.INFO)
        by_record.setLevel(logging.INFO)
        by_record.addFilter(lambda record: True)  # a filter needs the record
        before = time.time()
        _calls(direct)
        assert records.made == 0
        _calls(by_record)
        assert records.made == 5
        after = time.time()
    assert_settled(lm.get_stats())
    first, second = backend.entries[:5], backend.entries[5:]
    assert [(e.level, e.logger, e.message) for e in first] == [
        (20, "direct.a", '127.0.0.1:50000 - "GET /hello?user=ada HTTP/1.1" 200'),
        (30, "direct.a", "user ada from eu"),
        (25, "direct.a", "a custom level"),
        (20, "direct.a", "42"),
        (20, "direct.a", BAD_FORMAT),
    ]
    assert [e.template for e in first] == [
        ACCESS_FORMAT,
        "user %(user)s from %(region)s",
        None,
        None,
        "%d items",
    ]
    # The same entries as logging's own way gives, but for the logger's name and the time.
    assert [_shape(e)[0:1] + _shape(e)[2:] for e in first] == [
        _shape(e)[0:1] + _shape(e)[2:] for e in second
    ]
    assert all(before <= e.timestamp <= after for e in backend.entries)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _one_call(
    records: RecordCount,
    log: logging.Logger,
    call: Callable[[logging.Logger], None],
    prepare: Callable[[AsyncLogHandler], None] = lambda handler: None,
    **options: Any,
) -> list[LogEntry]:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True, **options)) as lm:
        prepare(install(lm, level="INFO", loggers=[log.name], replace=True).handler)
        assert type(log) is DirectLogger
        call(log)
    assert_settled(lm.get_stats())
    return backend.entries


async def test_a_filter_on_the_logger_gets_the_record_and_may_change_it(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    log = fresh_logger("filtered")

    def rename(record: logging.LogRecord) -> bool:
        record.msg = "renamed " + str(record.msg)
        return record.levelno >= logging.WARNING

    log.addFilter(rename)
    entries = await _one_call(records, log, lambda log: (log.info("a"), log.warning("b")))
    assert records.made == 2
    assert [e.message for e in entries] == ["renamed b"]


async def test_a_filter_on_the_handler_or_its_level_takes_the_record_way(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    log = fresh_logger("handler")

    def prepare(handler: AsyncLogHandler) -> None:
        handler.addFilter(lambda record: "keep" in record.getMessage())

    entries = await _one_call(
        records, log, lambda log: (log.info("keep 1"), log.info("drop 2")), prepare=prepare
    )
    assert records.made == 2
    assert [e.message for e in entries] == ["keep 1"]

    entries = await _one_call(
        records,
        log,
        lambda log: (log.info("below"), log.error("above")),
        prepare=lambda handler: handler.setLevel(logging.WARNING),
    )
    assert records.made == 3  # "below" made its record for nothing; "above" went direct
    assert [e.message for e in entries] == ["above"]


async def test_another_handler_on_the_way_to_the_root_gets_the_record_too(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    log, parent = fresh_logger("child"), logging.getLogger("direct")
    log.propagate = True
    parent.propagate = False
    other = ListHandler()
    parent.addHandler(other)
    try:
        entries = await _one_call(records, log, lambda log: log.info("to %s", "both"))
    finally:
        parent.removeHandler(other)
        parent.propagate = True
    assert records.made == 1
    assert [e.message for e in entries] == other.messages == ["to both"]


async def test_exc_info_extra_and_stack_info_take_the_record_way(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    def calls(log: logging.Logger) -> None:
        try:
            raise KeyError("k")
        except KeyError:
            log.exception("failed")
        log.info("with extra", extra={"user": "ada"})
        log.info("with stack", stack_info=True)

    entries = await _one_call(records, fresh_logger("keywords"), calls)
    assert records.made == 3
    assert [e.message for e in entries] == ["failed", "with extra", "with stack"]
    assert entries[0].exception is not None and entries[0].exception.endswith("KeyError: 'k'")
    assert [dict(e.fields) for e in entries] == [{}, {"user": "ada"}, {}]
    assert entries[2].exception is not None
    assert entries[2].exception.startswith("Stack (most recent call last):")


async def test_a_custom_record_factory_still_makes_its_records(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.request_id = "r-1"
        return record

    logging.setLogRecordFactory(factory)
    try:
        entries = await _one_call(records, fresh_logger("factory"), lambda log: log.info("x"))
    finally:
        logging.setLogRecordFactory(make)
    assert records.made == 1
    assert [(e.message, dict(e.fields)) for e in entries] == [("x", {"request_id": "r-1"})]


async def test_capture_location_takes_the_record_and_its_call_site(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    def call(log: logging.Logger) -> None:
        log.info("here")

    entries = await _one_call(records, fresh_logger("where"), call, capture_location=True)
    assert records.made == 1
    line = call.__code__.co_firstlineno + 1
    assert [(e.message, e.location) for e in entries] == [
        ("here", Location(__name__.rpartition(".")[2], "call", line))
    ]


async def test_a_disabled_logger_logs_nothing(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    log = fresh_logger("disabled")
    log.disabled = True
    assert await _one_call(records, log, lambda log: log.warning("no")) == []
    assert records.made == 0


async def test_calls_before_the_manager_starts_are_held_and_come_first(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    log = fresh_logger("early")
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, async_mode=True))
    install(lm, level="INFO", loggers=[log.name], replace=True)
    log.info("early %d", 1)
    assert records.made == 1  # held as a record until the manager runs
    async with lm:
        log.info("late %d", 2)
    assert records.made == 1
    assert backend.messages == ["early 1", "late 2"]
    assert type(log) is logging.Logger  # close undid install()


async def test_calls_from_other_threads_go_direct_and_keep_their_order(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    log = fresh_logger("threads")

    def calls(log: logging.Logger) -> None:
        def work(name: str) -> None:
            for index in range(200):
                log.info("%s %d", name, index)

        threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    entries = await _one_call(records, log, calls, overflow="block")
    assert records.made == 0
    for name in ("t0", "t1", "t2"):
        mine = [e.message for e in entries if e.message.startswith(name + " ")]
        assert mine == [f"{name} {index}" for index in range(200)]
    assert len(entries) == 600


async def test_a_direct_call_formatted_past_the_bound_is_cut_as_the_record_way_cuts_it(
    records: RecordCount, fresh_logger: Callable[[str], logging.Logger]
) -> None:
    # The template is short enough for the quick way; formatted, the message is not: the call
    # takes `accept`, which cuts it to `max_entry_bytes` with its marker.
    direct, by_record = fresh_logger("long_a"), fresh_logger("long_b")
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=True, max_entry_bytes=256)
    async with LogManager(config) as lm:
        install(lm, loggers=[direct.name, by_record.name], replace=True)
        by_record.addFilter(lambda record: True)  # a filter needs the record
        direct.info("path %s", "x" * 1000)
        assert records.made == 0
        by_record.info("path %s", "x" * 1000)
        assert records.made == 1
    assert_settled(lm.get_stats())
    mine, theirs = backend.entries
    assert mine.message == theirs.message
    assert mine.message.startswith("path xxx") and mine.message.endswith("...[truncated 797 bytes]")
    assert len(mine.message.encode()) <= 256
    assert (mine.template, mine.logger) == ("path %s", "direct.long_a")
