"""Formatters are pure functions: one entry in, exactly one line out, nothing forgeable."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from asynclog import Level, LogEntry
from asynclog.formatters import escape, fields_to_json, iso_utc, json_format, text_format

TS = 1_700_000_000.25  # 2023-11-14T22:13:20.250000Z


def entry(message: str = "hello", **fields: object) -> LogEntry:
    return LogEntry(TS, Level.INFO, message, "app", MappingProxyType(fields))


def test_text_format_has_time_level_logger_message_and_fields() -> None:
    line = text_format(entry("Worker 3 - Log 7", worker=3, user="ann"))
    assert line == "2023-11-14T22:13:20.250000Z INFO app Worker 3 - Log 7 worker=3 user=ann"


def test_iso_utc_keeps_microseconds_and_handles_the_epoch() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000000Z"
    assert iso_utc(1.000001) == "1970-01-01T00:00:01.000001Z"
    assert iso_utc(TS + 0.999999) == "2023-11-14T22:13:21.249999Z"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("back\\slash", "back\\\\slash"),
        ("\x1b[2J", "\\x1b[2J"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("sep\u2028\u2029", "sep\\u2028\\u2029"),
        ("lone\udc80", "lone\\udc80"),
        ("plain é ü 日本", "plain é ü 日本"),
    ],
)
def test_escape_neutralises_every_line_and_cursor_control(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


def test_hostile_message_and_fields_stay_on_one_line() -> None:
    line = text_format(entry("first\nINFO forged\r\nline", note="x\ny", **{"k\nz": "v"}))
    assert len(line.splitlines()) == 1
    assert line.endswith("first\\nINFO forged\\r\\nline note=x\\ny k\\nz=v")


def test_field_values_with_spaces_quotes_or_equals_are_quoted() -> None:
    line = text_format(entry("m", a="two words", b='say "hi"', c="x=y", d=""))
    assert line.endswith('m a="two words" b="say \\"hi\\"" c="x=y" d=""')


def test_field_values_whose_repr_raises_do_not_lose_the_entry() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

        __str__ = __repr__

    assert text_format(entry("m", obj=Broken())).endswith(
        'm obj="<unrepresentable Broken: RuntimeError>"'
    )
    assert json.loads(fields_to_json({"obj": Broken()})) == {
        "obj": "<unrepresentable Broken: RuntimeError>"
    }


def test_json_format_is_one_object_per_line() -> None:
    line = json_format(entry("multi\nline \u2028 é", n=1, obj={1, 2}))
    assert "\n" not in line and "\u2028" not in line
    assert json.loads(line) == {
        "timestamp": "2023-11-14T22:13:20.250000Z",
        "level": "INFO",
        "logger": "app",
        "message": "multi\nline \u2028 é",
        "fields": {"n": 1, "obj": "{1, 2}"},
        "exception": None,
    }


def test_fields_to_json_stores_what_json_cannot_hold_as_repr() -> None:
    loop: list[object] = []
    loop.append(loop)
    decoded = json.loads(fields_to_json({"nan": math.nan, "loop": loop, "ok": [1, "a"], "b": b"x"}))
    assert decoded == {"nan": "nan", "loop": "[[...]]", "ok": [1, "a"], "b": "b'x'"}


def test_text_lines_of_a_mixed_batch_match_each_entry_formatted_alone() -> None:
    """The batch formatter caches the second, the level and logger part and checks every
    message at once: none of it may leak from one entry into the next."""
    from asynclog._entry import LogEntry
    from asynclog.formatters import text_lines

    batch = [
        LogEntry(1_700_000_000.999_999_7, Level.INFO, "rounds up into the next second", "a"),
        LogEntry(1_700_000_001.000_001, Level.INFO, "same second, same head", "a"),
        LogEntry(1_700_000_001.5, 20, "an int level", "a"),
        LogEntry(1_700_000_001.5, Level.ERROR, "new line\nand back\\slash", "a"),
        LogEntry(1_700_000_001.5, Level.ERROR, "clean again", "b c"),
        LogEntry(1_700_000_002.0, 25, "custom level", "b c", {"k": "v w"}),
        LogEntry(1_699_999_999.0, Level.DEBUG, "earlier", "a", exception="Trace\nback\n"),
    ]
    lines = text_lines(batch)
    assert lines == [text_format(entry) for entry in batch]
    assert lines == [
        "2023-11-14T22:13:21.000000Z INFO a rounds up into the next second",
        "2023-11-14T22:13:21.000001Z INFO a same second, same head",
        "2023-11-14T22:13:21.500000Z INFO a an int level",
        "2023-11-14T22:13:21.500000Z ERROR a new line\\nand back\\\\slash",
        "2023-11-14T22:13:21.500000Z ERROR b c clean again",
        '2023-11-14T22:13:22.000000Z Level 25 b c custom level k="v w"',
        "2023-11-14T22:13:19.000000Z DEBUG a earlier\n    Trace\n    back",
    ]


@pytest.mark.parametrize(
    "timestamp",
    [0.0, 1e-7, 0.4999994, 0.9999994, 0.9999995, 1.0, 1.9999996, 59.9999996, -1.5, -4e-7,
     1_796_299_299.4460495, 1_796_299_299.9999996, 253_402_300_799.5],
)
def test_iso_utc_gives_the_rounded_microsecond_of_any_time(timestamp: float) -> None:
    micros = int(timestamp * 1_000_000 + 0.5)  # to the nearest microsecond, halves up
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert iso_utc(timestamp) == at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
