"""The formats a file or console backend writes, chosen once when the backend is made: the
text, logfmt and JSON formats, the JSON ones in the shape the config asks for
(`json_fields="nested"|"flat"`, `json_style="ecs"|"gcp"|"otel"`), with or without the
process fields (`FileConfig(process_fields=True)`). Each shape is its own function, so an
entry pays for nothing its shape does not write. docs/backends-and-formats.md shows each
document.

Every shape but the default nested one builds a dict and encodes it with
`formatters.fields_to_json`, so orjson (the `fastjson` extra) writes the same bytes as the
standard library there too.
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
from ._file_config import JsonFields, JsonStyle
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
    text_format,
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
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


def _trace_context(
    fields: Mapping[str, Any],
) -> tuple[str | None, str | None, int | None, dict[str, Any]]:
    """(trace id, span id, trace flags, the other fields): each trace field taken out when it
    has its form (32 or 16 hex digits, written in lower case; flags an int 0-255), else left
    with the other fields."""
    rest = dict(fields)
    if "trace_id" not in rest and "span_id" not in rest and "trace_flags" not in rest:
        return None, None, None, rest
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


def _encoded(document: dict[str, Any]) -> str:
    line = fields_to_json(document)
    if line.isascii() and "\x7f" not in line:
        return line
    return line.translate(_JSON_UNSAFE)


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
        document: dict[str, Any] = {
            "timestamp": iso_utc(ts),
            "level": level_name(level),
            "logger": logger,
            "message": message,
        }
        taken = set(reserved)
        for key, value in fields.items():
            document[_unique(key, taken)] = value
        document["exception"] = None if exception is None else _exception_parts(exception)
        if location is not None:
            module, function, number = location
            document.update(module=module, function=function, line=int(number))
        if process:
            document["host"], document["pid"] = process_origin()
        return _encoded(document)

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
its key is one of these or the first part of one (`log`, `error`, `process`, ...)."""
_ECS_TAKEN = ECS_KEYS | {key.split(".")[0] for key in ECS_KEYS}
_SCALARS = (str, int, float, bool, type(None))


def _ecs(process: bool) -> Callable[[Entry], str]:
    def ecs(entry: Entry) -> str:
        ts, level, message, logger, fields, exception, _, location = entry
        document: dict[str, Any] = {
            "@timestamp": iso_utc(ts),
            "log.level": level_name(level).lower(),
            "message": message,
            "ecs.version": ECS_VERSION,
            "log.logger": logger,
        }
        if location is not None:
            module, function, number = location
            document["log.origin.file.name"] = module
            document["log.origin.function"] = function
            document["log.origin.file.line"] = int(number)
        if exception is not None:
            kind, text = parse_exception(exception)
            if kind is not None:
                document["error.type"] = kind
            if text is not None:
                document["error.message"] = text
            document["error.stack_trace"] = exception
        if process:
            document["host.hostname"], document["process.pid"] = process_origin()
        trace_id, span_id, flags, rest = _trace_context(fields)
        if flags is not None:  # ECS has no field for the flags: a label like any other
            rest["trace_flags"] = flags
        if trace_id is not None:
            document["trace.id"] = trace_id
        if span_id is not None:
            document["span.id"] = span_id
        labels = {key: value for key, value in rest.items() if isinstance(value, _SCALARS)}
        if labels:
            document["labels"] = labels
        if len(labels) < len(rest):
            taken = set(_ECS_TAKEN)
            for key, value in rest.items():
                if not isinstance(value, _SCALARS):
                    document[_unique(key, taken)] = value
        return _encoded(document)

    return ecs


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

    def gcp(entry: Entry) -> str:
        ts, level, message, logger, fields, exception, _, location = entry
        labels: dict[str, str] = {"logger": logger}
        if process:
            host, pid = process_origin()
            labels["host"] = "" if host is None else host
            labels["pid"] = str(pid)
        document: dict[str, Any] = {
            "severity": gcp_severity(level),
            "message": message,
            "time": iso_utc(ts),
            "logging.googleapis.com/labels": labels,
        }
        if location is not None:
            module, function, number = location
            document["logging.googleapis.com/sourceLocation"] = {
                "file": module,
                "line": str(int(number)),
                "function": function,
            }
        trace_id, span_id, flags, rest = _trace_context(fields)
        if trace_id is not None:
            document["logging.googleapis.com/trace"] = trace_prefix + trace_id
        if span_id is not None:
            document["logging.googleapis.com/spanId"] = span_id
        if flags is not None:
            document["logging.googleapis.com/trace_sampled"] = bool(flags & 1)
        if exception is not None:
            kind, text = parse_exception(exception)
            document["error"] = {"type": kind, "message": text}
            document["stack_trace"] = exception
        taken = set(GCP_KEYS)
        for key, value in rest.items():
            document[_unique(key, taken)] = value
        return _encoded(document)

    return gcp


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
        document: dict[str, Any] = {"Timestamp": str(int(ts * 1_000_000 + 0.5) * 1000)}
        if trace_id is not None:
            document["TraceId"] = trace_id
        if span_id is not None:
            document["SpanId"] = span_id
        if flags is not None:
            document["TraceFlags"] = flags
        document["SeverityText"] = level_name(level)
        document["SeverityNumber"] = severity_number(level)
        document["Body"] = message
        resource: dict[str, Any] = {}
        if process:
            resource["host.name"], resource["process.pid"] = process_origin()
        document["Resource"] = resource
        document["InstrumentationScope"] = {"Name": logger}
        taken = set(OTEL_ATTRIBUTE_KEYS)
        attributes = {_unique(key, taken): value for key, value in rest.items()}
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
        document["Attributes"] = attributes
        return _encoded(document)

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
    if format == "text":
        if process_fields:
            return _text_with_process_format, _text_with_process
        return text_format, text_lines
    if format == "logfmt":
        if process_fields:
            return _logfmt_with_process_format, _logfmt_with_process
        return FORMATTERS[format], lines_of(FORMATTERS[format])
    project = os.environ.get(GCP_PROJECT_VARIABLE) if json_style == "gcp" else None
    shaped: Formatter = json_shape(json_fields, json_style, process_fields, project)
    return shaped, lines_of(shaped)
