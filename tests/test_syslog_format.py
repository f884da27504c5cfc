"""The syslog backend without a syslog server: RFC 5424 encoding (PRI, timestamp, header
fields, STRUCTURED-DATA escaping, BOM, truncation), `SyslogConfig` validation, RELP framing,
and the RELP/TCP/UDP clients against small in-process servers (acknowledgements, a
connection lost mid-batch, a retried batch, a refused message)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from types import MappingProxyType
from typing import Any

import pytest

from asynclog import Config, ConfigError, LogEntry, LogError, LogManager
from asynclog._syslog_config import FACILITIES, SyslogConfig, facility_number
from asynclog.backends._relp import (
    MAX_TXNR,
    RelpProtocolError,
    RelpSession,
    encode_frame,
    parse_frames,
    response_code,
    take_responses,
)
from asynclog.backends._rfc5424 import (
    BOM,
    Encoder,
    header_field,
    param_value,
    pri,
    sd_name,
    severity,
    timestamp,
)
from asynclog.backends.syslog import SyslogBackend

from .conftest import RecordingBackend, assert_settled

TS = 1_700_000_000.5  # 2023-11-14T22:13:20.5Z


def entry(
    message: str = "hello",
    level: int = 20,
    fields: dict[str, Any] | None = None,
    exception: str | None = None,
    logger: str = "app",
) -> LogEntry:
    return LogEntry(TS, level, message, logger, MappingProxyType(fields or {}), exception)


def encoder(**options: Any) -> Encoder:
    options.setdefault("hostname", "web1")
    options.setdefault("procid", "4242")
    return Encoder(**options)


# --- severity, PRI, facility ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (50, 2), (40, 3), (30, 4), (20, 6), (10, 7),
        (1, 7), (5, 7), (11, 6), (15, 6), (21, 4), (25, 4), (31, 3), (45, 2),
        (51, 1), (99, 1), (100, 0),
    ],
)  # fmt: skip
def test_severity_takes_the_next_more_severe(level: int, expected: int) -> None:
    assert severity(level) == expected


def test_pri_is_facility_times_8_plus_severity() -> None:
    assert pri(1, 20) == 14  # user.info
    assert pri(16, 50) == 130  # local0.crit
    assert pri(0, 10) == 7  # kern.debug
    assert pri(23, 40) == 187  # local7.err


def test_facility_by_name_or_number() -> None:
    assert facility_number("user") == 1
    assert facility_number("LOCAL3") == 19
    assert facility_number(" daemon ") == 3
    assert facility_number(0) == 0 and facility_number(23) == 23
    assert FACILITIES["authpriv"] == 10
    for bad in ("nope", 24, -1, True, None, 1.0):
        with pytest.raises(ValueError, match="facility"):
            facility_number(bad)


# --- header fields and timestamp -------------------------------------------------------------


def test_timestamp_is_rfc3339_utc_with_microseconds() -> None:
    assert timestamp(TS) == "2023-11-14T22:13:20.500000Z"
    assert timestamp(0.0) == "1970-01-01T00:00:00.000000Z"
    assert timestamp(1.9999996) == "1970-01-01T00:00:02.000000Z"  # rounds across the second


def test_header_fields_are_printable_ascii_bounded_or_nil() -> None:
    assert header_field("", 48) == "-"
    assert header_field("my app", 48) == "my_app"
    assert header_field("café\tx", 48) == "caf__x"
    assert header_field("a" * 60, 48) == "a" * 48
    assert header_field("ok-name.1", 48) == "ok-name.1"


# --- STRUCTURED-DATA ---------------------------------------------------------------------------


def test_sd_names_are_sanitised() -> None:
    assert sd_name("user_id") == "user_id"
    assert sd_name('a=b c]d"e') == "a_b_c_d_e"
    assert sd_name("naïve\n") == "na_ve_"
    assert sd_name("k" * 40) == "k" * 32
    assert sd_name("") == "_"
    assert sd_name(7) == "7"


def test_param_values_escape_quote_backslash_bracket() -> None:
    assert param_value('say "hi"') == 'say \\"hi\\"'
    assert param_value("C:\\dir") == "C:\\\\dir"
    assert param_value("a]b") == "a\\]b"
    assert param_value("[ok") == "[ok"  # only ] needs escaping
    assert param_value("line\nbreak") == "line\nbreak"  # legal inside PARAM-VALUE


def test_param_values_of_other_types() -> None:
    assert param_value(3) == "3"
    assert param_value(2.5) == "2.5"
    assert param_value(True) == "true" and param_value(False) == "false"
    assert param_value(None) == "null"
    assert param_value({"a": [1, "x]"]}) == '{\\"a\\": [1, \\"x\\]\\"\\]}'

    class Odd:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert param_value(Odd()).startswith("<")  # its repr, not an exception
    circular: list[Any] = []
    circular.append(circular)
    assert param_value(circular) == "[[...\\]\\]"


def test_lone_surrogates_become_escapes() -> None:
    assert param_value("x\udc80y") == "x\\\\udc80y"  # the backslash of \udc80, escaped
    message = encoder().encode(entry("bad \udcff byte"))
    message.decode("utf-8")  # valid UTF-8
    assert message.endswith(BOM + b"bad \\udcff byte")


# --- whole messages ----------------------------------------------------------------------------


def test_message_layout() -> None:
    message = encoder().encode(entry("hello", fields={"user": "ann", "n": 3}))
    assert message == (
        b'<14>1 2023-11-14T22:13:20.500000Z web1 app 4242 - [fields@32473 user="ann" n="3"] '
        + BOM
        + b"hello"
    )


def test_no_fields_is_nil_and_empty_message_has_no_msg() -> None:
    assert encoder().encode(entry("hi")) == (
        b"<14>1 2023-11-14T22:13:20.500000Z web1 app 4242 - - " + BOM + b"hi"
    )
    assert encoder().encode(entry("")) == b"<14>1 2023-11-14T22:13:20.500000Z web1 app 4242 - -"


def test_app_name_msgid_facility_and_bom_options() -> None:
    enc = encoder(app_name="billing", msgid="PAY", facility=16, bom=False)
    assert enc.encode(entry("x", level=40)) == (
        b"<131>1 2023-11-14T22:13:20.500000Z web1 billing 4242 PAY - x"
    )
    # app_name None: the entry's logger, sanitised
    assert b" my_svc 4242 " in encoder().encode(entry(logger="my svc"))


def test_exception_goes_to_structured_data_or_message() -> None:
    traceback = 'Traceback (most recent call last):\n  File "x.py"\nValueError: bad ]'
    in_sd = encoder().encode(entry("failed", level=40, exception=traceback))
    assert in_sd.startswith(b"<11>1 ")
    assert (
        b'[asynclog@32473 exception="Traceback (most recent call last):\n  File \\"x.py\\"\n'
        b'ValueError: bad \\]"] ' + BOM + b"failed"
    ) in in_sd
    in_msg = encoder(exception_in="message").encode(entry("failed", level=40, exception=traceback))
    assert in_msg.endswith(b" - " + BOM + b"failed\n" + traceback.encode())


def test_non_standard_level_is_kept_in_structured_data() -> None:
    message = encoder().encode(entry("x", level=25, fields={"k": "v"}))
    assert message.startswith(b"<12>1 ")  # warning
    assert b'[fields@32473 k="v"][asynclog@32473 level="25"] ' in message


def test_enterprise_id_is_configurable() -> None:
    message = encoder(enterprise_id="1.3.6").encode(entry(fields={"k": 1}, level=15))
    assert b'[fields@1.3.6 k="1"][asynclog@1.3.6 level="15"]' in message


# --- truncation (UDP) ---------------------------------------------------------------------------


def test_long_message_is_cut_to_the_limit_with_a_marker() -> None:
    enc = encoder(max_size=480)
    message = enc.encode(entry("é" * 1000, fields={"k": "v"}))
    assert len(message) <= 480
    text = message.decode("utf-8")  # cut on a character boundary
    assert text.endswith("bytes]")
    assert "...[truncated " in text
    assert '[fields@32473 k="v"]' in text  # the structured data is kept
    cut = int(text.rsplit("...[truncated ", 1)[1].split()[0])
    kept = text.split("\ufeff", 1)[1].split("...[truncated")[0]
    assert len(kept.encode()) + cut == 2000
    assert enc.truncated == 1
    assert enc.encode(entry("short")) == encoder().encode(entry("short"))
    assert enc.truncated == 1


def test_structured_data_too_long_for_the_limit_is_left_out() -> None:
    message = encoder(max_size=480).encode(entry("msg", fields={"big": "x" * 1000}))
    assert len(message) <= 480
    assert message.startswith(b"<14>1 2023-11-14T22:13:20.500000Z web1 app 4242 - - " + BOM)
    assert message.endswith(b"msg...[truncated 0 bytes]")


def test_no_limit_means_no_truncation() -> None:
    message = encoder().encode(entry("x" * 100_000))
    assert len(message) > 100_000


# --- SyslogConfig -------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = SyslogConfig()
    assert (config.host, config.transport, config.resolved_port) == ("localhost", "relp", 2514)
    assert SyslogConfig(transport="tls").resolved_port == 6514
    assert SyslogConfig(transport="tcp").resolved_port == 514
    assert SyslogConfig(transport="udp", port=5514).resolved_port == 5514
    assert SyslogConfig(transport="udp").message_limit == 2048
    assert SyslogConfig(transport="tcp").message_limit is None
    assert SyslogConfig(transport="udp", max_message_size=8192).message_limit == 8192
    assert SyslogConfig(facility="local4").facility_code == 20


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"host": ""}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "514"}, "port"),
        ({"transport": "http"}, "transport"),
        ({"facility": "local8"}, "facility"),
        ({"app_name": ""}, "app_name"),
        ({"enterprise_id": "abc"}, "enterprise_id"),
        ({"enterprise_id": "1..2"}, "enterprise_id"),
        ({"bom": "yes"}, "bom"),
        ({"exception_in": "footer"}, "exception_in"),
        ({"max_message_size": 100}, "max_message_size"),
        ({"relp_window": 0}, "relp_window"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"ack_timeout": -1}, "ack_timeout"),
        ({"reconnect_attempts": -1}, "reconnect_attempts"),
        ({"reconnect_backoff": -0.1}, "reconnect_backoff"),
        ({"level": "loud"}, "level"),
        ({"name": ""}, "name"),
        ({"tls_ca_file": "ca.pem"}, "tls_ca_file"),  # not TLS
        ({"transport": "tls", "ssl_context": "yes"}, "ssl_context"),
        ({"transport": "tls", "tls_key_file": "k.pem"}, "tls_key_file"),
    ],
)
def test_config_rejects(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SyslogConfig(**options)
    assert info.value.key == key


def test_config_ssl_context_needs_tls_and_excludes_files() -> None:
    context = ssl.create_default_context()
    with pytest.raises(ConfigError, match="needs transport='tls'") as info:
        SyslogConfig(ssl_context=context)
    assert info.value.key == "ssl_context"
    with pytest.raises(ConfigError, match="not both"):
        SyslogConfig(transport="tls", ssl_context=context, tls_ca_file="ca.pem")
    config = SyslogConfig(transport="tls", ssl_context=context)
    assert config.make_ssl_context() is context
    default = SyslogConfig(transport="tls").make_ssl_context()
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname


def test_backend_needs_a_syslog_config() -> None:
    with pytest.raises(TypeError, match="SyslogConfig"):
        SyslogBackend("relp://x")  # type: ignore[arg-type]
    assert "relp://localhost:2514" in repr(SyslogBackend())


# --- RELP framing ---------------------------------------------------------------------------------


def test_relp_frames_encode() -> None:
    assert encode_frame(1, b"open", b"relp_version=0") == b"1 open 14 relp_version=0\n"
    assert encode_frame(7, b"close") == b"7 close 0\n"


def test_relp_frames_parse_whole_and_partial() -> None:
    stream = b"2 rsp 6 200 OK\n3 rsp 0\n0 serverclose 0\n4 rsp 15 200 OK\nline two\n"
    for split in range(len(stream) + 1):
        buffer = bytearray(stream[:split])
        frames = parse_frames(buffer)
        buffer += stream[split:]
        frames += parse_frames(buffer)
        assert frames == [
            (2, b"rsp", b"200 OK"),
            (3, b"rsp", b""),
            (0, b"serverclose", b""),
            (4, b"rsp", b"200 OK\nline two"),
        ], split
        assert buffer == b""


def test_relp_responses_split_into_ok_numbers_and_other_frames() -> None:
    stream = (
        b"2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 11 500 refused\n"
        b"5 rsp 6 200 OK\n6 rsp 15 200 OK\nline two\n0 serverclose 0\n"
    )
    for split in range(len(stream) + 1):
        buffer = bytearray(stream[:split])
        accepted, others = take_responses(buffer)
        buffer += stream[split:]
        more_accepted, more_others = take_responses(buffer)
        assert accepted + more_accepted == [2, 3, 5], split
        assert others + more_others == [
            (4, b"rsp", b"500 refused"),
            (6, b"rsp", b"200 OK\nline two"),
            (0, b"serverclose", b""),
        ], split
        assert buffer == b""
    with pytest.raises(RelpProtocolError):
        take_responses(bytearray(b"7 rsp 6 200 OK\nx rsp 6 200 OK\n"))


@pytest.mark.parametrize(
    "bad",
    [b"x rsp 6 200 OK\n", b"1 r-p 6 200 OK\n", b"1 rsp 6;200 OK\n", b"1 rsp 3 200 OK\n",
     b"12345678901234 rsp", b"1 rsp 99999999 x"],
)  # fmt: skip
def test_relp_malformed_frames_raise(bad: bytes) -> None:
    with pytest.raises(RelpProtocolError):
        parse_frames(bytearray(bad))


def test_relp_transaction_numbers_wrap_to_1() -> None:
    session = object.__new__(RelpSession)
    session._txnr = MAX_TXNR - 1
    assert [session._next_txnr() for _ in range(3)] == [MAX_TXNR, 1, 2]


def test_relp_response_codes() -> None:
    assert response_code(b"200 OK") == (200, "OK")
    assert response_code(b"500 no room\nmore") == (500, "no room")
    with pytest.raises(RelpProtocolError):
        response_code(b"OK")


# --- a fake RELP server -------------------------------------------------------------------------


Responder = Callable[[int, bytes], bytes | None]
"""Given (connection number, syslog message): the rsp data to answer, or None for none."""


class FakeRelpServer:
    """A RELP server in this process. `plan[n]` decides, for connection n (from 0), how many
    syslog commands it answers before it drops the connection (None: all)."""

    def __init__(self) -> None:
        self.received: list[list[bytes]] = []
        self.answer_limit: dict[int, int] = {}
        self.refuse: set[bytes] = set()
        self.reverse_order = False
        self.silent = False
        self.silent_after: int | None = None
        """Answer that many syslog commands (over all connections), then none."""
        self.answer_delay = 0.0
        """Seconds before each syslog command's answer, each written on its own."""
        self.answered = 0
        self.transactions: list[int] = []
        """The transaction number of each syslog command received."""
        self.max_in_flight = 0
        """The most syslog commands received and not answered yet, at any moment."""
        self.refuse_open = False
        self.commands = b"syslog"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.transport.abort()
            await self._server.wait_closed()

    @property
    def connections(self) -> int:
        return len(self.received)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        number = len(self.received)
        got: list[bytes] = []
        self.received.append(got)
        limit = self.answer_limit.get(number)
        answered = 0
        buffer = bytearray()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buffer += data
                answers_written = answered  # the answers to the commands of earlier reads
                replies: list[bytes] = []
                for txnr, command, payload in _parse_requests(buffer):
                    if command == b"open":
                        offers = b"200 OK\nrelp_version=0\nrelp_software=fake\ncommands="
                        answer = b"500 go away" if self.refuse_open else offers + self.commands
                        replies.append(encode_frame(txnr, b"rsp", answer))
                    elif command == b"syslog":
                        got.append(payload)
                        self.transactions.append(txnr)
                        in_flight = len(got) - answers_written
                        self.max_in_flight = max(self.max_in_flight, in_flight)
                        if self.silent or (
                            self.silent_after is not None and self.answered >= self.silent_after
                        ):
                            continue
                        if limit is not None and answered >= limit:
                            writer.write(b"".join(replies))
                            writer.transport.abort()
                            return
                        answered += 1
                        self.answered += 1
                        code = b"500 refused" if payload in self.refuse else b"200 OK"
                        if self.answer_delay:
                            await asyncio.sleep(self.answer_delay)
                            writer.write(encode_frame(txnr, b"rsp", code))
                            await writer.drain()
                            answers_written = answered
                            continue
                        replies.append(encode_frame(txnr, b"rsp", code))
                    elif command == b"close":
                        replies.append(encode_frame(txnr, b"rsp", b""))
                        replies.append(b"0 serverclose 0\n")
                if self.reverse_order:
                    replies.reverse()
                writer.write(b"".join(replies))
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()


def _parse_requests(buffer: bytearray) -> list[tuple[int, bytes, bytes]]:
    """Like `parse_frames`, without its response-size limit (a syslog command is larger)."""
    frames = []
    while True:
        header = bytes(buffer[:64])
        first = header.find(b" ")
        second = header.find(b" ", first + 1)
        length_end = second + 1
        while length_end < len(header) and header[length_end : length_end + 1].isdigit():
            length_end += 1
        if first < 0 or second < 0 or length_end >= len(header):
            break  # the header is not complete
        length = int(header[second + 1 : length_end])
        start = length_end + 1 if length else length_end
        if len(buffer) < start + length + 1:
            break
        frames.append(
            (int(header[:first]), header[first + 1 : second], bytes(buffer[start : start + length]))
        )
        assert buffer[start + length] == 0x0A
        del buffer[: start + length + 1]
    return frames


@pytest.fixture
async def relp_server() -> AsyncIterator[FakeRelpServer]:
    server = FakeRelpServer()
    await server.start()
    yield server
    await server.stop()


def relp_backend(port: int, **options: Any) -> SyslogBackend:
    options.setdefault("reconnect_backoff", 0.01)
    options.setdefault("ack_timeout", 2.0)
    return SyslogBackend(
        SyslogConfig(host="127.0.0.1", port=port, transport="relp", hostname="h", **options)
    )


def messages_of(payloads: list[bytes]) -> list[str]:
    return [p.split(BOM, 1)[1].decode() for p in payloads]


def batch(count: int, start: int = 0) -> list[LogEntry]:
    return [entry(f"m{i}") for i in range(start, start + count)]


async def test_relp_batch_is_acknowledged(relp_server: FakeRelpServer) -> None:
    relp_server.commands = b"eventlog,syslog"
    backend = relp_backend(relp_server.port, relp_window=16)
    await backend.open()
    await backend.write_batch(batch(100))
    await backend.close()
    assert messages_of(relp_server.received[0]) == [f"m{i}" for i in range(100)]
    stats = backend.stats()
    assert (stats.sent, stats.acknowledged, stats.resent, stats.reconnects) == (100, 100, 0, 0)


async def test_relp_out_of_order_answers(relp_server: FakeRelpServer) -> None:
    relp_server.reverse_order = True
    backend = relp_backend(relp_server.port, relp_window=8)
    await backend.open()
    await backend.write_batch(batch(50))
    await backend.close()
    assert backend.stats().acknowledged == 50


async def test_relp_connection_lost_mid_batch_resends_only_unacknowledged(
    relp_server: FakeRelpServer,
) -> None:
    relp_server.answer_limit[0] = 30  # the first connection answers 30, then drops
    backend = relp_backend(relp_server.port, relp_window=10)
    await backend.open()
    await backend.write_batch(batch(100))
    await backend.close()
    first, second = relp_server.received[0], relp_server.received[1]
    first_msgs, second_msgs = messages_of(first), messages_of(second)
    assert first_msgs[:30] == [f"m{i}" for i in range(30)]
    # the second connection carries exactly the ones not acknowledged, in order
    assert second_msgs == [f"m{i}" for i in range(30, 100)]
    duplicates = len(first) - 30  # sent on the first connection but not answered
    stats = backend.stats()
    assert stats.reconnects == 1 and stats.connection_failures == 1
    assert stats.acknowledged == 100
    # Sent on the first connection and unanswered, so sent again: at most a window's worth.
    # The server saw some of them (duplicates); the rest were lost with the connection.
    assert 1 <= duplicates <= stats.resent <= 10
    assert stats.sent == 100 + stats.resent


async def test_relp_retried_batch_sends_only_the_rest(relp_server: FakeRelpServer) -> None:
    relp_server.answer_limit[0] = 5
    relp_server.answer_limit[1] = 5
    backend = relp_backend(relp_server.port, relp_window=4, reconnect_attempts=0)
    await backend.open()
    entries = batch(20)
    with pytest.raises(LogError, match="after 1 attempts"):
        await backend.write_batch(entries)
    with pytest.raises(LogError):
        await backend.write_batch(entries)  # the manager's retry: the same list object
    await backend.write_batch(entries)
    await backend.close()
    assert messages_of(relp_server.received[1])[0] == "m5"
    assert messages_of(relp_server.received[2])[0] == "m10"
    assert messages_of(relp_server.received[2])[-1] == "m19"
    # a different batch (the manager gave the old one up) starts from scratch
    assert backend.stats().acknowledged == 20


async def test_relp_refused_message_fails_the_batch_and_retry_sends_it_alone(
    relp_server: FakeRelpServer,
) -> None:
    backend = relp_backend(relp_server.port)
    await backend.open()
    entries = batch(10)
    refused_payload = backend.encoder.encode(entries[3])
    relp_server.refuse.add(refused_payload)
    with pytest.raises(LogError, match="refused 1 of 10 messages: 500 refused"):
        await backend.write_batch(entries)
    relp_server.refuse.clear()
    await backend.write_batch(entries)
    await backend.close()
    assert messages_of(relp_server.received[0]) == [f"m{i}" for i in range(10)] + ["m3"]
    assert backend.stats().refused == 1


async def test_relp_silent_server_times_out_and_fails(relp_server: FakeRelpServer) -> None:
    relp_server.silent = True
    backend = relp_backend(relp_server.port, ack_timeout=0.2, reconnect_attempts=1)
    await backend.open()
    with pytest.raises(LogError, match="TimeoutError"):
        await backend.write_batch(batch(3))
    await backend.close()
    assert relp_server.connections == 2


async def test_relp_window_bounds_what_is_in_flight(relp_server: FakeRelpServer) -> None:
    relp_server.answer_delay = 0.001
    backend = relp_backend(relp_server.port, relp_window=8)
    await backend.open()
    await backend.write_batch(batch(50))
    await backend.write_batch(batch(3, start=50))  # a tail smaller than half the window
    await backend.close()
    assert messages_of(relp_server.received[0]) == [f"m{i}" for i in range(53)]
    assert 1 <= relp_server.max_in_flight <= 8
    stats = backend.stats()
    assert (stats.sent, stats.acknowledged, stats.resent, stats.reconnects) == (53, 53, 0, 0)


async def test_relp_ack_timeout_is_per_wait_not_per_batch(relp_server: FakeRelpServer) -> None:
    """Answers that keep coming, each within `ack_timeout`, are progress: a batch may take
    longer than `ack_timeout` in all."""
    relp_server.answer_delay = 0.05
    backend = relp_backend(relp_server.port, relp_window=2, ack_timeout=0.3)
    await backend.open()
    await backend.write_batch(batch(12))  # at least 0.6 s
    await backend.close()
    assert messages_of(relp_server.received[0]) == [f"m{i}" for i in range(12)]
    stats = backend.stats()
    assert (stats.acknowledged, stats.reconnects, stats.connection_failures) == (12, 0, 0)


async def test_relp_answers_stopping_mid_batch_time_out(relp_server: FakeRelpServer) -> None:
    relp_server.silent_after = 5
    backend = relp_backend(relp_server.port, relp_window=4, ack_timeout=0.2, reconnect_attempts=0)
    await backend.open()
    entries = batch(10)
    with pytest.raises(LogError, match="failed after 1 attempts: TimeoutError"):
        await backend.write_batch(entries)
    relp_server.silent_after = None
    await backend.write_batch(entries)  # the manager's retry: only what was not answered
    await backend.close()
    assert messages_of(relp_server.received[0])[:5] == [f"m{i}" for i in range(5)]
    assert messages_of(relp_server.received[1]) == [f"m{i}" for i in range(5, 10)]
    stats = backend.stats()
    assert stats.acknowledged == 10
    assert stats.resent == len(relp_server.received[0]) - 5  # written, never answered


class _Messages:
    """What `RelpSession.send` sends (its `Outgoing` protocol), encoded on demand."""

    def __init__(self, texts: list[bytes]) -> None:
        self._texts = texts
        self.messages: list[bytes] = []

    def encode_until(self, end: int) -> None:
        self.messages[len(self.messages) :] = self._texts[len(self.messages) : end]


async def test_relp_transaction_numbers_wrap_inside_a_write(relp_server: FakeRelpServer) -> None:
    session = await RelpSession.connect("127.0.0.1", relp_server.port, window=8)
    session._txnr = MAX_TXNR - 2
    acknowledged: list[int] = []
    texts = [b"m%d" % i for i in range(6)]
    await session.send(_Messages(texts), range(6), acknowledged.extend, lambda *_: None)
    await session.close(1.0)
    assert relp_server.transactions == [MAX_TXNR - 1, MAX_TXNR, 1, 2, 3, 4]
    assert relp_server.received[0] == texts
    assert sorted(acknowledged) == list(range(6)) and session.written == 6


async def test_relp_open_refused_or_unreachable_fails_open(relp_server: FakeRelpServer) -> None:
    relp_server.commands = b"other,more"
    with pytest.raises(LogError, match="does not offer the syslog command"):
        await relp_backend(relp_server.port).open()
    relp_server.refuse_open = True
    with pytest.raises(LogError, match="500 go away"):
        await relp_backend(relp_server.port).open()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(LogError, match=f"127.0.0.1:{closed_port}"):
        await relp_backend(closed_port).open()


async def test_relp_through_the_manager(relp_server: FakeRelpServer) -> None:
    relp_server.answer_limit[0] = 7
    backend = relp_backend(relp_server.port)
    manager = LogManager(Config(backend=backend, async_mode=True, batch_size=50))
    await manager.start()
    for i in range(200):
        await manager.info(f"m{i}", i=i)
    await manager.close()
    stats = manager.get_stats()
    assert stats.written == 200 and stats.dropped == 0 and stats.dead_lettered == 0
    everything = messages_of([p for conn in relp_server.received for p in conn])
    assert set(everything) == {f"m{i}" for i in range(200)}


async def test_server_gone_entries_follow_queue_bound_and_fallback(
    relp_server: FakeRelpServer,
) -> None:
    backend = relp_backend(relp_server.port, reconnect_attempts=1, connect_timeout=0.5)
    fallback = RecordingBackend()
    manager = LogManager(
        Config(
            backend=backend,
            async_mode=True,
            queue_size=20,
            batch_size=10,
            overflow="drop_newest",
            retry_attempts=1,
            retry_backoff=0.01,
            fallback=fallback,
        )
    )
    await manager.start()
    await relp_server.stop()  # the server goes away (its port stays closed)
    for i in range(200):
        await manager.info(f"m{i}", i=i)
    await manager.close()
    stats = manager.get_stats()
    assert_settled(stats)
    assert stats.written == 0 and stats.dropped > 0 and stats.dead_lettered > 0
    assert len(fallback.entries) == stats.dead_lettered
    assert backend.stats().connection_failures >= 2


async def test_flush_at_exit_sends_on_a_new_connection(relp_server: FakeRelpServer) -> None:
    backend = relp_backend(relp_server.port)
    await backend.open()
    await backend.write_batch(batch(2))
    # The exit hook runs in a thread of its own, with a loop of its own.
    await asyncio.to_thread(backend.flush_at_exit, batch(3, start=2))
    assert messages_of(relp_server.received[0]) == ["m0", "m1"]
    assert messages_of(relp_server.received[1]) == ["m2", "m3", "m4"]
    assert backend.stats().acknowledged == 5
    with pytest.raises(LogError, match="not open"):
        await asyncio.to_thread(backend.flush_at_exit, batch(1))
    await asyncio.to_thread(backend.flush_at_exit, [])  # nothing to do, no error
    relp_server.refuse.add(relp_backend(relp_server.port).encoder.encode(entry("bad")))
    refusing = relp_backend(relp_server.port)
    await refusing.open()
    with pytest.raises(LogError, match="refused messages: 500 refused"):
        await asyncio.to_thread(refusing.flush_at_exit, [entry("bad")])


def _wired() -> bool:
    from asynclog import _config

    return "syslog" in getattr(_config, "BACKEND_NAMES", ())


@pytest.mark.skipif(not _wired(), reason='Config does not know backend "syslog" yet')
async def test_config_by_name(relp_server: FakeRelpServer) -> None:
    options = {"host": "127.0.0.1", "port": relp_server.port, "hostname": "h"}
    config = Config.from_dict({"backend": "syslog", "backend_config": options})
    async with LogManager(config) as manager:
        await manager.info("by name", k="v")
    assert messages_of(relp_server.received[0]) == ["by name"]
    assert "syslog" in manager.get_stats().backends
    listed = Config.from_dict({"backends": [{"type": "syslog", **options, "name": "central"}]})
    assert listed.sinks[0].name == "central"
    assert isinstance(listed.sinks[0].target, SyslogConfig)


async def test_write_before_open_fails() -> None:
    with pytest.raises(LogError, match="not open"):
        await SyslogBackend().write_batch(batch(1))


# --- TCP and UDP against local sockets ----------------------------------------------------------


async def test_tcp_octet_counting_and_reconnect() -> None:
    received: list[bytes] = []
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while data := await reader.read(65536):
                received.append(data)
        finally:
            writer.close()  # Python 3.12+: Server.wait_closed() waits for every connection

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = SyslogBackend(
        SyslogConfig(host="127.0.0.1", port=port, transport="tcp", hostname="h")
    )
    await backend.open()

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.01)

    await backend.write_batch([entry("one\ntwo"), entry("é")])
    await until(lambda: b"\xc3\xa9" in b"".join(received))
    connections[0].close()  # the server closes the connection between two batches
    await asyncio.sleep(0.1)
    await backend.write_batch([entry("three")])
    await backend.close()
    await until(lambda: b"three" in b"".join(received))
    server.close()
    await server.wait_closed()
    stream = b"".join(received)
    frames = []
    while stream:
        length_text, rest = stream.split(b" ", 1)
        frames.append(rest[: int(length_text)])
        stream = rest[int(length_text) :]
    assert messages_of(frames) == ["one\ntwo", "é", "three"]
    assert backend.stats().reconnects == 1


async def test_udp_one_datagram_per_message_truncated_to_2048() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        port = receiver.getsockname()[1]
        backend = SyslogBackend(
            SyslogConfig(host="127.0.0.1", port=port, transport="udp", hostname="h")
        )
        await backend.open()
        await backend.write_batch([entry("short"), entry("x" * 5000)])
        await backend.close()
        first = receiver.recv(65536)
        second = receiver.recv(65536)
    assert first.endswith(BOM + b"short")
    assert len(second) <= 2048 and second.endswith(b"bytes]")
    assert backend.stats().truncated == 1 and backend.stats().sent == 2


def test_common_shape_is_written_as_the_general_path_writes_it() -> None:
    """Entries without a traceback, at a standard level and without a size limit are encoded
    in one string; the bytes must be those of STRUCTURED-DATA and MSG built piece by piece."""
    values: list[Any] = [0, -7, 10**5000, 2.5, True, None, "", 'q"b\\s]', "é \udc80", [1, "a"]]
    names = ["k", "a b=c]", "", "é", "x" * 40, 5]
    for bom in (True, False):
        enc = encoder(bom=bom)
        for turn, value in enumerate(values * len(names)):
            fields = {names[turn % len(names)]: value, "seq": turn} if turn % 4 else {}
            message = ("msg", "", "m \ud800", "a]b")[turn % 4]
            one = entry(message, (10, 20, 30, 40, 50)[turn % 5], fields, logger="a b")
            text = (
                f"<{pri(1, one.level)}>1 2023-11-14T22:13:20.500000Z web1 a_b 4242 - "
                f"{enc.structured_data(one)}"
            )
            body = (" \ufeff" if bom else " ") + enc.message_text(one) if one.message else ""
            assert enc.encode(one) == (text + body).encode("utf-8")
            assert enc.encode(tuple(one)) == enc.encode(one)  # an entry tuple, as the pipeline's


def test_encode_many_is_encode_of_each() -> None:
    enc = encoder()
    entries: list[Any] = [
        entry("plain", fields={"n": 1, "s": "x]y"}),
        tuple(entry("as a tuple", 30)),
        entry(""),
        entry("é \udc80"),
        entry("boom", 40, exception="Traceback ..."),
        entry("custom level", 25),
        LogEntry(TS + 1.25, 50, "next second", "other", MappingProxyType({})),
        LogEntry(TS - 3600, 10, "an hour before", "app", MappingProxyType({"k": None})),
    ]
    many = enc.encode_many(entries)
    assert many == [enc.encode(one) for one in entries]
    assert many[0] == (
        b'<14>1 2023-11-14T22:13:20.500000Z web1 app 4242 - [fields@32473 n="1" s="x\\]y"] '
        + BOM
        + b"plain"
    )
    assert many[2] == b"<14>1 2023-11-14T22:13:20.500000Z web1 app 4242 - -"
    assert many[6].startswith(b"<10>1 2023-11-14T22:13:21.750000Z web1 other 4242 - - ")
    assert many[7].startswith(b"<15>1 2023-11-14T21:13:20.500000Z web1 app 4242 - ")
    limited = encoder(max_size=480)
    assert limited.encode_many(entries) == [limited.encode(one) for one in entries]


def test_encode_many_timestamps_across_calls() -> None:
    """The text of the last second is kept between calls: a later call in another second,
    or back in an earlier one, still gets its own."""
    enc = encoder()
    stamps = []
    for ts in (TS, TS + 0.25, TS + 1, TS - 59, TS + 1):
        message = enc.encode_many([LogEntry(ts, 20, "m", "app", MappingProxyType({}))])[0]
        stamps.append(message.split(b" ")[1].decode())
    assert stamps == [
        "2023-11-14T22:13:20.500000Z",
        "2023-11-14T22:13:20.750000Z",
        "2023-11-14T22:13:21.500000Z",
        "2023-11-14T22:12:21.500000Z",
        "2023-11-14T22:13:21.500000Z",
    ]
