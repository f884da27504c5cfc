"""`bind` views, `contextualize` blocks, and which fields win when both apply."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from types import MappingProxyType

import pytest

from asynclog import (
    BoundLogger,
    Config,
    FileConfig,
    Level,
    LogManager,
    contextualize,
    current_context,
)

from .conftest import RecordingBackend, assert_settled, read_lines


async def _settle_handed_over() -> None:
    """Let the loop run the callbacks `write_log_threadsafe` scheduled."""
    for _ in range(3):
        await asyncio.sleep(0)


# ---- bind ----------------------------------------------------------------------------------


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_bound_view_has_every_logging_method_and_adds_its_fields(async_mode: bool) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        bound = lm.bind(service="api", region="eu")
        assert isinstance(bound, BoundLogger)
        assert bound.manager is lm
        assert dict(bound.fields) == {"service": "api", "region": "eu"}
        await bound.write_log(Level.INFO, "write_log", extra=1)
        await bound.write_log("warning", "write_log by name")
        await bound.debug("debug")
        await bound.info("info")
        await bound.warning("warning")
        await bound.error("error")
        await bound.critical("critical")
        try:
            raise RuntimeError("bound boom")
        except RuntimeError:
            await bound.exception("exception")
        bound.write_log_threadsafe(Level.INFO, "threadsafe", extra=2)
        await _settle_handed_over()
        await lm.info("plain")
    assert [(entry.level, entry.message) for entry in backend.entries] == [
        (Level.INFO, "write_log"),
        (Level.WARNING, "write_log by name"),
        (Level.DEBUG, "debug"),
        (Level.INFO, "info"),
        (Level.WARNING, "warning"),
        (Level.ERROR, "error"),
        (Level.CRITICAL, "critical"),
        (Level.ERROR, "exception"),
        (Level.INFO, "threadsafe"),
        (Level.INFO, "plain"),
    ]
    bound_fields = {"service": "api", "region": "eu"}
    assert [dict(entry.fields) for entry in backend.entries] == [
        {**bound_fields, "extra": 1},
        *[bound_fields] * 7,
        {**bound_fields, "extra": 2},
        {},
    ]
    exception = backend.entries[7].exception
    assert exception is not None
    assert "RuntimeError: bound boom" in exception
    assert "test_a_bound_view_has_every_logging_method_and_adds_its_fields" in exception
    assert all(entry.logger == "asynclog" for entry in backend.entries)
    assert_settled(lm.get_stats())


async def test_binding_again_adds_fields_and_leaves_the_original_unchanged() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        base = lm.bind(service="api", region="eu")
        child = base.bind(region="us", user=7)
        grandchild = child.bind(step="auth")
        assert dict(base.fields) == {"service": "api", "region": "eu"}
        assert dict(child.fields) == {"service": "api", "region": "us", "user": 7}
        assert dict(grandchild.fields) == {
            "service": "api",
            "region": "us",
            "user": 7,
            "step": "auth",
        }
        assert child.manager is lm and grandchild.manager is lm
        await base.info("base")
        await child.info("child")
        await grandchild.info("grandchild")
        await base.info("base again")
        await lm.info("manager")
    assert [(entry.message, dict(entry.fields)) for entry in backend.entries] == [
        ("base", {"service": "api", "region": "eu"}),
        ("child", {"service": "api", "region": "us", "user": 7}),
        ("grandchild", {"service": "api", "region": "us", "user": 7, "step": "auth"}),
        ("base again", {"service": "api", "region": "eu"}),
        ("manager", {}),
    ]


async def test_bound_fields_are_a_read_only_copy() -> None:
    backend = RecordingBackend()
    source = {"service": "api"}
    async with LogManager(Config(backend=backend)) as lm:
        bound = lm.bind(**source)
        source["service"] = "changed later"
        with pytest.raises(TypeError):
            bound.fields["service"] = "mutated"  # type: ignore[index]
        await bound.info("copy")
    assert dict(backend.entries[0].fields) == {"service": "api"}
    assert isinstance(backend.entries[0].fields, MappingProxyType)


@pytest.mark.parametrize("async_mode", [True, False])
async def test_a_bound_view_shares_the_managers_pipeline_level_and_stats(
    async_mode: bool,
) -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=async_mode, level="INFO")
    async with LogManager(config) as lm:
        bound = lm.bind(service="api")
        handled: list[str] = []
        lm.register_handler(lambda entry: handled.append(entry.message))
        for index in range(20):
            await bound.info(f"bound {index}")
            await lm.info(f"plain {index}")
            assert await bound.debug("filtered") is False  # below the manager's level
            await bound.write_log("DEBUG", "filtered")
    expected = [message for i in range(20) for message in (f"bound {i}", f"plain {i}")]
    assert backend.messages == handled == expected
    stats = lm.get_stats()
    # A view's level method below its level is a no-op (not counted); write_log is counted.
    assert (stats.accepted, stats.written, stats.filtered) == (40, 40, 20)
    assert_settled(stats)


# ---- contextualize -------------------------------------------------------------------------


async def test_contextualize_applies_inside_the_block_only() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        await lm.info("before")
        assert dict(current_context()) == {}
        with contextualize(request_id="r1", user="ann") as context:
            assert dict(context) == {"request_id": "r1", "user": "ann"}
            assert dict(current_context()) == {"request_id": "r1", "user": "ann"}
            with pytest.raises(TypeError):
                context["user"] = "bob"  # type: ignore[index]
            await lm.info("inside", step=1)
            await lm.warning("inside too")
        await lm.info("after")
        assert dict(current_context()) == {}
    assert [(entry.message, dict(entry.fields)) for entry in backend.entries] == [
        ("before", {}),
        ("inside", {"request_id": "r1", "user": "ann", "step": 1}),
        ("inside too", {"request_id": "r1", "user": "ann"}),
        ("after", {}),
    ]


async def test_contextualize_is_restored_when_the_block_raises() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        with contextualize(outer=1):
            with pytest.raises(KeyError), contextualize(inner=2):
                await lm.info("inner")
                raise KeyError("x")
            await lm.info("outer")
        await lm.info("none")
    assert [dict(entry.fields) for entry in backend.entries] == [
        {"outer": 1, "inner": 2},
        {"outer": 1},
        {},
    ]


async def test_tasks_started_inside_the_block_carry_its_fields() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:

        async def child(name: str) -> None:
            await asyncio.sleep(0)
            await lm.info(name)

        with contextualize(request_id="r1"):
            task = asyncio.create_task(child("created inside"))
            await asyncio.gather(child("gathered inside"))
            async with asyncio.TaskGroup() as group:
                group.create_task(child("task group inside"))
        # The task outlives the block but keeps the context it was created with.
        await task
        outside = asyncio.create_task(child("created outside"))
        await outside
    fields = {entry.message: dict(entry.fields) for entry in backend.entries}
    assert fields == {
        "created inside": {"request_id": "r1"},
        "gathered inside": {"request_id": "r1"},
        "task group inside": {"request_id": "r1"},
        "created outside": {},
    }


@pytest.mark.parametrize("async_mode", [True, False])
async def test_200_concurrent_requests_never_see_each_others_context(async_mode: bool) -> None:
    backend = RecordingBackend()
    rng = random.Random(1234)
    delays = [[rng.choice([0, 0, 0.0005, 0.001]) for _ in range(5)] for _ in range(200)]
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        bound = lm.bind(component="handler")

        async def sub_step(task: int) -> None:
            await asyncio.sleep(0)
            await lm.debug(f"task {task} sub", task=task)

        async def request(task: int) -> None:
            with contextualize(request_id=f"req-{task}"):
                for step in range(5):
                    await lm.info(f"task {task} step {step}", task=task)
                    await asyncio.sleep(delays[task][step])
                    assert current_context()["request_id"] == f"req-{task}"
                await bound.info(f"task {task} bound", task=task)
                await asyncio.create_task(sub_step(task))

        await asyncio.gather(*(request(task) for task in range(200)))
        await lm.info("after every request")
    assert len(backend.entries) == 200 * 7 + 1
    per_task: dict[int, list[str]] = {}
    for entry in backend.entries[:-1]:
        task = entry.fields["task"]
        assert entry.fields["request_id"] == f"req-{task}", entry
        assert entry.message.startswith(f"task {task} ")
        per_task.setdefault(task, []).append(entry.message)
    assert sorted(per_task) == list(range(200))
    for task, messages in per_task.items():
        assert messages == [
            *(f"task {task} step {step}" for step in range(5)),
            f"task {task} bound",
            f"task {task} sub",
        ]
    bound_entries = [entry for entry in backend.entries if entry.message.endswith(" bound")]
    assert len(bound_entries) == 200
    assert all(entry.fields["component"] == "handler" for entry in bound_entries)
    assert dict(backend.entries[-1].fields) == {}
    assert_settled(lm.get_stats())


async def test_explicit_fields_win_over_context_which_wins_over_bound() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        bound = lm.bind(who="bound", bound_only=1, shared="bound")
        with contextualize(who="context", context_only=2, shared="context"):
            await bound.info("bound + context")
            await bound.info("bound + context + explicit", who="explicit")
            await lm.info("context + explicit", shared="explicit")
            bound.write_log_threadsafe(Level.INFO, "threadsafe", who="explicit")
            await _settle_handed_over()
        await bound.info("bound only")
        await bound.info("bound + explicit", who="explicit")
    assert [(entry.message, dict(entry.fields)) for entry in backend.entries] == [
        (
            "bound + context",
            {"who": "context", "bound_only": 1, "shared": "context", "context_only": 2},
        ),
        (
            "bound + context + explicit",
            {"who": "explicit", "bound_only": 1, "shared": "context", "context_only": 2},
        ),
        ("context + explicit", {"who": "context", "context_only": 2, "shared": "explicit"}),
        (
            "threadsafe",
            {"who": "explicit", "bound_only": 1, "shared": "context", "context_only": 2},
        ),
        ("bound only", {"who": "bound", "bound_only": 1, "shared": "bound"}),
        ("bound + explicit", {"who": "explicit", "bound_only": 1, "shared": "bound"}),
    ]


async def test_nested_blocks_inner_wins_and_the_outer_is_restored_on_exit() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        with contextualize(request_id="outer", user="ann"):
            await lm.info("outer")
            with contextualize(request_id="inner", step=1):
                assert dict(current_context()) == {
                    "request_id": "inner",
                    "user": "ann",
                    "step": 1,
                }
                await lm.info("inner")
                with contextualize(step=2):
                    await lm.info("innermost")
                await lm.info("inner again")
            assert dict(current_context()) == {"request_id": "outer", "user": "ann"}
            await lm.info("outer again")
        await lm.info("outside")
    assert [(entry.message, dict(entry.fields)) for entry in backend.entries] == [
        ("outer", {"request_id": "outer", "user": "ann"}),
        ("inner", {"request_id": "inner", "user": "ann", "step": 1}),
        ("innermost", {"request_id": "inner", "user": "ann", "step": 2}),
        ("inner again", {"request_id": "inner", "user": "ann", "step": 1}),
        ("outer again", {"request_id": "outer", "user": "ann"}),
        ("outside", {}),
    ]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_write_log_threadsafe_carries_the_calling_threads_context(async_mode: bool) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        bound = lm.bind(service="worker")

        def work(number: int) -> None:
            lm.write_log_threadsafe(Level.INFO, f"t{number} before")
            with contextualize(thread=f"t{number}", shared="thread"):
                for index in range(3):
                    lm.write_log_threadsafe(Level.INFO, f"t{number} #{index}", index=index)
                bound.write_log_threadsafe(Level.INFO, f"t{number} bound")
            lm.write_log_threadsafe(Level.INFO, f"t{number} after")

        # The loop's own context must not leak into the threads' entries.
        with contextualize(shared="loop", loop_only=True):
            threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                await asyncio.to_thread(thread.join)
            await _settle_handed_over()
            lm.write_log_threadsafe(Level.INFO, "from the loop thread")
            await _settle_handed_over()
    by_message = {entry.message: dict(entry.fields) for entry in backend.entries}
    assert len(by_message) == len(backend.entries) == 4 * 6 + 1
    for number in range(4):
        context = {"thread": f"t{number}", "shared": "thread"}
        assert by_message[f"t{number} before"] == {}
        assert by_message[f"t{number} after"] == {}
        for index in range(3):
            assert by_message[f"t{number} #{index}"] == {**context, "index": index}
        assert by_message[f"t{number} bound"] == {"service": "worker", **context}
    assert by_message["from the loop thread"] == {"shared": "loop", "loop_only": True}
    assert_settled(lm.get_stats())


async def test_context_fields_reach_the_file(log_path: Path) -> None:
    config = Config(backend="file", backend_config=FileConfig(file_path=log_path), name="svc")
    async with LogManager(config) as lm:
        bound = lm.bind(service="api")
        with contextualize(request_id="abc-1"):
            await bound.info("handled", status=200)
    (line,) = read_lines(log_path)
    assert line.split(" ", 1)[1] == ("INFO svc handled service=api request_id=abc-1 status=200")
