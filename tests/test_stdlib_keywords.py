"""`exc_info=`, `stack_info=`, `stacklevel=` and `extra=` mean what they mean in `logging`
and are never stored as fields (docs/context-and-exceptions.md)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, FileConfig, LogManager, contextualize
from asynclog.testing import capture_logs

from .conftest import RecordingBackend, read_lines

HEADER = "Stack (most recent call last):"


def _line_of(text: str) -> int:
    """The line number, in this file, of the first line holding `text` (after this one)."""
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line and "_line_of" not in line)


def _last_frame(stack: str) -> list[str]:
    """The last frame of a stack text: its `File ...` line and its source line."""
    return [line.strip() for line in stack.splitlines()[-2:]]


async def test_stack_info_adds_the_callers_stack_and_no_field() -> None:
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("where am I", stack_info=True, user=1)  # the stack call
    (entry,) = captured
    assert dict(entry.fields) == {"user": 1}
    assert entry.exception is not None
    assert entry.exception.startswith(HEADER + "\n")
    assert _last_frame(entry.exception) == [
        f'File "{__file__}", line {_line_of("# the stack call")}, '
        "in test_stack_info_adds_the_callers_stack_and_no_field",
        'await lm.info("where am I", stack_info=True, user=1)  # the stack call',
    ]
    assert "asynclog/_" not in entry.exception, "no frame of asynclog's own"


async def test_stack_info_comes_after_the_traceback_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = Config(backend="file", backend_config=FileConfig(file_path=path))
    async with LogManager(config) as lm:
        try:
            raise ValueError("boom")
        except ValueError:
            await lm.exception("failed", stack_info=True)  # the exception call
    lines = read_lines(path)
    assert lines[0].endswith(" ERROR asynclog failed")
    assert lines[1] == "    Traceback (most recent call last):"
    header = lines.index("    " + HEADER)
    assert lines[header - 1] == "    ValueError: boom"
    assert lines[-2:] == [
        f'      File "{__file__}", line {_line_of("# the exception call")}, '
        "in test_stack_info_comes_after_the_traceback_in_the_file",
        '        await lm.exception("failed", stack_info=True)  # the exception call',
    ]


async def _helper(lm: LogManager, **keywords: Any) -> None:
    await lm.info("from the helper", **keywords)


async def test_stacklevel_moves_the_stack_to_the_helpers_caller() -> None:
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await _helper(lm, stack_info=True)  # level 1 is the helper
            await _helper(lm, stack_info=True, stacklevel=2)  # level 2 is here
    first, second = (entry.exception or "" for entry in captured)
    assert _last_frame(first)[1] == 'await lm.info("from the helper", **keywords)'
    assert _last_frame(second)[1] == (
        "await _helper(lm, stack_info=True, stacklevel=2)  # level 2 is here"
    )
    assert all(not entry.fields for entry in captured)


async def test_a_stacklevel_beyond_the_stack_stops_at_its_outermost_frame() -> None:
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("far", stack_info=True, stacklevel=10_000)
    stack = captured[0].exception or ""
    assert stack.startswith(HEADER) and stack.count("File ") == 1


@pytest.mark.parametrize("bad", ["2", 1.5, None, True])
async def test_a_stacklevel_that_is_not_an_int_is_a_type_error(bad: object) -> None:
    async with LogManager(Config(backend=RecordingBackend())) as lm:
        with pytest.raises(TypeError, match=r"^stacklevel must be an int, got "):
            await lm.info("x", stacklevel=bad)


async def test_extra_is_merged_into_the_fields_and_explicit_keywords_win() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        await lm.info("a", extra={"user": "from extra", "request": 7}, user="explicit")
        await lm.write_log("warning", "b", extra={"only": True})
        await lm.info("c", extra=None)
        with contextualize(request="context", trace="t"):
            await lm.bind(trace="bound", svc="api").info("d", extra={"request": "extra"})
    assert [dict(entry.fields) for entry in backend.entries] == [
        {"user": "explicit", "request": 7},
        {"only": True},
        {},
        {"trace": "t", "svc": "api", "request": "extra"},
    ]


async def test_extra_given_to_bind_and_contextualize_is_expanded_there() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        view = lm.bind(extra={"a": 1}, b=2)
        with contextualize(extra={"c": 3}):
            await view.info("x")
    assert dict(view.fields) == {"a": 1, "b": 2}
    assert dict(backend.entries[0].fields) == {"a": 1, "b": 2, "c": 3}


@pytest.mark.parametrize("bad", [["a", 1], "text", 3])
async def test_an_extra_that_is_not_a_dict_is_a_type_error(bad: object) -> None:
    async with LogManager(Config(backend=RecordingBackend())) as lm:
        with pytest.raises(TypeError, match=r"^extra must be a dict, got "):
            await lm.info("x", extra=bad)
        with pytest.raises(TypeError, match=r"^extra must be a dict, got "):
            lm.write_log_threadsafe("info", "x", extra=bad)
        with pytest.raises(TypeError, match=r"^extra must be a dict, got "):
            lm.bind(extra=bad)


async def test_keywords_work_from_a_thread_with_the_threads_stack() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:

        def in_a_thread() -> None:
            try:
                raise KeyError("k")
            except KeyError:
                lm.write_log_threadsafe(
                    "error", "threaded", exc_info=True, stack_info=True, extra={"n": 1}
                )

        thread = threading.Thread(target=in_a_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0.05)
    (entry,) = backend.entries
    assert dict(entry.fields) == {"n": 1}
    exception = entry.exception or ""
    assert exception.startswith("Traceback (most recent call last):")
    assert "\nKeyError: 'k'\n" + HEADER + "\n" in exception
    assert _last_frame(exception)[1].startswith("lm.write_log_threadsafe(")
    assert "in in_a_thread" in exception.splitlines()[-2]


async def test_bound_views_take_the_keywords_too() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        view = lm.bind(svc="api")
        await view.warning("bound", stack_info=True, extra={"e": 1})  # the bound call
    (entry,) = backend.entries
    assert dict(entry.fields) == {"svc": "api", "e": 1}
    assert _last_frame(entry.exception or "")[1] == (
        'await view.warning("bound", stack_info=True, extra={"e": 1})  # the bound call'
    )
