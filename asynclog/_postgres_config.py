"""`PostgresConfig`: the settings of the PostgreSQL backend."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_CONCURRENCY,
    MAX_SECONDS,
    int_at_least,
    number_at_least,
    optional_level,
    optional_positive_number,
    require_bool,
    require_identifier,
    require_positive_number,
    shown,
)

DSN_SCHEMES = ("postgresql://", "postgres://")

TABLE_MAX_LENGTH = 63 - len("_level_ts")
"""PostgreSQL keeps 63 characters of a name; the index `"{table}_level_ts"` must fit too."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_FIELD = re.compile(r"([^=&;?#]*)=")
"""A query field's name and its `=`, just after a `?`, `&` or `;`."""
_FIELD_START = re.compile(r"[?&;]")
_FIELD_END = re.compile(r"[&;]")
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
"""A libpq keyword/value DSN's keyword and its `=` (`host=db password='a b'`)."""

Span = tuple[int, int]


def secret_spans(dsn: str) -> list[Span]:
    """Where the secrets in `dsn` are, in order and merged. In a URI: the password of the
    user info (from the user name's `:` to the last `@`, so a raw `@` in the password is
    covered whole), every query field whose decoded name holds "password" (`password`,
    `sslpassword`, ...), and, when there is no `@`, a "port" that is not a number (likely a
    password whose host was forgotten) with all that follows it. In a keyword/value string:
    the value of every keyword holding "password", and all of what cannot be parsed. A string
    that is neither is a secret as a whole."""
    scheme = _SCHEME.match(dsn)
    spans = _uri_spans(dsn, scheme.end()) if scheme else _keyword_spans(dsn)
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _uri_spans(dsn: str, start: int) -> list[Span]:
    spans = _query_spans(dsn, start)
    at, previous = -1, start
    for first, last in [*spans, (len(dsn), len(dsn))]:
        found = dsn.rfind("@", previous, first)
        at = found if found >= 0 else at
        previous = last
    if at >= 0:  # the last '@' outside a password field ends the user info
        colon = dsn.find(":", start, at)
        if colon >= 0:
            spans.append((colon + 1, at))
        return spans
    end = min((i for i in (dsn.find(c, start) for c in "/?#") if i >= 0), default=len(dsn))
    position = start
    for host in dsn[start:end].split(","):
        colon = host.find(":", host.find("]") + 1) if host.startswith("[") else host.find(":")
        if colon >= 0 and not _is_port(host[colon + 1 :], empty=True):
            spans.append((position + colon + 1, len(dsn)))
            break
        position += len(host) + 1
    return spans


def _query_spans(dsn: str, start: int) -> list[Span]:
    """The values of the query fields named like a password, in order. A value runs to the
    next `&` or `;` that starts another `name=` field: a raw `&` in a password does not end
    it."""
    spans: list[Span] = []
    for mark in _FIELD_START.finditer(dsn, start):
        if spans and mark.start() < spans[-1][1]:
            continue  # inside a value already hidden
        found = _FIELD.match(dsn, mark.end())
        if found is None or "password" not in unquote_plus(found.group(1)).lower():
            continue
        end = len(dsn)
        for stop in _FIELD_END.finditer(dsn, found.end()):
            if _FIELD.match(dsn, stop.end()):
                end = stop.start()
                break
        spans.append((found.end(), end))
    return spans


def _keyword_spans(dsn: str) -> list[Span]:
    spans = []
    position = 0
    while True:
        found = _KEYWORD.match(dsn, position)
        if found is None:
            if dsn[position:].strip():
                spans.append((position, len(dsn)))  # not keyword/value text: hide the rest
            break
        start = end = found.end()
        if dsn.startswith("'", start):
            end += 1
            while end < len(dsn) and dsn[end] != "'":
                end += 2 if dsn[end] == "\\" else 1
            end = min(end + 1, len(dsn))
        else:
            while end < len(dsn) and not dsn[end].isspace():
                end += 2 if dsn[end] == "\\" else 1
            end = min(end, len(dsn))
        if "password" in found.group(1).lower():
            spans.append((start, end))
        position = end
    return spans


def _is_port(text: str, *, empty: bool = False) -> bool:
    port = unquote(text)
    if not port:
        return empty
    return port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


def mask_dsn(dsn: object) -> str:
    """The DSN with each secret (see `secret_spans`) as `***`, for errors and reprs. Anything
    that is not a str is shown as its type."""
    if not isinstance(dsn, str):
        return f"<{type(dsn).__name__}>"
    parts = []
    position = 0
    for start, end in secret_spans(dsn):
        parts.append(dsn[position:start] + "***")
        position = end
    parts.append(dsn[position:])
    return "".join(parts)


def dsn_secrets(dsn: str) -> list[str]:
    """The secrets in `dsn` as written and as decoded (percent-encoding, `+`, quotes), longest
    first: what must not appear in any message about it."""
    found: set[str] = set()
    for start, end in secret_spans(dsn):
        raw = dsn[start:end]
        found.update((raw, unquote(raw), unquote_plus(raw)))
        if len(raw) > 1 and raw[0] == raw[-1] == "'":
            found.add(re.sub(r"\\(.)", r"\1", raw[1:-1]))
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def hide_secrets(text: str, dsn: str) -> str:
    """`text` (a driver's error message, say) with every secret of `dsn` in it as `***`."""
    for secret in dsn_secrets(dsn):
        text = text.replace(secret, "***")
    return text


def _dsn_problem(dsn: str) -> str | None:
    """Why asyncpg would misread `dsn` (a `postgresql://` URI), or None. A misread DSN is
    refused rather than masked by guesswork: a raw `@`, `/`, `?`, `#` or `&` in a password
    would move part of it into the host, port, path or query, where no mask is sure to find
    it."""
    encode = "percent-encode '@' (%40), '/' (%2F), '?' (%3F), '#' (%23), '&' (%26) in it"
    if any(ord(char) < 0x20 or char == "\x7f" for char in dsn):
        return "holds a control character (percent-encode it)"
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        return f"is not a valid URI ({exc})"
    if dsn.count("@") > 1 or ("@" in dsn and "@" not in parts.netloc):
        return f"holds an '@' besides the one before the host: in a user name or password, {encode}"
    if "#" in dsn:
        return f"has a '#' fragment: in a password, {encode}"
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(",") if hosts else ():
        if host.startswith("["):
            shape = re.fullmatch(r"\[[^\]]+\](?::(.*))?", host)
            port = None if shape is None else shape.group(1)
            if shape is None:
                return "has an invalid IPv6 host (write it as [address]:port)"
        elif not host:
            return "has an empty host in its host list"
        else:
            port = host.partition(":")[2] if ":" in host else None
        if port is not None and not _is_port(port, empty=True):
            return f"has a port that is not a number from 1 to 65535: in a password, {encode}"
    if parts.query:
        try:
            parse_qs(parts.query, strict_parsing=True)
        except ValueError:
            return f"has a query field that is not name=value: in a password, {encode}"
    return None


@dataclass(frozen=True, slots=True, repr=False)
class PostgresConfig:
    """Settings of the PostgreSQL backend (asyncpg, one `COPY` per batch). Needs the
    `postgres` extra: `pip install 'asynclog[postgres]'`."""

    dsn: str = ""
    """Required: a `postgresql://user:password@host:port/database?options` URI (libpq's URI
    form, as asyncpg takes it). Its secrets (the password, any `*password*` query field)
    never appear in reprs or errors; one asyncpg would misread (a raw `@`, `/`, `?`, `#` in a
    password) is refused."""
    table: str = "logs"
    """The table's name: a plain identifier, at most 54 characters; quoted, so case matters."""
    schema: str | None = None
    """The table's schema (which must exist); None: the first schema of the `search_path`."""
    create_table: bool = True
    """Create the table and its indexes when missing (at open, and if dropped while running).
    False: the table must exist with the columns in docs/postgres.md."""
    connect_timeout: float = 10.0
    """Seconds one connection attempt may take."""
    command_timeout: float | None = 30.0
    """Seconds one statement (a batch's `COPY`, its commit) may take before the connection is
    given up and the batch retried on a new one; None: no limit."""
    reconnect_attempts: int = 5
    """Within one `write_batch`: how many times a lost connection is re-established and the
    batch retried before the call fails (then the manager's `retry_attempts` take over)."""
    reconnect_backoff: float = 0.1
    """Seconds before the first reconnection; doubled for each further one."""
    concurrency: int = 1
    """Batches in flight at once (1 to 64), each `COPY` on its own connection: more than 1
    raises throughput when the round trip dominates, and gives up the order of the rows
    across batches (docs/postgres.md)."""
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"postgres"`."""

    def __post_init__(self) -> None:
        owner = "PostgresConfig"
        if not isinstance(self.dsn, str) or not self.dsn.startswith(DSN_SCHEMES):
            given = "nothing" if self.dsn == "" else shown(mask_dsn(self.dsn))
            if isinstance(self.dsn, str) and _KEYWORD.match(self.dsn):
                given += " (a keyword/value DSN: asynclog takes the URI form only)"
            raise ConfigError(
                f"{owner}.dsn is required: a URI like "
                f"'postgresql://user:password@host:5432/database', got {given}",
                key="dsn",
            )
        problem = _dsn_problem(self.dsn)
        if problem is not None:
            raise ConfigError(f"{owner}.dsn {problem}: {shown(mask_dsn(self.dsn))}", key="dsn")
        require_identifier(owner, "table", self.table, TABLE_MAX_LENGTH)
        if self.schema is not None:
            require_identifier(owner, "schema", self.schema)
        require_bool(owner, "create_table", self.create_table)
        require_positive_number(owner, "connect_timeout", self.connect_timeout, MAX_SECONDS)
        optional_positive_number(owner, "command_timeout", self.command_timeout, MAX_SECONDS)
        int_at_least(owner, "reconnect_attempts", self.reconnect_attempts, 0, MAX_ATTEMPTS)
        number_at_least(owner, "reconnect_backoff", self.reconnect_backoff, 0, MAX_BACKOFF)
        int_at_least(owner, "concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        optional_level(owner, "level", self.level)
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigError(
                f"{owner}.name must be a non-empty str or None, got {shown(self.name)}",
                key="name",
            )

    @property
    def masked_dsn(self) -> str:
        """The DSN with the password replaced by `***`."""
        return mask_dsn(self.dsn)

    @property
    def qualified_table(self) -> str:
        """`"schema"."table"`, or `"table"`, quoted for SQL."""
        table = f'"{self.table}"'
        return table if self.schema is None else f'"{self.schema}".{table}'

    def __repr__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            text = repr(mask_dsn(value)) if field.name == "dsn" else repr(value)
            parts.append(f"{field.name}={text}")
        return f"PostgresConfig({', '.join(parts)})"
