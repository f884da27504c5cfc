"""The OTLP backend: each batch as one OTLP/HTTP protobuf `ExportLogsServiceRequest`, POSTed
to an OpenTelemetry collector over a kept-alive HTTP/1.1 connection (TLS for `https://`);
429/502/503/504 and connection failures retried with backoff, honouring `Retry-After`.

The encoding (`_otlp_encode`) needs `opentelemetry-proto`, imported at `open()`, so this module
(and `asynclog`) imports without the `otlp` extra. The design is in docs/otlp.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import random
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import SplitResult, quote

from .. import _runtime
from .._backend_registry import register_backend
from .._entry import Entry
from .._errors import LogError
from .._otlp_config import OTLPConfig
from .._report import BurstReporter
from ._otlp_http import (
    CLOSE_TIMEOUT,
    MAX_RESPONSE_BYTES,
    HTTPProtocolError,
    HTTPResponse,
    PostClient,
)

if TYPE_CHECKING:
    from ._otlp_encode import Codec
    from ._otlp_httpx import HttpxClient

RETRYABLE_STATUSES = frozenset((429, 502, 503, 504))
"""The statuses OTLP/HTTP says to retry; every other 4xx and 5xx refuses the batch for good."""
MAX_BACKOFF = 8.0
"""The longest wait between two retries that no `Retry-After` asked for."""
MAX_HEADERS = 100
GZIP_IN_THREAD_BYTES = 256 * 1024
"""Bodies at least this long are gzipped in a thread (zlib releases the GIL), not the loop."""
EXIT_FLUSH_TIMEOUT = 4.0
"""At interpreter exit: the most one request may take (asynclog gives the flush 5 s)."""


class ExportError(LogError):
    """A batch was not exported. `status` is the HTTP status, if a response came; `retryable`
    whether trying again later may succeed (429/502/503/504, a connection failure)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class _ClosedBeforeResponse(ConnectionError):
    """The connection closed before the first byte of a response."""


# -- a small HTTP/1.1 client --------------------------------------------------------------


async def _read_line(reader: asyncio.StreamReader, what: str) -> bytes:
    try:
        line = await reader.readline()
    except ValueError:  # longer than the reader's limit
        raise HTTPProtocolError(f"the {what} is too long") from None
    if line and not line.endswith(b"\n"):
        raise HTTPProtocolError(f"the connection closed in the middle of the {what}")
    return line


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    name = ""
    for _ in range(MAX_HEADERS + 1):
        line = await _read_line(reader, "response headers")
        if not line:
            raise HTTPProtocolError("the connection closed in the middle of the response headers")
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return headers
        if text[0] in " \t" and name:  # an obsolete folded continuation line
            headers[name] += " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            raise HTTPProtocolError(f"malformed response header {text[:100]!r}")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raise HTTPProtocolError(f"more than {MAX_HEADERS} response headers")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = await _read_line(reader, "chunk size")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPProtocolError(f"bad chunk size line {line[:40]!r}") from None
        if size < 0:
            raise HTTPProtocolError(f"bad chunk size line {line[:40]!r}")
        if size == 0:
            await _read_headers(reader)  # the trailers, up to the blank line
            return b"".join(chunks)
        total += size
        if total > MAX_RESPONSE_BYTES:
            raise HTTPProtocolError(f"the response body is over {MAX_RESPONSE_BYTES} bytes")
        chunks.append(await reader.readexactly(size))
        if (await _read_line(reader, "chunk end")).strip():
            raise HTTPProtocolError("a chunk is not followed by CRLF")


async def read_response(reader: asyncio.StreamReader) -> tuple[HTTPResponse, bool]:
    """The next final response (1xx interim ones are skipped), and whether the connection
    may carry another request."""
    while True:
        line = await _read_line(reader, "status line")
        if not line:
            raise _ClosedBeforeResponse("the connection closed before a response")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if (
            len(parts) < 2
            or parts[0] not in ("HTTP/1.1", "HTTP/1.0")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise HTTPProtocolError(f"bad status line {line[:100]!r}")
        status = int(parts[1])
        headers = await _read_headers(reader)
        if status >= 200:
            break
    version, reason = parts[0], parts[2] if len(parts) > 2 else ""
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    length = headers.get("content-length")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif length is not None:
        if not length.strip().isdigit():
            raise HTTPProtocolError(f"bad Content-Length {length[:40]!r}")
        size = int(length)
        if size > MAX_RESPONSE_BYTES:
            raise HTTPProtocolError(f"the response body is over {MAX_RESPONSE_BYTES} bytes")
        body = await reader.readexactly(size)
    elif status in (204, 304):
        body = b""
    else:  # delimited by the end of the connection
        body = await reader.read(MAX_RESPONSE_BYTES + 1)
        while len(body) <= MAX_RESPONSE_BYTES and not reader.at_eof():
            more = await reader.read(MAX_RESPONSE_BYTES + 1 - len(body))
            if not more:
                break
            body += more
        if len(body) > MAX_RESPONSE_BYTES:
            raise HTTPProtocolError(f"the response body is over {MAX_RESPONSE_BYTES} bytes")
        keep_alive = False
    return HTTPResponse(status, reason, headers, body), keep_alive


class _Connection(NamedTuple):
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class HTTPClient:
    """POSTs to one URL over one kept-alive HTTP/1.1 connection, opened when needed and
    dropped after any failure. Not for concurrent use (the backend gives each request in
    flight a client of its own)."""

    def __init__(
        self,
        url: SplitResult,
        headers: Mapping[str, str],
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.url, self.headers = url, headers
        self.host = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.timeout = timeout
        self.ssl_context = ssl_context
        host = f"[{self.host}]" if ":" in self.host else self.host
        if url.port is not None:
            host = f"{host}:{url.port}"
        path = quote(url.path or "/v1/logs", safe="/%:@!$&'()*+,;=-._~")
        if url.query:
            path = f"{path}?{url.query}"
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._conn: _Connection | None = None
        self.connections = 0
        """Connections opened so far."""

    def copy(self, timeout: float) -> HTTPClient:
        """A client for the same URL, without a connection yet."""
        return HTTPClient(self.url, self.headers, timeout=timeout, ssl_context=self.ssl_context)

    async def post(self, body: bytes) -> HTTPResponse:
        """Send `body`, return the response; raises `OSError`, `TimeoutError` (after
        `timeout` seconds in all), `HTTPProtocolError` or `asyncio.IncompleteReadError`.

        A kept-alive connection the server closed meanwhile is replaced and the request sent
        once more on the new one."""
        head = self._head + b"%d\r\n\r\n" % len(body)
        async with asyncio.timeout(self.timeout):
            while True:
                conn = self._conn
                if conn is not None and conn.reader.at_eof():
                    self._drop()  # the server closed it while idle
                    conn = None
                fresh = conn is None
                if conn is None:
                    conn = await self._connect()
                try:
                    conn.writer.writelines((head, body))
                    await conn.writer.drain()
                    response, keep_alive = await read_response(conn.reader)
                except (_ClosedBeforeResponse, ConnectionResetError, BrokenPipeError):
                    self._drop()
                    if fresh:
                        raise
                    continue
                except BaseException:
                    self._drop()  # half a request or response on it: unusable
                    raise
                if not keep_alive:
                    self._drop()
                return response

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname=self.host if self.ssl_context is not None else None,
            limit=64 * 1024,
        )
        self.connections += 1
        self._conn = _Connection(reader, writer)
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.writer.transport.abort()

    async def close(self) -> None:
        """Close the connection, waiting at most `CLOSE_TIMEOUT` for it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await conn.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            conn.writer.transport.abort()


def load_httpx_client() -> type[HttpxClient]:
    """The httpx client, or a `LogError` saying how to install httpx."""
    try:
        from ._otlp_httpx import HttpxClient
    except ImportError as exc:
        raise LogError(
            "the OTLP backend needs httpx to go through a proxy (or with http_client='httpx'): "
            f"pip install 'asynclog[otlp]' ({exc})"
        ) from exc
    return HttpxClient


# -- the backend ------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date; None when
    missing or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def rpc_status_message(body: bytes) -> str | None:
    """The `message` (field 2) of a `google.rpc.Status` protobuf, the error body OTLP/HTTP
    specifies; None if `body` is not one."""
    position, size = 0, len(body)

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            if position >= size or shift > 63:
                raise ValueError("truncated varint")
            byte = body[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    message = None
    try:
        while position < size:
            key = varint()
            field, wire = key >> 3, key & 7
            if wire == 0:
                varint()
            elif wire == 1:
                position += 8
            elif wire == 5:
                position += 4
            elif wire == 2:
                length = varint()
                if position + length > size:
                    return None
                if field == 2:
                    message = body[position : position + length].decode("utf-8", "replace")
                position += length
            else:
                return None
            if field == 0 or position > size:
                return None
    except ValueError:
        return None
    return message


def describe_refusal(response: HTTPResponse) -> str:
    """`"400 Bad Request: <the collector's message>"`."""
    text = f"{response.status} {response.reason}".strip()
    body = response.body
    if not body:
        return text
    kind = response.headers.get("content-type", "").lower()
    detail = rpc_status_message(body) if "protobuf" in kind else None
    if detail is None and ("text" in kind or "json" in kind):
        detail = body[:300].decode("utf-8", "replace")
    return f"{text}: {detail.strip()[:300]}" if detail else text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection closed in the middle of the response"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Kept:
    """A batch kept while the manager may retry it: its body is reused, its retry deadline
    kept, and a refused one is not sent again."""

    __slots__ = ("body", "deadline", "entries", "refusal", "size")

    def __init__(self, entries: Sequence[Entry], body: bytes, deadline: float) -> None:
        self.entries, self.size, self.body, self.deadline = entries, len(entries), body, deadline
        self.refusal: ExportError | None = None


def load_codec() -> type[Codec]:
    """The encoder, or a `LogError` saying how to install what it needs."""
    try:
        from ._otlp_encode import Codec
    except ImportError as exc:
        raise LogError(
            f"the OTLP backend needs opentelemetry-proto: pip install 'asynclog[otlp]' ({exc})"
        ) from exc
    return Codec


class OTLPBackend:
    """Exports each batch as one `ExportLogsServiceRequest` over OTLP/HTTP (protobuf).
    See docs/otlp.md for the mapping, the retries and what is counted."""

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(self, config: OTLPConfig | None = None) -> None:
        config = OTLPConfig() if config is None else config
        if not isinstance(config, OTLPConfig):
            raise TypeError(f"OTLPBackend needs an OTLPConfig, got {type(config).__name__}")
        self.config = config
        assert config.endpoint is not None  # OTLPConfig fills every field it is not given
        self.endpoint = config.endpoint
        self._codec: Codec | None = None
        self.concurrency = config.concurrency
        """Requests in flight at once (the manager keeps as many batches in flight)."""
        self._client: PostClient | None = None
        """The first client, and the model of the others."""
        self._clients: list[PostClient] = []
        self._idle: list[PostClient] = []
        self._free: asyncio.Semaphore | None = None
        self._reporter = BurstReporter(config.name or "otlp")
        self._kept: weakref.WeakKeyDictionary[asyncio.Task[object], _Kept] = (
            weakref.WeakKeyDictionary()
        )
        """By the task writing it (one batch at a time each): the batch last written."""
        self._not_before = 0.0
        """`time.monotonic()` before which no request is sent (a `Retry-After`)."""
        self.exported = 0
        """Log records in requests the collector accepted (with `rejected` among them)."""
        self.rejected = 0
        """Log records the collector accepted the request of but rejected (partial success)."""
        self.retries = 0
        """Requests sent again after a 429/502/503/504 or a connection failure."""
        self.refused = 0
        """Batches refused with a status that is not retried (400, 401, 413, 500, ...)."""

    def __repr__(self) -> str:
        return f"OTLPBackend({self.endpoint})"

    async def open(self) -> None:
        """Load the encoder and the TLS settings. Nothing is sent yet: a collector that is
        not up shows as failed writes (retried, then the fallback), not as a failed start."""
        _runtime.require_asyncio("the OTLP backend (asyncio streams)")
        codec_class = load_codec()
        config = self.config
        ssl_context = self._ssl_context() if config.url.scheme == "https" else None
        headers: dict[str, str] = {
            "User-Agent": f"asynclog/{_version()} (OTLP/HTTP protobuf)",
            "Content-Type": "application/x-protobuf",
        }
        if config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        assert config.headers is not None and config.timeout is not None
        headers.update(config.headers)
        self._codec = codec_class(config.resource)
        self._client = self._make_client(headers, config.timeout, ssl_context)
        self._clients = [self._client]
        self._idle = [self._client]
        self._free = asyncio.Semaphore(config.concurrency)

    @property
    def http_client(self) -> str:
        """`"builtin"` or `"httpx"`: the client `open()` chose (see `OTLPConfig.http_client`)."""
        config = self.config
        return "httpx" if config.http_client == "httpx" or config.proxy else "builtin"

    def _make_client(
        self, headers: Mapping[str, str], timeout: float, ssl_context: ssl.SSLContext | None
    ) -> PostClient:
        if self.http_client == "httpx":
            client_class = load_httpx_client()
            return client_class(
                self.config.url,
                headers,
                timeout=timeout,
                ssl_context=ssl_context,
                proxy=self.config.proxy,
            )
        return HTTPClient(self.config.url, headers, timeout=timeout, ssl_context=ssl_context)

    @property
    def connections(self) -> int:
        """Connections opened so far, by every client."""
        return sum(client.connections for client in self._clients)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PostClient]:
        """An idle client (a new one while fewer than `concurrency` exist), for one request."""
        assert self._free is not None and self._client is not None
        async with self._free:
            if self._idle:
                client = self._idle.pop()
            else:
                client = self._client.copy(self._client.timeout)
                self._clients.append(client)
            try:
                yield client
            finally:
                self._idle.append(client)

    def _ssl_context(self) -> ssl.SSLContext:
        config = self.config
        try:
            context = ssl.create_default_context(cafile=config.ca_file)
            if config.cert_file is not None:
                context.load_cert_chain(config.cert_file, config.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise LogError(
                f"cannot load the TLS files of OTLP endpoint {self.endpoint}: {exc}"
            ) from exc
        if not config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        """Export `entries` in one request; retry 429/502/503/504 and connection failures
        until `max_retry_time` has passed for this batch, then raise `ExportError`."""
        codec = self._codec
        if self._client is None or codec is None:
            raise LogError(f"OTLP backend for {self.endpoint} is not open")
        if not entries:
            return
        task = asyncio.current_task()
        assert task is not None
        kept = self._kept.get(task)
        if kept is None or kept.entries is not entries:
            # A batch interrupted by a cancellation is delivered again from another task.
            kept = next((k for k in self._kept.values() if k.entries is entries), kept)
        if kept is not None and kept.entries is entries and kept.size == len(entries):
            self._kept[task] = kept
            if kept.refusal is not None:  # a manager retry of a batch refused for good
                raise kept.refusal
        else:
            self._kept.pop(task, None)
            body = await self._encode(codec, entries)
            kept = _Kept(entries, body, time.monotonic() + self.config.max_retry_time)
            self._kept[task] = kept
        await self._export(codec, kept, task)

    async def _export(self, codec: Codec, kept: _Kept, task: asyncio.Task[object]) -> None:
        attempt = 0
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait > kept.deadline:
                    raise ExportError(
                        f"OTLP export of {kept.size} log records to {self.endpoint} not "
                        f"tried: the collector asked to wait {wait:.1f} s more, beyond "
                        "OTLPConfig.max_retry_time",
                        retryable=True,
                    )
                await asyncio.sleep(wait)
            async with self._connection() as client:
                error, retry_after = await self._send(client, codec, kept.body, kept.size)
            if error is None:
                self._kept.pop(task, None)
                return
            if not error.retryable:
                self.refused += 1
                kept.refusal = error
                raise error
            now = time.monotonic()
            step = min(self.config.retry_backoff * 2.0 ** min(attempt, 32), MAX_BACKOFF)
            delay = step / 2 + random.uniform(0, step / 2)
            if retry_after is not None:
                # Not before the time it gives, for any batch; and never sooner than the
                # backoff (a collector answering "Retry-After: 0" must not be hammered).
                self._not_before = now + min(retry_after, self.config.max_retry_time)
                delay = max(delay, retry_after)
            if now + delay > kept.deadline:
                raise error
            await asyncio.sleep(delay)
            self.retries += 1
            attempt += 1

    async def _encode(self, codec: Codec, entries: Sequence[Entry]) -> bytes:
        body = await codec.encode_in_slices(entries)
        if self.config.compression == "gzip":
            if len(body) >= GZIP_IN_THREAD_BYTES:
                return await asyncio.to_thread(gzip.compress, body, 6, mtime=0)
            return gzip.compress(body, 6, mtime=0)
        return body

    async def _send(
        self, client: PostClient, codec: Codec, body: bytes, count: int
    ) -> tuple[ExportError | None, float | None]:
        """One request: `(None, None)` if the collector took it, else the error and the
        `Retry-After` seconds of a retryable status, if it said."""
        what = f"OTLP export of {count} log records to {self.endpoint}"
        try:
            response = await client.post(body)
        except (OSError, TimeoutError, HTTPProtocolError, asyncio.IncompleteReadError) as exc:
            return ExportError(f"{what} failed: {_describe(exc)}", retryable=True), None
        status = response.status
        if 200 <= status < 300:
            self._accepted(codec, response, count)
            return None, None
        retryable = status in RETRYABLE_STATUSES
        error = ExportError(
            f"{what} {'failed' if retryable else 'refused'}: {describe_refusal(response)}",
            status=status,
            retryable=retryable,
        )
        retry_after = parse_retry_after(response.headers.get("retry-after")) if retryable else None
        return error, retry_after

    def _accepted(self, codec: Codec, response: HTTPResponse, count: int) -> None:
        self.exported += count
        kind = response.headers.get("content-type", "").lower()
        readable = not kind or "protobuf" in kind  # not a JSON or text answer
        partial = codec.partial_success(response.body) if readable else None
        if partial is None:
            self._reporter.success("export")
            return
        self.rejected += partial.rejected
        detail = f": {partial.message}" if partial.message else ""
        self._reporter.failure(
            "export",
            f"the collector at {self.endpoint} rejected {partial.rejected} of {count} log "
            f"records (partial success; they are not retried){detail}",
        )

    async def close(self) -> None:
        """Close the connections (a broken one is just dropped)."""
        self._idle, self._client = [], None
        self._kept.clear()
        self._reporter.flush()
        for client in self._clients:  # kept: `connections` still counts them
            await client.close()

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit, no event loop: export `entries` in one request on a new
        connection, in a loop of its own, within `EXIT_FLUSH_TIMEOUT`; no retries. Raises
        if it fails (the entries are then counted dropped)."""
        codec, client = self._codec, self._client
        self._client = None  # its connection belongs to a loop that is gone
        if codec is None or client is None or not entries:
            if entries:
                raise LogError(f"OTLP backend for {self.endpoint} is not open")
            return
        body = codec.encode(entries)
        if self.config.compression == "gzip":
            body = gzip.compress(body, 6, mtime=0)
        asyncio.run(self._export_at_exit(client, codec, body, len(entries)))

    async def _export_at_exit(self, old: PostClient, codec: Codec, body: bytes, count: int) -> None:
        client = old.copy(min(old.timeout, EXIT_FLUSH_TIMEOUT))
        try:
            error, _ = await self._send(client, codec, body, count)
        finally:
            await client.close()
        if error is not None:
            raise error


def _version() -> str:
    from .._version import __version__

    return __version__


register_backend("otlp", OTLPConfig, OTLPBackend)
