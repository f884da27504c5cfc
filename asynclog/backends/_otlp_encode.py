"""`LogEntry` batches as OTLP `ExportLogsServiceRequest` protobuf, with the official classes
of `opentelemetry-proto` (the `otlp` extra); and the collector's answers decoded.

The mapping is described in docs/otlp.md. This module imports `opentelemetry.proto`, so the
OTLP backend imports it only when it opens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ScopeLogs

from .._entry import LOCATION, LogEntry
from .._exception_text import parse_exception
from .._levels import level_name, severity_number
from .._otel import flags_of, id_hex
from .._sanitize import truncate
from ..formatters import safe_str, utf8_safe

if TYPE_CHECKING:
    from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

MAX_DEPTH = 16
"""Nested lists and mappings deeper than this become their `str()`."""
MAX_TEXT_BYTES = 64 * 1024
"""The `str()` of an object that has no OTLP type is cut to about this many bytes."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

TRACE_FIELDS = ("trace_id", "span_id", "trace_flags")
EXCEPTION_ATTRIBUTES = ("exception.type", "exception.message", "exception.stacktrace")

LOCATION_ATTRIBUTES = ("code.function.name", "code.line.number")
"""A captured location, per the OpenTelemetry semantic conventions (1.30 and later):
`code.function.name` is the fully qualified `module.function`, `code.line.number` the line."""


_SEVERITY = cast("list[SeverityNumber.ValueType]", [severity_number(level) for level in range(101)])
_SEVERITY_TEXT = [level_name(level) for level in range(101)]


utf8_text = utf8_safe
"""Protobuf strings are UTF-8: lone surrogates are escaped (`\\udc80`) instead of failing."""


# -- attribute values ---------------------------------------------------------------------


def set_any_value(target: AnyValue, value: object, depth: int = 0) -> None:
    """Store `value` in `target`: str, bool, int (64-bit; a bigger one as its decimal text),
    float, bytes (and bytearray, memoryview) as themselves; None as the empty value; mappings
    as `kvlist_value`; lists, tuples and sets as `array_value`; anything else as its `str()`."""
    if type(value) is str:
        _set_string(target, value)
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):  # IntEnum, IntFlag too
        if INT64_MIN <= value <= INT64_MAX:
            target.int_value = int(value)
        else:
            target.string_value = str(int(value))
    elif isinstance(value, float):
        target.double_value = float(value)
    elif value is None:
        pass  # an AnyValue with nothing set is OTLP's empty value
    elif isinstance(value, str):
        _set_string(target, str.__str__(value))  # a str subclass (a StrEnum): its text
    elif isinstance(value, bytes | bytearray | memoryview):
        target.bytes_value = bytes(value)
    elif depth >= MAX_DEPTH:
        _set_string(target, truncate(safe_str(value), MAX_TEXT_BYTES))
    elif isinstance(value, Mapping):
        kvlist = target.kvlist_value
        kvlist.SetInParent()  # present even when the mapping is empty
        for key, item in value.items():
            _set_key_value(kvlist.values.add(), key, item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        array = target.array_value
        array.SetInParent()
        for item in value:
            set_any_value(array.values.add(), item, depth + 1)
    else:
        _set_string(target, truncate(safe_str(value), MAX_TEXT_BYTES))


def _set_string(target: AnyValue, text: str) -> None:
    try:
        target.string_value = text
    except UnicodeEncodeError:
        target.string_value = utf8_text(text)


def _set_key_value(target: KeyValue, key: object, value: object, depth: int = 0) -> None:
    text = key if type(key) is str else safe_str(key)
    try:
        target.key = text
    except UnicodeEncodeError:
        target.key = utf8_text(text)
    set_any_value(target.value, value, depth)


def key_values(attributes: Mapping[str, object]) -> list[KeyValue]:
    """Attributes as `KeyValue` messages (the resource's)."""
    result = []
    for key, value in attributes.items():
        item = KeyValue()
        _set_key_value(item, key, value)
        result.append(item)
    return result


# -- trace context --------------------------------------------------------------------------

def id_bytes(value: object, size: int) -> bytes | None:
    """A W3C trace id (`size` 16) or span id (8) from a hex str of `2 * size` digits, an int
    or `size` bytes; None if it is not one, or all zero (invalid)."""
    text = id_hex(value, size)
    return None if text is None else bytes.fromhex(text)


trace_flags = flags_of
"""W3C trace flags (0..255) from an int or a hex str of two digits; None if neither."""


# -- records -------------------------------------------------------------------------------


def fill_record(record: LogRecord, entry: LogEntry, observed: int) -> None:
    """Set every field of `record` from `entry`; `observed` is the export time in ns."""
    timestamp, level, message, _, fields, exception = entry[:6]
    if 0.0 <= timestamp < 1e11:  # excludes NaN, infinity and the impossible
        record.time_unix_nano = int(timestamp * 1e9)
    record.observed_time_unix_nano = observed
    if 0 <= level <= 100:
        record.severity_number = _SEVERITY[level]
        record.severity_text = _SEVERITY_TEXT[level]
    else:
        record.severity_number = cast("SeverityNumber.ValueType", severity_number(level))
        record.severity_text = level_name(level)
    try:
        record.body.string_value = message
    except UnicodeEncodeError:
        record.body.string_value = utf8_text(message)
    location = entry[LOCATION]
    if fields:
        _fill_fields(record, fields, exception is not None, location is not None)
    if exception is not None:
        _fill_exception(record, exception)
    if location is not None:
        module, function, line = location
        _set_key_value(record.attributes.add(), "code.function.name", f"{module}.{function}")
        _set_key_value(record.attributes.add(), "code.line.number", int(line))


def _fill_fields(
    record: LogRecord, fields: Mapping[str, Any], has_exception: bool, has_location: bool
) -> None:
    attributes = record.attributes
    skip: tuple[str, ...] = ()
    if "trace_id" in fields or "span_id" in fields or "trace_flags" in fields:
        skip = _fill_trace(record, fields)
    if has_exception:
        skip = (*skip, *EXCEPTION_ATTRIBUTES)  # the traceback's win: keys must be unique
    if has_location:
        skip = (*skip, *LOCATION_ATTRIBUTES)
    add = attributes.add
    for key, value in fields.items():
        if skip and key in skip:
            continue
        item = add()
        try:
            item.key = key
        except (UnicodeEncodeError, TypeError):
            item.key = utf8_text(safe_str(key))
        # The common scalars inline (this runs for every field of every entry), the rest
        # through set_any_value.
        if type(value) is str:
            try:
                item.value.string_value = value
            except UnicodeEncodeError:
                item.value.string_value = utf8_text(value)
        elif type(value) is int and INT64_MIN <= value <= INT64_MAX:
            item.value.int_value = value
        elif type(value) is float:
            item.value.double_value = value
        else:
            set_any_value(item.value, value)


def _fill_trace(record: LogRecord, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """Set the trace context from the fields that hold a valid one; return their keys."""
    used: list[str] = []
    trace_id = id_bytes(fields.get("trace_id"), 16)
    if trace_id is not None:
        record.trace_id = trace_id
        used.append("trace_id")
    span_id = id_bytes(fields.get("span_id"), 8)
    if span_id is not None:
        record.span_id = span_id
        used.append("span_id")
    flags = trace_flags(fields.get("trace_flags"))
    if flags is not None:
        record.flags = flags
        used.append("trace_flags")
    return tuple(used)


def _fill_exception(record: LogRecord, exception: str) -> None:
    kind, message = parse_exception(exception)
    attributes = record.attributes
    if kind is not None:
        _set_key_value(attributes.add(), "exception.type", kind)
    if message is not None:
        _set_key_value(attributes.add(), "exception.message", message)
    _set_key_value(attributes.add(), "exception.stacktrace", exception)


# -- requests ------------------------------------------------------------------------------

CHUNK = 128
"""Entries encoded between two looks at the clock."""
SLICE_SECONDS = 0.0005
"""The longest the encoder runs before it lets the loop run other tasks."""


class RequestBuilder:
    """One `ExportLogsServiceRequest` under construction: one `ResourceLogs` (the config's
    resource), then one `ScopeLogs` per run of entries with the same logger (its name is the
    scope's name), so that the records keep the batch's order."""

    def __init__(self, resource: Sequence[KeyValue], observed: int | None = None) -> None:
        self.request = ExportLogsServiceRequest()
        self._resource_logs = self.request.resource_logs.add()
        self._resource_logs.resource.attributes.extend(resource)
        self._observed = time.time_ns() if observed is None else observed
        self._scope: ScopeLogs | None = None
        self._logger: str | None = None

    def add(self, entries: Sequence[LogEntry]) -> None:
        """Append `entries` as log records."""
        observed, scope, logger = self._observed, self._scope, self._logger
        for entry in entries:
            if scope is None or entry.logger != logger:
                logger = entry.logger
                scope = self._resource_logs.scope_logs.add()
                try:
                    scope.scope.name = logger
                except UnicodeEncodeError:
                    scope.scope.name = utf8_text(logger)
            fill_record(scope.log_records.add(), entry, observed)
        self._scope, self._logger = scope, logger

    def serialize(self) -> bytes:
        return bytes(self.request.SerializeToString())


def encode(entries: Sequence[LogEntry], resource: Sequence[KeyValue]) -> bytes:
    """The serialized `ExportLogsServiceRequest` of `entries`, in one go."""
    builder = RequestBuilder(resource)
    builder.add(entries)
    return builder.serialize()


async def encode_in_slices(entries: Sequence[LogEntry], resource: Sequence[KeyValue]) -> bytes:
    """`encode`, yielding to the loop whenever a slice of work has taken `SLICE_SECONDS`."""
    builder = RequestBuilder(resource)
    slice_ends = perf_counter() + SLICE_SECONDS
    for start in range(0, len(entries), CHUNK):
        builder.add(entries[start : start + CHUNK])
        if start + CHUNK < len(entries) and perf_counter() >= slice_ends:
            await asyncio.sleep(0)
            slice_ends = perf_counter() + SLICE_SECONDS
    return builder.serialize()


class PartialSuccess(NamedTuple):
    rejected: int
    message: str


def partial_success(body: bytes) -> PartialSuccess | None:
    """The `partial_success` of an `ExportLogsServiceResponse` body, if it says anything;
    None also for a body that does not decode (the export itself succeeded)."""
    if not body:
        return None
    try:
        response = ExportLogsServiceResponse.FromString(body)
    except Exception:  # protobuf's DecodeError; a collector answering JSON or text
        return None
    if not response.HasField("partial_success"):
        return None
    rejected = int(response.partial_success.rejected_log_records)
    message = str(response.partial_success.error_message)
    if rejected <= 0 and not message:
        return None
    return PartialSuccess(max(rejected, 0), message)


class Codec:
    """What the backend needs of this module, for one resource."""

    def __init__(self, resource: Mapping[str, object]) -> None:
        self.resource = key_values(resource)

    def encode(self, entries: Sequence[LogEntry]) -> bytes:
        return encode(entries, self.resource)

    async def encode_in_slices(self, entries: Sequence[LogEntry]) -> bytes:
        return await encode_in_slices(entries, self.resource)

    @staticmethod
    def partial_success(body: bytes) -> PartialSuccess | None:
        return partial_success(body)
