"""RFC 5424 syslog messages from log entries: pure functions, no I/O.

`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP BOM MSG]`, with the
entry's fields in `[fields@<PEN> name="value" ...]` and its traceback (and a level number
that is not one of the standard five) in `[asynclog@<PEN> ...]`. docs/syslog.md shows one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .._entry import Entry, LogEntry, as_log_entry
from ..formatters import safe_repr, safe_str, utf8_safe

NILVALUE = "-"
BOM = b"\xef\xbb\xbf"
"""MSG starts with it to say it is UTF-8 (RFC 5424 section 6.4)."""
TRUNCATED = "...[truncated {} bytes]"
"""Ends a MSG cut to fit `max_size` (UDP), saying how many bytes were cut."""

DEFAULT_ENTERPRISE_ID = "32473"
"""The SD-ID suffix `@32473`: the private enterprise number RFC 5612 reserves for examples
and documentation. An organisation with its own number sets `SyslogConfig.enterprise_id`."""

STANDARD_LEVELS = frozenset((10, 20, 30, 40, 50))

# Header field limits (RFC 5424 section 6).
HOSTNAME_MAX = 255
APP_NAME_MAX = 48
PROCID_MAX = 128
MSGID_MAX = 32
SD_NAME_MAX = 32
SD_NAMES_CACHED = 256


def severity(level: int) -> int:
    """The syslog severity of a level number: CRITICAL 2 crit, ERROR 3 err, WARNING 4 warning,
    INFO 6 info, DEBUG 7 debug; a level in between takes the next more severe one's (25 is a
    warning); above CRITICAL: 1 alert, and 100 (the highest level) 0 emerg. 5 notice is
    never produced."""
    if level <= 10:
        return 7
    if level <= 20:
        return 6
    if level <= 30:
        return 4
    if level <= 40:
        return 3
    if level <= 50:
        return 2
    return 1 if level < 100 else 0


def pri(facility: int, level: int) -> int:
    """PRI = facility * 8 + severity."""
    return facility * 8 + severity(level)


def header_field(text: str, max_length: int) -> str:
    """A header field: printable US-ASCII (33-126; anything else becomes `_`), at most
    `max_length` characters, `-` when empty."""
    if not text:
        return NILVALUE
    if not (text.isascii() and text.isprintable() and " " not in text):
        text = "".join(c if "!" <= c <= "~" else "_" for c in text)
    return text[:max_length]


def sd_name(key: object) -> str:
    """An SD-NAME (a PARAM-NAME or SD-ID name): printable US-ASCII without `=`, space, `]` and
    `"` (each such character, and any other, becomes `_`), at most 32 characters."""
    text = key if isinstance(key, str) else safe_str(key)
    if not text:
        return "_"
    cleaned = "".join("_" if c in '=]"' or not "!" <= c <= "~" else c for c in text)
    return cleaned[:SD_NAME_MAX]


_SD_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\", "]": "\\]"})


utf8_text = utf8_safe
"""`text`, with lone surrogates (which UTF-8 cannot hold) as `\\udc80` escapes."""


def param_value(value: object) -> str:
    """A PARAM-VALUE, escaped (`"`, `\\`, `]` get a backslash, as RFC 5424 requires): a str as
    it is, True/False/None as `true`/`false`/`null`, a number as `str()`, a dict or list as
    JSON, anything else as its `str()`."""
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, bool):
        text = "null" if value is None else ("true" if value else "false")
    elif isinstance(value, int | float):
        text = safe_str(value)
    elif isinstance(value, dict | list | tuple):
        try:
            text = json.dumps(value, ensure_ascii=False, default=safe_repr)
        except Exception:  # a circular or otherwise hostile container
            text = safe_repr(value)
    else:
        text = safe_str(value)
    text = utf8_text(text)
    if '"' in text or "\\" in text or "]" in text:
        text = text.translate(_SD_ESCAPES)
    return text


def sd_element(sd_id: str, params: Mapping[str, Any]) -> str:
    """`[sd_id name="value" ...]` (names sanitised, values escaped); `""` if no params."""
    if not params:
        return ""
    body = "".join(f' {sd_name(k)}="{param_value(v)}"' for k, v in params.items())
    return f"[{sd_id}{body}]"


_second_prefix: tuple[int, str] = (-1, "")


def second_text(second: int) -> str:
    """`2026-11-27T21:52:00.`: the part of a timestamp before its microseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))


def timestamp(ts: float) -> str:
    """RFC 3339 UTC time with microseconds: `2026-11-27T21:52:00.123456Z`."""
    global _second_prefix
    total = int(ts * 1_000_000 + 0.5)
    second = total // 1_000_000
    cached, prefix = _second_prefix
    if second != cached:
        prefix = second_text(second)
        _second_prefix = (second, prefix)
    return f"{prefix}{total - second * 1_000_000:06d}Z"


ExceptionPlacement = Literal["structured_data", "message"]


class Encoder:
    """Turns entries into RFC 5424 messages (bytes, without transport framing).

    `app_name=None` takes each entry's logger name. `max_size` (UDP) bounds the whole
    message: MSG is cut to fit, ending with `...[truncated N bytes]`; if even the header and
    STRUCTURED-DATA do not fit, STRUCTURED-DATA is left out (`-`) and MSG cut.
    """

    def __init__(
        self,
        *,
        facility: int = 1,
        hostname: str = NILVALUE,
        app_name: str | None = None,
        procid: str = NILVALUE,
        msgid: str = NILVALUE,
        enterprise_id: str = DEFAULT_ENTERPRISE_ID,
        bom: bool = True,
        exception_in: ExceptionPlacement = "structured_data",
        max_size: int | None = None,
    ) -> None:
        self.facility = facility
        self.fields_id = f"fields@{enterprise_id}"
        self.asynclog_id = f"asynclog@{enterprise_id}"
        self.bom = BOM if bom else b""
        self.exception_in = exception_in
        self.max_size = max_size
        self.truncated = 0
        """Messages cut to fit `max_size`."""
        self._hostname = header_field(hostname, HOSTNAME_MAX)
        self._procid = header_field(procid, PROCID_MAX)
        self._msgid = header_field(msgid, MSGID_MAX)
        self._app_name = None if app_name is None else header_field(app_name, APP_NAME_MAX)
        self._tail_by_logger: dict[str, str] = {}
        """`" HOSTNAME APP-NAME PROCID MSGID "` for each logger name seen."""
        self._pri = [f"<{pri(facility, level)}>1 " for level in range(101)]
        self._fields_open = f"[{self.fields_id}"
        self._body_start = " \ufeff" if bom else " "
        """What comes between STRUCTURED-DATA and a message: SP, then the BOM (as text)."""
        self._second: tuple[int, str] = (-1, "")
        """The last second `encode_many` formatted and its `second_text`, kept across calls
        (RELP encodes a batch a part of a window at a time)."""
        self._sd_names: dict[str, str] = {}
        """`sd_name` of each str field name seen (up to `SD_NAMES_CACHED` of them)."""

    def set_procid(self, procid: str) -> None:
        """A new PROCID (the process id after a fork)."""
        self._procid = header_field(procid, PROCID_MAX)
        self._tail_by_logger.clear()

    def _tail(self, logger: str) -> str:
        tail = self._tail_by_logger.get(logger)
        if tail is None:
            app = self._app_name
            if app is None:
                app = header_field(logger, APP_NAME_MAX)
            tail = f" {self._hostname} {app} {self._procid} {self._msgid} "
            if len(self._tail_by_logger) < 64:
                self._tail_by_logger[logger] = tail
        return tail

    def structured_data(self, entry: LogEntry) -> str:
        """The STRUCTURED-DATA of an entry: its fields, then asynclog's own element."""
        sd = sd_element(self.fields_id, entry.fields) if entry.fields else ""
        extra: dict[str, object] = {}
        if entry.level not in STANDARD_LEVELS:
            extra["level"] = entry.level
        if entry.exception and self.exception_in == "structured_data":
            extra["exception"] = entry.exception
        if extra:
            sd += sd_element(self.asynclog_id, extra)
        return sd or NILVALUE

    def message_text(self, entry: LogEntry) -> str:
        """MSG as text: the message, and the traceback after a newline if it goes there."""
        message = entry.message
        if entry.exception and self.exception_in == "message":
            message = f"{message}\n{entry.exception}" if message else entry.exception
        return utf8_text(message)

    def encode(self, entry: Entry) -> bytes:
        """One RFC 5424 message, from a `LogEntry` or an entry tuple."""
        return self.encode_many((entry,))[0]

    def encode_many(self, entries: Sequence[Entry]) -> list[bytes]:
        """`[self.encode(entry) for entry in entries]` in one loop. The common shape (a
        standard level, no traceback, no `max_size`) is built as one string, encoded once,
        with the header's constant parts and the second's part of the timestamp reused."""
        if self.max_size is not None:
            return [self._encode(as_log_entry(entry)) for entry in entries]
        pri, body_start, fields_element = self._pri, self._body_start, self._fields_element
        tails, tail_of = self._tail_by_logger, self._tail
        cached_second, prefix = self._second
        messages: list[bytes] = []
        append = messages.append
        for entry in entries:
            ts, level, message, logger, fields, exception, _, _ = entry
            if exception is not None or level not in STANDARD_LEVELS:
                append(self._encode(as_log_entry(entry)))
                continue
            micros = int(ts * 1_000_000 + 0.5)
            second = micros // 1_000_000
            if second != cached_second:
                cached_second, prefix = second, second_text(second)
            fraction = micros - second * 1_000_000
            tail = tails.get(logger) or tail_of(logger)
            sd = fields_element(fields) if fields else NILVALUE
            if not message.isascii():
                message = utf8_text(message)
            between = body_start if message else ""
            text = f"{pri[level]}{prefix}{fraction:06d}Z{tail}{sd}{between}{message}"
            append(text.encode("utf-8"))
        self._second = (cached_second, prefix)
        return messages

    def _fields_element(self, fields: Mapping[str, Any]) -> str:
        """`sd_element(self.fields_id, fields)`, with the field names' SD-NAMEs cached and
        str and int values escaped inline."""
        names = self._sd_names
        parts = [self._fields_open]
        for key, value in fields.items():
            name = names.get(key)
            if name is None:
                name = sd_name(key)
                if type(key) is str and len(names) < SD_NAMES_CACHED:
                    names[key] = name
            kind = type(value)
            if kind is int:
                try:
                    text = str(value)
                except ValueError:  # more digits than int_max_str_digits allows
                    text = param_value(value)
            elif kind is str:
                text = value if value.isascii() else utf8_text(value)
                if '"' in text or "\\" in text or "]" in text:
                    text = text.translate(_SD_ESCAPES)
            else:
                text = param_value(value)
            parts.append(f' {name}="{text}"')
        parts.append("]")
        return "".join(parts)

    def _encode(self, entry: LogEntry) -> bytes:
        level = entry.level
        head = (
            (self._pri[level] if 0 <= level <= 100 else f"<{pri(self.facility, level)}>1 ")
            + timestamp(entry.timestamp)
            + self._tail(entry.logger)
            + self.structured_data(entry)
        ).encode("utf-8")
        message = self.message_text(entry)
        body = b" " + self.bom + message.encode("utf-8") if message else b""
        if self.max_size is not None and len(head) + len(body) > self.max_size:
            return self._truncated(head, message.encode("utf-8"), entry)
        return head + body

    def _truncated(self, head: bytes, message: bytes, entry: LogEntry) -> bytes:
        """The message cut to `max_size`, MSG first, then STRUCTURED-DATA."""
        assert self.max_size is not None
        self.truncated += 1
        limit = self.max_size
        marker_room = len(TRUNCATED.format(len(message)))
        room = limit - len(head) - 1 - len(self.bom) - marker_room
        if room < 0:  # the structured data alone is too long: leave it out
            bare = head[: len(head) - len(self.structured_data(entry).encode("utf-8"))]
            head = bare + NILVALUE.encode()
            room = limit - len(head) - 1 - len(self.bom) - marker_room
        if room < 0:  # a header longer than the limit (a tiny max_size): cut it too
            return head[:limit]
        kept = message[:room].decode("utf-8", "ignore").encode("utf-8")
        marker = TRUNCATED.format(len(message) - len(kept)).encode()
        return head + b" " + self.bom + kept + marker
