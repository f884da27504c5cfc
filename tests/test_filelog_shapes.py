"""The file-log reader reads back every shape the file backend writes: JSON nested and flat,
the ecs, gcp and otel styles, with and without the process fields, and the text format with
them. Entries are written by a real `LogManager` with the file backend and read back with
`asynclog.query()` and with `python -m asynclog query --json` in a subprocess."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import asynclog
from asynclog import Config, FileConfig, Level, LogEntry, LogManager
from asynclog.__main__ import main as command_line
from asynclog._filelog_read import parse_json_line
from asynclog.formatters import safe_str

from .test_cli_filelog import cli

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp()
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRICKY = 'say "hi"\n\tthen a=b \\n back\\slash \x1b[31m red \u2028 ünï 🎉 = x'


@dataclass(frozen=True)
class Shape:
    """One way the file backend writes: its settings, and what reading it back changes."""

    name: str
    format: Any = "json"
    json_fields: Any = "nested"
    json_style: Any = None
    process: bool = False

    def file_config(self, path: Path) -> FileConfig:
        return FileConfig(
            file_path=str(path),
            format=self.format,
            json_fields=self.json_fields,
            json_style=self.json_style,
            process_fields=self.process,
        )


SHAPES = [
    Shape(f"{name}{'+process' if process else ''}", **options, process=process)
    for name, options in [
        ("nested", {}),
        ("flat", {"json_fields": "flat"}),
        ("ecs", {"json_style": "ecs"}),
        ("gcp", {"json_style": "gcp"}),
        ("otel", {"json_style": "otel"}),
        ("text", {"format": "text"}),
    ]
    for process in (False, True)
]


class PaymentError(Exception):
    pass


def charge(order_id: int) -> None:
    raise PaymentError(f"card declined for order {order_id}\nsecond line")


async def log_everything(shape: Shape, path: Path) -> list[LogEntry]:
    """Six entries of every kind through a real manager; returns them as they were written
    (a processor stamps each with a time a minute apart, microseconds and all)."""
    times = iter(T0 + 60 * i + (123456 + i) / 1_000_000 for i in range(10))
    seen: list[LogEntry] = []

    def stamp(entry: LogEntry) -> LogEntry:
        stamped = entry._replace(timestamp=next(times))
        seen.append(stamped)
        return stamped

    config = Config(
        backend_config=shape.file_config(path),
        name="shop",
        capture_location=True,
        processors=[stamp],
    )
    trace = {"trace_id": TRACE_ID, "span_id": SPAN_ID}
    async with LogManager(config) as lm:
        await lm.get_logger("shop.api").info(
            TRICKY,
            user_id=42,
            name="ann lee",
            ok=True,
            ratio=0.5,
            none=None,
            cart={"items": [1, 2], "note": "x=y"},
            level="gold",
            trace_flags=1,
            **trace,
        )
        await lm.get_logger("shop.db").warning(
            "slow query took 1200ms",
            host="web-1",
            error={"code": 7},
            time="t",
            **{"exception.type": "mine", "fields.x": 1, "logging.googleapis.com/x": "g"},
        )
        try:
            charge(42)
        except PaymentError:
            await lm.get_logger("worker").exception("payment failed", order_id=42, **trace)
        await lm.write_log(25, "custom level", note=None)
        await lm.debug("")
        try:
            try:
                raise OSError("disk full")
            except OSError as exc:
                raise KeyError("k") from exc
        except KeyError:
            await lm.get_logger("worker.retry").critical("gave up", exc_info=True)
    assert len(seen) == 6
    return seen


def microseconds(ts: float) -> int:
    return int(ts * 1_000_000 + 0.5)


def canonical(
    ts_us: int,
    level: int,
    logger: str,
    message: str,
    fields: Mapping[str, Any],
    exception: Any,
    location: Any,
) -> dict[str, Any]:
    return {
        "ts": ts_us,
        "level": level,
        "logger": logger,
        "message": message,
        "fields": dict(fields),
        "exception": exception,
        "location": None if location is None else tuple(location),
    }


def process_values(shape: Shape) -> dict[str, Any]:
    if not shape.process:
        return {}
    pid: int | str = os.getpid()
    host = socket.gethostname()
    return {"host": host, "pid": str(pid) if shape.format == "text" else pid}


def expected(shape: Shape, entry: LogEntry) -> dict[str, Any]:
    """What reading `entry` back from `shape` gives: everything as written, except that the
    text format's field values are text; the process fields follow the entry's own fields,
    which win over them."""
    fields: dict[str, Any] = dict(entry.fields)
    if shape.format == "text":
        fields = {key: safe_str(value) for key, value in fields.items()}
    if shape.json_style == "ecs":  # a label's key holds no dots in ECS: `.` became `_`
        fields = {
            key if isinstance(value, dict | list) else key.replace(".", "_"): value
            for key, value in fields.items()
        }
    for key, value in process_values(shape).items():
        fields.setdefault(key, value)
    return canonical(
        microseconds(entry.timestamp),
        entry.level,
        entry.logger,
        entry.message,
        fields,
        entry.exception,
        entry.location,
    )


def read(entry: LogEntry) -> dict[str, Any]:
    return canonical(
        microseconds(entry.timestamp),
        entry.level,
        entry.logger,
        entry.message,
        entry.fields,
        entry.exception,
        entry.location,
    )


LEVEL_NUMBERS = {level.name: int(level) for level in Level}


def from_cli_json(line: str) -> dict[str, Any]:
    """One line of `asynclog query --json` as `read` gives an entry."""
    record = json.loads(line)
    moment = datetime.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    name = record["level"]
    level = LEVEL_NUMBERS.get(name) or int(name.removeprefix("Level "))
    exception = record["exception"]
    location = None
    if "module" in record:
        location = (record["module"], record["function"], record["line"])
    seconds = int(moment.replace(microsecond=0).timestamp())
    return canonical(
        seconds * 1_000_000 + moment.microsecond,
        level,
        record["logger"],
        record["message"],
        record["fields"],
        None if exception is None else exception["stack"],
        location,
    )


async def read_back(path: Path, **filters: Any) -> list[LogEntry]:
    return [entry async for entry in asynclog.query(path, **filters)]


@pytest.fixture(params=SHAPES, ids=[shape.name for shape in SHAPES])
async def written(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Shape, Path, list[LogEntry]]:
    shape: Shape = request.param
    if shape.json_style == "gcp" and shape.process:
        # The trace as `projects/<project>/traces/<id>`: read back as the id alone.
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    path = tmp_path / f"app.{shape.name}.log"
    return shape, path, await log_everything(shape, path)


async def test_query_reads_every_entry_back_exactly(
    written: tuple[Shape, Path, list[LogEntry]],
) -> None:
    shape, path, entries = written
    got = await read_back(path)
    assert [read(entry) for entry in got] == [expected(shape, entry) for entry in entries]
    # The same float for the same microsecond, whatever the shape wrote.
    assert [entry.timestamp for entry in got] == [
        T0 + 60 * i + (123456 + i) / 1_000_000 for i in range(6)
    ]
    assert [type(entry.level) for entry in got] == [Level, Level, Level, int, Level, Level]
    assert got[0].location is not None and got[0].location.function == "log_everything"
    assert got[2].exception is not None and got[2].exception.endswith(
        "PaymentError: card declined for order 42\nsecond line"
    )


async def test_cli_query_json_reads_every_entry_back_exactly(
    written: tuple[Shape, Path, list[LogEntry]],
) -> None:
    shape, path, entries = written
    code, out, err = cli("query", "--json", path)
    assert (code, err) == (0, "")
    assert [from_cli_json(line) for line in out.splitlines()] == [
        expected(shape, entry) for entry in entries
    ]
    if shape.name == "nested":  # the command's --json is the nested shape: the same bytes
        assert out == path.read_text(encoding="utf-8")


FILTERS: list[tuple[list[str], dict[str, Any], list[int]]] = [
    (["--level", "warning"], {"level": "warning"}, [1, 2, 5]),
    (["--logger", "shop"], {"logger": "shop"}, [0, 1, 3, 4]),
    (["--logger", "worker"], {"logger": "worker"}, [2, 5]),
    (["--field", f"trace_id={TRACE_ID}"], {"fields": {"trace_id": TRACE_ID}}, [0, 2]),
    (["--field", "trace_flags=1"], {"fields": {"trace_flags": 1}}, [0]),
    (["--field", "user_id=42", "--field", "ok=true"], {"fields": {"user_id": 42, "ok": True}}, [0]),
    (["--grep", "SLOW QUERY"], {"text": "SLOW QUERY"}, [1]),
    (["--since", "2026-11-27T10:03"], {"since": "2026-11-27T10:03"}, [3, 4, 5]),
    (
        ["--since", "2026-11-27T10:01:00.123457Z", "--until", "2026-11-27T10:03:00.123459Z"],
        {"since": "2026-11-27T10:01:00.123457Z", "until": "2026-11-27T10:03:00.123459Z"},
        [1, 2],
    ),
]


async def test_filters_on_every_shape(
    written: tuple[Shape, Path, list[LogEntry]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each filter through `query()` and through the command (run in this process: the
    subprocess runs above already show the command reads every shape)."""
    shape, path, entries = written
    for argv, keywords, indices in FILTERS:
        want = [expected(shape, entries[i]) for i in indices]
        got = await read_back(path, **keywords)
        assert [read(entry) for entry in got] == want, argv
        code = command_line(["query", "--json", str(path), *argv])
        out, err = capsys.readouterr()
        assert (code, err) == (0, ""), argv
        assert [from_cli_json(line) for line in out.splitlines()] == want, argv


async def test_tail_and_stats_read_the_shape(
    written: tuple[Shape, Path, list[LogEntry]],
) -> None:
    shape, path, entries = written
    code, out, err = cli("tail", "--json", "-n", "2", "--level", "info", path)
    assert (code, err) == (0, "")
    assert [from_cli_json(line) for line in out.splitlines()] == [
        expected(shape, entries[i]) for i in (3, 5)
    ]
    code, out, err = cli("stats", path, "--since", "2026-11-27", "--color", "never")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "Entries since 2026-11-27T00:00:00Z: 6 (2026-11-27T10:00:00Z to 2026-11-27T10:05:00Z)"
    )


async def test_what_the_gcp_style_keeps_of_levels_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cloud Logging's severities are bands: a level comes back as its band's first level
    (NOTICE is 25); `trace_sampled` keeps the sampled bit of the flags alone; the project in
    the trace is dropped."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    path = tmp_path / "gcp.log"
    config = Config(backend_config=FileConfig(file_path=str(path), format="json", json_style="gcp"))
    async with LogManager(config) as lm:
        for level, flags in [(22, 3), (27, 0), (35, 1), (59, 2), (60, 1), (75, 1)]:
            await lm.write_log(level, f"at {level}", trace_id=TRACE_ID, trace_flags=flags)
    assert f'"logging.googleapis.com/trace": "projects/my-proj/traces/{TRACE_ID}"' in (
        path.read_text()
    )
    got = await read_back(path)
    assert [(entry.level, entry.message, dict(entry.fields)) for entry in got] == [
        (20, "at 22", {"trace_id": TRACE_ID, "trace_flags": 1}),
        (25, "at 27", {"trace_id": TRACE_ID, "trace_flags": 0}),
        (30, "at 35", {"trace_id": TRACE_ID, "trace_flags": 1}),
        (50, "at 59", {"trace_id": TRACE_ID, "trace_flags": 0}),
        (60, "at 60", {"trace_id": TRACE_ID, "trace_flags": 1}),
        (70, "at 75", {"trace_id": TRACE_ID, "trace_flags": 1}),
    ]


async def test_custom_levels_and_severity_numbers_in_the_other_styles(tmp_path: Path) -> None:
    """ecs writes the level's name (`level 25`), otel its name and number: both exact."""
    for style in ("ecs", "otel"):
        path = tmp_path / f"{style}.log"
        config = Config(
            backend_config=FileConfig(file_path=str(path), format="json", json_style=style),
            level=1,
        )
        async with LogManager(config) as lm:
            for level in (1, 5, 22, 25, 59, 60, 100):
                await lm.write_log(level, "x")
        assert [entry.level for entry in await read_back(path)] == [1, 5, 22, 25, 59, 60, 100]


def test_an_otel_line_without_severity_text_reads_its_number() -> None:
    line = (
        '{"Timestamp": "1795773600123456000", "SeverityNumber": 11, "Body": "b", '
        '"InstrumentationScope": {"Name": "n"}, "Attributes": {"k": 1}}'
    )
    entry = parse_json_line(line)
    assert entry is not None
    assert (entry.timestamp, entry.level, entry.logger, entry.message, dict(entry.fields)) == (
        T0 + 0.123456,
        25,
        "n",
        "b",
        {"k": 1},
    )


def test_a_line_whose_keys_were_reordered_still_reads() -> None:
    """A tool that sorts keys (`jq -S`) moves the shape's first key: the line is read by the
    loose reader, the nested shape whole."""
    line = json.dumps(
        {
            "exception": {"type": "E", "message": "m", "stack": "Traceback\nE: m"},
            "fields": {"a": 1},
            "level": "ERROR",
            "logger": "x",
            "message": "hello",
            "timestamp": "2026-11-27T10:00:00.000001Z",
        }
    )
    entry = parse_json_line(line)
    assert entry == LogEntry(
        T0 + 0.000001, Level.ERROR, "hello", "x", MappingProxyType({"a": 1}), "Traceback\nE: m"
    )


def test_the_flat_shape_is_told_from_the_nested_by_its_keys() -> None:
    head = '{"timestamp": "2026-11-27T10:00:00.000000Z", "level": "INFO", "logger": "a", '
    cases = [
        ('"message": "m", "fields": 3, "exception": null}', {"fields": 3}),
        (
            '"message": "m", "fields": {"k": 1}, "x": 2, "exception": null}',
            {"fields": {"k": 1}, "x": 2},
        ),
        # The one line both shapes write alike: read as the nested shape (docs/reading-logs.md).
        ('"message": "m", "fields": {"k": 1}, "exception": null}', {"k": 1}),
        (
            '"message": "m", "fields.level": 1, "fields.fields.level": 2, "exception": null}',
            {"level": 1, "fields.level": 2},
        ),
        (
            '"message": "m", "fields.host": 1, "exception": null, "host": "h", "pid": 7}',
            {"host": 1, "pid": 7},
        ),
        ('"message": "m", "fields.host": 1, "exception": null}', {"fields.host": 1}),
    ]
    for rest, fields in cases:
        entry = parse_json_line(head + rest)
        assert entry is not None and dict(entry.fields) == fields, rest


def test_numbers_written_as_strings_that_are_not_numbers_are_malformed_not_errors() -> None:
    otel = '{"Timestamp": "%s", "SeverityText": "INFO", "Body": "b"}'
    for stamp in ("²", "9" * 5000, "-1", "1e9"):
        assert parse_json_line(otel % stamp) is None
    gcp = (
        '{"severity": "INFO", "message": "m", "time": "2026-11-27T10:00:00.000000Z", '
        '"logging.googleapis.com/labels": {"logger": "a", "host": "h", "pid": "%s"}, '
        '"logging.googleapis.com/sourceLocation": {"file": "m", "line": "%s", "function": "f"}}'
    )
    entry = parse_json_line(gcp % ("²", "9" * 5000))
    assert entry is not None
    assert (dict(entry.fields), entry.location) == ({"host": "h", "pid": "²"}, None)
