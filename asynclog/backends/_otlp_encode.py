"""Entry batches as OTLP `ExportLogsServiceRequest` protobuf: the official classes of
`opentelemetry-proto` (the `otlp` extra) give the bytes, which the common records' are written
as by hand, faster (`FastRequestBuilder`); and the collector's answers decoded.

The mapping is described in docs/otlp.md. This module imports `opentelemetry.proto`, so the
OTLP backend imports it only when it opens.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ScopeLogs

from .._entry import (
    LOCATION,
    LOGGER,
    Entry,
    LogEntry,
    as_log_entry,
)
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
TIME_LIMIT = 1.8e10
"""Timestamps (s) from this one on (the year 2540) have more nanoseconds than a fixed64
holds: such a record gets no `time_unix_nano`, as a negative or NaN timestamp."""

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
    """Store `value` in `target`: str, bool, int (64-bit; a bigger one as its decimal text,
    or `safe_str`'s placeholder past the digits `str()` allows), float, bytes (and bytearray,
    memoryview) as themselves; None as the empty value; mappings as `kvlist_value`; lists,
    tuples and sets as `array_value`; anything else as its `str()`."""
    if type(value) is str:
        _set_string(target, value)
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):  # IntEnum, IntFlag too
        if INT64_MIN <= value <= INT64_MAX:
            target.int_value = int(value)
        else:
            target.string_value = safe_str(int(value))  # may have too many digits for str()
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
    if 0.0 <= timestamp < TIME_LIMIT:  # excludes NaN, infinity and the impossible
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
    """One `ExportLogsServiceRequest` under construction with the protobuf classes: one
    `ResourceLogs` (the config's resource), then one `ScopeLogs` per run of entries with the
    same logger (its name is the scope's name), so that the records keep the batch's order.
    `FastRequestBuilder` writes the same bytes faster; this one is their reference."""

    def __init__(self, resource: Sequence[KeyValue], observed: int | None = None) -> None:
        self.request = ExportLogsServiceRequest()
        self._resource_logs = self.request.resource_logs.add()
        self._resource_logs.resource.attributes.extend(resource)
        self._observed = time.time_ns() if observed is None else observed
        self._scope: ScopeLogs | None = None
        self._logger: str | None = None

    def add(self, entries: Sequence[Entry]) -> None:
        """Append `entries` as log records."""
        observed, scope, logger = self._observed, self._scope, self._logger
        for entry in entries:
            if scope is None or entry[LOGGER] != logger:
                logger = entry[LOGGER]
                scope = self._resource_logs.scope_logs.add()
                try:
                    scope.scope.name = logger
                except UnicodeEncodeError:
                    scope.scope.name = utf8_text(logger)
            fill_record(scope.log_records.add(), as_log_entry(entry), observed)
        self._scope, self._logger = scope, logger

    def serialize(self) -> bytes:
        return bytes(self.request.SerializeToString())


# -- the same bytes, written by hand -----------------------------------------------------------
# Protobuf's wire format for the messages above, as upb writes them (fields in number order,
# proto3 defaults left out, a oneof member always written). Records of the common shape (no
# traceback, location or trace context; str, int, float or bool fields) are written here; any
# other record is built with the classes and serialized alone, which gives the same bytes.
# This runs for every entry: the bytes that do not depend on the value (tags, lengths, a
# field's key) are made once and cached, so a record is a few concatenations.

_pack_time = struct.Struct("<BQ").pack
"""LogRecord field 1 (time_unix_nano, fixed64) with its tag: `_pack_time(0x09, nanos)`."""
_pack_fixed64 = struct.Struct("<Q").pack
_pack_double = struct.Struct("<d").pack
_VARINT = [bytes([n]) for n in range(128)]
_MORE = [bytes([n | 0x80]) for n in range(128)]
"""A varint's byte holding seven bits when more follow."""
_UINT64 = 1 << 64
KEYS_CACHED = 256
"""Field names whose attribute bytes are cached, per request."""


def _varint(value: int) -> bytes:
    """A non-negative int as a protobuf varint."""
    if value < 0x80:
        return _VARINT[value]
    if value < 0x4000:
        return _MORE[value & 0x7F] + _VARINT[value >> 7]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    return tag + _varint(len(payload)) + payload


def _severity_bytes(level: int) -> bytes:
    number, text = int(_SEVERITY[level]), _SEVERITY_TEXT[level].encode("utf-8")
    return (b"\x10" + _varint(number) if number else b"") + (_field(b"\x1a", text) if text else b"")


def _body_head(size: int) -> bytes:
    """LogRecord field 5 (body, an AnyValue holding a string) up to the string's `size` bytes."""
    string_head = b"\x0a" + _varint(size)
    return b"\x2a" + _varint(len(string_head) + size) + string_head


_SEVERITY_BYTES = [_severity_bytes(level) for level in range(101)]
_BODY_HEADS = [_body_head(size) for size in range(128)]
_RECORD_HEADS = [b"\x12" + _VARINT[size] for size in range(128)]
"""ScopeLogs field 2 (a LogRecord) up to the record, for records shorter than 128 bytes."""
_TRACE_KEYS = frozenset(TRACE_FIELDS)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()  # UTF-8; faster without the argument
    except UnicodeEncodeError:
        return utf8_text(text).encode("utf-8")


def _key_field(key: str) -> bytes:
    """KeyValue field 1 (nothing for an empty key)."""
    data = _utf8(key)
    return _field(b"\x0a", data) if data else b""


def _attribute_head(key: bytes, value_head: bytes, value_size: int) -> bytes:
    """An attribute (LogRecord field 6, a KeyValue) up to its value's bytes: `key` is its
    field 1, `value_head` the AnyValue's tag (and length), followed by `value_size` bytes."""
    pair = key + b"\x12" + _varint(len(value_head) + value_size) + value_head
    return b"\x32" + _varint(len(pair) + value_size) + pair


_BOOLS = (b"\x00", b"\x01")


def _any_value(value: object) -> tuple[bytes, bytes] | None:
    """A str, int (64-bit), float or bool as an AnyValue: its tag (and length), its value's
    bytes; None for anything else."""
    if type(value) is str:
        data = _utf8(value)
        return b"\x0a" + _varint(len(data)), data
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return b"\x18", _varint(value % _UINT64)  # a negative one as its two's complement
    if type(value) is float:
        return b"\x21", _pack_double(value)
    if type(value) is bool:
        return b"\x10", _BOOLS[value]
    return None


def _uncached_attribute(key: str, value: object) -> bytes | None:
    """A whole attribute, made without a cache (past `KEYS_CACHED` keys); None if the
    value needs the classes."""
    any_value = _any_value(value)
    if any_value is None:
        return None
    value_head, data = any_value
    return _attribute_head(_key_field(key), value_head, len(data)) + data


class _Attribute:
    """One field name's attribute up to its value's bytes (`_attribute_head`), which depend
    on the value's kind and size only: the attribute is `head + the value's bytes`. Each head
    is made when first needed, so that a key seen once costs little more than uncached."""

    __slots__ = ("fixed", "ints", "key", "strings")

    def __init__(self, key: str) -> None:
        self.key = _key_field(key)
        self.ints: dict[int, bytes] = {}
        """An int's head by the length of its varint."""
        self.strings: dict[int, bytes] = {}
        """A string's head by its size in bytes (the short ones)."""
        self.fixed: dict[type, bytes] = {}
        """The head of a float (8 bytes) or a bool (1 byte)."""

    def int_head(self, size: int) -> bytes:
        """The head of an int whose varint is `size` bytes."""
        head = self.ints[size] = _attribute_head(self.key, b"\x18", size)
        return head

    def string_head(self, size: int) -> bytes:
        """The head of a string of `size` bytes."""
        head = _attribute_head(self.key, b"\x0a" + _varint(size), size)
        if size < 0x80:
            self.strings[size] = head
        return head

    def fixed_head(self, kind: type) -> bytes:
        """The head of a float or a bool."""
        value_head, size = (b"\x21", 8) if kind is float else (b"\x10", 1)
        head = self.fixed[kind] = _attribute_head(self.key, value_head, size)
        return head


class FastRequestBuilder:
    """`RequestBuilder`'s bytes, written by hand for the common records (see above)."""

    def __init__(self, resource: Sequence[KeyValue], observed: int | None = None) -> None:
        head = ExportLogsServiceRequest()
        head.resource_logs.add().resource.attributes.extend(resource)
        # The ResourceLogs without scopes: field 1 of the request, its payload after the length.
        resource_logs = head.resource_logs[0].SerializeToString()
        self._resource_logs = bytes(resource_logs)
        self._observed = time.time_ns() if observed is None else observed
        self._observed_bytes = b"\x59" + _pack_fixed64(self._observed) if self._observed else b""
        self._scopes: list[bytes] = []
        """Each finished ScopeLogs field, framed."""
        self._records: list[bytes] = []
        """The records of the current scope, each framed as its field 2."""
        self._scope_head = b""
        self._logger: str | None = None
        self._attributes: dict[str, _Attribute] = {}

    def add(self, entries: Sequence[Entry]) -> None:
        """Append `entries` as log records."""
        records, logger = self._records, self._logger
        record_of = self._record
        for entry in entries:
            if entry[LOGGER] != logger:  # None before the first entry
                self._close_scope()
                records = self._records
                logger = self._logger = entry[LOGGER]
                self._scope_head = self._scope_field(logger)
            record = record_of(entry)
            if record is None:
                record = self._record_by_classes(entry)
            size = len(record)
            records.append(_RECORD_HEADS[size] if size < 0x80 else b"\x12" + _varint(size))
            records.append(record)

    @staticmethod
    def _scope_field(logger: str) -> bytes:
        scope = InstrumentationScope()
        try:
            scope.name = logger
        except UnicodeEncodeError:
            scope.name = utf8_text(logger)
        return _field(b"\x0a", scope.SerializeToString())

    def _close_scope(self) -> None:
        if self._scope_head:
            self._scopes.append(_field(b"\x12", self._scope_head + b"".join(self._records)))
        self._records = []
        self._scope_head = b""

    def _record(self, entry: Entry) -> bytes | None:
        """One LogRecord's bytes; None if it is not of the common shape."""
        ts, level, message, _, fields, exception, _, location = entry
        if (
            exception is not None
            or location is not None
            or not 0 <= level <= 100
            or not 0.0 <= ts < TIME_LIMIT
        ):
            return None
        text = _utf8(message)
        size = len(text)
        nanos = int(ts * 1e9)
        parts = [
            _pack_time(0x09, nanos) if nanos else b"",
            _SEVERITY_BYTES[level],
            _BODY_HEADS[size] if size < 0x80 else _body_head(size),
            text,
        ]
        if fields and not self._add_attributes(parts, fields):
            return None
        parts.append(self._observed_bytes)
        return b"".join(parts)

    def _add_attributes(self, parts: list[bytes], fields: Mapping[str, Any]) -> bool:
        """Append the fields as LogRecord attributes to `parts`; False if one needs the
        classes (a trace field, a key that is not a str, a value that is not a str, int,
        float or bool)."""
        cached = self._attributes
        append = parts.append
        for key, value in fields.items():
            attribute = cached.get(key)
            if attribute is None:
                if type(key) is not str or key in _TRACE_KEYS:  # never cached
                    return False
                if len(cached) >= KEYS_CACHED:
                    attribute_bytes = _uncached_attribute(key, value)
                    if attribute_bytes is None:
                        return False
                    append(attribute_bytes)
                    continue
                attribute = cached[key] = _Attribute(key)
            kind = type(value)
            if kind is int and 0 <= value < 0x4000:  # one or two varint bytes
                if value < 0x80:
                    append(attribute.ints.get(1) or attribute.int_head(1))
                    append(_VARINT[value])
                else:
                    append(attribute.ints.get(2) or attribute.int_head(2))
                    append(_MORE[value & 0x7F] + _VARINT[value >> 7])
            elif kind is str:
                data = _utf8(value)
                size = len(data)
                append(attribute.strings.get(size) or attribute.string_head(size))
                append(data)
            elif kind is int and INT64_MIN <= value <= INT64_MAX:
                number = _varint(value % _UINT64)  # a negative one as its two's complement
                append(attribute.ints.get(len(number)) or attribute.int_head(len(number)))
                append(number)
            elif kind is float:
                append(attribute.fixed.get(float) or attribute.fixed_head(float))
                append(_pack_double(value))
            elif kind is bool:
                append(attribute.fixed.get(bool) or attribute.fixed_head(bool))
                append(_BOOLS[value])
            else:
                return False
        return True

    def _record_by_classes(self, entry: Entry) -> bytes:
        record = LogRecord()
        fill_record(record, as_log_entry(entry), self._observed)
        return bytes(record.SerializeToString())

    def serialize(self) -> bytes:
        self._close_scope()
        self._logger = None
        resource_logs = self._resource_logs + b"".join(self._scopes)
        return _field(b"\x0a", resource_logs)


def encode(entries: Sequence[Entry], resource: Sequence[KeyValue]) -> bytes:
    """The serialized `ExportLogsServiceRequest` of `entries`, in one go."""
    builder = FastRequestBuilder(resource)
    builder.add(entries)
    return builder.serialize()


async def encode_in_slices(entries: Sequence[Entry], resource: Sequence[KeyValue]) -> bytes:
    """`encode`, yielding to the loop whenever a slice of work has taken `SLICE_SECONDS`."""
    builder = FastRequestBuilder(resource)
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

    def encode(self, entries: Sequence[Entry]) -> bytes:
        return encode(entries, self.resource)

    async def encode_in_slices(self, entries: Sequence[Entry]) -> bytes:
        return await encode_in_slices(entries, self.resource)

    @staticmethod
    def partial_success(body: bytes) -> PartialSuccess | None:
        return partial_success(body)
