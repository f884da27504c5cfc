"""A RELP client (the Reliable Event Logging Protocol of rsyslog's imrelp) on an asyncio protocol.

A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The client opens a session with
`1 open LEN relp_version=0 LF relp_software=asynclog LF commands=syslog`, sends each message
as a `syslog` command, and the server answers every command with `TXNR rsp LEN 200 OK` (or
another code and a reason). `close` ends the session; the server may end it with
`0 serverclose 0`. Up to `window` messages are in flight at once.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol

MAX_TXNR = 999_999_999
"""Transaction numbers run 1 ... 999,999,999, then start again at 1."""
OFFERS = b"relp_version=0\nrelp_software=asynclog\ncommands=syslog"
READ_SIZE = 256 * 1024
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
"""Linux's TCP_QUICKACK (see `RelpSession._ack_quickly`); None elsewhere."""
MAX_RESPONSE = 64 * 1024
"""The longest response frame accepted (an `open` answer with its offers is ~100 bytes)."""


class RelpProtocolError(ConnectionError):
    """The server sent something that is not RELP, or ended the session: drop the connection."""


class RelpRefused(Exception):
    """The server answered the `open` command with a code other than 200."""


Frame = tuple[int, bytes, bytes]
"""(TXNR, COMMAND, DATA) of a received frame."""


class Outgoing(Protocol):
    """The messages `RelpSession.send` sends, encoded as it needs them."""

    messages: list[bytes]
    """The messages encoded so far: those of the first `len(messages)` indexes."""

    def encode_until(self, end: int) -> None:
        """Encode the messages before index `end` that are not yet."""


def encode_frame(txnr: int, command: bytes, data: bytes = b"") -> bytes:
    """One frame; DATA is left out (with its SP) when empty."""
    if data:
        return b"%d %s %d %s\n" % (txnr, command, len(data), data)
    return b"%d %s 0\n" % (txnr, command)


OK = b"200 OK"
_OK_FRAME = re.compile(rb"([1-9][0-9]{0,8}) rsp 6 200 OK\n")
"""The answer to nearly every frame, matched whole (one C call instead of the general parse)."""
_OK_TAIL = b" rsp 6 200 OK\n"
_OK_RUN = re.compile(rb"(?:[1-9][0-9]{0,8} rsp 6 200 OK\n)+")
"""Consecutive `200 OK` answers: a read usually holds nothing else."""


def parse_frames(buffer: bytearray) -> list[Frame]:
    """Take every complete frame off the front of `buffer` (what is left is incomplete).
    Raises `RelpProtocolError` on anything malformed."""
    frames: list[Frame] = []
    pos = 0
    ok_frame = _OK_FRAME.match
    while True:
        matched = ok_frame(buffer, pos)
        if matched is not None:
            frames.append((int(matched[1]), b"rsp", OK))
            pos = matched.end()
            continue
        parsed = _parse_frame(buffer, pos)
        if parsed is None:
            break
        frame, pos = parsed
        frames.append(frame)
    del buffer[:pos]
    return frames


def take_responses(buffer: bytearray) -> tuple[list[int], list[Frame]]:
    """Take every complete frame off the front of `buffer`, as the transaction numbers of
    the `200 OK` answers and the other frames, each in the order received. Raises
    `RelpProtocolError` on anything malformed."""
    accepted: list[int] = []
    others: list[Frame] = []
    pos = 0
    ok_run = _OK_RUN.match
    while True:
        run = ok_run(buffer, pos)
        if run is not None:
            end = run.end()
            accepted += map(int, buffer[pos:end].split(_OK_TAIL)[:-1])
            pos = end
        parsed = _parse_frame(buffer, pos)
        if parsed is None:
            break
        frame, pos = parsed
        others.append(frame)
    del buffer[:pos]
    return accepted, others


def _parse_frame(buffer: bytearray, pos: int) -> tuple[Frame, int] | None:
    """The frame at `pos` and where the next one starts; None if it is not complete yet."""
    end = len(buffer)
    if pos >= end:
        return None
    sp1 = buffer.find(b" ", pos, pos + 11)
    sp2 = buffer.find(b" ", sp1 + 1, sp1 + 34) if sp1 > 0 else -1
    if sp2 < 0:
        if end - pos > 44 or (sp1 < 0 and end - pos > 10):
            header = bytes(buffer[pos : pos + 44])
            raise RelpProtocolError(f"malformed RELP frame header {header!r}")
        return None
    txnr_text = buffer[pos:sp1]
    command = bytes(buffer[sp1 + 1 : sp2])
    length_start = sp2 + 1
    length_end = length_start
    while length_end < end and 48 <= buffer[length_end] <= 57 and length_end - length_start < 10:
        length_end += 1
    if length_end >= end:
        if length_end - length_start >= 10:
            raise RelpProtocolError("RELP DATALEN too long")
        return None  # the length is not complete yet
    if not txnr_text.isdigit() or not command.isalpha() or length_end == length_start:
        raise RelpProtocolError(
            f"malformed RELP frame header {bytes(buffer[pos : length_end + 1])!r}"
        )
    length = int(buffer[length_start:length_end])
    if length > MAX_RESPONSE:
        raise RelpProtocolError(f"RELP frame of {length} bytes is too long for a response")
    if length == 0:
        data = b""
        trailer = length_end
    else:
        if buffer[length_end] != 0x20:
            raise RelpProtocolError("RELP DATALEN not followed by a space")
        data_start = length_end + 1
        trailer = data_start + length
        if trailer >= end:
            return None
        data = bytes(buffer[data_start:trailer])
    if buffer[trailer] != 0x0A:
        raise RelpProtocolError("RELP frame does not end with a newline")
    return (int(txnr_text), command, data), trailer + 1


def response_code(data: bytes) -> tuple[int, str]:
    """The code and text of an `rsp` frame's data: `200 OK\\n...` gives (200, "OK")."""
    line = data.split(b"\n", 1)[0]
    code_text, _, reason = line.partition(b" ")
    if not code_text.isdigit():
        raise RelpProtocolError(f"malformed RELP response {data[:80]!r}")
    return int(code_text), reason.decode("utf-8", "replace")


class _Connection(asyncio.BufferedProtocol):
    """A RELP session's socket. What arrives is received into one buffer made once
    (`asyncio.BufferedProtocol`) and added to `received`: a stream reader receives into a new
    object of the transport's read size (256 KiB) every time, which glibc maps and unmaps
    for every read of a few answers."""

    def __init__(self) -> None:
        self.received = bytearray()
        """What arrived and was not taken yet."""
        self.ended = False
        """The server closed its side, or the connection was lost."""
        self._chunk = memoryview(bytearray(READ_SIZE))
        self._loop = asyncio.get_running_loop()
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._lost: asyncio.Future[None] = self._loop.create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._chunk

    def buffer_updated(self, nbytes: int) -> None:
        self.received += self._chunk[:nbytes]
        self._wake(self._data_waiter)

    def eof_received(self) -> bool:
        self.ended = True
        self._wake(self._data_waiter)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake(self._data_waiter)
        self._wake(self._drain_waiter)
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake(self._drain_waiter)

    @staticmethod
    def _wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more_data(self) -> None:
        """Wait until more arrives in `received`, or the connection ends."""
        if self.ended:
            return
        self._data_waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._data_waiter = None

    async def drain(self) -> None:
        """Wait until the transport takes more to write; raises if the connection ended."""
        if self._writing_paused and not self.ended:
            self._drain_waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._drain_waiter = None
        if self.ended:
            raise ConnectionResetError("the RELP connection was lost")

    async def wait_closed(self) -> None:
        """Wait until the connection is gone."""
        await asyncio.shield(self._lost)


class RelpSession:
    """One RELP connection. Every failure of the connection raises an `OSError` (a
    `ConnectionError` or a `TimeoutError`): the caller then drops the session
    with `abort()` and opens another."""

    def __init__(
        self, connection: _Connection, transport: asyncio.Transport, *, window: int, timeout: float
    ) -> None:
        self._connection = connection
        self._transport = transport
        self._window = window
        self._timeout = timeout
        self._buffer = connection.received
        self._txnr = 0
        self.server_software = ""
        self.written = 0
        """`syslog` commands written to this connection."""
        sock = transport.get_extra_info("socket")
        self._socket: socket.socket | None = sock if QUICKACK is not None else None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        window: int = 128,
        ack_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> RelpSession:
        """Connect and open the session (the `open` handshake)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            transport, connection = await loop.create_connection(_Connection, host, port)
        session = cls(connection, transport, window=window, timeout=ack_timeout)
        try:
            async with asyncio.timeout(connect_timeout):
                await session._open()
        except BaseException:
            session.abort()
            raise
        return session

    def _next_txnr(self) -> int:
        self._txnr = 1 if self._txnr >= MAX_TXNR else self._txnr + 1
        return self._txnr

    async def _open(self) -> None:
        txnr = self._next_txnr()
        self._transport.write(encode_frame(txnr, b"open", OFFERS))
        await self._connection.drain()
        number, command, data = (await self._read_frames())[0]
        if command != b"rsp" or number != txnr:
            raise RelpProtocolError(f"unexpected RELP frame {command!r} before open")
        code, reason = response_code(data)
        if code != 200:
            raise RelpRefused(f"the RELP server refused the session: {code} {reason}")
        offers = dict(line.partition(b"=")[::2] for line in data.split(b"\n")[1:])
        if b"syslog" not in offers.get(b"commands", b"").split(b","):
            raise RelpRefused(f"the RELP server does not offer the syslog command ({data[:200]!r})")
        self.server_software = offers.get(b"relp_software", b"").decode("utf-8", "replace")

    async def _read_frames(self) -> list[Frame]:
        """The next complete frames; waits up to the timeout for them."""
        while True:
            frames = parse_frames(self._buffer)
            if frames:
                return frames
            async with asyncio.timeout(self._timeout):
                await self._more_data()

    async def _more_data(self) -> None:
        """Wait for more data; raises if the server closed the connection."""
        if self._connection.ended:
            raise ConnectionResetError("the RELP server closed the connection")
        self._ack_quickly()
        await self._connection.more_data()

    def _ack_quickly(self) -> None:
        """Ask Linux to acknowledge the server's next segments at once. librelp sends each
        answer as a small segment, so Nagle's algorithm on its side holds the next answers
        until our delayed ACK (up to 40 ms) arrives: with this, 3x the throughput. The kernel
        clears the flag now and then, so it is set again before every read."""
        if self._socket is not None and QUICKACK is not None:
            try:
                self._socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                self._socket = None

    async def send(
        self,
        outgoing: Outgoing,
        todo: Sequence[int],
        acknowledged: Callable[[list[int]], None],
        refused: Callable[[int, int, str], None],
    ) -> None:
        """Send `outgoing.messages[i]` for each i in `todo` (ascending), keeping at most
        `window` unacknowledged, until every one is answered: `acknowledged(indexes)` with
        those a read found answered `200`, `refused(i, code, reason)` for any other answer.
        `written` grows by each one written: the first that many of `todo`. Raises an
        `OSError` if the connection fails first (the messages not answered by then may or may
        not have reached the server), a `TimeoutError` after `ack_timeout` seconds without
        progress."""
        in_flight: dict[int, int] = {}
        """The index of each message sent and not answered yet, by its transaction number."""
        position = 0
        count = len(todo)
        window = self._window
        refill_at = max(1, window // 2)
        """The window is refilled once this much of it is free (or all the rest fits): fewer
        and larger writes than refilling after every answer."""
        async with _WaitLimit(self._timeout) as wait_limit:
            while True:
                room = window - len(in_flight)
                if position < count and (room >= refill_at or room >= count - position):
                    chunk = todo[position : position + room]
                    position += len(chunk)
                    outgoing.encode_until(chunk[-1] + 1)
                    self._write_commands(outgoing.messages, chunk, in_flight)
                    wait_limit.waiting()
                    await self._connection.drain()
                if not in_flight:
                    return
                if position < count:
                    # What the next write takes, encoded while the server works on this one.
                    outgoing.encode_until(todo[min(position + refill_at, count) - 1] + 1)
                wait_limit.waiting()
                accepted, others = await self._read_responses()
                if accepted:
                    acknowledged(_answered(in_flight, accepted))
                for number, command, data in others:
                    self._take_frame(in_flight, number, command, data, acknowledged, refused)

    def _write_commands(
        self, messages: Sequence[bytes], chunk: Sequence[int], in_flight: dict[int, int]
    ) -> None:
        """One write of a `syslog` command for each message of `chunk`, numbered on from the
        last transaction; the numbers go into `in_flight`."""
        last = self._txnr + len(chunk)
        if last > MAX_TXNR:  # the numbers start again at 1 within this chunk
            numbers: Sequence[int] = [self._next_txnr() for _ in chunk]
        else:
            numbers = range(self._txnr + 1, last + 1)
            self._txnr = last
        frames = [
            b"%d syslog %d %s\n" % (number, len(message), message)
            for number, message in zip(numbers, map(messages.__getitem__, chunk), strict=True)
        ]
        in_flight.update(zip(numbers, chunk, strict=True))
        self._transport.write(b"".join(frames))
        self.written += len(frames)

    async def _read_responses(self) -> tuple[list[int], list[Frame]]:
        """The next complete frames, as `take_responses` gives them (at least one)."""
        buffer = self._buffer
        while True:
            if buffer:
                accepted, others = take_responses(buffer)
                if accepted or others:
                    return accepted, others
            await self._more_data()

    @staticmethod
    def _take_frame(
        in_flight: dict[int, int],
        number: int,
        command: bytes,
        data: bytes,
        acknowledged: Callable[[list[int]], None],
        refused: Callable[[int, int, str], None],
    ) -> None:
        """A frame other than `200 OK` while messages are in flight."""
        if command == b"rsp":
            index = _answered(in_flight, [number])[0]
            code, reason = response_code(data)
            if code == 200:
                acknowledged([index])
            else:
                refused(index, code, reason)
        elif command == b"serverclose":
            raise ConnectionResetError("the RELP server closed the session (serverclose)")
        else:
            raise RelpProtocolError(f"unexpected RELP command {command!r} from server")

    async def close(self, wait: float) -> None:
        """Send `close`, wait for its answer (at most `wait` seconds), then close the socket."""
        try:
            async with asyncio.timeout(wait):
                txnr = self._next_txnr()
                self._transport.write(encode_frame(txnr, b"close"))
                await self._connection.drain()
                answered = False
                while not answered:
                    for number, command, _ in await self._read_frames():
                        answered = answered or (command == b"rsp" and number == txnr)
                self._transport.close()
                await self._connection.wait_closed()
        except (OSError, TimeoutError, RelpProtocolError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._transport.abort()

    @property
    def broken(self) -> bool:
        """Whether the server already closed the connection (seen without reading)."""
        return self._connection.ended or self._transport.is_closing()


def _answered(in_flight: dict[int, int], numbers: list[int]) -> list[int]:
    """Take the answered transactions out of `in_flight`: the indexes of their messages."""
    try:
        return list(map(in_flight.pop, numbers))
    except KeyError as exc:
        raise RelpProtocolError(f"RELP response to unknown transaction {exc.args[0]}") from None


class _WaitLimit:
    """`async with`: fails a wait that takes longer than `seconds` with `TimeoutError`, as
    a timeout around each wait would, with one timer for the whole block: `waiting()` marks
    a wait's start, and the timer, when it fires, either moves on to the current wait's
    deadline or ends that wait. (`asyncio.timeout` around each wait, two a window's round
    trip, made and cancelled a timer each time: several microseconds apiece.)"""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._scope = asyncio.timeout(None)
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> _WaitLimit:
        await self._scope.__aenter__()
        self.waiting()
        self._timer = self._loop.call_at(self._started + self._seconds, self._check)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self._scope.__aexit__(kind, error, trace)

    def waiting(self) -> None:
        """A wait begins now."""
        self._started = self._loop.time()

    def _check(self) -> None:
        due = self._started + self._seconds
        now = self._loop.time()
        if due > now:
            self._timer = self._loop.call_at(due, self._check)
        else:
            self._scope.reschedule(now)  # ends the wait: TimeoutError out of the block
