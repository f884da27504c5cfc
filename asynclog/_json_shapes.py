"""The formats a file or console backend writes, chosen once when the backend is made: the
text, logfmt and JSON formats, the JSON ones in the shape the config asks for
(`json_fields="nested"|"flat"`, `json_style="ecs"|"gcp"|"otel"`), with or without the
process fields (`FileConfig(process_fields=True)`). Each shape is its own function, so an
entry pays for nothing its shape does not write. docs/backends-and-formats.md shows each
document.

The user's fields go through `formatters.fields_to_json` in every shape, so orjson (the
`fastjson` extra) writes the same bytes as the standard library there too (`_joined`).
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from ._entry import Entry, LogEntry
from ._exception_text import parse_exception
from ._file_config import JsonFields, JsonStyle, check_json_shape
from ._levels import level_name, severity_number
from .formatters import (
    _JSON_UNSAFE,
    ENTRY_TUPLE_FORMATTERS,
    FORMATTERS,
    Formatter,
    _encode_text,
    fields_to_json,
    iso_utc,
    json_format,
    lines_of,
    logfmt_with_process,
    process_text,
    text_lines,
)

FIELD_PREFIX = "fields."
"""Put in front of a user field's key that would collide with a key of the shape (again,
until it does not), as the logfmt format does: `level` becomes `fields.level`."""

GCP_PROJECT_VARIABLE = "GOOGLE_CLOUD_PROJECT"
"""When set (read when the backend is made), the GCP style writes the trace as
`projects/<project>/traces/<trace id>`, the form Cloud Logging links to Cloud Trace."""

ECS_VERSION = "8.11.0"
"""The ECS version the `ecs` style writes in `ecs.version`."""

Lines = Callable[[Sequence[Entry]], list[str]]

# -- the process fields -----------------------------------------------------------------------

_origin: tuple[str | None, int] | None = None


def process_origin() -> tuple[str | None, int]:
    """This host's name (None if the system will not tell) and this process's id; read once,
    and again in a forked child."""
    global _origin
    if _origin is None:
        try:
            host: str | None = socket.gethostname()
        except OSError:
            host = None
        _origin = (host, os.getpid())
    return _origin


def _forget_origin() -> None:
    global _origin
    _origin = None


os.register_at_fork(after_in_child=_forget_origin)

# -- trace context ----------------------------------------------------------------------------

TRACE_FIELDS = ("trace_id", "span_id", "trace_flags")
_TRACE_ID = re.compile(r"(?!0{32})[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"(?!0{16})[0-9a-fA-F]{16}")


def _trace_context(
    fields: Mapping[str, Any],
) -> tuple[str | None, str | None, int | None, Mapping[str, Any]]:
    """(trace id, span id, trace flags, the other fields): each trace field taken out when it
    has its form (32 or 16 hex digits, not all zero: W3C's invalid id; written in lower case;
    flags an int 0-255), else left with the other fields."""
    if "trace_id" not in fields and "span_id" not in fields and "trace_flags" not in fields:
        return None, None, None, fields
    rest = dict(fields)
    trace_id = rest.get("trace_id")
    if isinstance(trace_id, str) and _TRACE_ID.fullmatch(trace_id):
        del rest["trace_id"]
        trace_id = trace_id.lower()
    else:
        trace_id = None
    span_id = rest.get("span_id")
    if isinstance(span_id, str) and _SPAN_ID.fullmatch(span_id):
        del rest["span_id"]
        span_id = span_id.lower()
    else:
        span_id = None
    flags = rest.get("trace_flags")
    if isinstance(flags, int) and not isinstance(flags, bool) and 0 <= flags <= 255:
        del rest["trace_flags"]
        flags = int(flags)
    else:
        flags = None
    return trace_id, span_id, flags, rest


def _unique(key: object, taken: set[str]) -> str:
    text = key if isinstance(key, str) else str(key)
    while text in taken:
        text = FIELD_PREFIX + text
    taken.add(text)
    return text


def _renamed(fields: Mapping[str, Any], reserved: frozenset[str]) -> Mapping[str, Any]:
    """`fields` with each key a shape reserves prefixed (`_unique`); as they are when none is."""
    if reserved.isdisjoint(fields):
        return fields
    taken = set(reserved)
    return {_unique(key, taken): value for key, value in fields.items()}


def _joined(*objects: str) -> str:
    """JSON objects' texts as one object, their keys in order (`{"a": 1}`, `{}`, `{"b": 2}`
    give `{"a": 1, "b": 2}`, the text json.dumps writes for the merged dict), made safe for a
    line as the JSON format is. A shape encodes its own keys with `_own` and the user's values
    with `fields_to_json`, the one function that may hand them to orjson: whole documents
    would hold a `:` (the time) beside the user's containers, which the orjson path refuses,
    so each would be encoded twice."""
    line = "{" + ", ".join([text[1:-1] for text in objects if text != "{}"]) + "}"
    if line.isascii() and "\x7f" not in line:
        return line
    return line.translate(_JSON_UNSAFE)


def _own(document: Mapping[str, object]) -> str:
    """A shape's own keys as JSON, the text json.dumps writes: their values are only exact
    strs, ints, bools, None and dicts of these (the standard encoder costs a few µs a call
    even for a small dict; `_encode_text` is one C call)."""
    return (
        "{" + ", ".join([f"{_encode_text(k)}: {_own_value(v)}" for k, v in document.items()]) + "}"
    )


def _own_value(value: object) -> str:
    if value.__class__ is str:
        return _encode_text(value)
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if value.__class__ is int:
        return repr(value)
    return _own(cast(Mapping[str, object], value))


def _keyed(key: str, fields: dict[str, Any]) -> str:
    """`{key: fields}` as JSON, `fields` through `fields_to_json`."""
    return f"{{{_encode_text(key)}: {fields_to_json(fields)}}}"


def _exception_parts(text: str) -> dict[str, Any]:
    kind, message = parse_exception(text)
    return {"type": kind, "message": message, "stack": text}


# -- the shapes -------------------------------------------------------------------------------

FLAT_KEYS = frozenset(
    ("timestamp", "level", "logger", "message", "exception", "module", "function", "line")
)
"""The keys of the flat shape; with the process fields, `host` and `pid` too."""


_nested = cast(Callable[[Entry], str], json_format)  # it takes plain tuples too


def _nested_with_process(entry: Entry) -> str:
    host, pid = process_origin()
    host_json = "null" if host is None else _encode_text(host).translate(_JSON_UNSAFE)
    return f'{_nested(entry)[:-1]}, "host": {host_json}, "pid": {pid}}}'


def _flat(process: bool) -> Callable[[Entry], str]:
    reserved = FLAT_KEYS | {"host", "pid"} if process else FLAT_KEYS

    def flat(entry: Entry) -> str:
        ts, level, message, logger, fields, exception, _, location = entry
        head = (
            f'{{"timestamp": "{iso_utc(ts)}", "level": {_encode_text(level_name(level))}, '
            f'"logger": {_encode_text(logger)}, "message": {_encode_text(message)}}}'
        )
        tail: dict[str, Any] = {
            "exception": None if exception is None else _exception_parts(exception)
        }
        if location is not None:
            module, function, number = location
            tail.update(module=module, function=function, line=int(number))
        if process:
            tail["host"], tail["pid"] = process_origin()
        return _joined(head, fields_to_json(_renamed(fields, reserved)), _own(tail))

    return flat


ECS_KEYS = frozenset(
    (
        "@timestamp",
        "log.level",
        "message",
        "ecs.version",
        "log.logger",
        "log.origin.file.name",
        "log.origin.function",
        "log.origin.file.line",
        "error.type",
        "error.message",
        "error.stack_trace",
        "process.pid",
        "host.hostname",
        "trace.id",
        "span.id",
        "labels",
    )
)
"""The keys the `ecs` style writes; a user field that is not a scalar goes beside them unless
its key is one of these or starts with the first part of one (`log`, `log.origin`, `error`,
...: `_ecs_objects`)."""
_ECS_TAKEN = ECS_KEYS | {key.split(".")[0] for key in ECS_KEYS}
_SCALARS = (str, int, float, bool, type(None))


def _ecs(process: bool) -> Callable[[Entry], str]:
    def ecs(entry: Entry) -> str:
        ts, level, message, logger, fields, exception, _, location = entry
        head = (
            f'{{"@timestamp": "{iso_utc(ts)}", '
            f'"log.level": {_encode_text(level_name(level).lower())}, '
            f'"message": {_encode_text(message)}, "ecs.version": "{ECS_VERSION}", '
            f'"log.logger": {_encode_text(logger)}}}'
        )
        more: dict[str, Any] = {}
        if location is not None:
            module, function, number = location
            more["log.origin.file.name"] = module
            more["log.origin.function"] = function
            more["log.origin.file.line"] = int(number)
        if exception is not None:
            kind, text = parse_exception(exception)
            if kind is not None:
                more["error.type"] = kind
            if text is not None:
                more["error.message"] = text
            more["error.stack_trace"] = exception
        if process:
            more["host.hostname"], more["process.pid"] = process_origin()
        trace_id, span_id, flags, rest = _trace_context(fields)
        if flags is not None:  # ECS has no field for the flags: a label like any other
            rest = {**rest, "trace_flags": flags}
        if trace_id is not None:
            more["trace.id"] = trace_id
        if span_id is not None:
            more["span.id"] = span_id
        labels = {key: value for key, value in rest.items() if isinstance(value, _SCALARS)}
        others: dict[str, Any] = {}
        if len(labels) < len(rest):
            others = {k: v for k, v in rest.items() if not isinstance(v, _SCALARS)}
        return _joined(
            head,
            _own(more),
            _keyed("labels", _undotted(labels)) if labels else "{}",
            fields_to_json(_ecs_objects(others)),
        )

    return ecs


LABEL_PREFIX = "fields_"
"""Put in front of an ECS label's key that is taken (once its dots became `_`)."""


def _undotted(labels: dict[str, Any]) -> dict[str, Any]:
    """The labels with `_` for each `.` in their keys (ECS labels hold no nested objects,
    and Elasticsearch makes one of a dotted key); a key taken then gets `fields_` in front."""
    if not any(isinstance(key, str) and "." in key for key in labels):
        return labels
    taken: set[str] = set()
    undotted = {}
    for key, value in labels.items():
        text = str(key).replace(".", "_")
        while text in taken:
            text = LABEL_PREFIX + text
        taken.add(text)
        undotted[text] = value
    return undotted


def _ecs_objects(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """The fields that go beside the ECS keys, each whose key is, or starts (up to a dot)
    with, a part `_ECS_TAKEN` holds prefixed: Elasticsearch expands the dots, so
    `log.origin` would meet `log.origin.file.name` there."""
    if all(str(key).partition(".")[0] not in _ECS_TAKEN for key in fields):
        return _renamed(fields, _ECS_TAKEN)
    taken = set(_ECS_TAKEN)
    objects = {}
    for key, value in fields.items():
        text = str(key)
        if text.partition(".")[0] in _ECS_TAKEN:
            text = FIELD_PREFIX + text
        objects[_unique(text, taken)] = value
    return objects


def gcp_severity(level: int) -> str:
    """Cloud Logging's `LogSeverity` name of a level number: below 1 `DEFAULT`, below 20
    `DEBUG`, 20-24 `INFO`, 25-29 `NOTICE`, 30s `WARNING`, 40s `ERROR`, 50s `CRITICAL`, 60s
    `ALERT`, 70 and above `EMERGENCY`."""
    if level <= 0:
        return "DEFAULT"
    if level < 20:
        return "DEBUG"
    if level < 30:
        return "INFO" if level < 25 else "NOTICE"
    names = ("WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
    return names[min(level // 10 - 3, len(names) - 1)]


GCP_KEYS = frozenset(
    (
        "severity",
        "message",
        "time",
        "error",
        "stack_trace",
        "logging.googleapis.com/labels",
        "logging.googleapis.com/sourceLocation",
        "logging.googleapis.com/trace",
        "logging.googleapis.com/spanId",
        "logging.googleapis.com/trace_sampled",
        # What the agent would also read as the entry's own, not the payload's:
        "timestamp",
        "timestampSeconds",
        "timestampNanos",
        "log",
        "logging.googleapis.com/insertId",
        "logging.googleapis.com/operation",
        "exception",
    )
)
"""The keys a user field cannot take in the `gcp` style (it gets `fields.` in front)."""


def _gcp(process: bool, project: str | None) -> Callable[[Entry], str]:
    trace_prefix = "" if not project else f"projects/{project}/traces/"
    process_labels = _gcp_process_labels if process else _no_labels

    def gcp(entry: Entry) -> str:
        ts, level, message, logger, fields, exception, _, location = entry
        labels = f'{{"logger": {_encode_text(logger)}{process_labels()}}}'
        head = (
            f'{{"severity": "{gcp_severity(level)}", "message": {_encode_text(message)}, '
            f'"time": "{iso_utc(ts)}", "logging.googleapis.com/labels": {labels}}}'
        )
        more: dict[str, Any] = {}
        if location is not None:
            module, function, number = location
            more["logging.googleapis.com/sourceLocation"] = {
                "file": module,
                "line": str(int(number)),
                "function": function,
            }
        trace_id, span_id, flags, rest = _trace_context(fields)
        if trace_id is not None:
            more["logging.googleapis.com/trace"] = trace_prefix + trace_id
        if span_id is not None:
            more["logging.googleapis.com/spanId"] = span_id
        if flags is not None:
            more["logging.googleapis.com/trace_sampled"] = bool(flags & 1)
        if exception is not None:
            kind, text = parse_exception(exception)
            more["error"] = {"type": kind, "message": text}
            more["stack_trace"] = exception
        return _joined(head, _own(more), fields_to_json(_gcp_payload(rest)))

    return gcp


GCP_PREFIX = "logging.googleapis.com/"


def _gcp_payload(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """The user's fields with the keys Cloud Logging would take as the entry's own (`GCP_KEYS`,
    anything under `logging.googleapis.com/`) prefixed."""
    special = any(isinstance(key, str) and key.startswith(GCP_PREFIX) for key in fields)
    if not special:
        return _renamed(fields, GCP_KEYS)
    taken = set(GCP_KEYS)
    payload = {}
    for key, value in fields.items():
        text = key if isinstance(key, str) else str(key)
        if text.startswith(GCP_PREFIX):
            text = FIELD_PREFIX + text
        payload[_unique(text, taken)] = value
    return payload


def _gcp_process_labels() -> str:
    host, pid = process_origin()
    return f', "host": {_encode_text("" if host is None else host)}, "pid": "{pid}"'


def _no_labels() -> str:
    return ""


OTEL_ATTRIBUTE_KEYS = frozenset(
    (
        "exception.type",
        "exception.message",
        "exception.stacktrace",
        "code.function.name",
        "code.line.number",
    )
)
"""The attributes the `otel` style writes itself (semantic conventions); a user field by one
of these names gets `fields.` in front."""


def _otel(process: bool) -> Callable[[Entry], str]:
    def otel(entry: Entry) -> str:
        ts, level, message, logger, fields, exception, _, location = entry
        trace_id, span_id, flags, rest = _trace_context(fields)
        trace: dict[str, Any] = {}
        if trace_id is not None:
            trace["TraceId"] = trace_id
        if span_id is not None:
            trace["SpanId"] = span_id
        if flags is not None:
            trace["TraceFlags"] = flags
        resource = "{}"
        if process:
            host, pid = process_origin()
            resource = _own({"host.name": host, "process.pid": pid})
        body = (
            f'{{"SeverityText": {_encode_text(level_name(level))}, '
            f'"SeverityNumber": {severity_number(level)}, "Body": {_encode_text(message)}, '
            f'"Resource": {resource}, "InstrumentationScope": {{"Name": {_encode_text(logger)}}}}}'
        )
        attributes = dict(_renamed(rest, OTEL_ATTRIBUTE_KEYS))
        if location is not None:
            module, function, number = location
            attributes["code.function.name"] = f"{module}.{function}"
            attributes["code.line.number"] = int(number)
        if exception is not None:
            kind, text = parse_exception(exception)
            if kind is not None:
                attributes["exception.type"] = kind
            if text is not None:
                attributes["exception.message"] = text
            attributes["exception.stacktrace"] = exception
        nanoseconds = int(ts * 1_000_000 + 0.5) * 1000
        return _joined(
            f'{{"Timestamp": "{nanoseconds}"}}', _own(trace), body, _keyed("Attributes", attributes)
        )

    return otel


@functools.cache
def json_shape(
    fields: JsonFields = "nested",
    style: JsonStyle | None = None,
    process: bool = False,
    gcp_project: str | None = None,
) -> Callable[[Entry], str]:
    """The JSON formatter of a shape (one function per shape, made once)."""
    if style == "ecs":
        shaped = _ecs(process)
    elif style == "gcp":
        shaped = _gcp(process, gcp_project)
    elif style == "otel":
        shaped = _otel(process)
    elif fields == "flat":
        shaped = _flat(process)
    elif process:
        shaped = _nested_with_process
    else:
        return _nested
    ENTRY_TUPLE_FORMATTERS.add(shaped)
    return shaped


def _text_with_process(entries: Sequence[Entry]) -> list[str]:
    suffix = " " + process_text(*process_origin())
    lines = text_lines(entries)
    for index, line in enumerate(lines):
        head, newline, traceback = line.partition("\n")  # only a traceback starts a new line
        lines[index] = head + suffix + newline + traceback
    return lines


def _text_with_process_format(entry: LogEntry) -> str:
    return _text_with_process((entry,))[0]


def _logfmt_with_process(entries: Sequence[Entry]) -> list[str]:
    process = process_text(*process_origin())
    return [logfmt_with_process(entry, process) for entry in entries]


def _logfmt_with_process_format(entry: LogEntry) -> str:
    return _logfmt_with_process((entry,))[0]


def configured_format(
    format: str | Formatter,
    json_fields: JsonFields = "nested",
    json_style: JsonStyle | None = None,
    process_fields: bool = False,
) -> tuple[Formatter, Lines]:
    """The formatter a backend's settings ask for, and the function that formats a batch
    with it. A callable `format` is used as it is (the process fields need a built-in one)."""
    if callable(format):
        return format, lines_of(format)
    if format == "json":
        project = os.environ.get(GCP_PROJECT_VARIABLE) if json_style == "gcp" else None
        shaped: Formatter = json_shape(json_fields, json_style, process_fields, project)
        return shaped, lines_of(shaped)
    if process_fields and format == "text":
        return _text_with_process_format, _text_with_process
    if process_fields and format == "logfmt":
        return _logfmt_with_process_format, _logfmt_with_process
    formatter = FORMATTERS[format]
    return formatter, lines_of(formatter)


def json_formatter(
    json_fields: JsonFields = "nested",
    json_style: JsonStyle | None = None,
    *,
    process_fields: bool = False,
) -> Formatter:
    """The JSON format in the shape `FileConfig(format="json", json_fields=..., json_style=...,
    process_fields=...)` writes (docs/backends-and-formats.md), for a backend of your own.
    The `gcp` style reads `GOOGLE_CLOUD_PROJECT` now. Bad names raise `ConfigError`."""
    check_json_shape("json_formatter", "json", json_fields, json_style)
    formatter, _ = configured_format("json", json_fields, json_style, process_fields)
    return formatter
