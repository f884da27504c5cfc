"""`PostgresConfig`: the settings of the PostgreSQL backend."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    int_at_least,
    number_at_least,
    optional_level,
    optional_positive_number,
    require_bool,
    require_identifier,
    require_positive_number,
)

DSN_SCHEMES = ("postgresql://", "postgres://")

TABLE_MAX_LENGTH = 63 - len("_level_ts")
"""PostgreSQL keeps 63 characters of a name; the index `"{table}_level_ts"` must fit too."""

_URI_PASSWORD = re.compile(r"^(\w+://[^:/?#@]*):[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def mask_dsn(dsn: object) -> str:
    """The DSN with its password (in the user part or a `password=` parameter) as `***`, for
    errors and reprs. Anything that is not a str is shown as its type."""
    if not isinstance(dsn, str):
        return f"<{type(dsn).__name__}>"
    masked = _URI_PASSWORD.sub(r"\1:***@", dsn)
    return _QUERY_PASSWORD.sub(r"\1***", masked)


@dataclass(frozen=True, slots=True, repr=False)
class PostgresConfig:
    """Settings of the PostgreSQL backend (asyncpg, one `COPY` per batch). Needs the
    `postgres` extra: `pip install 'asynclog[postgres]'`."""

    dsn: str = ""
    """Required: a `postgresql://user:password@host:port/database?options` URI (libpq's URI
    form, as asyncpg takes it). The password never appears in reprs or errors."""
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
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"postgres"`."""

    def __post_init__(self) -> None:
        owner = "PostgresConfig"
        if not isinstance(self.dsn, str) or not self.dsn.startswith(DSN_SCHEMES):
            shown = "nothing" if self.dsn == "" else repr(mask_dsn(self.dsn))
            raise ConfigError(
                f"{owner}.dsn is required: a URI like "
                f"'postgresql://user:password@host:5432/database', got {shown}",
                key="dsn",
            )
        require_identifier(owner, "table", self.table, TABLE_MAX_LENGTH)
        if self.schema is not None:
            require_identifier(owner, "schema", self.schema)
        require_bool(owner, "create_table", self.create_table)
        require_positive_number(owner, "connect_timeout", self.connect_timeout)
        optional_positive_number(owner, "command_timeout", self.command_timeout)
        int_at_least(owner, "reconnect_attempts", self.reconnect_attempts, 0)
        number_at_least(owner, "reconnect_backoff", self.reconnect_backoff, 0)
        optional_level(owner, "level", self.level)
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigError(
                f"{owner}.name must be a non-empty str or None, got {self.name!r}", key="name"
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
            shown = repr(mask_dsn(value)) if field.name == "dsn" else repr(value)
            parts.append(f"{field.name}={shown}")
        return f"PostgresConfig({', '.join(parts)})"
