"""The limits of `python -m bench protocols`: for each network protocol, the simplest correct
asyncio client, fed the way asynclog's async mode is fed.

Callers `await log(msg, **fields)` onto an `asyncio.Queue(maxsize=1000)` (a full queue makes
them wait, as asynclog's `overflow="block"` does); one worker takes everything queued (up to
1000 entries) and sends it as one batch:

- PostgreSQL: one asyncpg `copy_records_to_table` per batch (autocommit), the columns asynclog's
  backend fills that carry the entry (timestamptz, level, logger, message, jsonb fields);
- TCP syslog: each entry as an RFC 5424 message (the constant header part encoded once), framed
  with octet counting (RFC 6587), one socket write + `drain()` per batch;
- RELP: the same messages as RELP `syslog` commands, at most `window` unacknowledged;
- OTLP/HTTP: the batch as one protobuf `ExportLogsServiceRequest` (opentelemetry-proto's
  classes), POSTed over one kept-alive HTTP/1.1 connection, the 200 answer read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

QUEUE_SIZE = 1000
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
LOGGER = "asynclog"  # the logger name asynclog's entries carry (Config.name's default)
Item = tuple[float, str, dict[str, Any]] | None  # None: stop after this batch


class Pipeline:
    """Queue + worker; subclasses connect, send a batch and close."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.written = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.connect()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def log(self, msg: str, **fields: Any) -> None:
        await self.queue.put((time.time(), msg, fields))

    async def _work(self) -> None:
        queue = self.queue
        while True:
            batch = [await queue.get()]
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    batch.append(queue.get_nowait())
            items = [item for item in batch if item is not None]
            if items:
                await self.send(items)
                self.written += len(items)
            if len(items) < len(batch):
                return

    async def close(self) -> None:
        """Send what is queued, then hang up."""
        await self.queue.put(None)
        if self._task is not None:
            await self._task
        await self.disconnect()

    async def connect(self) -> None:
        raise NotImplementedError

    async def send(self, items: list[tuple[float, str, dict[str, Any]]]) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError


# ---- PostgreSQL ------------------------------------------------------------------------------

PG_COLUMNS = ("ts", "level", "logger", "message", "fields")


def pg_table_ddl(table: str) -> list[str]:
    """The limit's table: asynclog's identity key and its two indexes (the same work per row
    on the server), and only the columns that carry the entry."""
    return [
        f'CREATE TABLE "{table}" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
        "ts timestamptz NOT NULL, level smallint NOT NULL, logger text NOT NULL, "
        "message text NOT NULL, fields jsonb NOT NULL DEFAULT '{}')",
        f'CREATE INDEX "{table}_ts" ON "{table}" (ts)',
        f'CREATE INDEX "{table}_level_ts" ON "{table}" (level, ts)',
    ]


class LimitPostgres(Pipeline):
    def __init__(self, dsn: str, table: str) -> None:
        super().__init__()
        self.dsn, self.table = dsn, table
        self._conn: Any = None

    async def connect(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        self._conn = await asyncpg.connect(self.dsn)
        for statement in pg_table_ddl(self.table):
            await self._conn.execute(statement)

    async def send(self, items: list[tuple[float, str, dict[str, Any]]]) -> None:
        fromtimestamp, dumps = datetime.fromtimestamp, json.dumps
        records = [
            (fromtimestamp(ts, UTC), 20, LOGGER, msg, dumps(fields)) for ts, msg, fields in items
        ]
        await self._conn.copy_records_to_table(self.table, records=records, columns=PG_COLUMNS)

    async def disconnect(self) -> None:
        await self._conn.close()


# ---- syslog: RFC 5424 over TCP (octet counting) and RELP ------------------------------------


def _sd_value(value: object) -> str:
    text = str(value)
    if '"' in text or "\\" in text or "]" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return text


class Rfc5424:
    """INFO messages from this process, as asynclog's syslog backend writes them by default:
    `<14>1 TIMESTAMP HOST asynclog PID - [fields@32473 k="v" ...] BOM MSG`."""

    def __init__(self) -> None:
        host = socket.gethostname() or "-"
        self.after_time = f" {host} {LOGGER} {os.getpid()} - ".encode()

    def encode(self, ts: float, msg: str, fields: Mapping[str, Any]) -> bytes:
        total = int(ts * 1_000_000 + 0.5)  # microseconds, rounded
        second = total // 1_000_000
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = total - second * 1_000_000
        if fields:
            params = " ".join(f'{k}="{_sd_value(v)}"' for k, v in fields.items())
            sd = f"[fields@32473 {params}]"
        else:
            sd = "-"
        head = f"<14>1 {stamp}.{micros:06d}Z".encode()
        return head + self.after_time + sd.encode() + b" \xef\xbb\xbf" + msg.encode()


class LimitTcpSyslog(Pipeline):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port
        self.encoder = Rfc5424()
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        _, self._writer = await asyncio.open_connection(self.host, self.port)

    async def send(self, items: list[tuple[float, str, dict[str, Any]]]) -> None:
        assert self._writer is not None
        encode = self.encoder.encode
        frames = []
        for ts, msg, fields in items:
            message = encode(ts, msg, fields)
            frames.append(b"%d %s" % (len(message), message))
        self._writer.write(b"".join(frames))
        await self._writer.drain()

    async def disconnect(self) -> None:
        assert self._writer is not None
        self._writer.close()
        await self._writer.wait_closed()


class RelpError(ConnectionError):
    pass


def parse_frames(buffer: bytes) -> tuple[list[tuple[int, bytes, bytes]], bytes]:
    """The complete `TXNR COMMAND DATALEN [SP DATA] LF` frames at the front of `buffer`, as
    (TXNR, COMMAND, DATA), and what is left."""
    found: list[tuple[int, bytes, bytes]] = []
    pos, size = 0, len(buffer)
    while True:
        sp1 = buffer.find(b" ", pos)
        sp2 = buffer.find(b" ", sp1 + 1) if sp1 >= 0 else -1
        if sp2 < 0:
            break
        digits_end = sp2 + 1
        while digits_end < size and 48 <= buffer[digits_end] <= 57:
            digits_end += 1
        if digits_end >= size:
            break
        length = int(buffer[sp2 + 1 : digits_end])
        end = digits_end + 1 + length if length else digits_end
        if end >= size:
            break
        if buffer[end] != 0x0A:
            raise RelpError(f"malformed RELP frame {buffer[pos : end + 1][:80]!r}")
        found.append((int(buffer[pos:sp1]), buffer[sp1 + 1 : sp2], buffer[digits_end + 1 : end]))
        pos = end + 1
    return found, buffer[pos:]


class LimitRelp(Pipeline):
    """A minimal RELP client: `open`, `syslog` commands with a window, `close`."""

    def __init__(self, host: str, port: int, window: int = 128) -> None:
        super().__init__()
        self.host, self.port, self.window = host, port, window
        self.encoder = Rfc5424()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = b""
        self._txnr = 0
        self._socket: socket.socket | None = None

    async def _frames(self) -> list[tuple[int, bytes, bytes]]:
        """The complete frames received next (at least one)."""
        assert self._reader is not None
        while True:
            found, self._buffer = parse_frames(self._buffer)
            if found:
                return found
            if QUICKACK is not None and self._socket is not None:
                # Acknowledge the server's answers at once: librelp sends each as a small
                # segment, and Nagle on its side would hold the next ones until our delayed
                # ACK (up to 40 ms). Linux clears the flag now and then: set before each read.
                self._socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            data = await self._reader.read(256 * 1024)
            if not data:
                raise RelpError("the RELP server closed the connection")
            self._buffer += data

    async def _command(self, command: bytes, data: bytes = b"") -> bytes:
        assert self._writer is not None
        self._txnr += 1
        tail = b" %s" % data if data else b""
        self._writer.write(b"%d %s %d%s\n" % (self._txnr, command, len(data), tail))
        await self._writer.drain()
        txnr, kind, answer = (await self._frames())[0]
        # rsyslog answers `close` with an empty rsp (then `0 serverclose 0`).
        if (txnr, kind) != (self._txnr, b"rsp") or not (
            command == b"close" or answer[:3] == b"200"
        ):
            raise RelpError(f"RELP {command!r} answered {txnr} {kind!r} {answer!r}")
        return answer

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=256 * 1024
        )
        self._socket = self._writer.get_extra_info("socket")
        await self._command(b"open", b"relp_version=0\nrelp_software=bench\ncommands=syslog")

    async def send(self, items: list[tuple[float, str, dict[str, Any]]]) -> None:
        assert self._writer is not None
        encode, writer = self.encoder.encode, self._writer
        waiting: set[int] = set()
        position = 0
        while position < len(items) or waiting:
            frames = []
            while position < len(items) and len(waiting) < self.window:
                ts, msg, fields = items[position]
                position += 1
                self._txnr += 1
                message = encode(ts, msg, fields)
                frames.append(b"%d syslog %d %s\n" % (self._txnr, len(message), message))
                waiting.add(self._txnr)
            if frames:
                writer.write(b"".join(frames))
                await writer.drain()
            for txnr, kind, answer in await self._frames():
                if kind != b"rsp" or not answer.startswith(b"200"):
                    raise RelpError(f"RELP message {txnr}: {kind!r} {answer!r}")
                waiting.discard(txnr)

    async def disconnect(self) -> None:
        assert self._writer is not None
        await self._command(b"close")
        self._writer.close()
        await self._writer.wait_closed()


# ---- OTLP/HTTP -------------------------------------------------------------------------------


class LimitOtlp(Pipeline):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._head = (
            f"POST /v1/logs HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-protobuf\r\nContent-Length: "
        ).encode()

    async def connect(self) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.common.v1.common_pb2 import KeyValue

        self._request_class = logs_service_pb2.ExportLogsServiceRequest
        self._resource = KeyValue(key="service.name")
        self._resource.value.string_value = LOGGER
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def encode(self, items: list[tuple[float, str, dict[str, Any]]]) -> bytes:
        request = self._request_class()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.append(self._resource)
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = LOGGER
        add = scope_logs.log_records.add
        observed = time.time_ns()
        for ts, msg, fields in items:
            record = add()
            record.time_unix_nano = int(ts * 1e9)
            record.observed_time_unix_nano = observed
            record.severity_number = 9  # SEVERITY_NUMBER_INFO
            record.severity_text = "INFO"
            record.body.string_value = msg
            for key, value in fields.items():
                attribute = record.attributes.add()
                attribute.key = key
                if type(value) is int:
                    attribute.value.int_value = value
                else:
                    attribute.value.string_value = str(value)
        return bytes(request.SerializeToString())

    async def send(self, items: list[tuple[float, str, dict[str, Any]]]) -> None:
        assert self._reader is not None and self._writer is not None
        body = self.encode(items)
        self._writer.write(self._head + b"%d\r\n\r\n" % len(body) + body)
        await self._writer.drain()
        status = await self._reader.readline()
        length = 0
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self._reader.readexactly(length)
        if status.split(b" ", 2)[1:2] != [b"200"]:
            raise ConnectionError(f"OTLP receiver answered {status!r}")

    async def disconnect(self) -> None:
        assert self._writer is not None
        self._writer.close()
        await self._writer.wait_closed()
