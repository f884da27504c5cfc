"""The `fastjson` extra (orjson) changes nothing in what the JSON format writes: for any entry,
the text is the same with it on and off (`asynclog.formatters.use_fast_json`)."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asynclog import Location, LogEntry, json_formatter
from asynclog.formatters import (
    FAST_JSON_VARIABLE,
    fast_json_used,
    fields_to_json,
    json_format,
    use_fast_json,
)


@pytest.fixture(autouse=True)
def fast_json_restored() -> Iterator[None]:
    was_used = fast_json_used()
    yield
    use_fast_json(was_used)


def both_ways(encode: Callable[[], str]) -> tuple[str, str]:
    """`encode()` with orjson, then with the standard library only."""
    assert use_fast_json(True), "orjson is in the test extra"
    fast = encode()
    use_fast_json(False)
    standard = encode()
    use_fast_json(True)
    return fast, standard


class Colour(enum.Enum):
    RED = 1


class Shade(enum.IntEnum):
    DARK = 2


class Word(str):
    pass


class Count(int):
    pass


class Bag(dict[str, Any]):
    pass


class Thing:
    def __repr__(self) -> str:
        return "<thing, with: a comma>"


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


# Every character (lone surrogates too), and more often those JSON, orjson or a terminal treat
# specially: controls, DEL, C1, the line and paragraph separators, bidi controls, the quote,
# the backslash, and the separators the fast path counts.
SPECIAL = '\x00\x01\x08\x0c\x1f\x7f\x85\x9b\u2028\u2029\u202e\u2066\ud800\udfff"\\,: \n\r\t é€😀'
texts = st.text(st.characters(exclude_categories=()) | st.sampled_from(SPECIAL), max_size=12)
integers = st.integers() | st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30)]
)
floats = st.floats() | st.sampled_from(
    [0.0, -0.0, 1e-4, -1e-4, 9.999999999999999e-05, 5e-324, 1e16, 1e-7, 1.5, math.nan, -math.inf]
)
others = st.sampled_from(
    [
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        frozenset(),
        datetime.datetime(2026, 12, 3, 5, 0, tzinfo=datetime.UTC),
        datetime.date(2026, 12, 3),
        datetime.timedelta(seconds=1),
        uuid.UUID(int=7),
        decimal.Decimal("1.10"),
        1 + 2j,
        Colour.RED,
        Shade.DARK,
        Word("word, with: separators"),
        Count(5),
        Bag(a=1),
        Thing(),
        range(2),
    ]
) | st.builds(Broken)
scalars = st.none() | st.booleans() | integers | floats | texts | others
keys = texts | st.integers() | st.floats() | st.none() | st.booleans() | st.just((1, 2))
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(texts, inner, max_size=4)
        | st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=12,
)
locations = st.none() | st.builds(Location, texts, texts, st.integers(0, 10**6))


@settings(max_examples=500, deadline=None)
@given(
    message=texts,
    logger=texts,
    fields=st.dictionaries(texts, values, max_size=5),
    exception=st.none() | texts,
    location=locations,
)
@example(
    message="m", logger="a", fields={"n": 1, "s": "x", "f": 0.5}, exception=None, location=None
)
@example(message="m", logger="a", fields={"url": "http://h:1/a,b"}, exception=None, location=None)
def test_the_json_format_writes_the_same_text_with_orjson_and_without(
    message: str,
    logger: str,
    fields: dict[str, Any],
    exception: str | None,
    location: Location | None,
) -> None:
    entry = LogEntry(
        1764738000.25, 20, message, logger, MappingProxyType(fields), exception, None, location
    )
    fast, standard = both_ways(lambda: json_format(entry))
    assert fast == standard


SHAPES = {
    "nested": json_formatter(),
    "nested, process": json_formatter(process_fields=True),
    "flat": json_formatter("flat"),
    "flat, process": json_formatter("flat", process_fields=True),
    "ecs": json_formatter(json_style="ecs", process_fields=True),
    "gcp": json_formatter(json_style="gcp", process_fields=True),
    "otel": json_formatter(json_style="otel", process_fields=True),
}
"""Every JSON shape (`FileConfig(json_fields=..., json_style=..., process_fields=...)`)."""

# The keys the shapes treat apart (reserved ones, the trace context) and valid trace values.
shape_keys = texts | st.sampled_from(
    ["trace_id", "span_id", "trace_flags", "level", "message", "fields.level", "labels", "pid"]
)
shape_values = values | st.sampled_from(["0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1])


@settings(max_examples=300, deadline=None)
@given(
    message=texts,
    logger=texts,
    fields=st.dictionaries(shape_keys, shape_values, max_size=6),
    exception=st.none() | texts | st.sampled_from(["Traceback (most recent call last):\nE: x"]),
    location=locations,
)
@example(
    message="m",
    logger="a",
    fields={"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"},
    exception="ValueError: bad, very: bad",
    location=Location("app", "f", 3),
)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_json_shape_writes_the_same_text_with_orjson_and_without(
    shape: str,
    message: str,
    logger: str,
    fields: dict[str, Any],
    exception: str | None,
    location: Location | None,
) -> None:
    entry = LogEntry(
        1764738000.25, 20, message, logger, MappingProxyType(fields), exception, None, location
    )
    fast, standard = both_ways(lambda: SHAPES[shape](entry))
    assert fast == standard
    assert isinstance(json.loads(fast), dict)


@settings(max_examples=500, deadline=None)
@given(fields=st.dictionaries(keys, values, min_size=1, max_size=5))
def test_fields_with_any_keys_encode_the_same_both_ways(fields: dict[Any, Any]) -> None:
    fast, standard = both_ways(lambda: fields_to_json(fields))
    assert fast == standard


# Only what orjson is handed: most of these take the fast path (the test above mostly the other).
plain_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | integers | floats | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=1000, deadline=None)
@given(fields=st.dictionaries(texts, plain_values, min_size=1, max_size=5))
def test_plain_fields_encode_the_same_both_ways(fields: dict[str, Any]) -> None:
    fast, standard = both_ways(lambda: fields_to_json(fields))
    assert fast == standard


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"n": 1, "ok": True, "none": None}, '{"n": 1, "ok": true, "none": null}'),
        ({"nested": {"a": [1, 2.5, "x"]}}, '{"nested": {"a": [1, 2.5, "x"]}}'),
        ({"t": (1, 2), "e": [], "d": {}}, '{"t": [1, 2], "e": [], "d": {}}'),
        ({"url": "http://h:1/a,b"}, '{"url": "http://h:1/a,b"}'),
        ({"k:1,": 1, "n": [",", {"a:": "b"}]}, '{"k:1,": 1, "n": [",", {"a:": "b"}]}'),
        ({"nl": "a\nb", "q": '"\\'}, '{"nl": "a\\nb", "q": "\\"\\\\"}'),
        ({"tiny": 1e-5, "l": [1e-5, 0.0001]}, '{"tiny": 1e-05, "l": [1e-05, 0.0001]}'),
        ({"small": 1e-05, "big": 1e16, "neg": -0.0}, '{"small": 1e-05, "big": 1e+16, "neg": -0.0}'),
        ({"nan": math.nan}, '{"nan": "nan"}'),
        ({"big": 2**64, "huge": 10**30}, f'{{"big": {2**64}, "huge": {10**30}}}'),
        ({"u": uuid.UUID(int=7)}, '{"u": "UUID(\'00000000-0000-0000-0000-000000000007\')"}'),
        ({"c": Colour.RED, "s": Shade.DARK}, '{"c": "<Colour.RED: 1>", "s": 2}'),
        (
            {"when": datetime.date(2026, 12, 3)},
            '{"when": "datetime.date(2026, 12, 3)"}',
        ),
        ({"b": b"\x00"}, '{"b": "b\'\\\\x00\'"}'),
        ({1: "int key", None: "none key"}, '{"1": "int key", "null": "none key"}'),
        ({"s": "\ud800"}, '{"s": "\ud800"}'),
        ({"line": "a\u2028b\x7f"}, '{"line": "a\u2028b\x7f"}'),
        ({"ctl": "\x00\x1f\n"}, '{"ctl": "\\u0000\\u001f\\n"}'),
        ({"obj": Thing()}, '{"obj": "<thing, with: a comma>"}'),
        ({"broken": Broken()}, '{"broken": "<unrepresentable Broken: RuntimeError>"}'),
    ],
)
def test_examples_encode_as_the_standard_library_does(
    fields: dict[Any, Any], expected: str
) -> None:
    fast, standard = both_ways(lambda: fields_to_json(fields))
    assert fast == standard == expected


def test_the_json_line_escapes_the_same_after_either_encoder() -> None:
    entry = LogEntry(0.0, 20, "m\u2028", "app", MappingProxyType({"k": "v\u202e\x9b"}))
    fast, standard = both_ways(lambda: json_format(entry))
    assert fast == standard
    assert fast.endswith('"fields": {"k": "v\\u202e\\u009b"}, "exception": null}')
    assert json.loads(fast)["fields"] == {"k": "v\u202e\x9b"}


def test_deep_and_cyclic_values_encode_the_same_both_ways() -> None:
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    cycle: list[Any] = [1]
    cycle.append(cycle)
    fast, standard = both_ways(lambda: fields_to_json({"deep": deep, "cycle": cycle}))
    assert fast == standard
    assert json.loads(fast)["cycle"] == "[1, [...]]"


def test_typical_fields_are_encoded_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    dumps = orjson.dumps

    def counted(value: object, *args: Any, **kwargs: Any) -> bytes:
        calls.append(value)
        return dumps(value, *args, **kwargs)

    monkeypatch.setattr(orjson, "dumps", counted)
    use_fast_json(True)
    flat = {"user": "alice", "status": 200, "ms": 12.5, "ok": True, "url": "http://h:80/a,b"}
    nested = {"user": "alice", "tags": ["a", "b"], "client": {"port": 5}, "none": None}
    for fields in (flat, nested):
        assert fields_to_json(fields) == json.dumps(fields, ensure_ascii=False)
    assert calls == [flat, nested]
    use_fast_json(False)
    assert fields_to_json(flat) == json.dumps(flat, ensure_ascii=False)
    assert calls == [flat, nested]
    assert not fast_json_used()


@pytest.mark.parametrize(("setting", "used"), [(None, True), ("1", True), ("0", False)])
def test_the_environment_variable_turns_orjson_off(setting: str | None, used: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != FAST_JSON_VARIABLE}
    if setting is not None:
        env[FAST_JSON_VARIABLE] = setting
    code = "from asynclog.formatters import fast_json_used; print(fast_json_used())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(used)
