"""The OTLP backend against a real HTTP receiver on 127.0.0.1 that decodes every request with
the official `opentelemetry-proto` classes: mapping, retries, partial success, TLS, failure."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from asynclog import Config, ConfigError, Level, LogEntry, LogError, LogManager
from asynclog._otlp_config import OTLPConfig
from asynclog.backends._otlp_encode import (
    FastRequestBuilder,
    RequestBuilder,
    encode,
    id_bytes,
    key_values,
    parse_exception,
    severity_number,
)
from asynclog.backends.otlp import (
    ExportError,
    HTTPProtocolError,
    OTLPBackend,
    parse_retry_after,
    read_response,
    rpc_status_message,
)

from .conftest import RecordingBackend, needs_real

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


# -- the receiver ------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    """As received (gzipped, if it was)."""
    decoded: ExportLogsServiceRequest
    status: int


Reply = tuple[int, dict[str, str], bytes]
"""A status, headers and body to answer with."""


@dataclass
class Receiver:
    """A minimal OTLP/HTTP collector: HTTP/1.1 with keep-alive, every body decoded with
    `ExportLogsServiceRequest.FromString`; `plan` replies are used up first, then 200."""

    plan: list[Reply] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    records: list[tuple[str, LogRecord]] = field(default_factory=list)
    """`(scope name, record)` of each accepted request, in order."""
    resources: list[dict[str, Any]] = field(default_factory=list)
    ok_reply: Reply = (200, {"Content-Type": "application/x-protobuf"}, b"")
    close_after_reply: bool = False
    """Close each connection after one response, without saying so (a stale keep-alive)."""
    silent: bool = False
    """Read requests and never answer (a hung collector)."""
    chunked: bool = False
    delay: float = 0.0
    """Seconds to wait before answering each request (a distant collector)."""
    answering: int = 0
    """Requests read and not answered yet."""
    most_at_once: int = 0
    """The most requests waiting for their answer at any moment."""
    connections: int = 0
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/logs"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode().split(" ", 2)
                assert method == "POST"
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers["content-length"]))
                if self.silent:
                    await asyncio.sleep(3600)
                self.answering += 1
                self.most_at_once = max(self.most_at_once, self.answering)
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.answering -= 1
                status, reply_headers, reply = self.plan.pop(0) if self.plan else self.ok_reply
                raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
                decoded = ExportLogsServiceRequest.FromString(raw)  # raises if malformed
                self.requests.append(Request(path, headers, body, decoded, status))
                if 200 <= status < 300:
                    for resource_logs in decoded.resource_logs:
                        self.resources.append(attributes(resource_logs.resource.attributes))
                        for scope_logs in resource_logs.scope_logs:
                            for record in scope_logs.log_records:
                                self.records.append((scope_logs.scope.name, record))
                closing = headers.get("connection", "").lower() == "close"  # e.g. from a proxy
                if closing:
                    reply_headers = {**reply_headers, "Connection": "close"}
                writer.write(self._response(status, reply_headers, reply))
                await writer.drain()
                if self.close_after_reply or closing:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def _response(self, status: int, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"HTTP/1.1 {status} Status{status}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
            half = len(body) // 2
            parts = [body[:half], body[half:]]
            payload = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts if p)
            payload += b"0\r\nX-Trailer: yes\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload

    def decoded_fields(self) -> list[dict[str, Any]]:
        return [attributes(record.attributes) for _, record in self.records]


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(items: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        assert item.key not in result, f"duplicate attribute {item.key}"
        result[item.key] = any_value(item.value)
    return result


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def partial_success_reply(rejected: int, message: str) -> Reply:
    response = ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = rejected
    response.partial_success.error_message = message
    return 200, {"Content-Type": "application/x-protobuf"}, response.SerializeToString()


def rpc_status(code: int, message: str) -> bytes:
    """A `google.rpc.Status` protobuf, encoded by hand (field 1 varint, field 2 string)."""
    text = message.encode()
    return bytes([0x08, code, 0x12, len(text)]) + text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def otlp(receiver: Receiver | None = None, **options: Any) -> OTLPBackend:
    options.setdefault("retry_backoff", 0.01)
    options.setdefault("timeout", 5.0)
    if receiver is not None:
        options.setdefault("endpoint", receiver.url)
    return OTLPBackend(OTLPConfig(**options))


def entry(message: str, level: int = Level.INFO, logger: str = "app", **fields: Any) -> LogEntry:
    exception = fields.pop("exception", None)
    return LogEntry(time.time(), level, message, logger, MappingProxyType(fields), exception)


def traceback_of(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc)).rstrip("\n")


class CustomThing:
    def __str__(self) -> str:
        return "custom-thing"


# -- config ------------------------------------------------------------------------------


def test_config_defaults_and_repr_hides_header_values() -> None:
    config = OTLPConfig(headers={"Authorization": "Bearer s3cret"}, resource={"env": "test"})
    assert config.endpoint == "http://127.0.0.1:4318/v1/logs"
    assert dict(config.resource) == {"service.name": "asynclog", "env": "test"}
    assert OTLPConfig(resource={"service.name": "svc"}).resource["service.name"] == "svc"
    assert "s3cret" not in repr(config) and "'Authorization': '***'" in repr(config)
    with pytest.raises(TypeError):
        config.headers["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"endpoint": "ftp://host/v1/logs"}, "endpoint"),
        ({"endpoint": "http:///v1/logs"}, "endpoint"),
        ({"endpoint": "http://user:pw@host/v1/logs"}, "endpoint"),
        ({"endpoint": "http://host:99999/v1/logs"}, "endpoint"),
        ({"endpoint": 5}, "endpoint"),
        ({"endpoint": "http://b\u00fccher.example/v1/logs"}, "endpoint"),
        ({"endpoint": "http://host/v1/logs#frag"}, "endpoint"),
        ({"headers": {"Content-Type": "x"}}, "headers"),
        ({"headers": {"bad name": "x"}}, "headers"),
        ({"headers": {"X-Key": "a\r\nInjected: 1"}}, "headers"),
        ({"headers": {"X-Key": 5}}, "headers"),
        ({"headers": ["X-Key"]}, "headers"),
        ({"resource": {"k": object()}}, "resource"),
        ({"resource": {"": "v"}}, "resource"),
        ({"compression": "zstd"}, "compression"),
        ({"timeout": 0}, "timeout"),
        ({"max_retry_time": -1}, "max_retry_time"),
        ({"retry_backoff": float("nan")}, "retry_backoff"),
        ({"key_file": "k.pem"}, "key_file"),
        ({"verify_tls": "no"}, "verify_tls"),
        ({"level": "loud"}, "level"),
        ({"name": ""}, "name"),
    ],
)
def test_config_rejects(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OTLPConfig(**options)
    assert caught.value.key == key
    assert "a\r\nInjected" not in str(caught.value)


def test_backend_needs_an_otlp_config() -> None:
    with pytest.raises(TypeError):
        OTLPBackend("http://x")  # type: ignore[arg-type]


# -- pure mapping ------------------------------------------------------------------------


def test_severity_numbers() -> None:
    expected = {1: 1, 5: 3, 9: 4, 10: 5, 15: 7, 19: 8, 20: 9, 25: 11, 30: 13, 35: 15}
    expected |= {40: 17, 49: 20, 50: 21, 59: 24, 60: 24, 100: 24, 0: 0, -5: 0}
    assert {level: severity_number(level) for level in expected} == expected


def test_parse_exception_heuristic() -> None:
    def chained() -> None:
        try:
            raise ValueError("inner")
        except ValueError as exc:
            raise KeyError("outer") from exc

    with pytest.raises(KeyError) as chain:
        chained()
    assert parse_exception(traceback_of(chain.value)) == ("KeyError", "'outer'")
    noted = ValueError("two\nlines")
    noted.add_note("a note")
    assert parse_exception(traceback_of(noted)) == ("ValueError", "two\nlines\na note")
    with pytest.raises(ExceptionGroup) as group:
        raise ExceptionGroup("several", [ValueError("a"), TypeError("b")])
    assert parse_exception(traceback_of(group.value)) == (
        "ExceptionGroup",
        "several (2 sub-exceptions)",
    )
    assert parse_exception(traceback_of(KeyboardInterrupt())) == ("KeyboardInterrupt", None)
    with pytest.raises(SyntaxError) as syntax:
        compile("1 +", "<src>", "exec")
    assert parse_exception(traceback_of(syntax.value))[0] == "SyntaxError"
    assert parse_exception(traceback_of(CustomError("x: y"))) == (
        f"{__name__}.CustomError",
        "x: y",
    )
    assert parse_exception("<unformattable X: oops>") == (None, None)
    assert parse_exception("") == (None, None)


class CustomError(Exception):
    pass


def test_ids() -> None:
    assert id_bytes(TRACE_ID, 16) == bytes.fromhex(TRACE_ID)
    assert id_bytes(TRACE_ID.upper(), 16) == bytes.fromhex(TRACE_ID)
    assert id_bytes(int(SPAN_ID, 16), 8) == bytes.fromhex(SPAN_ID)
    assert id_bytes(bytes(8) + b"\x01" * 8, 16) == bytes(8) + b"\x01" * 8
    for bad in ("0" * 32, TRACE_ID[:-1], "g" * 32, 0, 2**128, True, None, 1.5, b"x"):
        assert id_bytes(bad, 16) is None


def test_retry_after_and_status_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None
    assert rpc_status_message(rpc_status(3, "bad field")) == "bad field"
    assert rpc_status_message(b"\xff\xff") is None
    assert rpc_status_message(b"") is None


async def parse(data: bytes) -> tuple[Any, bool]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_response(reader)


async def test_http_response_framing() -> None:
    response, keep = await parse(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
    )
    assert (response.status, response.body, response.headers["x-a"], keep) == (
        200,
        b"abcde",
        "1, 2",
        True,
    )
    response, keep = await parse(b"HTTP/1.0 503 Busy\r\nRetry-After: 2\r\n\r\nlater")
    assert (response.status, response.reason, response.body, keep) == (503, "Busy", b"later", False)
    response, keep = await parse(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    assert (response.body, keep) == (b"", False)
    for bad in (
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ):
        with pytest.raises(HTTPProtocolError):
            await parse(bad)
    with pytest.raises(asyncio.IncompleteReadError):
        await parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")


def test_encoding_maps_every_type() -> None:
    fields: dict[str, Any] = {
        "s": "text",
        "i": -(2**63),
        "big": 2**64,
        "f": 2.5,
        "b": False,
        "raw": b"\x00\xff",
        "none": None,
        "list": [1, "two", [3.0], {"k": True}],
        "tuple": (1, 2),
        "empty_list": [],
        "map": {"a": {"b": "c"}, 5: "int key"},
        "empty_map": {},
        "lvl": Level.ERROR,
        "thing": CustomThing(),
        "surrogate": "bad \udc80 text",
        "trace_flags": 1,
    }
    data = encode([entry("m", **fields)], key_values({"service.name": "x"}))
    record = ExportLogsServiceRequest.FromString(data).resource_logs[0].scope_logs[0].log_records[0]
    got = attributes(record.attributes)
    assert got == {
        "s": "text",
        "i": -(2**63),
        "big": str(2**64),
        "f": 2.5,
        "b": False,
        "raw": b"\x00\xff",
        "none": None,
        "list": [1, "two", [3.0], {"k": True}],
        "tuple": [1, 2],
        "empty_list": [],
        "map": {"a": {"b": "c"}, "5": "int key"},
        "empty_map": {},
        "lvl": 40,
        "thing": "custom-thing",
        "surrogate": "bad \\udc80 text",
    }
    assert record.attributes[-1].key == "surrogate"
    assert record.flags == 1
    values = {item.key: item.value for item in record.attributes}
    assert values["empty_list"].HasField("array_value")
    assert values["empty_map"].HasField("kvlist_value")
    assert not values["none"].HasField("string_value")


def test_hand_written_bytes_equal_the_protobuf_classes() -> None:
    """The common records are written by hand: the bytes must be the classes' own, for every
    shape (the others go through the classes, record by record, inside the same request)."""
    from asynclog import Location

    values: list[Any] = [0, 1, 127, 128, 16_384, 2**21, -1, 2**63 - 1, -(2**63), 2**64]
    values += [0.0, -2.5, float("inf"), True, False, "", "text", "é \udc80", "x" * 300]
    values += [None, [1, "a"], {"k": 1}, b"raw", Level.ERROR, TRACE_ID]
    keys = ["k", "", "é", "bad \udc80", "y" * 200, "trace_id", "span_id", "exception.type"]
    entries: list[Any] = []
    for number, value in enumerate(values):
        for key_number, key in enumerate(keys):
            turn = number * len(keys) + key_number
            entries.append(
                (
                    (1.7e9, 0.0, -1.0, 2e10, 1.7e9 + turn / 7)[turn % 5],
                    (20, 10, 25, 0, 100, 120, -3)[turn % 7],
                    ("msg", "", "m \udc80", "z" * 200)[turn % 4],
                    ("app", "app", "", "other", "\udc80")[turn % 5],
                    MappingProxyType({key: value, "seq": turn} if turn % 3 else {}),
                    "Traceback ...\nValueError: x" if turn % 11 == 0 else None,
                    None,
                    Location("mod", "fn", turn) if turn % 13 == 0 else None,
                )
            )
    for resource in ({}, {"service.name": "x", "n": 3}):
        for observed in (0, 1_700_000_000_123_456_789):
            by_classes = RequestBuilder(key_values(resource), observed)
            by_hand = FastRequestBuilder(key_values(resource), observed)
            by_classes.add(entries)
            for start in range(0, len(entries), 50):
                by_hand.add(entries[start : start + 50])
            assert by_hand.serialize() == by_classes.serialize()
    decoded = ExportLogsServiceRequest.FromString(encode(entries, key_values({})))
    records = [r for scope in decoded.resource_logs[0].scope_logs for r in scope.log_records]
    assert [r.body.string_value for r in records[:4]] == ["msg", "", "m \\udc80", "z" * 200]
    assert len(records) == len(entries)


def test_hand_written_bytes_at_the_borders_of_their_caches() -> None:
    """The hand-written records put together cached pieces (a field's attribute head by the
    value's size, the body's head by the message's size, the record's frame by its size):
    the bytes must stay the classes' own on both sides of every border, for more keys than
    are cached, and for one key seen with every kind of value."""
    ints = [0, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 2**63 - 1, -1, -0x80, -(2**63)]
    texts = ["", "é" * 63, "é" * 64, "x" * 126, "x" * 127, "x" * 128, "x" * 129, "x" * 20_000]
    floats = [0.0, -0.0, 1e-300, float("nan"), float("-inf")]
    values: list[Any] = [*ints, *texts, *floats, True, False]
    entries: list[Any] = []
    for size in range(100, 140):  # the message's and the record's sizes cross 127/128
        entries.append((1.7e9, 20, "m" * size, "app", MappingProxyType({}), None, None, None))
    for turn, value in enumerate(values):
        fields = {"same": value, f"key{turn}": value, "other": values[-1 - turn]}
        entries.append((1.7e9, 9, "v", "app", MappingProxyType(fields), None, None, None))
    many = {f"k{number}": number for number in range(300)}  # past the cached keys
    entries += [(1.7e9, 30, "many", "app", MappingProxyType(many), None, None, None)] * 2
    for turn, value in enumerate([*values, None, [1]]):  # new keys, not cached any more
        fields = {"same": value, f"late{turn}": value}
        entries.append((1.7e9, 9, "late", "app", MappingProxyType(fields), None, None, None))
    for fields in ({"a": 1, "trace_id": "not an id"}, {"a": 1}, {"span_id": SPAN_ID, "b": 2}):
        entries.append((1.7e9, 20, "trace", "app", MappingProxyType(fields), None, None, None))
    observed = 1_700_000_000_123_456_789
    by_classes = RequestBuilder(key_values({"service.name": "x"}), observed)
    by_hand = FastRequestBuilder(key_values({"service.name": "x"}), observed)
    by_classes.add(entries)
    by_hand.add(entries)
    data = by_hand.serialize()
    assert data == by_classes.serialize()
    decoded = ExportLogsServiceRequest.FromString(data)
    records = decoded.resource_logs[0].scope_logs[0].log_records
    assert len(records) == len(entries)
    assert [r.body.string_value for r in records[:40]] == ["m" * size for size in range(100, 140)]
    same = [attributes(r.attributes)["same"] for r in records[40 : 40 + len(values)]]
    assert same[: len(ints) + len(texts)] == ints + texts
    assert same[-2:] == [True, False]
    late = [attributes(r.attributes) for r in records[-len(values) - 5 : -3]]
    by_kind = [fields[f"late{turn}"] for turn, fields in enumerate(late)]
    assert by_kind[: len(ints) + len(texts)] == ints + texts
    assert by_kind[-4:] == [True, False, None, [1]]
    assert records[-3].trace_id == b"" and attributes(records[-3].attributes)["trace_id"] == (
        "not an id"
    )
    assert records[-1].span_id == bytes.fromhex(SPAN_ID)
    assert "span_id" not in attributes(records[-1].attributes)


# -- against the receiver ----------------------------------------------------------------


async def test_ten_thousand_entries_in_async_mode(receiver: Receiver) -> None:
    backend = otlp(receiver, resource={"service.name": "shop", "deployment.environment": "t"})
    levels = [Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL, 25]
    config = Config(  # block: the point is every entry, in order, not a full queue
        backend=backend, async_mode=True, batch_size=500, name="shop", level=1, overflow="block"
    )
    try:
        raise ValueError("broken: badly")
    except ValueError as exc:
        error = exc
    started = time.time()
    async with LogManager(config) as lm:
        for i in range(10_000):
            fields: dict[str, Any] = {
                "seq": i,
                "user": f"u{i % 7}",
                "ratio": i / 4,
                "ok": i % 2 == 0,
            }
            if i % 100 == 0:
                fields |= {"trace_id": TRACE_ID, "span_id": SPAN_ID, "tags": ["a", i]}
            if i % 1000 == 0:
                fields["ctx"] = {"nested": {"deep": i}}
            if i % 500 == 1:
                fields["exc_info"] = error
            await lm.write_log(levels[i % len(levels)], f"message {i}", **fields)
        stats_before_close = lm.get_stats()
    assert stats_before_close.accepted == 10_000
    assert len(receiver.records) == 10_000
    decoded = receiver.decoded_fields()
    assert [f["seq"] for f in decoded] == list(range(10_000))  # exactly once, in order
    assert {scope for scope, _ in receiver.records} == {"shop"}
    assert receiver.resources[0] == {"service.name": "shop", "deployment.environment": "t"}
    assert all(request.path == "/v1/logs" for request in receiver.requests)
    assert len(receiver.requests) >= 20  # batches of at most 500
    assert receiver.connections == 1  # kept alive
    for i, ((_, record), fields) in enumerate(zip(receiver.records, decoded, strict=True)):
        level = levels[i % len(levels)]
        assert record.body.string_value == f"message {i}"
        assert record.severity_number == severity_number(level)
        assert record.severity_text == ("Level 25" if level == 25 else Level(level).name)
        assert started - 1 <= record.time_unix_nano / 1e9 <= time.time()
        assert record.observed_time_unix_nano >= record.time_unix_nano - 10**6
        assert fields["user"] == f"u{i % 7}" and fields["ratio"] == i / 4
        assert fields["ok"] is (i % 2 == 0)
        if i % 100 == 0:
            assert record.trace_id == bytes.fromhex(TRACE_ID)
            assert record.span_id == bytes.fromhex(SPAN_ID)
            assert "trace_id" not in fields and "span_id" not in fields
            assert fields["tags"] == ["a", i]
        else:
            assert record.trace_id == b"" and record.span_id == b""
        if i % 1000 == 0:
            assert fields["ctx"] == {"nested": {"deep": i}}
        if i % 500 == 1:
            assert fields["exception.type"] == "ValueError"
            assert fields["exception.message"] == "broken: badly"
            assert fields["exception.stacktrace"].endswith("ValueError: broken: badly")
            assert fields["exception.stacktrace"].startswith("Traceback (most recent call last)")
        else:
            assert "exception.type" not in fields
    assert (backend.exported, backend.rejected, backend.retries) == (10_000, 0, 0)


async def test_scopes_follow_the_logger_and_keep_order(receiver: Receiver) -> None:
    backend = otlp(receiver)
    await backend.open()
    loggers = ["db", "db", "http", "db", "caf\u00e9", "bad\udc80"]
    await backend.write_batch([entry(f"m{i}", logger=name) for i, name in enumerate(loggers)])
    await backend.close()
    scopes = [
        [scope.scope.name for scope in resource.scope_logs]
        for resource in receiver.requests[0].decoded.resource_logs
    ]
    assert scopes == [["db", "http", "db", "caf\u00e9", "bad\\udc80"]]
    assert [record.body.string_value for _, record in receiver.records] == [
        f"m{i}" for i in range(6)
    ]


async def test_exception_attributes_win_over_fields(receiver: Receiver) -> None:
    backend = otlp(receiver)
    await backend.open()
    text = traceback_of(KeyError("missing"))
    clashing: dict[str, Any] = {"exception.type": "mine", "other": 1}
    await backend.write_batch(
        [
            entry("boom", exception=text, **clashing),
            entry("not a trace", trace_id="xyz", span_id=0, trace_flags=300),
        ]
    )
    await backend.close()
    first, second = receiver.decoded_fields()
    assert first == {
        "other": 1,
        "exception.type": "KeyError",
        "exception.message": "'missing'",
        "exception.stacktrace": text,
    }
    assert second == {"trace_id": "xyz", "span_id": 0, "trace_flags": 300}  # invalid: kept


async def test_503_then_429_retry_after_everything_arrives_once(receiver: Receiver) -> None:
    busy: Reply = (503, {}, b"")
    receiver.plan = [busy, busy, busy, (429, {"Retry-After": "1"}, b"")]
    backend = otlp(receiver, retry_backoff=0.05)
    config = Config(backend=backend, async_mode=True, batch_size=100, retry_attempts=0)
    started = time.monotonic()
    async with LogManager(config) as lm:
        for i in range(1000):
            await lm.info("event", seq=i)
    elapsed = time.monotonic() - started
    stats = lm.get_stats()
    seqs = [fields["seq"] for fields in receiver.decoded_fields()]
    assert sorted(seqs) == list(range(1000)) and len(seqs) == len(set(seqs))  # no duplicates
    assert seqs == list(range(1000))
    assert [r.status for r in receiver.requests[:5]] == [503, 503, 503, 429, 200]
    first = receiver.requests[0].decoded
    assert all(r.decoded == first for r in receiver.requests[1:5])  # the same batch again
    assert backend.retries == 4
    assert elapsed >= 1.0  # the Retry-After was waited for
    assert (stats.written, stats.dropped, stats.dead_lettered, stats.write_errors) == (
        1000,
        0,
        0,
        0,
    )


async def test_retry_after_zero_still_backs_off(receiver: Receiver) -> None:
    receiver.plan = [(429, {"Retry-After": "0"}, b"")] * 3
    backend = otlp(receiver, retry_backoff=0.1)
    await backend.open()
    started = time.monotonic()
    await backend.write_batch([entry("once")])
    assert time.monotonic() - started >= 0.35  # 0.05 + 0.1 + 0.2 at the least (jitter)
    assert [r.status for r in receiver.requests] == [429, 429, 429, 200]
    assert [r.body.string_value for _, r in receiver.records] == ["once"]
    await backend.close()


async def test_retry_after_beyond_the_budget_fails_without_sending(receiver: Receiver) -> None:
    receiver.plan = [(429, {"Retry-After": "30"}, b"")]
    backend = otlp(receiver, max_retry_time=0.5)
    await backend.open()
    batch = [entry("x")]
    started = time.monotonic()
    with pytest.raises(ExportError) as caught:
        await backend.write_batch(batch)
    assert caught.value.status == 429 and caught.value.retryable
    with pytest.raises(ExportError, match="asked to wait"):
        await backend.write_batch(batch)  # the manager's retry: not sent early
    assert time.monotonic() - started < 0.5
    assert len(receiver.requests) == 1
    await backend.close()


async def test_partial_success_is_counted_not_retried(
    receiver: Receiver, capfd: pytest.CaptureFixture[str]
) -> None:
    receiver.plan = [partial_success_reply(5, "5 records too old"), partial_success_reply(2, "")]
    backend = otlp(receiver, name="collector")
    await backend.open()
    for batch in range(3):
        await backend.write_batch([entry("event", seq=batch * 10 + i) for i in range(10)])
    await backend.close()
    assert (backend.exported, backend.rejected, backend.retries) == (30, 7, 0)
    assert len(receiver.requests) == 3  # nothing sent again
    err = capfd.readouterr().err
    assert err.count("rejected 5 of 10 log records") == 1 and "5 records too old" in err
    assert "rejected 2 of 10" not in err  # the same burst: counted, not repeated
    assert "asynclog[collector]" in err and "export recovered; 1 more failures not shown" in err


async def test_partial_success_through_the_manager(receiver: Receiver) -> None:
    receiver.plan = [partial_success_reply(1, "one bad")]
    backend = otlp(receiver)
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        await lm.info("a")
    assert backend.rejected == 1
    assert lm.get_stats().written == 1  # the request was accepted: written, not retried


async def test_headers_gzip_and_user_agent(receiver: Receiver) -> None:
    receiver.chunked = True
    receiver.ok_reply = (200, {"Content-Type": "application/x-protobuf"}, b"")
    backend = otlp(receiver, headers={"Authorization": "Bearer t0ken", "X-Tenant": "a"})
    gzipped = otlp(receiver, compression="gzip")
    for each in (backend, gzipped):
        await each.open()
        await each.write_batch([entry("hello " * 200, n=1)])
        await each.close()
    plain, compressed = receiver.requests
    assert plain.headers["authorization"] == "Bearer t0ken" and plain.headers["x-tenant"] == "a"
    assert plain.headers["content-type"] == "application/x-protobuf"
    assert plain.headers["user-agent"].startswith("asynclog/")
    assert plain.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert "content-encoding" not in plain.headers
    assert compressed.headers["content-encoding"] == "gzip"
    assert len(compressed.body) < len(plain.body) / 5
    (_, first), (_, second) = receiver.records
    assert first.body == second.body and first.attributes == second.attributes


async def test_a_refused_batch_is_not_sent_again(receiver: Receiver) -> None:
    receiver.plan = [(400, {"Content-Type": "application/x-protobuf"}, rpc_status(3, "no!"))]
    backend = otlp(receiver)
    fallback = RecordingBackend()
    config = Config(backend=backend, fallback=fallback, retry_attempts=3, retry_backoff=0.001)
    async with LogManager(config) as lm:
        await lm.info("refused")
        await lm.info("fine")
    assert len(receiver.requests) == 2  # the refused batch went once; the manager's retries not
    assert fallback.messages == ["refused"]
    assert receiver.decoded_fields() == [{}] and backend.refused == 1
    stats = lm.get_stats()
    assert (stats.written, stats.dead_lettered, stats.retries) == (1, 1, 3)


async def test_refusal_message_names_the_status(receiver: Receiver) -> None:
    receiver.plan = [(413, {"Content-Type": "text/plain"}, b"too big"), (500, {}, b"")]
    backend = otlp(receiver)
    await backend.open()
    with pytest.raises(ExportError, match="413 Status413: too big") as caught:
        await backend.write_batch([entry("a")])
    assert not caught.value.retryable and caught.value.status == 413
    with pytest.raises(ExportError, match="refused: 500"):
        await backend.write_batch([entry("b")])  # 500 is not retried (OTLP/HTTP)
    await backend.close()


async def test_dead_endpoint_dead_letters_and_close_is_bounded() -> None:
    backend = otlp(endpoint=f"http://127.0.0.1:{free_port()}/v1/logs", max_retry_time=0.3)
    fallback = RecordingBackend()
    config = Config(
        backend=backend, async_mode=True, fallback=fallback, retry_attempts=2, retry_backoff=0.01
    )
    started = time.monotonic()
    lm = LogManager(config)
    await lm.start()  # a collector that is down does not fail the start
    for i in range(50):
        await lm.info("lost?", seq=i)
    report = await lm.close()
    assert time.monotonic() - started < 3.0
    assert report.dead_lettered == 50 and lm.get_stats().dead_lettered == 50
    assert [entry.fields["seq"] for entry in fallback.entries] == list(range(50))
    assert backend.retries >= 1


async def test_hung_collector_times_out_within_bounds(receiver: Receiver) -> None:
    receiver.silent = True
    backend = otlp(receiver, timeout=0.2, max_retry_time=0.3)
    fallback = RecordingBackend()
    config = Config(backend=backend, fallback=fallback, async_mode=True, retry_attempts=1)
    started = time.monotonic()
    async with LogManager(config) as lm:
        await lm.info("stuck")
    assert time.monotonic() - started < 2.5  # about 0.65 s: 3 attempts of 0.2 s
    assert fallback.messages == ["stuck"]


async def test_reconnects_when_the_server_drops_kept_alive_connections(
    receiver: Receiver,
) -> None:
    receiver.close_after_reply = True
    backend = otlp(receiver, max_retry_time=0)  # no retries: a stale connection is not one
    await backend.open()
    for i in range(5):
        await backend.write_batch([entry(f"m{i}")])
        await asyncio.sleep(0.01 if i % 2 else 0)  # sometimes the close is seen, sometimes not
    await backend.close()
    assert [record.body.string_value for _, record in receiver.records] == [
        f"m{i}" for i in range(5)
    ]
    assert receiver.connections == 5 and backend.retries == 0


async def test_write_before_open_and_empty_batch(receiver: Receiver) -> None:
    backend = otlp(receiver)
    with pytest.raises(LogError, match="not open"):
        await backend.write_batch([entry("x")])
    await backend.open()
    await backend.write_batch([])
    await backend.close()
    await backend.close()
    assert receiver.requests == []


async def test_missing_extra_fails_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asynclog.backends._otlp_encode", None)
    with pytest.raises(LogError, match=r"asynclog\[otlp\]"):
        await otlp().open()


async def test_sync_mode(receiver: Receiver) -> None:
    backend = otlp(receiver)
    async with LogManager(Config(backend=backend, async_mode=False)) as lm:
        await lm.warning("sync one", k="v")
    ((_, record),) = receiver.records
    assert record.severity_text == "WARNING" and record.severity_number == 13


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@needs_real(
    "openssl (OTLP over HTTPS with a private CA)",
    None if shutil.which("openssl") else "the openssl command is missing",
    "apt-get install openssl",
)
async def test_https_with_a_private_ca(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    receiver = Receiver(ssl_context=server_context)
    await receiver.start()
    try:
        backend = otlp(receiver, ca_file=str(cert))
        await backend.open()
        await backend.write_batch([entry("secure")])
        await backend.close()
        assert [record.body.string_value for _, record in receiver.records] == ["secure"]
        untrusted = otlp(receiver, max_retry_time=0)  # the system CAs do not know it
        await untrusted.open()
        with pytest.raises(ExportError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.write_batch([entry("refused")])
        await untrusted.close()
    finally:
        await receiver.stop()
    with pytest.raises(LogError, match="TLS files"):
        await otlp(endpoint="https://127.0.0.1:1/v1/logs", ca_file=str(tmp_path / "none")).open()


async def test_unflushed_entries_are_exported_at_interpreter_exit(receiver: Receiver) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from asynclog import Config, LogManager
        from asynclog._otlp_config import OTLPConfig
        from asynclog.backends.otlp import OTLPBackend

        class Backend(OTLPBackend):
            def flush_at_exit(self, entries):
                print("exit flush of", len(entries), file=sys.stderr)
                super().flush_at_exit(entries)

        async def main():
            backend = Backend(OTLPConfig(endpoint={receiver.url!r}))
            lm = LogManager(Config(backend=backend, async_mode=True))
            await lm.start()
            for i in range(20):
                await lm.info("at exit", seq=i)

        # The loop stops with the entries queued and the worker never run: the exit hook
        # writes them (with no loop running).
        asyncio.new_event_loop().run_until_complete(main())
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE, env={**os.environ}
    )
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert "exit flush of 20" in err.decode()
    assert [fields["seq"] for fields in receiver.decoded_fields()] == list(range(20))


async def test_flush_at_exit_without_a_loop(receiver: Receiver) -> None:
    backend = otlp(receiver, compression="gzip")
    await backend.open()
    await backend.write_batch([entry("before")])  # a connection of this loop, left open
    await asyncio.to_thread(backend.flush_at_exit, [entry("at exit", seq=1)])
    assert [r.body.string_value for _, r in receiver.records] == ["before", "at exit"]
    assert receiver.connections == 2
    with pytest.raises(LogError, match="not open"):
        await asyncio.to_thread(backend.flush_at_exit, [entry("again")])
    await backend.close()


def _wired() -> bool:
    from asynclog import _config

    return "otlp" in getattr(_config, "BACKEND_NAMES", ())


@pytest.mark.skipif(not _wired(), reason='Config does not know backend "otlp" yet')
async def test_config_by_name(receiver: Receiver) -> None:
    options = {"endpoint": receiver.url, "resource": {"service.name": "named"}}
    config = Config.from_dict({"backend": "otlp", "backend_config": options})
    async with LogManager(config) as lm:
        await lm.info("by name")
    assert [r.body.string_value for _, r in receiver.records] == ["by name"]
    assert receiver.resources == [{"service.name": "named"}]
    assert "otlp" in lm.get_stats().backends


# -- throughput: .venv/bin/python -m tests.test_otlp [entries] [none|gzip] -----------------


def _serve_in_thread(receiver: Receiver) -> Callable[[], None]:
    """Run `receiver` on a loop of its own in a thread; returns the function that stops it."""
    import threading

    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        loop.run_until_complete(receiver.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(receiver.stop())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    return stop


async def _throughput(count: int, compression: str) -> None:
    receiver = Receiver()
    stop = _serve_in_thread(receiver)
    backend = otlp(receiver, compression=compression)
    config = Config(backend=backend, async_mode=True, overflow="block", queue_size=10_000)
    started = time.perf_counter()
    async with LogManager(config) as lm:
        for i in range(count):
            await lm.info("request handled", seq=i, path="/api/items", status=200, ms=1.25)
        logged = time.perf_counter() - started
    elapsed = time.perf_counter() - started
    stop()
    assert [fields["seq"] for fields in receiver.decoded_fields()] == list(range(count))
    print(
        f"{count} entries async -> OTLP/HTTP ({compression}), {len(receiver.requests)} requests: "
        f"{count / elapsed:,.0f} entries/s end to end ({elapsed:.2f} s; the calls took "
        f"{logged:.2f} s); the receiver decodes every request in a thread of this process"
    )


if __name__ == "__main__":
    asyncio.run(
        _throughput(
            int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
            sys.argv[2] if len(sys.argv) > 2 else "none",
        )
    )
