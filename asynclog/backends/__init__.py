"""Built-in backends, and the factories that pick them from a `Config`."""

from __future__ import annotations

from .._config import (
    BackendSpec,
    Config,
    ConsoleConfig,
    FileConfig,
    OTLPConfig,
    PostgresConfig,
    SQLiteConfig,
    SyslogConfig,
)
from ..formatters import formatter_for, json_format
from .base import Backend
from .console import ConsoleBackend
from .file import FileBackend
from .otlp import OTLPBackend
from .postgres import PostgresBackend
from .sqlite import SQLiteBackend
from .syslog import SyslogBackend, SyslogStats

__all__ = [
    "Backend",
    "ConsoleBackend",
    "FileBackend",
    "OTLPBackend",
    "PostgresBackend",
    "SQLiteBackend",
    "SyslogBackend",
    "SyslogStats",
    "backend_for",
    "fallback_for",
]

DEAD_LETTER_SUFFIX = ".deadletter"
"""The default fallback of a file or SQLite backend: `<its path>.deadletter`, JSON lines."""


def backend_for(target: BackendSpec | Backend) -> Backend:
    """The backend a validated sink (`Config.sinks[i].target`) asks for."""
    if isinstance(target, FileConfig):
        return FileBackend(target)
    if isinstance(target, SQLiteConfig):
        return SQLiteBackend(target)
    if isinstance(target, ConsoleConfig):
        return ConsoleBackend(formatter_for(target.format), target.stream)
    if isinstance(target, PostgresConfig):
        return PostgresBackend(target)
    if isinstance(target, OTLPConfig):
        return OTLPBackend(target)
    if isinstance(target, SyslogConfig):
        return SyslogBackend(target)
    return target


def fallback_for(config: Config, primary: Backend) -> Backend | None:
    """Where batches go when `primary` keeps failing; None when there is nowhere to go."""
    fallback = config.fallback
    if not isinstance(fallback, str):
        return fallback
    if fallback == "none":
        return None
    if fallback == "stderr":
        return ConsoleBackend(json_format)
    if isinstance(primary, FileBackend | SQLiteBackend):
        dead_letters = FileConfig(
            file_path=primary.path + DEAD_LETTER_SUFFIX,
            max_file_size_mb=1024 * 1024,  # never rotated: every line is evidence
            max_backups=0,
            format="json",
            mode=primary.config.mode,
        )
        return FileBackend(dead_letters, follow_symlink=False)
    if isinstance(primary, ConsoleBackend):
        return None  # stderr itself failed: there is nowhere else to write
    return ConsoleBackend(json_format)
