"""Configuration dataclasses. Each validates itself and raises `ConfigError` naming the field."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ._errors import ConfigError
from ._levels import Level, parse_level

if TYPE_CHECKING:
    from .backends.base import Backend

BACKEND_NAMES = ("file", "sqlite", "console")
FORMAT_NAMES = ("text", "json")

StrPath = str | os.PathLike[str]


def _require_number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{owner}.{name} must be a number, got {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{owner}.{name} must be a finite number, got {value!r}")
    return float(value)


def _require_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name} must be an int, got {value!r}")
    return value


def _require_path(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(f"{owner}.{name} must be a non-empty path, got {value!r}")


@dataclass(frozen=True, slots=True)
class FileConfig:
    """Settings of the file backend: one entry per line, size rotation."""

    file_path: StrPath = "./logs/app.log"
    max_file_size_mb: float = 10.0
    """Rotate before a write would push the file past this size (MiB; 0.01 works)."""
    max_backups: int = 5
    """How many rotated files (`app.log.1` ... `app.log.N`) to keep; 0 keeps none."""
    format: Literal["text", "json"] = "text"

    def __post_init__(self) -> None:
        _require_path("FileConfig", "file_path", self.file_path)
        size = _require_number("FileConfig", "max_file_size_mb", self.max_file_size_mb)
        if size <= 0:
            raise ConfigError(f"max_file_size_mb must be > 0, got {self.max_file_size_mb!r}")
        if _require_int("FileConfig", "max_backups", self.max_backups) < 0:
            raise ConfigError(f"max_backups must be >= 0, got {self.max_backups!r}")
        if self.format not in FORMAT_NAMES:
            raise ConfigError(
                f"FileConfig.format must be one of {', '.join(FORMAT_NAMES)}, got {self.format!r}"
            )

    @property
    def max_bytes(self) -> int:
        """The size limit in bytes."""
        return max(1, int(self.max_file_size_mb * 1024 * 1024))


@dataclass(frozen=True, slots=True)
class SQLiteConfig:
    """Settings of the SQLite backend (aiosqlite, WAL, one transaction per batch)."""

    db_path: StrPath = "./logs/app.db"
    table: str = "logs"

    def __post_init__(self) -> None:
        _require_path("SQLiteConfig", "db_path", self.db_path)
        if (
            not isinstance(self.table, str)
            or not self.table.isidentifier()
            or not self.table.isascii()
        ):
            raise ConfigError(
                f"SQLiteConfig.table must be a plain identifier (letters, digits, underscore), "
                f"got {self.table!r}"
            )
        if self.table.lower().startswith("sqlite_"):
            raise ConfigError(
                f"SQLiteConfig.table may not start with 'sqlite_', got {self.table!r}"
            )


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `LogManager` needs. Invalid values raise `ConfigError` at construction."""

    backend: str | Backend = "file"
    """`"file"`, `"sqlite"`, `"console"` (stderr), or any object implementing `Backend`."""
    backend_config: FileConfig | SQLiteConfig | None = None
    """Settings of a built-in backend; `None` takes that backend's defaults."""
    async_mode: bool = False
    """False (default): `write_log` writes before it returns. True: a queue and a worker task."""
    queue_size: int = 1000
    """Async mode: how many entries may wait for the worker."""
    put_timeout: float = 0.1
    """Async mode: seconds `write_log` waits for room in a full queue before `QueueFullError`."""
    level: Level | int | str = Level.DEBUG
    """Entries below this level are discarded at the call."""
    name: str = "asynclog"
    """The logger name every entry carries."""
    batch_size: int = 1000
    """Async mode: the most entries the worker hands to the backend in one write."""
    min_level: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        self._check_backend()
        if not isinstance(self.async_mode, bool):
            raise ConfigError(f"async_mode must be a bool, got {self.async_mode!r}")
        if _require_int("Config", "queue_size", self.queue_size) < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size!r}")
        if _require_number("Config", "put_timeout", self.put_timeout) < 0:
            raise ConfigError(f"put_timeout must be >= 0, got {self.put_timeout!r}")
        if _require_int("Config", "batch_size", self.batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty str, got {self.name!r}")
        try:
            min_level = parse_level(self.level)
        except ValueError as exc:
            raise ConfigError(f"level: {exc}") from None
        object.__setattr__(self, "min_level", min_level)

    def _check_backend(self) -> None:
        backend, backend_config = self.backend, self.backend_config
        if isinstance(backend, str):
            if backend not in BACKEND_NAMES:
                raise ConfigError(
                    f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_NAMES)} "
                    "or an object implementing Backend"
                )
            expected: type | None = {"file": FileConfig, "sqlite": SQLiteConfig}.get(backend)
            if backend_config is not None and (
                expected is None or type(backend_config) is not expected
            ):
                wanted = expected.__name__ if expected else "None"
                raise ConfigError(
                    f"backend_config for backend {backend!r} must be {wanted}, "
                    f"got {type(backend_config).__name__}"
                )
            return
        missing = [
            name
            for name in ("open", "write_batch", "close")
            if not callable(getattr(backend, name, None))
        ]
        if missing:
            raise ConfigError(
                f"backend must be a backend name or implement Backend; {type(backend).__name__} "
                f"lacks {', '.join(missing)}"
            )
        if backend_config is not None:
            raise ConfigError("backend_config must be None when backend is a Backend object")
