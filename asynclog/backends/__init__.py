"""Built-in backends, and the factories that pick them from a `Config`."""

from __future__ import annotations

from .._config import Config, FileConfig, SQLiteConfig
from ..formatters import json_format
from .base import Backend
from .console import ConsoleBackend
from .file import FileBackend
from .sqlite import SQLiteBackend

__all__ = [
    "Backend",
    "ConsoleBackend",
    "FileBackend",
    "SQLiteBackend",
    "backend_for",
    "fallback_for",
]

DEAD_LETTER_SUFFIX = ".deadletter"
"""The default fallback of a file or SQLite backend: `<its path>.deadletter`, JSON lines."""


def backend_for(config: Config) -> Backend:
    """The backend a validated `Config` asks for."""
    backend = config.backend
    if not isinstance(backend, str):
        return backend
    options = config.backend_config
    if backend == "file":
        return FileBackend(options if isinstance(options, FileConfig) else None)
    if backend == "sqlite":
        return SQLiteBackend(options if isinstance(options, SQLiteConfig) else None)
    return ConsoleBackend()


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
        return FileBackend(dead_letters)
    if isinstance(primary, ConsoleBackend):
        return None  # stderr itself failed: there is nowhere else to write
    return ConsoleBackend(json_format)
