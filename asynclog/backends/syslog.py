"""The syslog backend: RFC 5424 messages to a syslog server over RELP (acknowledged), TLS
(RFC 5425), TCP with octet counting (RFC 6587) or UDP (RFC 5426).

RELP keeps up to `relp_window` messages in flight, refilled with one socket write once half
of the window is free; the other transports write a batch with one socket write. A lost
connection is made again with backoff inside `write_batch` (`reconnect_attempts`); after
that the call fails and the manager's retries and fallback take over. Over RELP a retried
batch sends only the messages the server has not acknowledged yet. docs/syslog.md has the
delivery guarantee of each transport.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import _runtime
from .._backend_registry import register_backend
from .._entry import Entry
from .._errors import LogError
from .._syslog_config import SyslogConfig
from ._relp import RelpRefused, RelpSession
from ._rfc5424 import NILVALUE, Encoder
from ._slices import convert_in_slices

CLOSE_WAIT = 2.0
"""Seconds `close()` waits for the server to answer RELP's `close` (or a TLS shutdown)."""
EXIT_FLUSH_TIMEOUT = 4.0
"""Seconds `flush_at_exit` may take (the manager's exit hook gives up after 5)."""


@dataclass(frozen=True, slots=True)
class SyslogStats:
    """The syslog backend's own counters, from `SyslogBackend.stats()` (the manager's
    `LogStats.backends[name]` counts entries written, retried, dead-lettered, dropped)."""

    sent: int
    """Messages written to a socket, resends included."""
    acknowledged: int
    """RELP: messages the server answered with 200 OK."""
    resent: int
    """Messages sent again after a connection loss or a failed batch (RELP: those written
    before and not acknowledged; TCP/TLS: the whole batch)."""
    refused: int
    """RELP: messages the server answered with an error code."""
    reconnects: int
    """Connections made again after a failure."""
    connection_failures: int
    """Connections lost or attempts to connect that failed."""
    truncated: int
    """Messages cut to `max_message_size` (UDP's 2048 by default)."""
    send_errors: int
    """UDP: errors the socket reported (such as an ICMP port unreachable)."""


class _Batch:
    """A batch's encoded messages and which of them the server has acknowledged, kept while
    a failed write of it may be retried (the manager retries the very same sequence)."""

    __slots__ = (
        "acked",
        "encode_many",
        "entries",
        "messages",
        "refusal",
        "remaining",
        "sent",
        "tries",
    )

    def __init__(
        self, entries: Sequence[Entry], encode_many: Callable[[Sequence[Entry]], list[bytes]]
    ) -> None:
        self.entries = entries
        self.encode_many = encode_many
        self.messages: list[bytes] = []
        """The messages of the first `len(messages)` entries (RELP encodes them as its window
        moves on; the other transports all at once)."""
        self.acked = bytearray(len(entries))
        self.sent = bytearray(len(entries))
        """RELP: which messages were written to a connection at least once."""
        self.remaining = len(entries)
        self.refusal: str | None = None
        self.tries = 0
        """How many sends of it began (a second one is a resend)."""

    def encode_until(self, end: int) -> None:
        """Encode the entries before index `end` that are not yet."""
        done = len(self.messages)
        if done < end:
            self.messages += self.encode_many(self.entries[done:end])

    def todo(self) -> Sequence[int]:
        """The indexes not acknowledged yet, in order."""
        if self.remaining == len(self.entries):
            return range(len(self.entries))
        return [index for index, done in enumerate(self.acked) if not done]

    def mark_sent(self, indexes: Sequence[int]) -> None:
        """RELP: these were written to a connection."""
        sent = self.sent
        for index in indexes:
            sent[index] = 1


class _Udp(asyncio.DatagramProtocol):
    """Counts the errors a connected UDP socket reports."""

    def __init__(self) -> None:
        self.errors = 0

    def error_received(self, exc: Exception) -> None:
        self.errors += 1


class SyslogBackend:
    """Sends each entry as one RFC 5424 message; see docs/syslog.md."""

    takes_entry_tuples = True  # see `backends.base.taking_entry_tuples`

    def __init__(self, config: SyslogConfig | None = None) -> None:
        self.config = config = config or SyslogConfig()
        if not isinstance(config, SyslogConfig):
            raise TypeError(f"SyslogBackend needs a SyslogConfig, got {type(config).__name__}")
        self.port = config.resolved_port
        self._pid = os.getpid()
        self.encoder = Encoder(
            facility=config.facility_code,
            hostname=config.hostname or socket.gethostname() or NILVALUE,
            app_name=config.app_name,
            procid=str(self._pid),
            msgid=config.msgid or NILVALUE,
            enterprise_id=config.enterprise_id,
            bom=config.bom,
            exception_in=config.exception_in,
            max_size=config.message_limit,
        )
        self._ssl: ssl.SSLContext | None = None
        self._relp: RelpSession | None = None
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._udp: tuple[asyncio.DatagramTransport, _Udp] | None = None
        self._opened = False
        self._pending: _Batch | None = None
        self._sent = 0
        self._acknowledged = 0
        self._resent = 0
        self._refused = 0
        self._reconnects = 0
        self._connection_failures = 0
        self._send_errors = 0

    def __repr__(self) -> str:
        return f"SyslogBackend({self.config.transport}://{self.config.host}:{self.port})"

    @property
    def _where(self) -> str:
        return f"syslog server {self.config.host}:{self.port} ({self.config.transport})"

    def stats(self) -> SyslogStats:
        """A snapshot of the backend's counters."""
        udp_errors = self._udp[1].errors if self._udp is not None else 0
        return SyslogStats(
            sent=self._sent,
            acknowledged=self._acknowledged,
            resent=self._resent,
            refused=self._refused,
            reconnects=self._reconnects,
            connection_failures=self._connection_failures,
            truncated=self.encoder.truncated,
            send_errors=self._send_errors + udp_errors,
        )

    # ---- connections ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect once (an unreachable server fails `start()` at once, naming it)."""
        _runtime.require_asyncio("the syslog backend (asyncio streams and datagrams)")
        if self.config.transport == "tls":
            try:
                self._ssl = self.config.make_ssl_context()
            except (OSError, ValueError) as exc:
                raise LogError(f"cannot set up TLS for the {self._where}: {exc}") from exc
        try:
            await self._connect()
        except (OSError, RelpRefused) as exc:
            self._connection_failures += 1
            raise LogError(f"cannot connect to the {self._where}: {_describe(exc)}") from exc
        self._opened = True

    def _connected(self) -> bool:
        if self._relp is not None:
            return not self._relp.broken
        if self._stream is not None:
            reader, writer = self._stream
            return not (writer.is_closing() or reader.at_eof() or reader.exception())
        return self._udp is not None and not self._udp[0].is_closing()

    async def _connect(self) -> None:
        config = self.config
        if config.transport == "relp":
            self._relp = await RelpSession.connect(
                config.host,
                self.port,
                window=config.relp_window,
                ack_timeout=config.ack_timeout,
                connect_timeout=config.connect_timeout,
            )
        elif config.transport == "udp":
            loop = asyncio.get_running_loop()
            self._udp = await loop.create_datagram_endpoint(
                _Udp, remote_addr=(config.host, self.port)
            )
        else:
            server_name = (config.tls_server_name or config.host) if self._ssl else None
            async with asyncio.timeout(config.connect_timeout):
                self._stream = await asyncio.open_connection(
                    config.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=server_name,
                    ssl_handshake_timeout=config.connect_timeout if self._ssl else None,
                )

    def _drop_connection(self) -> None:
        """Give up the connection at once (it failed, or a write was interrupted)."""
        relp, self._relp = self._relp, None
        if relp is not None:
            relp.abort()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream[1].transport.abort()
        udp, self._udp = self._udp, None
        if udp is not None:
            self._send_errors += udp[1].errors
            udp[0].abort()

    # ---- writing -------------------------------------------------------------------------

    async def write_batch(self, entries: Sequence[Entry]) -> None:
        """Send the batch; returns once RELP acknowledged every message, or once TCP/TLS
        wrote it to the socket (UDP: handed it to the socket). A lost connection is made again
        with backoff (`reconnect_attempts`) and the unacknowledged messages sent again."""
        if not self._opened:
            raise LogError(f"syslog backend for the {self._where} is not open")
        if not entries:
            return
        batch = await self._batch_for(entries)
        attempt = 0
        while True:
            try:
                if not self._connected():
                    had_connection = (self._relp, self._stream, self._udp) != (None, None, None)
                    self._drop_connection()
                    if had_connection:
                        self._connection_failures += 1
                    await self._connect()
                    self._reconnects += 1
                await self._send(batch)
            except (OSError, EOFError) as exc:
                self._drop_connection()
                self._connection_failures += 1
                if attempt >= self.config.reconnect_attempts:
                    raise LogError(
                        f"syslog write of {len(entries)} entries to the {self._where} failed "
                        f"after {attempt + 1} attempts: {_describe(exc)}"
                    ) from exc
                delay = self.config.reconnect_backoff * 2.0 ** min(attempt, 32)
                await asyncio.sleep(min(30.0, delay))
                attempt += 1
            except RelpRefused as exc:
                self._drop_connection()
                raise LogError(f"the {self._where} refused the session: {exc}") from exc
            except BaseException:
                # Cancelled (or a bug) half-way through a send: the stream's state is unknown.
                self._drop_connection()
                raise
            else:
                if batch.refusal is not None:
                    raise LogError(
                        f"the {self._where} refused {batch.remaining} of {len(entries)} "
                        f"messages: {batch.refusal}"
                    )
                self._pending = None
                return

    async def _batch_for(self, entries: Sequence[Entry]) -> _Batch:
        """The batch being retried, with what was acknowledged of it; else a new one."""
        pending = self._pending
        if (
            pending is not None
            and pending.entries is entries
            and len(pending.acked) == len(entries)
        ):
            return pending
        pid = os.getpid()
        if pid != self._pid:  # forked since the last batch
            self._pid = pid
            self.encoder.set_procid(str(pid))
        batch = _Batch(entries, self.encoder.encode_many)
        if self.config.transport != "relp":
            # RELP encodes each window's messages while the server answers the last one.
            batch.messages = await convert_in_slices(batch.encode_many, entries)
        self._pending = batch
        return batch

    async def _send(self, batch: _Batch) -> None:
        batch.tries += 1
        relp = self._relp
        if relp is not None:
            todo = batch.todo()
            if batch.tries > 1:
                sent = batch.sent
                self._resent += sum(sent[index] for index in todo)
            batch.refusal = None
            written_before = relp.written
            try:
                await relp.send(batch, todo, self._acked(batch), self._refused_by(batch))
            finally:
                written = relp.written - written_before
                self._sent += written
                if batch.remaining:  # a retry counts those sent again
                    batch.mark_sent(todo[:written])
            return
        if batch.tries > 1:
            self._resent += len(batch.messages)
        if self._stream is not None:
            writer = self._stream[1]
            # RFC 6587 octet counting (RFC 5425 for TLS): "MSG-LEN SP SYSLOG-MSG".
            writer.write(_octet_counted(batch.messages))
            self._sent += len(batch.messages)
            async with asyncio.timeout(self.config.ack_timeout):
                await writer.drain()
        elif self._udp is not None:
            sendto = self._udp[0].sendto
            for message in batch.messages:
                sendto(message)
            self._sent += len(batch.messages)
        batch.remaining = 0

    def _acked(self, batch: _Batch) -> Callable[[list[int]], None]:
        acked = batch.acked

        def acknowledged(indexes: list[int]) -> None:
            # Each index comes once: a send takes only those not acknowledged before.
            for index in indexes:
                acked[index] = 1
            batch.remaining -= len(indexes)
            self._acknowledged += len(indexes)

        return acknowledged

    def _refused_by(self, batch: _Batch) -> Callable[[int, int, str], None]:
        def refused(index: int, code: int, reason: str) -> None:
            self._refused += 1
            if batch.refusal is None:
                batch.refusal = f"{code} {reason}"

        return refused

    def flush_at_exit(self, entries: Sequence[Entry]) -> None:
        """Interpreter exit, no event loop: send `entries` on a new connection, in a loop of
        its own, within `EXIT_FLUSH_TIMEOUT`, without reconnecting. Raises if it fails (the
        manager then counts them dropped)."""
        if not self._opened:
            if entries:
                raise LogError(f"syslog backend for the {self._where} is not open")
            return
        # The connection belongs to a loop that is gone: forget it (the process is exiting).
        self._relp = self._stream = self._udp = None
        asyncio.run(self._flush_at_exit(entries))

    async def _flush_at_exit(self, entries: Sequence[Entry]) -> None:
        try:
            async with asyncio.timeout(EXIT_FLUSH_TIMEOUT):
                if entries:
                    batch = await self._batch_for(entries)
                    await self._connect()
                    await self._send(batch)
                    if batch.refusal is not None:
                        raise LogError(f"the {self._where} refused messages: {batch.refusal}")
        finally:
            await self.close()

    async def close(self) -> None:
        """End the RELP session with `close` (waiting for its answer up to 2 s), or close the
        socket; nothing is lost that `write_batch` reported written."""
        self._opened = False
        self._pending = None
        relp, self._relp = self._relp, None
        if relp is not None:
            await relp.close(CLOSE_WAIT)
        stream, self._stream = self._stream, None
        if stream is not None:
            writer = stream[1]
            try:
                async with asyncio.timeout(CLOSE_WAIT):
                    writer.close()
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                writer.transport.abort()
        udp, self._udp = self._udp, None
        if udp is not None:
            self._send_errors += udp[1].errors
            udp[0].close()


def _octet_counted(messages: list[bytes]) -> bytes:
    """The messages framed with RFC 6587 octet counting, "MSG-LEN SP SYSLOG-MSG" each."""
    return b"".join([b"%d %s" % (len(message), message) for message in messages])


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


register_backend("syslog", SyslogConfig, SyslogBackend)
