"""`asynclog.testing.capture_logs` and the `asynclog_capture` pytest fixture."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from asynclog import (
    Config,
    FileConfig,
    Level,
    LogEntry,
    LogManager,
    QueueFullError,
    Sink,
    contextualize,
)
from asynclog.testing import capture_logs

from .conftest import GateBackend, RecordingBackend, assert_settled, message_of, read_lines

pytest_plugins = ["pytester"]


def _summary(entries: list[LogEntry]) -> list[tuple[str, int, str]]:
    return [(entry.logger, entry.level, entry.message) for entry in entries]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_captures_every_manager_in_call_order_and_still_writes(async_mode: bool) -> None:
    before_backend, inside_backend = RecordingBackend(), RecordingBackend()
    before = LogManager(Config(backend=before_backend, async_mode=async_mode, name="before"))
    async with before:
        await before.info("not captured: before the block")
        with capture_logs() as logs:
            assert logs == []
            inside = LogManager(
                Config(backend=inside_backend, async_mode=async_mode, name="inside")
            )
            async with inside:
                for index in range(3):
                    await before.info(f"b{index}", index=index)
                    await inside.warning(f"i{index}")
                await inside.error("last of inside")
            await before.critical("last of before")
        await before.info("not captured: after the block")
    assert all(isinstance(entry, LogEntry) for entry in logs)
    assert _summary(logs) == [
        ("before", Level.INFO, "b0"),
        ("inside", Level.WARNING, "i0"),
        ("before", Level.INFO, "b1"),
        ("inside", Level.WARNING, "i1"),
        ("before", Level.INFO, "b2"),
        ("inside", Level.WARNING, "i2"),
        ("inside", Level.ERROR, "last of inside"),
        ("before", Level.CRITICAL, "last of before"),
    ]
    assert [dict(entry.fields) for entry in logs[:6:2]] == [{"index": i} for i in range(3)]
    # The managers still wrote everything to their backends.
    assert before_backend.messages == [
        "not captured: before the block",
        "b0",
        "b1",
        "b2",
        "last of before",
        "not captured: after the block",
    ]
    assert inside_backend.messages == ["i0", "i1", "i2", "last of inside"]
    # The captured entries are the very entries the backends wrote.
    assert logs[0] == before_backend.entries[1]
    for manager, accepted in ((before, 6), (inside, 4)):
        stats = manager.get_stats()
        assert (stats.accepted, stats.written) == (accepted, accepted)
        assert_settled(stats)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_entries_below_the_level_are_not_captured(async_mode: bool) -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=async_mode, level="WARNING")
    async with LogManager(config) as lm:
        with capture_logs() as logs:
            await lm.debug("debug")
            await lm.info("info")
            await lm.warning("warning")
            await lm.write_log(25, "between info and warning")
            await lm.error("error")
    assert [entry.message for entry in logs] == ["warning", "error"]
    assert backend.messages == ["warning", "error"]
    assert lm.get_stats().filtered == 3


async def test_entries_are_captured_at_the_call_before_they_are_written() -> None:
    backend = GateBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        try:
            with capture_logs() as logs:
                await lm.info("queued")
                await lm.info("queued too")
            assert [entry.message for entry in logs] == ["queued", "queued too"]
            assert backend.entries == []
        finally:
            backend.release()
    assert backend.messages == ["queued", "queued too"]


async def test_nothing_is_captured_after_the_block_and_the_counts_stay_exact(
    log_path: Path,
) -> None:
    config = Config(backend="file", async_mode=True, backend_config=FileConfig(file_path=log_path))
    async with LogManager(config) as lm:
        await lm.info("a")
        with capture_logs() as logs:
            await lm.info("b")
        await lm.info("c")
        with capture_logs() as again:
            await lm.info("d")
        await lm.info("e")
    assert [entry.message for entry in logs] == ["b"]
    assert [entry.message for entry in again] == ["d"]
    assert [message_of(line) for line in read_lines(log_path)] == ["a", "b", "c", "d", "e"]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped) == (5, 5, 0)
    assert_settled(stats)


async def test_nested_captures_both_receive() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        with capture_logs() as outer:
            await lm.info("outer only 1")
            with capture_logs() as inner:
                await lm.info("both 1")
                await lm.info("both 2")
            await lm.info("outer only 2")
        await lm.info("neither")
    assert [entry.message for entry in outer] == [
        "outer only 1",
        "both 1",
        "both 2",
        "outer only 2",
    ]
    assert [entry.message for entry in inner] == ["both 1", "both 2"]
    assert inner[0] is outer[1]
    assert backend.messages == ["outer only 1", "both 1", "both 2", "outer only 2", "neither"]


async def test_the_capture_closes_when_the_block_raises() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        with pytest.raises(RuntimeError), capture_logs() as logs:
            await lm.info("inside")
            raise RuntimeError("test failed")
        await lm.info("outside")
    assert [entry.message for entry in logs] == ["inside"]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_captured_entries_carry_fields_context_bound_and_traceback(
    async_mode: bool,
) -> None:
    async with LogManager(Config(backend=RecordingBackend(), async_mode=async_mode)) as lm:
        with capture_logs() as logs:
            bound = lm.bind(service="api")
            with contextualize(request_id="r1"):
                await bound.info("with fields", user="ann")
                try:
                    raise ValueError("captured boom")
                except ValueError:
                    await lm.exception("failed")
    first, second = logs
    assert dict(first.fields) == {"service": "api", "request_id": "r1", "user": "ann"}
    assert first.exception is None
    assert dict(second.fields) == {"request_id": "r1"}
    assert second.exception is not None
    assert second.exception.endswith("ValueError: captured boom")
    assert "test_captured_entries_carry_fields_context_bound_and_traceback" in second.exception


@pytest.mark.parametrize("async_mode", [True, False])
async def test_an_entry_for_several_backends_is_captured_once(
    tmp_path: Path, async_mode: bool
) -> None:
    errors, everything = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[
            Sink(errors, level="ERROR", name="errors"),
            Sink(everything, name="everything"),
            FileConfig(file_path=tmp_path / "app.log"),
        ],
        async_mode=async_mode,
    )
    async with LogManager(config) as lm:
        with capture_logs() as logs:
            await lm.info("info")
            await lm.error("error")
    assert [entry.message for entry in logs] == ["info", "error"]
    assert everything.messages == ["info", "error"]
    assert errors.messages == ["error"]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_entries_from_other_threads_are_captured(async_mode: bool) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        with capture_logs() as logs:

            def work() -> None:
                for index in range(5):
                    lm.write_log_threadsafe(Level.INFO, f"t{index}")

            thread = threading.Thread(target=work)
            thread.start()
            await asyncio.to_thread(thread.join)
            for _ in range(3):
                await asyncio.sleep(0)
    assert [entry.message for entry in logs] == [f"t{index}" for index in range(5)]
    assert backend.messages == [f"t{index}" for index in range(5)]


async def test_an_entry_refused_for_a_full_queue_was_still_accepted_and_captured() -> None:
    backend = GateBackend()
    config = Config(
        backend=backend, raise_errors=True, async_mode=True, queue_size=2, put_timeout=0.01
    )
    async with LogManager(config) as lm:
        try:
            with capture_logs() as logs:
                await lm.info("m0")
                await asyncio.wait_for(backend.writing.wait(), 1)
                await lm.info("m1")
                await lm.info("m2")
                with pytest.raises(QueueFullError):
                    await lm.info("m3")
            stats = lm.get_stats()
            assert (stats.accepted, stats.dropped) == (4, 1)
        finally:
            backend.release()
    assert [entry.message for entry in logs] == ["m0", "m1", "m2", "m3"]


# ---- the pytest fixture --------------------------------------------------------------------


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("asynclog")
    assert plugin is not None
    assert plugin.__name__ == "asynclog.pytest_plugin"


@pytest.mark.parametrize("async_mode", [True, False])
async def test_the_asynclog_capture_fixture(
    asynclog_capture: list[LogEntry], async_mode: bool
) -> None:
    assert asynclog_capture == []
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode, name="app")) as lm:
        await lm.info("request done", status=200)
        await lm.debug("details")
    assert _summary(asynclog_capture) == [
        ("app", Level.INFO, "request done"),
        ("app", Level.DEBUG, "details"),
    ]
    assert dict(asynclog_capture[0].fields) == {"status": 200}
    assert backend.messages == ["request done", "details"]


INNER_TESTS = """
import asyncio

from asynclog import Config, LogManager
from asynclog.testing import capture_logs

from recording import RecordingBackend

KEPT = []


async def log(*messages):
    async with LogManager(Config(backend=RecordingBackend(), async_mode=True)) as lm:
        for message in messages:
            await lm.info(message)


def test_first(asynclog_capture):
    KEPT.append(asynclog_capture)
    asyncio.run(log("one", "two"))
    assert [entry.message for entry in asynclog_capture] == ["one", "two"]


def test_second_sees_a_fresh_list(asynclog_capture):
    assert asynclog_capture == []
    asyncio.run(log("three"))
    assert [entry.message for entry in asynclog_capture] == ["three"]


def test_third_without_the_fixture_captures_nothing_more():
    asyncio.run(log("four"))
    assert [entry.message for entry in KEPT[0]] == ["one", "two"]
    with capture_logs() as logs:
        pass
    assert logs == []
"""


def test_the_fixture_in_a_fresh_pytest_run_closes_its_capture_at_teardown(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    pytester.makepyfile(recording=Path(__file__).with_name("conftest.py").read_text())
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--trace-config")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*asynclog.pytest_plugin*"])
