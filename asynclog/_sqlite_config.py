"""`SQLiteConfig`: the settings of the SQLite backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    LOOP_WRITE_LIMIT,
    MAX_SECONDS,
    StrPath,
    check_loop_writes,
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
    write_on_loop: bool = False
    """Run each batch's transaction on the event loop's thread (async and sync mode) instead of
    handing it to aiosqlite's thread: no loop turn waited per batch, which keeps batch latency
    low on a saturated loop (docs/sqlite-schema.md, "Writing on the loop"). The loop waits
    while the transaction lasts. It never waits for a lock: when another connection holds the
    database, that batch goes to the thread, which waits up to `busy_timeout`. A transaction
    that takes longer than `loop_write_limit` (a slow disk, a large checkpoint) sends the later
    ones to the thread for good, said once on stderr. For a local disk; not with
    `synchronous="FULL"`."""
    loop_write_limit: float = LOOP_WRITE_LIMIT
    """With `write_on_loop=True`: the seconds one transaction may hold the loop before the
    backend goes back to its thread (wall time)."""

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
        full = self.synchronous == "FULL"
        stalls = {"synchronous='FULL'": "each commit's flush to disk"} if full else {}
        check_loop_writes("SQLiteConfig", self.write_on_loop, self.loop_write_limit, stalls)
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
