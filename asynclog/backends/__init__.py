"""Built-in backends, and the factories that pick them from a `Config`.

Each backend module registers its name, settings class and factory with
`_backend_registry.register_backend` when it is imported; importing this package imports the
built-in ones.
"""

from __future__ import annotations

from typing import cast

from .._backend_registry import make_backend
from .._config import BackendSpec, Config, FileConfig
from ..formatters import json_format
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
    """The backend a validated sink (`Config.sinks[i].target`) asks for: the registered
    factory's for a backend's settings, else the Backend object itself."""
    backend = make_backend(target)
    return cast("Backend", target) if backend is None else backend


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
