"""Reading the file backend's records back: text and JSON lines, plain or gzipped, with the
rotated siblings (`app.log.3.gz`, ..., `app.log.1`, `app.log`) oldest first.

Each line is read by its shape: a line starting with `{` is a JSON record (in any shape the
file backend writes: nested, flat, ecs, gcp, otel, told by its first key; one reader each),
any other is a text record (its traceback on the continuation lines after it, each indented
four spaces).
A line of neither shape is skipped and counted (`LogFiles.malformed`), never an error.
"""

from __future__ import annotations

import collections
import gzip
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any, Literal

from ._entry import EMPTY_FIELDS, Location, LogEntry
from ._json_shapes import (
    ECS_KEYS,
    FIELD_PREFIX,
    FLAT_KEYS,
    GCP_KEYS,
    GCP_PREFIX,
    OTEL_ATTRIBUTE_KEYS,
)
from ._levels import LEVEL_NAMES, Level
from ._read_filters import Filters, QueryError
from .backends._rotation import backup_name
from .backends._safe_open import open_existing

__all__ = [
    "LogFiles",
    "RecordSelector",
    "field_matches",
    "kind_of",
    "log_files",
    "matches",
    "parse_json_line",
    "parse_text_record",
    "sniff_log_lines",
]

CONTINUATION = "    "
_LEVELS: dict[int, Level] = {int(level): level for level in Level}
_LEVEL_NUMBERS = {name: number for number, name in LEVEL_NAMES.items()} | {
    "WARN": 30,
    "FATAL": 50,
}

# --- text ------------------------------------------------------------------------------------

_LEVEL_WORD = "|".join(LEVEL_NAMES.values()) + r"|Level -?\d+"
_TEXT_HEAD = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})Z (" + _LEVEL_WORD + r") (\S*)(?: (.*))?"
)
# `module:function:line ` before the message when the location was captured. A message that
# itself starts like that is read as a location: the text format cannot tell them apart.
_LOCATION = re.compile(r"([\w.<>-]+):([\w.<>-]+):(\d+)(?: |$)")
# One ` key=value` of the fields after the message: a value with a space, `"` or `=` is quoted,
# its `"` written `\"`.
_FIELD = re.compile(r' ([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"=]+)(?= |$)')
_ESCAPED = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


def _unescape_one(found: re.Match[str]) -> str:
    hex2, hex4, char = found.groups()
    if hex2 is not None:
        return chr(int(hex2, 16))
    if hex4 is not None:
        return chr(int(hex4, 16))
    return _SIMPLE_ESCAPES.get(char, "\\" + char)


def unescape(text: str) -> str:
    """Undo `formatters.escape` (and the `\\"` of a quoted value)."""
    return _ESCAPED.sub(_unescape_one, text) if "\\" in text else text


_second_cache: tuple[str, int] = ("", 0)


def _utc_seconds(stamp: str) -> int | None:
    """`2026-11-27T10:00:00` (UTC) in unix seconds, None for an impossible date or time; the
    last one is cached (lines share their second)."""
    global _second_cache
    cached, seconds = _second_cache
    if stamp != cached:
        try:
            moment = datetime(
                int(stamp[0:4]),
                int(stamp[5:7]),
                int(stamp[8:10]),
                int(stamp[11:13]),
                int(stamp[14:16]),
                int(stamp[17:19]),
                tzinfo=UTC,
            )
        except ValueError:
            return None
        seconds = int(moment.timestamp())
        _second_cache = (stamp, seconds)
    return seconds


def _level_number(name: str) -> int | None:
    number = _LEVEL_NUMBERS.get(name.upper())
    if number is not None:
        return number
    custom = re.fullmatch(r"(?i:level)[ _](-?\d+)", name.strip())
    return int(custom.group(1)) if custom else None


def _split_fields(rest: str) -> tuple[str, dict[str, str]]:
    """The message, and the trailing ` key=value` pairs after it (the longest such tail)."""
    tail_start = len(rest)
    position = 0
    fields: list[tuple[str, str]] = []
    while True:
        space = rest.find(" ", position)
        if space < 0:
            break
        found = _FIELD.match(rest, space)
        if found is None:
            fields.clear()
            tail_start = len(rest)
            position = space + 1
            continue
        if not fields:
            tail_start = space
        value = found.group(2)
        if value.startswith('"'):
            value = value[1:-1]
        fields.append((unescape(found.group(1)), unescape(value)))
        position = found.end()
    # A key written twice: the first is the entry's own (the text format with the process
    # fields writes ` host=... pid=...` after the entry's fields, which may have a `host`).
    kept: dict[str, str] = {}
    for key, value in fields:
        kept.setdefault(key, value)
    return unescape(rest[:tail_start]), kept


def parse_text_record(lines: list[str]) -> LogEntry | None:
    """A record of the text format (its first line, then its continuation lines), or None."""
    head = _TEXT_HEAD.fullmatch(lines[0])
    if head is None:
        return None
    stamp, micros, level_word, logger, rest = head.groups()
    level = _level_number(level_word)
    seconds = _utc_seconds(stamp)
    if level is None or seconds is None:
        return None
    rest = rest or ""
    location = None
    located = _LOCATION.match(rest)
    if located is not None:
        module, function, line = located.groups()
        location = Location(unescape(module), unescape(function), int(line))
        rest = rest[located.end() :]
    # With a space in front, each field, and a message that is empty (`logger  key=value`),
    # starts at a space; the message is then what follows that first space.
    message, fields = _split_fields(" " + rest)
    message = message[1:]
    exception = None
    if len(lines) > 1:
        exception = "\n".join(unescape(line[len(CONTINUATION) :]) for line in lines[1:])
    return LogEntry(
        seconds + int(micros) / 1_000_000,
        _LEVELS.get(level, level),
        message,
        unescape(logger),
        MappingProxyType(fields) if fields else EMPTY_FIELDS,
        exception,
        None,
        location,
    )


# --- JSON ------------------------------------------------------------------------------------

# Each shape the file backend writes starts with a key of its own (`_json_shapes`): the first
# key of a line picks the reader, one dict lookup. A line no reader takes (keys reordered by
# some tool, another program's JSON) is read loosely by `_any_json`.

_PREFIX_LENGTH = len(FIELD_PREFIX)
_FLAT_HEAD = ("level", "logger", "message")
_NESTED_MIDDLE = ("fields", "exception")
_FLAT_TAIL = frozenset(("module", "function", "line", "host", "pid"))
_PROCESS_KEYS = frozenset(("host", "pid"))
_ECS_TAKEN = ECS_KEYS | {key.split(".")[0] for key in ECS_KEYS}
_GCP_LEVELS = {
    "DEFAULT": 0,
    "DEBUG": 10,
    "INFO": 20,
    "NOTICE": 25,
    "WARNING": 30,
    "ERROR": 40,
    "CRITICAL": 50,
    "ALERT": 60,
    "EMERGENCY": 70,
}
_OTEL_LOWEST_STEP = (0, 3, 5, 8)  # `severity_number` undone: a range's first level


def _unprefixed(key: str, reserved: Callable[[str], bool]) -> str:
    """A field's key as the user gave it: the shapes put `fields.` in front of a key they
    reserve (again, until it is free), so one `fields.` comes off a key that has it in front
    of a reserved one."""
    if not key.startswith(FIELD_PREFIX):
        return key
    base = key
    while base.startswith(FIELD_PREFIX):
        base = base[_PREFIX_LENGTH:]
    return key[_PREFIX_LENGTH:] if reserved(base) else key


def _iso_time(value: object) -> float | None:
    """`2026-11-27T10:00:00.123456Z`, as every shape but otel writes the time."""
    if not isinstance(value, str):
        return None
    found = _ISO_Z.fullmatch(value)
    if found is None:
        return None
    seconds = _utc_seconds(found.group(1))
    return None if seconds is None else seconds + int(found.group(2)) / 1_000_000


def _decimal(value: object) -> int | None:
    """A number the shapes write as a string (otel's time, gcp's line and pid): ASCII digits
    only, never long enough for `int()` to refuse."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 30:
        return int(value)
    return None


def _nanosecond_time(value: object) -> float | None:
    """otel's `Timestamp` (nanoseconds as a string), as the other shapes' time reads."""
    nanoseconds = _decimal(value)
    if nanoseconds is None:
        return None
    seconds, micros = divmod(nanoseconds // 1000, 1_000_000)
    return seconds + micros / 1_000_000


def _entry(
    ts: float | None,
    level: int | None,
    message: object,
    logger: object,
    fields: dict[str, Any],
    exception: object,
    location: Location | None,
) -> LogEntry | None:
    if ts is None or level is None or not isinstance(message, str):
        return None
    return LogEntry(
        ts,
        _LEVELS.get(level, level),
        message,
        logger if isinstance(logger, str) else "",
        MappingProxyType(fields) if fields else EMPTY_FIELDS,
        exception if isinstance(exception, str) else None,
        None,
        location,
    )


def _located(module: object, function: object, line: object) -> Location | None:
    if isinstance(line, str):
        line = _decimal(line)  # gcp writes the line as a string
    if isinstance(module, str) and isinstance(function, str) and type(line) is int:
        return Location(module, function, line)
    return None


def _with_process(fields: dict[str, Any], host: object, pid: object) -> dict[str, Any]:
    """`fields` with the process fields after them; a field of the entry's own by that name
    wins (the shapes write both)."""
    fields.setdefault("host", host)
    fields.setdefault("pid", pid)
    return fields


def _trace_first(trace: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The trace fields in front of the others, where the capture puts them (and the
    database reader too)."""
    if not trace:
        return fields
    trace.update(fields)
    return trace


def _stack(value: object) -> str | None:
    """The traceback of the nested and flat shapes: `{"type", "message", "stack"}` (a string
    in files from before the structured traceback)."""
    if isinstance(value, dict):
        stack = value.get("stack")
        return stack if isinstance(stack, str) else None
    return value if isinstance(value, str) else None


def _nested_or_flat(record: dict[str, Any]) -> LogEntry | None:
    """`timestamp, level, logger, message`, then `fields` and `exception` (nested) or the
    fields and `exception` (flat), then the location and the process fields. In the flat
    shape the fields are the keys between `message` and `exception` (a field cannot be named
    `exception`: it gets `fields.` in front)."""
    keys = tuple(record)
    if keys[1:4] != _FLAT_HEAD or "exception" not in record:
        return None
    nested = keys[4:6] == _NESTED_MIDDLE
    end = 5 if nested else keys.index("exception")
    tail = keys[end + 1 :]
    if tail and not _FLAT_TAIL.issuperset(tail):
        return None
    process = "host" in tail and "pid" in tail
    fields = record["fields"] if nested else None
    if not isinstance(fields, dict):
        reserved = FLAT_KEYS | _PROCESS_KEYS if process else FLAT_KEYS
        fields = {_unprefixed(key, reserved.__contains__): record[key] for key in keys[4:end]}
    if process:
        fields = _with_process(dict(fields), record["host"], record["pid"])
    return _entry(
        _iso_time(record["timestamp"]),
        _level_of(record["level"]),
        record["message"],
        record["logger"],
        fields,
        _stack(record["exception"]),
        _located(record.get("module"), record.get("function"), record.get("line")),
    )


def _ecs(record: dict[str, Any]) -> LogEntry | None:
    """The `ecs` style: the scalar fields in `labels`, the others beside the ECS keys."""
    trace = {}
    if "trace.id" in record:
        trace["trace_id"] = record["trace.id"]
    if "span.id" in record:
        trace["span_id"] = record["span.id"]
    labels = record.get("labels")
    fields = dict(labels) if isinstance(labels, dict) else {}
    if "trace_flags" in fields:  # ECS has no place for the flags: they are a label
        trace["trace_flags"] = fields.pop("trace_flags")
    for key, value in record.items():
        if key not in ECS_KEYS:
            fields[_unprefixed(key, _ECS_TAKEN.__contains__)] = value
    fields = _trace_first(trace, fields)
    if "host.hostname" in record and "process.pid" in record:
        fields = _with_process(fields, record["host.hostname"], record["process.pid"])
    return _entry(
        _iso_time(record["@timestamp"]),
        _level_of(record.get("log.level")),
        record.get("message"),
        record.get("log.logger"),
        fields,
        record.get("error.stack_trace"),
        _located(
            record.get("log.origin.file.name"),
            record.get("log.origin.function"),
            record.get("log.origin.file.line"),
        ),
    )


def _gcp_reserved(key: str) -> bool:
    return key in GCP_KEYS or key.startswith(GCP_PREFIX)


def _gcp(record: dict[str, Any]) -> LogEntry | None:
    """The `gcp` style: the logger (and the process fields) in the labels, the trace in
    Cloud Logging's keys, the fields at the top level."""
    labels = record.get("logging.googleapis.com/labels")
    labels = labels if isinstance(labels, dict) else {}
    trace: dict[str, Any] = {}
    trace_key = record.get("logging.googleapis.com/trace")
    if isinstance(trace_key, str):
        trace["trace_id"] = trace_key.rpartition("/")[2]  # projects/<p>/traces/<id>
    if "logging.googleapis.com/spanId" in record:
        trace["span_id"] = record["logging.googleapis.com/spanId"]
    sampled = record.get("logging.googleapis.com/trace_sampled")
    if isinstance(sampled, bool):
        trace["trace_flags"] = int(sampled)
    fields = _trace_first(
        trace,
        {_unprefixed(k, _gcp_reserved): v for k, v in record.items() if not _gcp_reserved(k)},
    )
    if "host" in labels and "pid" in labels:
        pid = labels["pid"]
        number = _decimal(pid)
        fields = _with_process(fields, labels["host"], pid if number is None else number)
    place = record.get("logging.googleapis.com/sourceLocation")
    place = place if isinstance(place, dict) else {}
    severity = record["severity"]
    return _entry(
        _iso_time(record.get("time")),
        _GCP_LEVELS.get(severity) if isinstance(severity, str) else None,
        record.get("message"),
        labels.get("logger"),
        fields,
        record.get("stack_trace"),
        _located(place.get("file"), place.get("function"), place.get("line")),
    )


def _otel_reserved(key: str) -> bool:
    return key in OTEL_ATTRIBUTE_KEYS


def _otel_level(record: dict[str, Any]) -> int | None:
    level = _level_of(record.get("SeverityText"))
    number = record.get("SeverityNumber")
    if level is None and type(number) is int and number >= 1:
        band, step = divmod(number - 1, 4)
        level = band * 10 + _OTEL_LOWEST_STEP[step]
    return level


def _otel(record: dict[str, Any]) -> LogEntry | None:
    """The `otel` style: the log data model's names, the fields as `Attributes`."""
    attributes = record.get("Attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    trace = {
        name: record[key]
        for key, name in (
            ("TraceId", "trace_id"),
            ("SpanId", "span_id"),
            ("TraceFlags", "trace_flags"),
        )
        if key in record
    }
    fields = _trace_first(
        trace,
        {
            _unprefixed(k, _otel_reserved): v
            for k, v in attributes.items()
            if k not in OTEL_ATTRIBUTE_KEYS
        },
    )
    resource = record.get("Resource")
    if isinstance(resource, dict) and "host.name" in resource and "process.pid" in resource:
        fields = _with_process(fields, resource["host.name"], resource["process.pid"])
    scope = record.get("InstrumentationScope")
    code = attributes.get("code.function.name")
    module, _, function = code.rpartition(".") if isinstance(code, str) else (None, "", None)
    return _entry(
        _nanosecond_time(record["Timestamp"]),
        _otel_level(record),
        record.get("Body"),
        scope.get("Name") if isinstance(scope, dict) else None,
        fields,
        attributes.get("exception.stacktrace"),
        _located(module or None, function, attributes.get("code.line.number")),
    )


_SHAPES: dict[str, Callable[[dict[str, Any]], LogEntry | None]] = {
    "timestamp": _nested_or_flat,
    "@timestamp": _ecs,
    "severity": _gcp,
    "Timestamp": _otel,
}


def parse_json_line(line: str) -> LogEntry | None:
    """A JSON record of any shape the file backend writes (nested, flat, ecs, gcp, otel, with
    or without the process fields), or any JSON object with a time, a level and a message
    under the names log stacks use; None for anything else."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not record:
        return None
    reader = _SHAPES.get(next(iter(record)))
    entry = None if reader is None else reader(record)
    return entry if entry is not None else _any_json(record)


# Any other JSON object: the names each part of an entry goes by in asynclog's shapes and in
# other log stacks, every key that is not one of those a field.
_TIME_KEYS = ("timestamp", "@timestamp", "time")
_LEVEL_KEYS = ("level", "log.level", "severity", "severity_text")
_MESSAGE_KEYS = ("message", "msg", "body")
_LOGGER_KEYS = ("logger", "log.logger")
_EXCEPTION_KEYS = ("exception", "error.stack_trace", "traceback")
_LOCATION_KEYS = ("module", "function", "line")
_ENTRY_KEYS = frozenset(
    (*_TIME_KEYS, *_LEVEL_KEYS, *_MESSAGE_KEYS, *_LOGGER_KEYS, *_EXCEPTION_KEYS, "fields")
)


def _first(record: Mapping[str, Any], keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        if key in record:
            return key, record[key]
    return None, None


def _json_time(value: object) -> float | None:
    """Unix seconds, None for what is not a time of years 1 to 9999 UTC (what a datetime and
    the text format can hold)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds: float = value
    elif not isinstance(value, str):
        return None
    elif (iso := _iso_time(value)) is not None:
        seconds = iso
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        seconds = (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).timestamp()
    return float(seconds) if FIRST_SECOND <= seconds < END_SECOND else None


FIRST_SECOND = datetime(1, 1, 1, tzinfo=UTC).timestamp()
END_SECOND = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC).timestamp()
_ISO_Z = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})Z")


def _level_of(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _level_number(value) if isinstance(value, str) else None


def _json_exception(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):  # a structured traceback: its text, when it has one
        for key in ("stack", "stack_trace", "traceback", "text", "stacktrace"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return json.dumps(value, ensure_ascii=False)


def _any_json(record: dict[str, Any]) -> LogEntry | None:
    """A JSON object of no shape of asynclog's: nested fields, or flat (every key that is not
    one of the entry's own is a field)."""
    _, ts = _first(record, _TIME_KEYS)
    _, level_value = _first(record, _LEVEL_KEYS)
    _, message = _first(record, _MESSAGE_KEYS)
    _, logger = _first(record, _LOGGER_KEYS)
    _, exception = _first(record, _EXCEPTION_KEYS)
    nested = record.get("fields")
    location = _located(*(record.get(key) for key in _LOCATION_KEYS))
    if isinstance(nested, dict):
        fields: dict[str, Any] = nested
    else:
        skip = _ENTRY_KEYS | (set(_LOCATION_KEYS) if location is not None else set())
        fields = {key: value for key, value in record.items() if key not in skip}
    return _entry(
        _json_time(ts),
        _level_of(level_value),
        message,
        logger,
        fields,
        _json_exception(exception),
        location,
    )


# --- files -----------------------------------------------------------------------------------


def log_files(path: str, every: bool) -> list[str]:
    """`path`, preceded with `every` by its rotated siblings, oldest first: `app.log.N(.gz)`
    ... `app.log.1(.gz)`. A number present both plain and gzipped (a compression caught in
    the middle) is read plain; `.gz.tmp` files are never read."""
    if not every:
        return [path]
    directory = os.path.dirname(path) or "."
    prefix = os.path.basename(path) + "."
    numbered: dict[int, str] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    for name in names:
        if not name.startswith(prefix):
            continue
        suffix = name[len(prefix) :]
        number, _, gz = suffix.partition(".")
        numbered_name = number.isascii() and number.isdigit() and not number.startswith("0")
        if not numbered_name or gz not in ("", "gz"):
            continue
        sibling = backup_name(path, int(number)) + ("." + gz if gz else "")
        if gz and int(number) in numbered:
            continue
        numbered[int(number)] = sibling
    return [numbered[number] for number in sorted(numbered, reverse=True)] + [path]


def _lines(path: str, *, given: bool = True) -> Iterator[str]:
    """The lines of `path` (gunzipped for `.gz`). A path not `given` by the user (a rotated
    sibling found by `--all`) is opened only as a regular file, never through a link."""
    if given:
        handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 (closed below)
    else:
        handle = os.fdopen(open_existing(path, os.O_RDONLY), "rb")
    with handle:
        readable = gzip.GzipFile(fileobj=handle, mode="rb") if path.endswith(".gz") else handle
        for raw in readable:
            yield raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")


def _records(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number of its first line, its lines): a line and the continuation lines after it."""
    record: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        if record and line.startswith(CONTINUATION):
            record.append(line)
            continue
        if record:
            yield start, record
        record, start = [line], number
    if record:
        yield start, record


def parse_record(lines: list[str]) -> LogEntry | None:
    """A record by its shape: JSON (one line) or text (with its continuation lines)."""
    if lines[0].startswith("{"):
        return parse_json_line(lines[0]) if len(lines) == 1 else None
    return parse_text_record(lines)


SNIFF_LINES = 200
"""How many lines are looked at to tell a log file from some other file."""
SNIFF_BYTES = 16 * 1024 * 1024
"""At most how many bytes of a file those lines are read from."""
_CHUNK = 1024 * 1024


def sniff_log_lines(path: str) -> bool | None:
    """Whether one of the first `SNIFF_LINES` lines of `path` begins a text or JSON record;
    None when they are all blank (an empty file: a log that was just rotated, say)."""
    blank = True
    for _, lines in _records(_first_lines(path, SNIFF_LINES)):
        if not lines[0].strip():
            continue
        blank = False
        if parse_record(lines) is not None:
            return True
    return None if blank else False


SQLITE_MAGIC = b"SQLite format 3\x00"
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def kind_of(path: str) -> Literal["sqlite", "log", "other"]:
    """What `path` holds, by its content: `"sqlite"` (its header), `"log"` (asynclog text or
    JSON records in its first lines, or nothing at all unless its name says database), or
    `"other"`. Raises `OSError` when it cannot be read."""
    with open(path, "rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        return "sqlite"
    sniffed = sniff_log_lines(path)
    if sniffed or (sniffed is None and not path.lower().endswith(DB_SUFFIXES)):
        return "log"
    return "other"


def not_a_log(path: str) -> str:
    """The error for a file that is neither a database nor a log of asynclog's."""
    return (
        f"{path}: not an asynclog log: neither an SQLite database nor asynclog's text or JSON lines"
    )


def _first_lines(path: str, count: int) -> Iterator[str]:
    """The first `count` lines of `path`, from at most its first `SNIFF_BYTES` (the last one
    perhaps cut there): a big file with no newline (a core dump, say) is refused without
    being read whole."""
    opener = gzip.open if path.endswith(".gz") else open
    chunks: list[bytes] = []
    size = 0
    with opener(path, "rb") as handle:
        while size < SNIFF_BYTES:
            try:
                chunk = handle.read(min(_CHUNK, SNIFF_BYTES - size))
            except EOFError:  # a gzip cut short: what came before it still tells
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    lines = b"".join(chunks).split(b"\n")
    if not lines[-1]:
        lines.pop()
    for line in lines[:count]:
        yield line.rstrip(b"\r").decode("utf-8", "replace")


# --- filters ---------------------------------------------------------------------------------

_TEXT_CONSTANTS = {"True": "true", "False": "false", "None": "null"}


def field_text(value: object) -> str:
    """A field value as the filters compare it (and as SQLite's JSON text spells it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def field_matches(value: object, wanted: str) -> bool:
    """`--field KEY=wanted` against a field's value, as the SQLite query compares: equal as
    text, or as numbers when both are; `true`/`false`/`null` also match the text format's
    `True`/`False`/`None`."""
    text = field_text(value)
    if text == wanted or _TEXT_CONSTANTS.get(text) == wanted:
        return True
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str) and value.strip() != value:
        return False
    number = _as_number(text) if isinstance(value, int | float | str) else None
    return number is not None and number == _as_number(wanted)


def matches(entry: LogEntry, filters: Filters) -> bool:
    """Whether `entry` passes every condition of `filters` (all but `limit`)."""
    if filters.min_level is not None and entry.level < filters.min_level:
        return False
    if filters.since is not None and entry.timestamp < filters.since:
        return False
    if filters.until is not None and entry.timestamp >= filters.until:
        return False
    wanted = filters.logger
    if wanted is not None and entry.logger != wanted and not entry.logger.startswith(wanted + "."):
        return False
    if filters.text is not None and filters.text.lower() not in entry.message.lower():
        return False
    for key, value in filters.fields:
        if key not in entry.fields or not field_matches(entry.fields[key], value):
            return False
    return True


@dataclass
class RecordSelector:
    """Reads records (a line and its continuation lines, as `asynclog tail` hands them out)
    and keeps those matching `filters`; counts the lines of the malformed ones."""

    filters: Filters
    malformed: int = 0

    def select(self, records: Iterable[str]) -> list[tuple[str, LogEntry]]:
        """(record, entry) of each record that reads and matches, in order."""
        kept: list[tuple[str, LogEntry]] = []
        for record in records:
            if not record.strip():
                continue
            lines = record.split("\n")
            entry = parse_record(lines)
            if entry is None:
                self.malformed += len(lines)
            elif matches(entry, self.filters):
                kept.append((record, entry))
        return kept


# --- the reader ------------------------------------------------------------------------------


@dataclass
class LogFiles:
    """The entries of a log file (and with `every`, its rotated siblings first), in the order
    they were written. Malformed records are skipped and counted in `malformed` (lines), the
    first of them in `first_malformed`; files that cannot be read end up in `unreadable`."""

    path: str
    every: bool = False
    files: list[str] = field(init=False)
    malformed: int = 0
    first_malformed: tuple[str, int] | None = None
    unreadable: list[str] = field(default_factory=list)
    _cached: list[tuple[float, int, str]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.files = log_files(self.path, self.every)

    def all_entries(self) -> Iterator[LogEntry]:
        """Every readable entry of every file, oldest file first. The log itself missing or
        unreadable is a `QueryError`; a sibling that is (rotated away meanwhile, a damaged
        gzip) is noted in `unreadable` and skipped."""
        for path in self.files:
            try:
                yield from self._entries_of(path)
            except FileNotFoundError:
                if path == self.path:
                    raise QueryError(f"{path}: no such file") from None
            except (OSError, EOFError) as exc:
                if path == self.path:
                    raise QueryError(f"{path}: cannot read: {exc}") from None
                self.unreadable.append(f"{path}: {exc}")

    def _entries_of(self, path: str) -> Iterator[LogEntry]:
        for number, lines in _records(_lines(path, given=path == self.path)):
            if not lines[0].strip() and len(lines) == 1:
                continue
            entry = parse_record(lines)
            if entry is None:
                self.malformed += len(lines)
                if self.first_malformed is None:
                    self.first_malformed = (path, number)
                continue
            yield entry

    def entries(self, filters: Filters) -> Iterator[LogEntry]:
        """The entries matching `filters`; with a limit, the last `limit` of them."""
        found = (entry for entry in self.all_entries() if matches(entry, filters))
        if filters.limit is None:
            yield from found
        else:
            yield from collections.deque(found, maxlen=filters.limit)

    def _points(self) -> list[tuple[float, int, str]]:
        """(timestamp, level, logger) of every entry, read once for the stats."""
        if self._cached is None:
            self._cached = [(e.timestamp, int(e.level), e.logger) for e in self.all_entries()]
        return self._cached

    def _scoped(self, filters: Filters) -> Iterator[tuple[float, int]]:
        since, until, wanted = filters.since, filters.until, filters.logger
        for ts, level, logger in self._points():
            if (since is not None and ts < since) or (until is not None and ts >= until):
                continue
            if wanted is not None and logger != wanted and not logger.startswith(wanted + "."):
                continue
            yield ts, level

    def summary(self, filters: Filters) -> tuple[int, float | None, float | None]:
        """(count, first ts, last ts) of the entries in the scope of `filters` (its since,
        until and logger: what `stats` takes), as `LogDB.summary`."""
        stamps = [ts for ts, _ in self._scoped(filters)]
        return len(stamps), min(stamps, default=None), max(stamps, default=None)

    def count_by_level(self, filters: Filters) -> dict[int, int]:
        """Entry counts by level number."""
        return dict(collections.Counter(level for _, level in self._scoped(filters)))

    def count_by_hour(self, filters: Filters) -> dict[int, int]:
        """Entry counts by UTC hour, keyed by the hour's start in unix seconds."""
        return dict(collections.Counter(int(ts // 3600) * 3600 for ts, _ in self._scoped(filters)))

    def count_by_minute(self, filters: Filters) -> dict[int, dict[int, int]]:
        """Entry counts by minute (its start in unix seconds), then by level."""
        minutes: dict[int, dict[int, int]] = {}
        for ts, level in self._scoped(filters):
            counts = minutes.setdefault(int(ts // 60) * 60, {})
            counts[level] = counts.get(level, 0) + 1
        return minutes

    def problems(self) -> list[str]:
        """What to say on stderr once the reading is done (nothing when all was well)."""
        said = []
        if self.malformed and self.first_malformed is not None:
            path, number = self.first_malformed
            plural = "line" if self.malformed == 1 else "lines"
            said.append(
                f"skipped {self.malformed} malformed {plural} (the first: {path} line {number})"
            )
        said.extend(f"could not read {problem}" for problem in self.unreadable)
        return said
