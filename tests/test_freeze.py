"""Values are frozen at the call: what is written is what they were when the call returned
(docs/context-and-exceptions.md, "Values are frozen at the call")."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import enum
import json
import logging
import threading
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import pytest

from asynclog import Config, FileConfig, LogEntry, LogManager, contextualize
from asynclog.stdlib import AsyncLogHandler
from asynclog.testing import capture_logs

from .conftest import RecordingBackend, read_lines


class Account:
    """A mutable object whose str() and repr() show its state."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return f"account {self.name}"

    def __repr__(self) -> str:
        return f"Account({self.name!r})"


class Color(enum.Enum):
    RED = 1


class Point(NamedTuple):
    x: int
    y: object


def _file_config(path: Path, *, async_mode: bool, format: str = "text") -> Config:
    return Config(
        backend="file",
        backend_config=FileConfig(file_path=path, format=format),  # type: ignore[arg-type]
        async_mode=async_mode,
    )


def _tail(line: str) -> str:
    """A text line after its time, level and logger: the message and the fields."""
    return line.split(" ", 3)[3]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_mutating_after_the_call_changes_nothing_anywhere(
    tmp_path: Path, async_mode: bool
) -> None:
    path = tmp_path / "app.log"
    handled: list[LogEntry] = []
    items, request, account = [1, 2], {"user": "ann", "tags": ["a"]}, Account("ann")
    with capture_logs() as captured:
        async with LogManager(_file_config(path, async_mode=async_mode)) as lm:
            lm.register_handler(handled.append)
            await lm.info("call", items=items, request=request, account=account)
            items.append(3)
            request["user"] = "bob"
            request["tags"].append("b")  # type: ignore[attr-defined]
            account.name = "bob"
    expected = (
        "call items=\"[1, 2]\" request=\"{'user': 'ann', 'tags': ['a']}\" account=\"account ann\""
    )
    assert [_tail(line) for line in read_lines(path)] == [expected]
    for entry in (*handled, *captured):
        assert dict(entry.fields) == {
            "items": [1, 2],
            "request": {"user": "ann", "tags": ["a"]},
            "account": "account ann",
        }


async def test_the_json_format_writes_the_frozen_values(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    nested = {"owner": Account("ann"), "ids": (1, 2), "set": {3}}
    async with LogManager(_file_config(path, async_mode=True, format="json")) as lm:
        await lm.info("call", account=Account("ann"), nested=nested)
        nested["owner"].name = "bob"  # type: ignore[attr-defined]
    (line,) = read_lines(path)
    assert json.loads(line)["fields"] == {
        "account": "account ann",  # a value of the fields: its str()
        "nested": {"owner": "Account('ann')", "ids": [1, 2], "set": "{3}"},  # inside: repr()
    }


async def test_an_object_inside_a_container_reads_as_before_in_the_text_format(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    owners = [Account("ann")]
    async with LogManager(_file_config(path, async_mode=False)) as lm:
        await lm.info("call", owners=owners)
        owners[0].name = "bob"
    assert [_tail(line) for line in read_lines(path)] == ["call owners=[Account('ann')]"]


async def test_a_list_inside_itself_is_written_as_repr_writes_it() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    mapping: dict[str, Any] = {"a": 1}
    mapping["self"] = mapping
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("cycles", cyclic=cyclic, mapping=mapping)
    fields = captured[0].fields
    assert str(fields["cyclic"]) == "[1, [...]]"
    assert str(fields["mapping"]) == "{'a': 1, 'self': {...}}"
    assert json.loads(json.dumps(dict(fields))) == {
        "cyclic": [1, "[...]"],
        "mapping": {"a": 1, "self": "{...}"},
    }


async def test_nesting_deeper_than_the_limit_is_rendered() -> None:
    from asynclog._freeze import MAX_DEPTH

    deep: list[Any] = []
    inner = deep
    for _ in range(MAX_DEPTH + 5):
        inner.append([])
        inner = inner[0]
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("deep", deep=deep)
    frozen = captured[0].fields["deep"]
    assert str(frozen) == str(deep)
    for _ in range(MAX_DEPTH):
        assert type(frozen) is list
        frozen = frozen[0]
    assert type(frozen) is not list and str(frozen) == "[" * 6 + "]" * 6


async def test_immutable_values_pass_as_they_are() -> None:
    values: dict[str, Any] = {
        "text": "s",
        "number": 1,
        "real": 1.5,
        "flag": True,
        "nothing": None,
        "raw": b"\x00",
        "when": datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
        "span": datetime.timedelta(seconds=3),
        "money": decimal.Decimal("1.10"),
        "id": uuid.UUID(int=7),
        "color": Color.RED,
        "path": PurePosixPath("/tmp/x"),
        "pair": (1, "a"),
        "point": Point(1, 2),
        "frozen": frozenset({1}),
    }
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("values", **values)
    fields = captured[0].fields
    assert all(fields[key] is value for key, value in values.items())


async def test_a_bytearray_is_copied() -> None:
    raw = bytearray(b"ab")
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("raw", raw=raw, inside=[raw])
            raw.extend(b"cd")
    fields = captured[0].fields
    assert fields["raw"] == bytearray(b"ab") and type(fields["raw"]) is bytearray
    assert fields["inside"] == [bytearray(b"ab")]


async def test_a_named_tuple_holding_a_mutable_value_is_rendered() -> None:
    point = Point(1, [2])
    with capture_logs() as captured:
        async with LogManager(Config(backend=RecordingBackend())) as lm:
            await lm.info("point", point=point)
            point.y.append(3)  # type: ignore[attr-defined]
    assert captured[0].fields["point"] == "Point(x=1, y=[2])"


async def test_extra_bound_and_context_values_are_frozen_when_given() -> None:
    bound_list, context_list, extra_list = ["bound"], ["context"], ["extra"]
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        view = lm.bind(bound=bound_list)
        bound_list.append("changed")
        with contextualize(context=context_list):
            context_list.append("changed")
            await view.info("call", extra={"extra": extra_list})
            extra_list.append("changed")
    assert dict(backend.entries[0].fields) == {
        "bound": ["bound"],
        "context": ["context"],
        "extra": ["extra"],
    }


@pytest.mark.parametrize("async_mode", [True, False])
async def test_threadsafe_calls_freeze_in_the_calling_thread(async_mode: bool) -> None:
    backend = RecordingBackend()
    items = [1]
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:

        def log_then_mutate() -> None:
            lm.write_log_threadsafe("info", "from a thread", items=items)
            items.append(2)

        thread = threading.Thread(target=log_then_mutate)
        thread.start()
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0.05)
    assert [dict(entry.fields) for entry in backend.entries] == [{"items": [1]}]


async def test_stdlib_extra_fields_are_frozen_at_the_call() -> None:
    backend = RecordingBackend()
    logger = logging.getLogger("asynclog.test.freeze")
    logger.propagate = False
    items = [1]
    async with LogManager(Config(backend=backend, name="freeze")) as lm:
        handler = AsyncLogHandler(lm)
        logger.addHandler(handler)
        try:
            logger.warning("stdlib", extra={"items": items})
            items.append(2)
            await asyncio.sleep(0.05)
        finally:
            logger.removeHandler(handler)
    assert [dict(entry.fields) for entry in backend.entries] == [{"items": [1]}]


async def test_stdlib_records_held_before_start_are_frozen_when_logged() -> None:
    logger = logging.getLogger("asynclog.test.freeze.held")
    logger.propagate = False
    backend = RecordingBackend()
    handler = AsyncLogHandler("held-freeze")
    logger.addHandler(handler)
    items = [1]
    try:
        logger.warning("before start", extra={"items": items})
        items.append(2)
        async with LogManager(Config(backend=backend, name="held-freeze")):
            await asyncio.sleep(0.05)
    finally:
        logger.removeHandler(handler)
    assert [dict(entry.fields) for entry in backend.entries] == [{"items": [1]}]
