"""Built-in backends, and the factory that picks one from a `Config`."""

from __future__ import annotations

from .._config import Config, FileConfig, SQLiteConfig
from .base import Backend
from .console import ConsoleBackend
from .file import FileBackend
from .sqlite import SQLiteBackend

__all__ = ["Backend", "ConsoleBackend", "FileBackend", "SQLiteBackend", "backend_for"]


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
