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
OVERFLOW_POLICIES = ("timeout", "block", "drop_newest", "drop_oldest")
FALLBACK_NAMES = ("auto", "stderr", "none")
SYNCHRONOUS_MODES = ("NORMAL", "FULL")

Overflow = Literal["timeout", "block", "drop_newest", "drop_oldest"]

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


def _require_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name} must be a bool, got {value!r}")


def _require_mode(owner: str, value: object) -> None:
    if not 0 <= _require_int(owner, "mode", value) <= 0o777:
        raise ConfigError(f"{owner}.mode must be a permission mode like 0o640, got {value!r}")


def _int_at_least(owner: str, name: str, value: object, minimum: int) -> None:
    if _require_int(owner, name, value) < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


def _number_at_least(owner: str, name: str, value: object, minimum: float) -> None:
    if _require_number(owner, name, value) < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


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
    fsync: bool = False
    """`os.fsync` after every batch: survives a power loss, at the cost of a disk flush."""
    mode: int = 0o640
    """Permissions of a file asynclog creates (the process umask still applies)."""

    def __post_init__(self) -> None:
        _require_path("FileConfig", "file_path", self.file_path)
        _require_bool("FileConfig", "fsync", self.fsync)
        _require_mode("FileConfig", self.mode)
        size = _require_number("FileConfig", "max_file_size_mb", self.max_file_size_mb)
        if size <= 0:
            raise ConfigError(f"max_file_size_mb must be > 0, got {self.max_file_size_mb!r}")
        _int_at_least("FileConfig", "max_backups", self.max_backups, 0)
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
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """`NORMAL`: a commit survives an application crash; `FULL`: also a power loss."""
    busy_timeout: float = 5.0
    """Seconds a write waits for another connection's lock before failing (then retried)."""
    mode: int = 0o640
    """Permissions of a database file asynclog creates (the process umask still applies)."""

    def __post_init__(self) -> None:
        _require_path("SQLiteConfig", "db_path", self.db_path)
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"SQLiteConfig.synchronous must be NORMAL or FULL, got {self.synchronous!r}"
            )
        _number_at_least("SQLiteConfig", "busy_timeout", self.busy_timeout, 0)
        _require_mode("SQLiteConfig", self.mode)
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
    overflow: Overflow = "timeout"
    """Async mode, queue full: `"timeout"` (wait `put_timeout`, then `QueueFullError`),
    `"block"` (wait for room), `"drop_newest"` (drop the new entry, no error),
    `"drop_oldest"` (evict the oldest queued entry below `priority_level`)."""
    priority_level: Level | int | str | None = Level.ERROR
    """Entries at or above it are never dropped for a full queue; `None` turns this off."""
    max_queue_bytes: int | None = None
    """Async mode: also bound the queue by the approximate size of its entries."""
    max_entry_bytes: int = 64 * 1024
    """A longer message or field value is truncated, with a marker saying how much was cut."""
    retry_attempts: int = 3
    """How many times a failed batch is retried before it goes to the fallback."""
    retry_backoff: float = 0.05
    """Seconds before the first retry; doubled for each further one."""
    fallback: str | Backend = "auto"
    """Where a batch goes when the retries fail: `"auto"` (a JSON-lines dead-letter file beside
    the primary, or stderr when the primary has no path), `"stderr"`, `"none"`, or a Backend."""
    min_level: int = field(init=False, repr=False, compare=False, default=0)
    priority_min: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        self._check_backend()
        if not isinstance(self.async_mode, bool):
            raise ConfigError(f"async_mode must be a bool, got {self.async_mode!r}")
        _int_at_least("Config", "queue_size", self.queue_size, 1)
        _number_at_least("Config", "put_timeout", self.put_timeout, 0)
        _int_at_least("Config", "batch_size", self.batch_size, 1)
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty str, got {self.name!r}")
        try:
            min_level = parse_level(self.level)
        except ValueError as exc:
            raise ConfigError(f"level: {exc}") from None
        object.__setattr__(self, "min_level", min_level)
        self._check_reliability()

    def _check_reliability(self) -> None:
        if self.overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {self.overflow!r}"
            )
        priority = 101  # above every level: nothing is priority
        if self.priority_level is not None:
            try:
                priority = parse_level(self.priority_level)
            except ValueError as exc:
                raise ConfigError(f"priority_level: {exc}") from None
        object.__setattr__(self, "priority_min", priority)
        if self.max_queue_bytes is not None:
            _int_at_least("Config", "max_queue_bytes", self.max_queue_bytes, 1024)
        _int_at_least("Config", "max_entry_bytes", self.max_entry_bytes, 256)
        _int_at_least("Config", "retry_attempts", self.retry_attempts, 0)
        _number_at_least("Config", "retry_backoff", self.retry_backoff, 0)
        fallback = self.fallback
        if isinstance(fallback, str):
            if fallback not in FALLBACK_NAMES:
                raise ConfigError(
                    f"fallback must be one of {', '.join(FALLBACK_NAMES)} or a Backend, "
                    f"got {fallback!r}"
                )
        elif _missing_methods(fallback):
            raise ConfigError(
                f"fallback {type(fallback).__name__} lacks {', '.join(_missing_methods(fallback))}"
            )

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
        missing = _missing_methods(backend)
        if missing:
            raise ConfigError(
                f"backend must be a backend name or implement Backend; {type(backend).__name__} "
                f"lacks {', '.join(missing)}"
            )
        if backend_config is not None:
            raise ConfigError("backend_config must be None when backend is a Backend object")


def _missing_methods(backend: object) -> list[str]:
    return [
        name
        for name in ("open", "write_batch", "close")
        if not callable(getattr(backend, name, None))
    ]
