"""`SQLiteConfig`: the settings of the SQLite backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    MAX_SECONDS,
    StrPath,
    number_at_least,
    optional_duration,
    optional_int_at_least,
    optional_level,
    require_bool,
    require_choice,
    require_mode,
    require_path,
    shown,
)

MAX_ROWS = 2**63 - 1
"""SQLite's largest rowid."""

SYNCHRONOUS_MODES = ("NORMAL", "FULL")


@dataclass(frozen=True, slots=True)
class SQLiteConfig:
    """Settings of the SQLite backend (aiosqlite, WAL, one transaction per batch)."""

    db_path: StrPath = "./logs/app.db"
    table: str = "logs"
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """`NORMAL`: a commit survives an application crash; `FULL`: also a power loss."""
    busy_timeout: float = 5.0
    """Seconds a write waits for another connection's lock before failing (then retried)."""
    mode: int = 0o640
    """Permissions of a database file asynclog creates (the process umask still applies)."""
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"sqlite"`."""
    fts: bool = False
    """Keep an FTS5 full-text index of `message` in `"{table}_fts"` (needs SQLite's FTS5)."""
    max_rows: int | None = None
    """Keep at most this many newest rows (by id); None: no limit."""
    max_age: float | str | None = None
    """Delete rows whose `ts` is older than this: seconds, or `"45s"`, `"30m"`, `"12h"`, `"7d"`."""
    retention_interval: float = 1.0
    """Seconds between retention passes (0: after every batch); a close always runs one."""

    def __post_init__(self) -> None:
        require_path("SQLiteConfig", "db_path", self.db_path)
        require_choice("SQLiteConfig", "synchronous", self.synchronous, SYNCHRONOUS_MODES)
        number_at_least("SQLiteConfig", "busy_timeout", self.busy_timeout, 0, MAX_SECONDS)
        require_mode("SQLiteConfig", self.mode)
        optional_level("SQLiteConfig", "level", self.level)
        require_bool("SQLiteConfig", "fts", self.fts)
        optional_int_at_least("SQLiteConfig", "max_rows", self.max_rows, 1, MAX_ROWS)
        optional_duration("SQLiteConfig", "max_age", self.max_age)
        number_at_least(
            "SQLiteConfig", "retention_interval", self.retention_interval, 0, MAX_SECONDS
        )
        if (
            not isinstance(self.table, str)
            or not self.table.isidentifier()
            or not self.table.isascii()
        ):
            raise ConfigError(
                f"SQLiteConfig.table must be a plain identifier (letters, digits, underscore), "
                f"got {shown(self.table)}",
                key="table",
            )
        if self.table.lower().startswith("sqlite_"):
            raise ConfigError(
                f"SQLiteConfig.table may not start with 'sqlite_', got {shown(self.table)}",
                key="table",
            )

    @property
    def max_age_seconds(self) -> float | None:
        """`max_age` in seconds, or None."""
        return optional_duration("SQLiteConfig", "max_age", self.max_age)
