"""`FileConfig`: the settings of the file backend."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    FormatSpec,
    StrPath,
    int_at_least,
    optional_level,
    require_bool,
    require_format,
    require_mode,
    require_number,
    require_path,
)

FORMAT_NAMES = ("text", "json", "logfmt")


@dataclass(frozen=True, slots=True)
class FileConfig:
    """Settings of the file backend: one entry per record, size rotation."""

    file_path: StrPath = "./logs/app.log"
    max_file_size_mb: float = 10.0
    """Rotate before a write would push the file past this size (MiB; 0.01 works)."""
    max_backups: int = 5
    """How many rotated files (`app.log.1` ... `app.log.N`) to keep; 0 keeps none."""
    format: FormatSpec = "text"
    """`"text"`, `"json"`, `"logfmt"`, or any callable `(LogEntry) -> str` returning one line."""
    fsync: bool = False
    """`os.fsync` after every batch: survives a power loss, at the cost of a disk flush."""
    mode: int = 0o640
    """Permissions of a file asynclog creates (the process umask still applies)."""
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"file"`."""

    def __post_init__(self) -> None:
        require_path("FileConfig", "file_path", self.file_path)
        require_bool("FileConfig", "fsync", self.fsync)
        require_mode("FileConfig", self.mode)
        size = require_number("FileConfig", "max_file_size_mb", self.max_file_size_mb)
        if size <= 0:
            raise ConfigError(
                f"max_file_size_mb must be > 0, got {self.max_file_size_mb!r}",
                key="max_file_size_mb",
            )
        int_at_least("FileConfig", "max_backups", self.max_backups, 0)
        require_format("FileConfig", self.format, FORMAT_NAMES)
        optional_level("FileConfig", "level", self.level)

    @property
    def max_bytes(self) -> int:
        """The size limit in bytes."""
        return max(1, int(self.max_file_size_mb * 1024 * 1024))
