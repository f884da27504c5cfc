"""Exception capture: `exception()`, `exc_info=`, and how each file format writes a traceback."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import weakref
from pathlib import Path

import pytest

from asynclog import Config, FileBackend, FileConfig, Level, LogEntry, LogManager, contextualize

from .conftest import GateBackend, RecordingBackend, assert_settled, read_lines


class PaymentError(Exception):
    pass


def charge_card(amount: int) -> None:
    raise PaymentError(f"card declined for {amount}")


def _assert_traceback(exception: str | None, *, function: str, message: str) -> None:
    assert exception is not None
    assert exception.startswith("Traceback (most recent call last):\n")
    assert f", in {function}\n" in exception
    assert exception.endswith(message)
    assert not exception.endswith("\n")


async def _settle_handed_over() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_exception_inside_except_captures_the_traceback(async_mode: bool) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        try:
            charge_card(42)
        except PaymentError:
            await lm.exception("payment failed", order=7)
    (entry,) = backend.entries
    assert (entry.level, entry.message, dict(entry.fields)) == (
        Level.ERROR,
        "payment failed",
        {"order": 7},
    )
    _assert_traceback(
        entry.exception,
        function="charge_card",
        message="test_exceptions.PaymentError: card declined for 42",
    )
    assert "test_exception_inside_except_captures_the_traceback" in entry.exception


async def test_exc_info_true_works_on_every_call() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        try:
            charge_card(1)
        except PaymentError:
            await lm.write_log(Level.INFO, "write_log", exc_info=True)
            await lm.write_log("critical", "write_log by name", exc_info=True)
            await lm.debug("debug", exc_info=True)
            await lm.info("info", exc_info=True, user="ann")
            await lm.warning("warning", exc_info=True)
            await lm.error("error", exc_info=True)
            await lm.critical("critical", exc_info=True)
            await lm.bind(service="api").warning("bound", exc_info=True)
            await lm.bind(service="api").exception("bound exception")
    assert [entry.message for entry in backend.entries] == [
        "write_log",
        "write_log by name",
        "debug",
        "info",
        "warning",
        "error",
        "critical",
        "bound",
        "bound exception",
    ]
    for entry in backend.entries:
        _assert_traceback(
            entry.exception,
            function="charge_card",
            message="test_exceptions.PaymentError: card declined for 1",
        )
        assert "exc_info" not in entry.fields
    assert [dict(entry.fields) for entry in backend.entries] == [
        {},
        {},
        {},
        {"user": "ann"},
        {},
        {},
        {},
        {"service": "api"},
        {"service": "api"},
    ]


async def test_exc_info_may_be_an_exception_or_an_exc_info_tuple() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        try:
            charge_card(2)
        except PaymentError as exc:
            caught = exc
            caught_tuple = sys.exc_info()
        try:
            raise KeyError("other")
        except KeyError:
            # The named exception wins over the one being handled.
            await lm.exception("named instead", exc_info=caught)
        # Outside any except block: an instance or a tuple still carries its traceback.
        await lm.warning("instance", exc_info=caught)
        await lm.info("tuple", exc_info=caught_tuple)
        await lm.info("never raised", exc_info=ValueError("not raised"))
    assert backend.messages == ["named instead", "instance", "tuple", "never raised"]
    for entry in backend.entries[:3]:
        _assert_traceback(
            entry.exception,
            function="charge_card",
            message="test_exceptions.PaymentError: card declined for 2",
        )
        assert "KeyError" not in entry.exception
        assert dict(entry.fields) == {}
    assert backend.entries[3].exception == "ValueError: not raised"


async def test_exc_info_outside_except_or_falsy_captures_nothing() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        await lm.info("true outside except", exc_info=True)
        await lm.exception("exception outside except")
        await lm.info("empty tuple", exc_info=(None, None, None))
        await lm.info("false", exc_info=False, user=1)
        await lm.info("none", exc_info=None)
        try:
            charge_card(3)
        except PaymentError:
            await lm.error("false inside except", exc_info=False)
            await lm.exception("exc_info=None inside except", exc_info=None)
    assert [(entry.message, entry.exception) for entry in backend.entries] == [
        ("true outside except", None),
        ("exception outside except", None),
        ("empty tuple", None),
        ("false", None),
        ("none", None),
        ("false inside except", None),
        ("exc_info=None inside except", None),
    ]
    assert [dict(entry.fields) for entry in backend.entries] == [
        {},
        {},
        {},
        {"user": 1},
        {},
        {},
        {},
    ]
    assert backend.entries[1].level == Level.ERROR


async def test_a_bad_exc_info_value_raises_type_error_and_logs_nothing() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        with pytest.raises(TypeError, match="exc_info must be True, an exception"):
            await lm.info("bad", exc_info="yes")
        with pytest.raises(TypeError, match="exc_info must be True, an exception"):
            await lm.exception("bad", exc_info=1.5)
        with pytest.raises(TypeError, match="exc_info must be True, an exception"):
            await lm.bind(service="api").error("bad", exc_info=("a", "b"))
        with pytest.raises(TypeError, match="exc_info must be True, an exception"):
            lm.write_log_threadsafe(Level.INFO, "bad", exc_info="yes")
        errors: list[BaseException] = []

        def from_thread() -> None:
            try:
                lm.write_log_threadsafe(Level.INFO, "bad", exc_info="yes")
            except TypeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=from_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        await _settle_handed_over()
        await lm.info("good")
    assert len(errors) == 1 and "exc_info must be True" in str(errors[0])
    assert backend.messages == ["good"]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written) == (1, 1)


async def test_the_traceback_is_formatted_at_the_call_not_kept_alive() -> None:
    backend = GateBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:

        class Frame:
            pass

        async def handler() -> weakref.ref[Frame]:
            local = Frame()  # referenced only by this frame
            try:
                charge_card(4)
            except PaymentError:
                await lm.exception("queued with a traceback")
            return weakref.ref(local)

        frame_local = await handler()
        gc.collect()
        # The queued entry holds the text, not the traceback object and its frames.
        assert frame_local() is None
        assert backend.entries == []
        backend.release()
    (entry,) = backend.entries
    assert isinstance(entry.exception, str)
    _assert_traceback(
        entry.exception,
        function="charge_card",
        message="test_exceptions.PaymentError: card declined for 4",
    )
    assert ", in handler\n" in entry.exception


@pytest.mark.parametrize("async_mode", [True, False])
async def test_write_log_threadsafe_captures_the_traceback_in_the_thread(
    async_mode: bool,
) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:

        def thread_job() -> None:
            try:
                charge_card(5)
            except PaymentError:
                lm.write_log_threadsafe(Level.ERROR, "in thread", exc_info=True, job=1)
                lm.bind(service="pool").write_log_threadsafe(
                    Level.WARNING, "bound in thread", exc_info=True
                )
                with contextualize(request_id="r9"):
                    lm.write_log_threadsafe(Level.ERROR, "with context", exc_info=True)
            lm.write_log_threadsafe(Level.INFO, "after except", exc_info=True)

        thread = threading.Thread(target=thread_job)
        thread.start()
        await asyncio.to_thread(thread.join)
        await _settle_handed_over()
    assert backend.messages == ["in thread", "bound in thread", "with context", "after except"]
    for entry in backend.entries[:3]:
        _assert_traceback(
            entry.exception,
            function="charge_card",
            message="test_exceptions.PaymentError: card declined for 5",
        )
        assert ", in thread_job\n" in entry.exception
        assert "exc_info" not in entry.fields
    assert [dict(entry.fields) for entry in backend.entries] == [
        {"job": 1},
        {"service": "pool"},
        {"request_id": "r9"},
        {},
    ]
    assert backend.entries[3].exception is None
    assert_settled(lm.get_stats())


async def test_chained_exceptions_and_broken_str_are_formatted() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        try:
            try:
                charge_card(6)
            except PaymentError as exc:
                raise LookupError("order lookup failed") from exc
        except LookupError:
            await lm.exception("chained")
        try:
            raise Unprintable()
        except Unprintable:
            await lm.exception("unprintable")
    chained, unprintable = backend.entries
    assert chained.exception is not None
    assert "PaymentError: card declined for 6" in chained.exception
    assert "The above exception was the direct cause of the following exception" in (
        chained.exception
    )
    assert chained.exception.endswith("LookupError: order lookup failed")
    assert unprintable.exception is not None
    assert "Unprintable" in unprintable.exception
    assert unprintable.message == "unprintable"


# ---- in the files --------------------------------------------------------------------------


async def _log_three(lm: LogManager, message: str) -> None:
    await lm.info("before")
    try:
        raise ValueError(message)
    except ValueError:
        await lm.exception("failed", order=1)
    await lm.info("after")


def _records(lines: list[str]) -> list[list[str]]:
    """Group a text-format file into records: a first line and its continuation lines."""
    records: list[list[str]] = []
    for line in lines:
        if line.startswith(" "):
            records[-1].append(line)
        else:
            records.append([line])
    return records


@pytest.mark.parametrize("async_mode", [True, False])
async def test_text_file_writes_the_traceback_as_indented_continuation_lines(
    log_path: Path, async_mode: bool
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        backend_config=FileConfig(file_path=log_path),
        name="svc",
    )
    async with LogManager(config) as lm:
        await _log_three(lm, "plain message")
    records = _records(read_lines(log_path))
    assert len(records) == 3
    before, failed, after = records
    assert before == [before[0]] and before[0].endswith(" INFO svc before")
    assert after == [after[0]] and after[0].endswith(" INFO svc after")
    assert failed[0].endswith(" ERROR svc failed order=1")
    continuation = failed[1:]
    assert all(line.startswith("    ") for line in continuation)
    unindented = [line[4:] for line in continuation]
    assert unindented[0] == "Traceback (most recent call last):"
    assert any(", in _log_three" in line for line in unindented)
    assert unindented[-1] == "ValueError: plain message"
    assert_settled(lm.get_stats())


async def test_text_file_escapes_newlines_and_controls_inside_a_traceback(log_path: Path) -> None:
    config = Config(backend="file", backend_config=FileConfig(file_path=log_path), name="svc")
    async with LogManager(config) as lm:
        await _log_three(
            lm, "line one\nforged 2026-01-01T00:00:00Z INFO svc fake\r\x1b[2Jend\u2028x"
        )
    lines = read_lines(log_path)
    records = _records(lines)
    assert [record[0].split(" ", 2)[1:] for record in records] == [
        ["INFO", "svc before"],
        ["ERROR", "svc failed order=1"],
        ["INFO", "svc after"],
    ]
    continuation = records[1][1:]
    assert all(line.startswith("    ") for line in continuation)
    # The message's newline splits it into two continuation lines; the rest is escaped.
    assert continuation[-2:] == [
        "    ValueError: line one",
        "    forged 2026-01-01T00:00:00Z INFO svc fake\\r\\x1b[2Jend\\u2028x",
    ]
    for line in lines:
        assert line.isprintable(), repr(line)


async def test_text_file_keeps_a_record_whose_traceback_lines_hold_controls(
    log_path: Path,
) -> None:
    # A hand-made exception text with CR, NUL and NEL, written by the file backend itself.
    backend = FileBackend(FileConfig(file_path=log_path))
    await backend.open()
    await backend.write_batch(
        [
            LogEntry(0.0, Level.ERROR, "msg", "svc", exception="Traceback:\n  a\r\n  b\x00\n\x85c"),
            LogEntry(1.0, Level.INFO, "next", "svc"),
        ]
    )
    await backend.close()
    assert read_lines(log_path) == [
        "1970-01-01T00:00:00.000000Z ERROR svc msg",
        "    Traceback:",
        "      a\\r",
        "      b\\x00",
        "    \\x85c",
        "1970-01-01T00:00:01.000000Z INFO svc next",
    ]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_json_file_writes_the_traceback_under_exception(
    log_path: Path, async_mode: bool
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        backend_config=FileConfig(file_path=log_path, format="json"),
        name="svc",
    )
    async with LogManager(config) as lm:
        await _log_three(lm, "json\nmessage")
    lines = read_lines(log_path)
    assert len(lines) == 3
    before, failed, after = (json.loads(line) for line in lines)
    assert before["exception"] is None and after["exception"] is None
    assert (failed["level"], failed["message"], failed["fields"]) == (
        "ERROR",
        "failed",
        {"order": 1},
    )
    _assert_traceback(
        failed["exception"]["stack"], function="_log_three", message="ValueError: json\nmessage"
    )


@pytest.mark.parametrize("async_mode", [True, False])
async def test_logfmt_file_writes_the_traceback_as_one_quoted_value(
    log_path: Path, async_mode: bool
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        backend_config=FileConfig(file_path=log_path, format="logfmt"),
        name="svc",
    )
    async with LogManager(config) as lm:
        await _log_three(lm, 'logfmt "quoted"\nmessage')
    lines = read_lines(log_path)
    assert len(lines) == 3
    assert "exception=" not in lines[0] and "exception=" not in lines[2]
    failed = lines[1]
    assert ' level=error logger=svc msg=failed order=1 exception="Traceback (most recent ' in (
        failed
    )
    value = failed.split(" exception=", 1)[1]
    assert value.startswith('"') and value.endswith('"')
    assert "\\n" in value and "\n" not in value
    assert ", in _log_three\\n" in value
    assert value.endswith('ValueError: logfmt \\"quoted\\"\\nmessage"')
