"""The JSON shapes of the file and console backends (`json_fields`, `json_style`), the traceback
as a field of its own in each, trace fields in each preset's places, and the process fields
(`FileConfig.process_fields`). Every document is read back with `json.loads` and compared whole
with the names its published spec gives."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from asynclog import (
    Config,
    ConfigError,
    ConsoleConfig,
    FileConfig,
    LogEntry,
    LogManager,
    json_formatter,
)

# -- the specs' names ---------------------------------------------------------------------------

# Elastic Common Schema: the ecs-logging spec (required fields, log.level at the top level)
# https://github.com/elastic/ecs-logging/blob/main/spec/spec.json
# and the field reference https://www.elastic.co/guide/en/ecs/current/ecs-field-reference.html
# (base, log, error, process, host, tracing fields; labels).
ECS_TIMESTAMP = "@timestamp"
ECS_LOG_LEVEL = "log.level"
ECS_MESSAGE = "message"
ECS_VERSION = "ecs.version"
ECS_LOGGER = "log.logger"
ECS_ORIGIN_FILE_NAME = "log.origin.file.name"
ECS_ORIGIN_FUNCTION = "log.origin.function"
ECS_ORIGIN_FILE_LINE = "log.origin.file.line"
ECS_ERROR_TYPE = "error.type"
ECS_ERROR_MESSAGE = "error.message"
ECS_ERROR_STACK_TRACE = "error.stack_trace"
ECS_PROCESS_PID = "process.pid"
ECS_HOST_HOSTNAME = "host.hostname"
ECS_TRACE_ID = "trace.id"
ECS_SPAN_ID = "span.id"
ECS_LABELS = "labels"

# Cloud Logging structured logging, its special JSON fields:
# https://cloud.google.com/logging/docs/structured-logging#structured_logging_special_fields
# LogSeverity: https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#logseverity
# Error Reporting reads a jsonPayload's stack_trace:
# https://cloud.google.com/error-reporting/docs/formatting-error-messages
GCP_SEVERITY = "severity"
GCP_MESSAGE = "message"
GCP_TIME = "time"
GCP_TRACE = "logging.googleapis.com/trace"
GCP_SPAN_ID = "logging.googleapis.com/spanId"
GCP_TRACE_SAMPLED = "logging.googleapis.com/trace_sampled"
GCP_SOURCE_LOCATION = "logging.googleapis.com/sourceLocation"
GCP_LABELS = "logging.googleapis.com/labels"
GCP_STACK_TRACE = "stack_trace"
GCP_SEVERITIES = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)

# OpenTelemetry Logs Data Model, its field names and its example JSON representation
# https://opentelemetry.io/docs/specs/otel/logs/data-model/
OTEL_TIMESTAMP = "Timestamp"
OTEL_TRACE_ID = "TraceId"
OTEL_SPAN_ID = "SpanId"
OTEL_TRACE_FLAGS = "TraceFlags"
OTEL_SEVERITY_TEXT = "SeverityText"
OTEL_SEVERITY_NUMBER = "SeverityNumber"
OTEL_BODY = "Body"
OTEL_RESOURCE = "Resource"
OTEL_INSTRUMENTATION_SCOPE = "InstrumentationScope"
OTEL_ATTRIBUTES = "Attributes"
# Semantic conventions: exceptions https://opentelemetry.io/docs/specs/semconv/exceptions/exceptions-logs/
# code https://opentelemetry.io/docs/specs/semconv/registry/attributes/code/
# host and process resources https://opentelemetry.io/docs/specs/semconv/resource/host/ and
# https://opentelemetry.io/docs/specs/semconv/resource/process/
OTEL_EXCEPTION_TYPE = "exception.type"
OTEL_EXCEPTION_MESSAGE = "exception.message"
OTEL_EXCEPTION_STACKTRACE = "exception.stacktrace"
OTEL_CODE_FUNCTION_NAME = "code.function.name"
OTEL_CODE_LINE_NUMBER = "code.line.number"
OTEL_HOST_NAME = "host.name"
OTEL_PROCESS_PID = "process.pid"

# -- what the tests log -------------------------------------------------------------------------

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACE = {"trace_id": TRACE_ID, "span_id": SPAN_ID, "trace_flags": 1}
FIELDS: dict[str, Any] = {
    "order_id": 42,
    "user": "ann",
    "cart": {"items": [1, 2]},
    "severity": "low",
    "error": {"code": 7},
    "exception.type": "mine",
    **TRACE,
}
"""User fields, the trace context passed by hand, and keys each preset reserves."""
HOST = socket.gethostname()
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class PaymentError(Exception):
    pass


def charge(order_id: int) -> None:
    raise PaymentError(f"card declined for order {order_id}")


def line_before() -> int:
    """The line number just above the caller's line."""
    return sys._getframe(1).f_lineno - 1


class Logged:
    """What `log_three` logged: the lines of its calls, its traceback, and a time window."""

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.stack = ""
        self.start = time.time()
        self.end = 0.0


async def log_three(lm: LogManager) -> Logged:
    """An entry with every kind of field, a traceback, and a level between the standard ones."""
    logged = Logged()
    await lm.info("order placed", **FIELDS)
    logged.lines.append(line_before())
    try:
        charge(42)
    except PaymentError as exc:
        await lm.exception("payment failed", order_id=42)
        logged.lines.append(line_before())
        logged.stack = "".join(traceback.format_exception(exc)).rstrip("\n")
    await lm.write_log(25, "custom level")
    logged.lines.append(line_before())
    logged.end = time.time()
    return logged


async def documents(path: Path, **options: Any) -> tuple[list[dict[str, Any]], Logged]:
    config = Config(
        backend_config=FileConfig(file_path=path, format="json", **options),
        name="shop",
        capture_location=True,
    )
    async with LogManager(config) as lm:
        logged = await log_three(lm)
    return [json.loads(line) for line in path.read_text().splitlines()], logged


def iso_time_within(document: dict[str, Any], key: str, logged: Logged) -> None:
    """`document[key]` is an ISO time taken during the calls; then it is taken out."""
    text = document.pop(key)
    assert ISO_TIME.fullmatch(text), text
    stamp = datetime.datetime.fromisoformat(text).timestamp()
    assert logged.start - 1e-6 <= stamp <= logged.end + 1e-6


FUNCTION = "log_three"
PAYMENT_ERROR = f"{__name__}.PaymentError"
DECLINED = "card declined for order 42"

# -- the presets --------------------------------------------------------------------------------


async def test_ecs_documents_carry_the_ecs_names(log_path: Path) -> None:
    docs, logged = await documents(log_path, json_style="ecs", process_fields=True)
    for document in docs:
        iso_time_within(document, ECS_TIMESTAMP, logged)
    assert all(list(document)[:2] == [ECS_LOG_LEVEL, ECS_MESSAGE] for document in docs)
    common = {ECS_VERSION: "8.11.0", ECS_LOGGER: "shop", ECS_ORIGIN_FILE_NAME: __name__}
    common |= {ECS_ORIGIN_FUNCTION: FUNCTION, ECS_HOST_HOSTNAME: HOST, ECS_PROCESS_PID: os.getpid()}
    assert docs == [
        {
            ECS_LOG_LEVEL: "info",
            ECS_MESSAGE: "order placed",
            **common,
            ECS_ORIGIN_FILE_LINE: logged.lines[0],
            ECS_TRACE_ID: TRACE_ID,
            ECS_SPAN_ID: SPAN_ID,
            # scalars in labels (trace_flags has no ECS field); objects beside, `error` and
            # `log` being ECS's own
            ECS_LABELS: {
                "order_id": 42,
                "user": "ann",
                "severity": "low",
                "exception_type": "mine",  # no dots in a label's key
                "trace_flags": 1,
            },
            "cart": {"items": [1, 2]},
            "fields.error": {"code": 7},
        },
        {
            ECS_LOG_LEVEL: "error",
            ECS_MESSAGE: "payment failed",
            **common,
            ECS_ORIGIN_FILE_LINE: logged.lines[1],
            ECS_ERROR_TYPE: PAYMENT_ERROR,
            ECS_ERROR_MESSAGE: DECLINED,
            ECS_ERROR_STACK_TRACE: logged.stack,
            ECS_LABELS: {"order_id": 42},
        },
        {
            ECS_LOG_LEVEL: "level 25",
            ECS_MESSAGE: "custom level",
            **common,
            ECS_ORIGIN_FILE_LINE: logged.lines[2],
        },
    ]


async def test_gcp_documents_carry_the_cloud_logging_names(log_path: Path) -> None:
    docs, logged = await documents(log_path, json_style="gcp", process_fields=True)
    for document in docs:
        iso_time_within(document, GCP_TIME, logged)
    labels = {GCP_LABELS: {"logger": "shop", "host": HOST, "pid": str(os.getpid())}}

    def source(index: int) -> dict[str, Any]:
        location = {"file": __name__, "line": str(logged.lines[index]), "function": FUNCTION}
        return {GCP_SOURCE_LOCATION: location}

    assert docs == [
        {
            GCP_SEVERITY: "INFO",
            GCP_MESSAGE: "order placed",
            **labels,
            **source(0),
            GCP_TRACE: TRACE_ID,
            GCP_SPAN_ID: SPAN_ID,
            GCP_TRACE_SAMPLED: True,
            "order_id": 42,
            "user": "ann",
            "cart": {"items": [1, 2]},
            "fields.severity": "low",  # Cloud Logging would read `severity` as the entry's
            "fields.error": {"code": 7},
            "exception.type": "mine",
        },
        {
            GCP_SEVERITY: "ERROR",
            GCP_MESSAGE: "payment failed",
            **labels,
            **source(1),
            "error": {"type": PAYMENT_ERROR, "message": DECLINED},
            GCP_STACK_TRACE: logged.stack,
            "order_id": 42,
        },
        {GCP_SEVERITY: "NOTICE", GCP_MESSAGE: "custom level", **labels, **source(2)},
    ]
    assert {document[GCP_SEVERITY] for document in docs} <= set(GCP_SEVERITIES)


async def test_otel_documents_carry_the_log_data_model_names(log_path: Path) -> None:
    docs, logged = await documents(log_path, json_style="otel", process_fields=True)
    for document in docs:
        nanoseconds = document.pop(OTEL_TIMESTAMP)
        assert isinstance(nanoseconds, str) and nanoseconds.isdigit()  # as the spec's example
        assert logged.start * 1e9 - 1000 <= int(nanoseconds) <= logged.end * 1e9 + 1000
    resource = {OTEL_RESOURCE: {OTEL_HOST_NAME: HOST, OTEL_PROCESS_PID: os.getpid()}}
    scope = {OTEL_INSTRUMENTATION_SCOPE: {"Name": "shop"}}

    def code(index: int) -> dict[str, Any]:
        name = f"{__name__}.{FUNCTION}"
        return {OTEL_CODE_FUNCTION_NAME: name, OTEL_CODE_LINE_NUMBER: logged.lines[index]}

    assert docs == [
        {
            OTEL_TRACE_ID: TRACE_ID,
            OTEL_SPAN_ID: SPAN_ID,
            OTEL_TRACE_FLAGS: 1,
            OTEL_SEVERITY_TEXT: "INFO",
            OTEL_SEVERITY_NUMBER: 9,
            OTEL_BODY: "order placed",
            **resource,
            **scope,
            OTEL_ATTRIBUTES: {
                "order_id": 42,
                "user": "ann",
                "cart": {"items": [1, 2]},
                "severity": "low",
                "error": {"code": 7},
                "fields.exception.type": "mine",
                **code(0),
            },
        },
        {
            OTEL_SEVERITY_TEXT: "ERROR",
            OTEL_SEVERITY_NUMBER: 17,
            OTEL_BODY: "payment failed",
            **resource,
            **scope,
            OTEL_ATTRIBUTES: {
                "order_id": 42,
                **code(1),
                OTEL_EXCEPTION_TYPE: PAYMENT_ERROR,
                OTEL_EXCEPTION_MESSAGE: DECLINED,
                OTEL_EXCEPTION_STACKTRACE: logged.stack,
            },
        },
        {
            OTEL_SEVERITY_TEXT: "Level 25",
            OTEL_SEVERITY_NUMBER: 11,
            OTEL_BODY: "custom level",
            **resource,
            **scope,
            OTEL_ATTRIBUTES: code(2),
        },
    ]


async def test_gcp_names_the_trace_by_its_project_when_google_cloud_project_is_set(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "shop-prod")
    config = Config(backend_config=FileConfig(file_path=log_path, format="json", json_style="gcp"))
    async with LogManager(config) as lm:
        await lm.info("traced", trace_id=TRACE_ID, span_id=SPAN_ID, trace_flags=0)
    (document,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert document[GCP_TRACE] == f"projects/shop-prod/traces/{TRACE_ID}"
    assert (document[GCP_SPAN_ID], document[GCP_TRACE_SAMPLED]) == (SPAN_ID, False)
    assert document[GCP_LABELS] == {"logger": "asynclog"}  # no process fields without shared


def test_gcp_prefixes_every_field_cloud_logging_would_take_as_the_entry_s_own() -> None:
    fields = {
        "logging.googleapis.com/operation": {"id": "x"},
        "logging.googleapis.com/anything": 1,
        "timestamp": "now",
        "httpRequest": {"requestMethod": "GET"},
    }
    document = json.loads(json_formatter(json_style="gcp")(LogEntry(0.0, 20, "m", "app", fields)))
    assert {key: document[key] for key in list(document)[4:]} == {
        "fields.logging.googleapis.com/operation": {"id": "x"},
        "fields.logging.googleapis.com/anything": 1,
        "fields.timestamp": "now",
        "httpRequest": {"requestMethod": "GET"},  # passed on for Cloud Logging to read
    }


@pytest.mark.parametrize("style", ["ecs", "gcp", "otel"])
def test_trace_fields_without_their_form_stay_ordinary_fields(style: str) -> None:
    fields = {"trace_id": "not-hex", "span_id": 7, "trace_flags": 300}
    entry = LogEntry(0.0, 20, "m", "app", MappingProxyType(fields))
    document = json.loads(json_formatter(json_style=style)(entry))  # type: ignore[arg-type]
    placed = {
        "ecs": document.get(ECS_LABELS),
        "gcp": {key: document.get(key) for key in fields},
        "otel": document.get(OTEL_ATTRIBUTES),
    }[style]
    assert placed == fields
    spec_names = {ECS_TRACE_ID, ECS_SPAN_ID, GCP_TRACE, GCP_SPAN_ID, GCP_TRACE_SAMPLED}
    assert not spec_names & set(document)
    assert not {OTEL_TRACE_ID, OTEL_SPAN_ID, OTEL_TRACE_FLAGS} & set(document)


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (1, "DEBUG"),
        (10, "DEBUG"),
        (19, "DEBUG"),
        (20, "INFO"),
        (24, "INFO"),
        (25, "NOTICE"),
        (30, "WARNING"),
        (40, "ERROR"),
        (50, "CRITICAL"),
        (60, "ALERT"),
        (70, "EMERGENCY"),
        (100, "EMERGENCY"),
    ],
)
def test_gcp_severity_of_each_level(level: int, severity: str) -> None:
    entry = LogEntry(0.0, level, "m", "app")
    assert json.loads(json_formatter(json_style="gcp")(entry))[GCP_SEVERITY] == severity
    assert severity in GCP_SEVERITIES


# -- asynclog's own shapes ----------------------------------------------------------------------


async def test_nested_keeps_the_fields_apart_and_the_traceback_is_its_own_object(
    log_path: Path,
) -> None:
    docs, logged = await documents(log_path)  # json_fields="nested" is the default
    for document in docs:
        iso_time_within(document, "timestamp", logged)
    location = {"module": __name__, "function": FUNCTION}
    assert docs == [
        {
            "level": "INFO",
            "logger": "shop",
            "message": "order placed",
            "fields": FIELDS,  # the trace fields too: this shape has no better place
            "exception": None,
            **location,
            "line": logged.lines[0],
        },
        {
            "level": "ERROR",
            "logger": "shop",
            "message": "payment failed",
            "fields": {"order_id": 42},
            "exception": {"type": PAYMENT_ERROR, "message": DECLINED, "stack": logged.stack},
            **location,
            "line": logged.lines[1],
        },
        {
            "level": "Level 25",
            "logger": "shop",
            "message": "custom level",
            "fields": {},
            "exception": None,
            **location,
            "line": logged.lines[2],
        },
    ]


async def test_flat_puts_fields_at_the_top_and_prefixes_the_colliding_ones(
    log_path: Path,
) -> None:
    config = Config(
        backend_config=FileConfig(file_path=log_path, format="json", json_fields="flat"),
        name="shop",
    )
    fields = {"user": "ann", "level": "debug", "fields.level": "x", "message": "m", "host": "h"}
    async with LogManager(config) as lm:
        await lm.info("collisions", **fields)
    (document,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert ISO_TIME.fullmatch(document.pop("timestamp"))
    assert document == {
        "level": "INFO",
        "logger": "shop",
        "message": "collisions",
        "user": "ann",
        "fields.level": "debug",
        "fields.fields.level": "x",  # its own key was taken by then: one more prefix
        "fields.message": "m",
        "host": "h",  # free: no process fields here
        "exception": None,
    }


def test_flat_with_process_fields_reserves_host_and_pid() -> None:
    entry = LogEntry(0.0, 40, "m", "app", MappingProxyType({"pid": 1, "host": "h"}), "Boom")
    formatter = json_formatter("flat", process_fields=True)
    assert json.loads(formatter(entry)) == {
        "timestamp": "1970-01-01T00:00:00.000000Z",
        "level": "ERROR",
        "logger": "app",
        "message": "m",
        "fields.pid": 1,
        "fields.host": "h",
        "exception": {"type": "Boom", "message": None, "stack": "Boom"},
        "host": HOST,
        "pid": os.getpid(),
    }


def _raise_chain() -> None:
    try:
        {}["key"]
    except KeyError as exc:
        raise ValueError("converted") from exc


async def test_chained_and_stack_only_tracebacks_in_every_shape(log_path: Path) -> None:
    try:
        _raise_chain()
    except ValueError as exc:
        chained = "".join(traceback.format_exception(exc)).rstrip("\n")
    stack = 'Stack (most recent call last):\n  File "app.py", line 3, in main\n    work()'
    for text, kind, message in [(chained, "ValueError", "converted"), (stack, None, None)]:
        entry = LogEntry(0.0, 40, "m", "app", exception=text)
        nested = json.loads(json_formatter()(entry))["exception"]
        flat = json.loads(json_formatter("flat")(entry))["exception"]
        assert nested == flat == {"type": kind, "message": message, "stack": text}
        ecs = json.loads(json_formatter(json_style="ecs")(entry))
        expected_ecs = {ECS_ERROR_TYPE: kind, ECS_ERROR_MESSAGE: message}
        assert {k: ecs.get(k) for k in expected_ecs} == expected_ecs
        assert ecs[ECS_ERROR_STACK_TRACE] == text
        gcp = json.loads(json_formatter(json_style="gcp")(entry))
        assert (gcp["error"], gcp[GCP_STACK_TRACE]) == ({"type": kind, "message": message}, text)
        attributes = json.loads(json_formatter(json_style="otel")(entry))[OTEL_ATTRIBUTES]
        expected_otel = {OTEL_EXCEPTION_TYPE: kind, OTEL_EXCEPTION_MESSAGE: message}
        assert {k: attributes.get(k) for k in expected_otel} == expected_otel
        assert attributes[OTEL_EXCEPTION_STACKTRACE] == text
    assert "The above exception was the direct cause" in chained


async def test_the_console_writes_a_preset(capsys: pytest.CaptureFixture[str]) -> None:
    config = Config(
        backend_config=ConsoleConfig(format="json", json_style="ecs", stream="stdout"),
        name="cli",
    )
    async with LogManager(config) as lm:
        await lm.warning("disk low", free_mb=12, **TRACE)
    (line,) = capsys.readouterr().out.splitlines()
    document = json.loads(line)
    assert ISO_TIME.fullmatch(document.pop(ECS_TIMESTAMP))
    assert document == {
        ECS_LOG_LEVEL: "warning",
        ECS_MESSAGE: "disk low",
        ECS_VERSION: "8.11.0",
        ECS_LOGGER: "cli",
        ECS_TRACE_ID: TRACE_ID,
        ECS_SPAN_ID: SPAN_ID,
        ECS_LABELS: {"free_mb": 12, "trace_flags": 1},
    }


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "key", "message"),
    [
        (
            lambda: FileConfig(format="json", json_fields="deep"),
            "json_fields",
            "FileConfig.json_fields must be one of nested, flat, got 'deep'",
        ),
        (
            lambda: ConsoleConfig(format="json", json_style="splunk"),
            "json_style",
            "ConsoleConfig.json_style must be one of ecs, gcp, otel, got 'splunk'",
        ),
        (
            lambda: FileConfig(json_style="ecs"),
            "json_style",
            "FileConfig.json_style='ecs' needs format='json', got format='text'",
        ),
        (
            lambda: ConsoleConfig(format="logfmt", json_fields="flat"),
            "json_fields",
            "ConsoleConfig.json_fields='flat' needs format='json', got format='logfmt'",
        ),
        (
            lambda: FileConfig(format="json", json_fields="flat", json_style="gcp"),
            "json_fields",
            "FileConfig.json_fields must stay 'nested' with json_style='gcp' (the style places "
            "the fields itself), got 'flat'",
        ),
        (
            lambda: FileConfig(process_fields="yes"),
            "process_fields",
            "FileConfig.process_fields must be a bool, got 'yes'",
        ),
        (
            lambda: FileConfig(process_fields=True, format=str),
            "process_fields",
            "FileConfig.process_fields=True needs a built-in format (text, json, logfmt), got "
            "format=<class 'str'>",
        ),
    ],
)
def test_bad_shape_settings_are_refused_by_name(make: Any, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert str(caught.value) == message
    assert caught.value.key == key


def test_the_shape_settings_load_from_a_dict() -> None:
    config = Config.from_dict(
        {
            "backends": [
                {"type": "file", "format": "json", "json_style": "otel", "shared": True},
                {"type": "console", "format": "json", "json_fields": "flat"},
            ]
        }
    )
    file, console = (sink.target for sink in config.sinks)
    assert isinstance(file, FileConfig) and isinstance(console, ConsoleConfig)
    assert (file.json_style, file.process_fields, file.with_process_fields) == ("otel", None, True)
    assert (console.json_fields, console.json_style) == ("flat", None)


@pytest.mark.parametrize(
    ("options", "on"),
    [
        ({}, False),
        ({"shared": True}, True),
        ({"shared": True, "process_fields": False}, False),
        ({"process_fields": True}, True),
        ({"shared": True, "format": lambda entry: entry.message}, False),
    ],
)
def test_process_fields_follow_shared_unless_set(options: dict[str, Any], on: bool) -> None:
    assert FileConfig(**options).with_process_fields is on


@pytest.mark.parametrize("format", ["text", "logfmt", "json"])
async def test_process_fields_in_each_format_of_one_process(log_path: Path, format: str) -> None:
    config = FileConfig(file_path=log_path, format=format, process_fields=True)
    async with LogManager(Config(backend_config=config, name="app")) as lm:
        await lm.info("one", pid="mine")
        try:
            charge(1)
        except PaymentError:
            await lm.exception("two")
    first, second = log_path.read_text().split("\n", 1)
    pid = os.getpid()
    if format == "text":
        assert first.endswith(f" INFO app one pid=mine host={HOST} pid={pid}")
        assert second.split("\n")[0].endswith(f" ERROR app two host={HOST} pid={pid}")
        assert second.split("\n")[1] == "    Traceback (most recent call last):"
    elif format == "logfmt":
        assert first.endswith(f" msg=one fields.pid=mine host={HOST} pid={pid}")
        assert f' msg=two host={HOST} pid={pid} exception="Traceback ' in second
    else:
        one, two = json.loads(first), json.loads(second)
        assert (one["fields"], one["host"], one["pid"]) == ({"pid": "mine"}, HOST, pid)
        assert (two["host"], two["pid"], two["exception"]["type"]) == (HOST, pid, PAYMENT_ERROR)
        assert list(one)[-2:] == ["host", "pid"]


def test_a_forked_child_writes_its_own_pid() -> None:
    formatter = json_formatter(process_fields=True)
    entry = LogEntry(0.0, 20, "m", "app")
    assert json.loads(formatter(entry))["pid"] == os.getpid()
    code = textwrap.dedent(
        """
        import json, os
        from asynclog import LogEntry, json_formatter
        formatter = json_formatter(process_fields=True)
        entry = LogEntry(0.0, 20, "m", "app")
        before = json.loads(formatter(entry))["pid"]
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.write(write, formatter(entry).encode())
            os._exit(0)
        os.waitpid(child, 0)
        print(json.dumps([before, os.getpid(), child, json.loads(os.read(read, 65536))["pid"]]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    )
    before, parent, child, written = json.loads(out.stdout)
    assert (before, written) == (parent, child)
    assert child != parent


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": root}


SHARED_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from asynclog import Config, FileConfig, LogManager

    async def main():
        text, jsonl, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        backends = [
            FileConfig(file_path=text, shared=True, name="text"),
            FileConfig(file_path=jsonl, shared=True, format="json", name="json"),
        ]
        async with LogManager(Config(backends=backends, name=name)) as lm:
            sys.stdin.readline()
            for index in range(count):
                await lm.info(f"{name} {index}")
        print(os.getpid())

    asyncio.run(main())
    """
)


def test_two_processes_sharing_a_file_each_write_their_pid(tmp_path: Path) -> None:
    text, jsonl, count = tmp_path / "app.log", tmp_path / "app.jsonl", 200
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SHARED_CHILD, str(text), str(jsonl), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for name in ("a", "b")
    ]
    for child in children:  # both start writing at about the same time
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
    pids = {}
    for name, child in zip(("a", "b"), children, strict=True):
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        pids[name] = int(out)
    text_line = re.compile(r"\S+ INFO (a|b) (a|b) (\d+) host=(\S+) pid=(\d+)")
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for line in text.read_text().splitlines():
        match = text_line.fullmatch(line)
        assert match is not None, line
        logger, name, index, host, pid = match.groups()
        assert (logger, host, int(pid)) == (name, HOST, pids[name])
        seen[name].append(int(index))
    assert seen == {"a": list(range(count)), "b": list(range(count))}
    documents = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(documents) == 2 * count
    for document in documents:
        name = document["logger"]
        assert document["message"].startswith(f"{name} ")
        assert (document["host"], document["pid"]) == (HOST, pids[name])
    assert pids["a"] != pids["b"]
