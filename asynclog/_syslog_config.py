"""`SyslogConfig`: the settings of the syslog backend (RFC 5424 over RELP, TLS, TCP or UDP)."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from typing import Literal

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_SECONDS,
    StrPath,
    int_at_least,
    number_at_least,
    optional_int_at_least,
    optional_level,
    require_bool,
    require_choice,
    require_int,
    require_path,
    require_positive_number,
    shown,
)

TRANSPORTS = ("relp", "tls", "tcp", "udp")
DEFAULT_PORTS = {"relp": 2514, "tls": 6514, "tcp": 514, "udp": 514}
"""RFC 5425 assigns 6514 to syslog over TLS, and 514/udp is syslog's; RELP and plain TCP
have no assigned port: 2514 and 514 are what rsyslog's documentation uses."""
UDP_DEFAULT_MAX_SIZE = 2048
"""RFC 5426: every receiver SHOULD take datagrams of 2048 bytes (and MUST take 480)."""
MIN_MESSAGE_SIZE = 480
MAX_RELP_WINDOW = 100_000
"""RELP numbers transactions 1 ... 999,999,999 and then starts again: a window must stay far
below that, or two messages in flight could share a number."""
EXCEPTION_PLACEMENTS = ("structured_data", "message")

FACILITIES: dict[str, int] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "security": 13,
    "console": 14,
    "solaris-cron": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}
"""Facility names (as syslog.conf spells them) and their numbers."""

_ENTERPRISE_ID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def facility_number(value: object) -> int:
    """A facility name (`"user"`, `"local0"`, any case) or number 0-23; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 23:
            return value
        raise ValueError(f"a facility number is 0-23, got {shown(value)}")
    if isinstance(value, str):
        found = FACILITIES.get(value.strip().lower())
        if found is not None:
            return found
    raise ValueError(
        f"unknown facility {shown(value)}; expected a number 0-23 or one of {', '.join(FACILITIES)}"
    )


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    """Settings of the syslog backend: RFC 5424 messages to a syslog server over RELP
    (acknowledged), TLS (RFC 5425), TCP (RFC 6587 octet counting) or UDP (RFC 5426).
    Delivery guarantees and the message format are in docs/syslog.md."""

    host: str = "localhost"
    port: int | None = None
    """None: 2514 for RELP, 6514 for TLS, 514 for TCP and UDP."""
    transport: Literal["relp", "tls", "tcp", "udp"] = "relp"
    facility: str | int = "user"
    """A name (`"user"`, `"daemon"`, `"local0"` ... `"local7"`, ...) or a number 0-23."""
    app_name: str | None = None
    """APP-NAME; None: each entry's logger name (`Config.name`)."""
    hostname: str | None = None
    """HOSTNAME; None: `socket.gethostname()`."""
    msgid: str | None = None
    """MSGID; None: `-`."""
    enterprise_id: str = "32473"
    """The private enterprise number in the SD-IDs (`fields@32473`); 32473 is the number
    RFC 5612 reserves for documentation: use your organisation's if it has one."""
    bom: bool = True
    """Start MSG with the UTF-8 BOM, as RFC 5424 asks of UTF-8 text (rsyslog keeps it in
    `%msg%`); False sends the bare UTF-8."""
    exception_in: Literal["structured_data", "message"] = "structured_data"
    """Where a traceback goes: `[asynclog@32473 exception="..."]`, or MSG after a newline."""
    ssl_context: ssl.SSLContext | None = None
    """TLS: the context to connect with; None: one built from the `tls_*` files, or the
    system's default (verifying the server against the system's CAs)."""
    tls_ca_file: StrPath | None = None
    """TLS without `ssl_context`: the CA bundle (PEM) the server's certificate must chain to."""
    tls_cert_file: StrPath | None = None
    """TLS without `ssl_context`: a client certificate (PEM), for servers that ask for one."""
    tls_key_file: StrPath | None = None
    """Its private key, if not in `tls_cert_file`."""
    tls_server_name: str | None = None
    """The name the server's certificate must carry; None: `host`."""
    max_message_size: int | None = None
    """The most bytes of one message (at least 480); a longer one is cut, MSG first, and ends
    with `...[truncated N bytes]`. None: 2048 for UDP (RFC 5426), no limit otherwise."""
    relp_window: int = 128
    """RELP: how many messages may be sent and not yet acknowledged."""
    connect_timeout: float = 5.0
    """Seconds a connection (and RELP's or TLS's handshake) may take."""
    ack_timeout: float = 10.0
    """Seconds without progress (a RELP acknowledgement; a TCP/TLS write draining) before the
    connection is taken for dead, dropped and made again."""
    reconnect_attempts: int = 5
    """Within one `write_batch`: how many times a lost connection is made again before the
    call fails (then `Config.retry_attempts` and the fallback take over)."""
    reconnect_backoff: float = 0.1
    """Seconds before the first reconnection; doubled for each further one."""
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"syslog"`."""

    def __post_init__(self) -> None:
        owner = "SyslogConfig"
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(
                f"{owner}.host must be a non-empty str, got {shown(self.host)}", "host"
            )
        if self.port is not None and not 1 <= require_int(owner, "port", self.port) <= 65535:
            raise ConfigError(
                f"{owner}.port must be 1-65535 or None, got {shown(self.port)}", "port"
            )
        require_choice(owner, "transport", self.transport, TRANSPORTS)
        try:
            facility_number(self.facility)
        except ValueError as exc:
            raise ConfigError(f"{owner}.facility: {exc}", "facility") from None
        for key in ("app_name", "hostname", "msgid", "tls_server_name", "name"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(
                    f"{owner}.{key} must be a non-empty str or None, got {shown(value)}", key
                )
        if not isinstance(self.enterprise_id, str) or not _ENTERPRISE_ID.match(self.enterprise_id):
            raise ConfigError(
                f"{owner}.enterprise_id must be a private enterprise number like '32473' "
                f"(digits, dot-separated parts allowed), got {shown(self.enterprise_id)}",
                "enterprise_id",
            )
        require_bool(owner, "bom", self.bom)
        require_choice(owner, "exception_in", self.exception_in, EXCEPTION_PLACEMENTS)
        self._check_tls(owner)
        optional_int_at_least(owner, "max_message_size", self.max_message_size, MIN_MESSAGE_SIZE)
        int_at_least(owner, "relp_window", self.relp_window, 1, MAX_RELP_WINDOW)
        require_positive_number(owner, "connect_timeout", self.connect_timeout, MAX_SECONDS)
        require_positive_number(owner, "ack_timeout", self.ack_timeout, MAX_SECONDS)
        int_at_least(owner, "reconnect_attempts", self.reconnect_attempts, 0, MAX_ATTEMPTS)
        number_at_least(owner, "reconnect_backoff", self.reconnect_backoff, 0, MAX_BACKOFF)
        optional_level(owner, "level", self.level)

    def _check_tls(self, owner: str) -> None:
        files = ("tls_ca_file", "tls_cert_file", "tls_key_file")
        given = [key for key in ("ssl_context", *files) if getattr(self, key) is not None]
        if given and self.transport != "tls":
            raise ConfigError(
                f"{owner}.{given[0]} needs transport='tls', got transport={shown(self.transport)}",
                given[0],
            )
        if self.ssl_context is not None:
            if not isinstance(self.ssl_context, ssl.SSLContext):
                raise ConfigError(
                    f"{owner}.ssl_context must be an ssl.SSLContext, "
                    f"got {type(self.ssl_context).__name__}",
                    "ssl_context",
                )
            if len(given) > 1:
                raise ConfigError(
                    f"{owner}: give ssl_context or the tls_* files, not both", given[1]
                )
        for key in files:
            if getattr(self, key) is not None:
                require_path(owner, key, getattr(self, key))
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ConfigError(f"{owner}.tls_key_file needs tls_cert_file", "tls_key_file")

    @property
    def resolved_port(self) -> int:
        """`port`, or the transport's default."""
        return self.port if self.port is not None else DEFAULT_PORTS[self.transport]

    @property
    def facility_code(self) -> int:
        """`facility` as its number."""
        return facility_number(self.facility)

    @property
    def message_limit(self) -> int | None:
        """The size messages are cut to: `max_message_size`, or 2048 for UDP."""
        if self.max_message_size is None and self.transport == "udp":
            return UDP_DEFAULT_MAX_SIZE
        return self.max_message_size

    def make_ssl_context(self) -> ssl.SSLContext:
        """`ssl_context`, or a client context from the `tls_*` files (system CAs if none)."""
        if self.ssl_context is not None:
            return self.ssl_context
        context = ssl.create_default_context(
            cafile=None if self.tls_ca_file is None else os.fspath(self.tls_ca_file)
        )
        if self.tls_cert_file is not None:
            context.load_cert_chain(
                os.fspath(self.tls_cert_file),
                None if self.tls_key_file is None else os.fspath(self.tls_key_file),
            )
        return context
