"""Formatters: pure functions `(LogEntry) -> str` that return one record without its newline.

Control characters are escaped so that no message or field can forge a second record, move a
terminal's cursor or reorder the rest of its line: backslash, C0 and C1 controls, DEL,
U+2028/U+2029, the bidirectional embeddings, overrides and isolates, and lone surrogates.
A record is one line, except that the text format puts a traceback on continuation lines,
each indented by four spaces (a record's first line never starts with a space).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from . import _fastjson
from ._entry import LOCATION, MESSAGE, Entry, Location, LogEntry, as_log_entry
from ._exception_text import parse_exception
from ._levels import LEVEL_NAMES, level_name

Formatter = Callable[[LogEntry], str]


BIDI_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
"""LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI: each can make a terminal or editor show
the text after it in another order than it was written ("Trojan Source")."""


def _build_escape_table() -> dict[int, str]:
    table: dict[int, str] = {
        ord("\\"): "\\\\",
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord("\t"): "\\t",
    }
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        table.setdefault(code, f"\\x{code:02x}")
    # None of these is printable, so the isprintable() checks below still find them.
    for code in (0x2028, 0x2029, *BIDI_CONTROLS, *range(0xD800, 0xE000)):
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _build_escape_table()


def escape(text: str) -> str:
    """Escape every character that could end a line, move a cursor or break UTF-8."""
    # isprintable() is False for every character in the table except the backslash.
    if text.isprintable() and "\\" not in text:
        return text
    return text.translate(_ESCAPES)


def utf8_safe(text: str) -> str:
    """`text` as UTF-8 can hold it: lone surrogates become `\\udc80`-style escapes (for
    SQLite, protobuf, syslog and PostgreSQL, which all store UTF-8)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def safe_repr(value: object) -> str:
    """`repr(value)`, or a placeholder naming the type when its `__repr__` raises."""
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the entry
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def safe_str(value: object) -> str:
    """`str(value)`, falling back to `safe_repr` when `__str__` raises."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


# The formatted seconds part, as one tuple so that another thread never sees half an update:
# (second, "2026-11-27T21:52:00."). text_format reads it inline; it runs for every entry.
_second_prefix: tuple[str, str] = ("", "")
"""The last second formatted: its digits (as `iso_utc` splits them) and its text."""


def _prefix_of(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))


_text_second: tuple[int, str] = (-1, "")
"""`text_lines`' last second and its text (a batch in sync mode is one entry)."""


def iso_utc(timestamp: float) -> str:
    """ISO-8601 UTC time with microseconds: `2026-11-27T21:52:00.123456Z`."""
    global _second_prefix
    total = int(timestamp * 1_000_000 + 0.5)  # microseconds, rounded
    if total < 1_000_000:  # before 1970-01-01T00:00:01: no whole second to split off
        second = total // 1_000_000
        return f"{_prefix_of(second)}{total - second * 1_000_000:06d}Z"
    # The digits split where the microseconds start: cheaper than the arithmetic and a
    # formatted `:06d` (an entry of a web service's access log spends a tenth of its
    # formatting here), and the seconds' digits key the cache as they are.
    digits = str(total)
    seconds = digits[:-6]
    cached, prefix = _second_prefix
    if seconds != cached:
        prefix = _prefix_of(int(seconds))
        _second_prefix = (seconds, prefix)
    return f"{prefix}{digits[-6:]}Z"


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else safe_str(value)
    text = escape(text)
    if text == "" or " " in text or '"' in text or "=" in text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _text_key(key: object) -> str:
    text = escape(key if isinstance(key, str) else safe_str(key))
    return text.replace(" ", "_").replace("=", "_") or "_"


def location_text(location: Location) -> str:
    """`module:function:line`, escaped, as the text format writes a captured location."""
    module, function, line = location
    return f"{escape(module)}:{escape(function)}:{line}"


def text_format(entry: LogEntry) -> str:
    """`<iso time> <LEVEL> <logger> [module:function:line] <message> key=value ...`, the
    traceback on continuation lines; the location only when it was captured."""
    return text_lines((entry,))[0]


def text_lines(entries: Sequence[Entry]) -> list[str]:
    """`[text_format(entry) for entry in entries]`, about a third cheaper: the parts that
    repeat from one entry to the next (the second, the level and logger) are built once, and
    the messages are checked for characters to escape all at once."""
    joined = "".join([entry[MESSAGE] for entry in entries])
    all_clean = joined.isprintable() and "\\" not in joined
    lines: list[str] = []
    append = lines.append
    global _text_second
    cached_second, prefix = _text_second
    last_level: int | None = None
    last_logger: str | None = None
    head = ""  # "Z INFO asynclog "
    # Unpacked in place, not as entry[:6] like elsewhere: the slice cost 435 instructions an
    # entry here (callgrind, e2e to a file: +2.8%). A field added to Entry is unpacked here too.
    for ts, level, message, logger, fields, exception, _, location in entries:
        total = int(ts * 1_000_000 + 0.5)  # microseconds, rounded
        second = total // 1_000_000
        if second != cached_second:
            prefix = _prefix_of(second)
            cached_second = second
            _text_second = (second, prefix)
        if level is not last_level or logger is not last_logger:  # nearly always the same
            head = f"Z {LEVEL_NAMES.get(level) or level_name(level)} {escape(logger)} "
            last_level, last_logger = level, logger
        if not all_clean and (not message.isprintable() or "\\" in message):
            message = message.translate(_ESCAPES)
        # Plain concatenation: measurably cheaper here than an f-string with a format spec.
        line = prefix + str(total - second * 1_000_000).zfill(6) + head
        line += message if location is None else location_text(location) + " " + message
        if fields:
            line += "".join([f" {_text_key(k)}={_text_value(v)}" for k, v in fields.items()])
        if exception:
            line += continuation(exception)
        append(line)
    return lines


def lines_of(formatter: Formatter) -> Callable[[Sequence[Entry]], list[str]]:
    """The function that formats many entries at once with `formatter`. The built-in
    formatters take the pipeline's plain entry tuples; any other gets `LogEntry` objects."""
    if formatter is text_format:
        return text_lines
    if formatter in ENTRY_TUPLE_FORMATTERS:
        return functools.partial(_each, cast(Callable[[Entry], str], formatter))
    return functools.partial(_each_converted, formatter)


ENTRY_TUPLE_FORMATTERS: set[Callable[..., str]] = set()
"""asynclog's own formatters that take plain entry tuples as they are (`lines_of` does not
convert for them): the built-in ones and the JSON shapes (`_json_shapes`, one per shape)."""


def _each(formatter: Callable[[Entry], str], entries: Sequence[Entry]) -> list[str]:
    return [formatter(entry) for entry in entries]


def _each_converted(formatter: Formatter, entries: Sequence[Entry]) -> list[str]:
    return [formatter(as_log_entry(entry)) for entry in entries]


CONTINUATION_INDENT = "    "


def continuation(text: str) -> str:
    """`text` (a traceback) as escaped continuation lines, each indented, each after a newline."""
    return "".join(
        "\n" + CONTINUATION_INDENT + escape(part) for part in text.rstrip("\n").split("\n")
    )


def _jsonable(value: object) -> object:
    try:
        json.dumps(value, allow_nan=False)
    except Exception:  # any value may misbehave (a dict whose items() raises ...)
        return safe_repr(value)
    return value


# Built once: `json.dumps` with any non-default argument builds a new encoder for every call.
_encode_fields = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=safe_repr).encode
_encode_text = json.encoder.encode_basestring  # a str as JSON with ensure_ascii=False


FAST_JSON_VARIABLE = "ASYNCLOG_FAST_JSON"
"""Set to `0` in the environment to keep the JSON format off orjson (read at import)."""

_encode_fast: Callable[[dict[str, Any]], str | None] | None = None


def use_fast_json(enabled: bool = True) -> bool:
    """Encode the JSON format's fields with orjson (when the `fastjson` extra is installed) or
    not; returns whether it is now used. The text written is the same either way."""
    global _encode_fast
    _encode_fast = _fastjson.encode_fields if enabled and _fastjson.AVAILABLE else None
    return _encode_fast is not None


def fast_json_used() -> bool:
    """Whether the JSON format's fields are encoded with orjson."""
    return _encode_fast is not None


use_fast_json(os.environ.get(FAST_JSON_VARIABLE, "1") != "0")


def fields_to_json(fields: Mapping[str, Any]) -> str:
    """Encode fields as a JSON object; values JSON cannot hold are stored as their `repr`."""
    if not fields:
        return "{}"
    if len(fields) <= SCALAR_FIELDS_LIMIT:
        try:
            text = _scalar_fields(fields)
        except ValueError:  # an int with more digits than int_max_str_digits allows
            text = None
        if text is not None:
            return text
    try:
        plain = dict(fields)
        if _encode_fast is not None:
            text = _encode_fast(plain)
            if text is not None:
                return text
        return _encode_fields(plain)
    except Exception:
        cleaned = {safe_str(k): _jsonable(v) for k, v in fields.items()}
        return json.dumps(cleaned, ensure_ascii=False, default=safe_repr)


SCALAR_FIELDS_LIMIT = 8
"""Fields up to this many, str keys and str, int, bool or None values only (the common
entry's), are written here, as the standard encoder would: cheaper than a call to it, or to
orjson and its separators' rewrite."""


def _scalar_fields(fields: Mapping[str, Any]) -> str | None:
    """`fields` as the standard encoder writes them, or None when one is not that simple."""
    parts = []
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            text = _encode_text(value)
        elif kind is int:
            text = int.__repr__(value)
        elif value is None:
            text = "null"
        elif kind is bool:
            text = "true" if value else "false"
        else:
            return None
        if type(key) is not str:
            return None
        parts.append(f"{_encode_text(key)}: {text}")
    return "{" + ", ".join(parts) + "}"


_LEVEL_JSON = {level: _encode_text(name) for level, name in LEVEL_NAMES.items()}
"""The standard levels' names as JSON strings."""

_logger_json: dict[str, str] = {}
"""Logger names as JSON strings, as met (at most `_LOGGER_JSON_LIMIT`, then started over)."""
_LOGGER_JSON_LIMIT = 1024


def _logger_as_json(logger: str) -> str:
    text = _logger_json.get(logger)
    if text is None:
        if len(_logger_json) >= _LOGGER_JSON_LIMIT:
            _logger_json.clear()
        text = _logger_json[logger] = _encode_text(logger)
    return text


# What json.dumps(ensure_ascii=False) leaves raw but a terminal or a line splitter would act
# on: DEL, the C1 controls (0x9B is a CSI), U+2028, U+2029 and the bidirectional controls.
_JSON_UNSAFE = {
    code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *BIDI_CONTROLS)
}


def exception_json(text: str) -> str:
    """The traceback `text` as the JSON formats write it: `{"type": ..., "message": ...,
    "stack": text}`, the type and message read from the text (`null` when it does not tell)."""
    kind, message = parse_exception(text)
    return (
        f'{{"type": {_json_or_null(kind)}, "message": {_json_or_null(message)}, '
        f'"stack": {_encode_text(text)}}}'
    )


def _json_or_null(text: str | None) -> str:
    return "null" if text is None else _encode_text(text)


def json_format(entry: LogEntry) -> str:
    """One JSON object: timestamp, level, logger, message, fields, exception (`null`, or its
    type, message and stack: `exception_json`), and, when the location was captured, module,
    function and line."""
    ts, level, message, logger, fields, exception = entry[:6]
    # The bytes of json.dumps({...}, ensure_ascii=False) for the same keys, one encode each.
    tail = "null" if exception is None else exception_json(exception)
    level_text = _LEVEL_JSON.get(level) or _encode_text(level_name(level))
    line = (
        f'{{"timestamp": "{iso_utc(ts)}", "level": {level_text}, '
        f'"logger": {_logger_as_json(logger)}, "message": {_encode_text(message)}, '
        f'"fields": {fields_to_json(fields) if fields else "{}"}, "exception": {tail}'
    )
    location = entry[LOCATION]
    if location is None:
        line += "}"
    else:
        module, function, number = location
        line += (
            f', "module": {_encode_text(module)}, "function": {_encode_text(function)}, '
            f'"line": {int(number)}}}'
        )
    if line.isascii() and "\x7f" not in line:
        return line
    return line.translate(_JSON_UNSAFE)


def _logfmt_value(value: object) -> str:
    text = escape(value if isinstance(value, str) else safe_str(value))
    if text == "" or " " in text or '"' in text or "=" in text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


LOGFMT_KEYS = frozenset(("ts", "level", "logger", "msg", "exception"))
"""The keys logfmt writes itself; a field by one of these names is written as `fields.<name>`."""

LOCATION_KEYS = ("module", "function", "line")
"""The keys of a captured location in the JSON and logfmt formats (taken, in logfmt, only
when the entry has one)."""


def logfmt_format(entry: LogEntry) -> str:
    """`ts=... level=info logger=... msg="..." [module=... function=... line=...] key=value ...
    exception="..."`, one line (the location when it was captured).
    Every key appears once: a field whose key is taken (by the record's own keys, or by an
    earlier field that escapes to the same text) gets `fields.` in front until it is not."""
    return logfmt_with_process(entry, None)


PROCESS_KEYS = ("host", "pid")
"""The keys of `FileConfig(process_fields=True)` in the text, logfmt and plain JSON formats:
the names of the SQLite and PostgreSQL columns."""


def process_text(host: str | None, pid: int) -> str:
    """`host=<host> pid=<pid>`, as the text and logfmt formats write the process fields."""
    return f"host={_logfmt_value('' if host is None else host)} pid={pid}"


def logfmt_with_process(entry: Entry, process: str | None) -> str:
    """`logfmt_format(entry)`, with `process` (`process_text`) after the fields when given, and
    then a field named `host` or `pid` written as `fields.host`, `fields.pid`."""
    ts, level, message, logger, fields, exception = entry[:6]
    parts = [
        f"ts={iso_utc(ts)}",
        f"level={level_name(level).lower().replace(' ', '_')}",
        f"logger={_logfmt_value(logger)}",
        f"msg={_logfmt_value(message)}",
    ]
    location = entry[LOCATION]
    taken = set(LOGFMT_KEYS)
    if location is not None:
        module, function, number = location
        parts.append(
            f"module={_logfmt_value(module)} function={_logfmt_value(function)} "
            f"line={int(number)}"
        )
        taken.update(LOCATION_KEYS)
    if process is not None:
        taken.update(PROCESS_KEYS)
    if fields:
        for k, v in fields.items():
            key = _text_key(k)
            while key in taken:
                key = "fields." + key
            taken.add(key)
            parts.append(f"{key}={_logfmt_value(v)}")
    if process is not None:
        parts.append(process)
    if exception:
        parts.append(f"exception={_logfmt_value(exception)}")
    return " ".join(parts)


ENTRY_TUPLE_FORMATTERS.update((json_format, logfmt_format))

FORMATTERS: dict[str, Formatter] = {
    "text": text_format,
    "json": json_format,
    "logfmt": logfmt_format,
}


def formatter_for(spec: str | Formatter) -> Formatter:
    """The formatter a config names (`"text"`, `"json"`, `"logfmt"`), or `spec` if callable."""
    if isinstance(spec, str):
        return FORMATTERS[spec]
    return spec
