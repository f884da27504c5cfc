"""`FileConfig`: the settings of the file backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    LOOP_WRITE_LIMIT,
    MAX_MIB,
    MAX_SECONDS,
    FormatSpec,
    StrPath,
    check_loop_writes,
    int_at_least,
    number_at_least,
    optional_duration,
    optional_level,
    optional_positive_number,
    optional_rotation_period,
    require_bool,
    require_choice,
    require_format,
    require_mode,
    require_path,
    require_positive_number,
    shown,
)

MAX_BACKUPS = 10_000
"""The most rotated files to keep: each rotation renames every one of them."""

FORMAT_NAMES = ("text", "json", "logfmt")

JsonFields = Literal["nested", "flat"]
JsonStyle = Literal["ecs", "gcp", "otel"]
JSON_FIELDS = ("nested", "flat")
JSON_STYLES = ("ecs", "gcp", "otel")


def check_json_shape(owner: str, format: object, json_fields: object, json_style: object) -> None:
    """`json_fields` and `json_style` are known names, and only asked of the JSON format
    (`json_fields="flat"` with no style)."""
    require_choice(owner, "json_fields", json_fields, JSON_FIELDS)
    if json_style is not None:
        require_choice(owner, "json_style", json_style, JSON_STYLES)
        if json_fields != "nested":
            raise ConfigError(
                f"{owner}.json_fields must stay 'nested' with json_style={json_style!r} (the "
                f"style places the fields itself), got {shown(json_fields)}",
                key="json_fields",
            )
    for name, value, default in (
        ("json_fields", json_fields, "nested"),
        ("json_style", json_style, None),
    ):
        if value != default and format != "json":
            raise ConfigError(
                f"{owner}.{name}={value!r} needs format='json', got format={shown(format)}",
                key=name,
            )


@dataclass(frozen=True, slots=True)
class FileConfig:
    """Settings of the file backend: one entry per record, size and time rotation, retention,
    compression, and reopening after an external tool (logrotate) moved the file.

    See docs/file-backend.md for the naming of rotated files and the exact behaviour."""

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
    rotate_every: str | None = None
    """Also rotate when an entry's timestamp enters a new period: `"midnight"` (local time), or
    `"<N>s|m|h|d"` (`"1h"`, `"30m"`, `"1d"`) aligned to the Unix epoch (so `"1d"` turns at
    00:00 UTC). None: size rotation only."""
    max_age: float | str | None = None
    """Delete rotated files last written longer ago than this: seconds, or `"12h"`, `"7d"`."""
    max_total_mb: float | None = None
    """Cap on the total size of the rotated files (MiB, after compression); oldest go first."""
    compress: bool = False
    """gzip each rotated file (`app.log.1.gz`, ...) on a background thread of the backend."""
    reopen_check_interval: float | None = 0.1
    """Seconds between checks (before a write) whether another program moved, deleted or
    truncated the file (logrotate); 0 checks before every batch, None never."""
    shared: bool = False
    """Several processes write this file: each batch is written under an exclusive `flock` of
    `<file_path>.lock`, so rotation (by size or time) happens once, in one process, and the
    others follow to the new file. Every process must set it, with the same rotation options.
    (Checks the path before every batch, whatever `reopen_check_interval` says.)"""
    json_fields: JsonFields = "nested"
    """With `format="json"`: `"nested"` keeps the fields in their own `"fields"` object;
    `"flat"` writes them beside the record's keys (a field named like one of those gets
    `fields.` in front: `fields.level`). docs/backends-and-formats.md shows both."""
    json_style: JsonStyle | None = None
    """With `format="json"`: write the documents of a log stack instead: `"ecs"` (Elastic
    Common Schema), `"gcp"` (Cloud Logging structured JSON), `"otel"` (the OpenTelemetry log
    data model's names). None: asynclog's own shape (`json_fields`)."""
    write_on_loop: bool = False
    """Async mode: write each batch on the event loop's thread, as sync mode and
    `logging.FileHandler` do, instead of handing it to the backend's own thread: less CPU an
    entry and no loop turn waited per batch (docs/benchmarks.md, "The writer thread's cost"),
    but while a write lasts the loop waits: on a slow or stuck disk it stalls. A write that
    takes longer than `loop_write_limit` sends the later ones to the thread for good, said
    once on stderr. For a local disk; not with `fsync` or `shared`, whose flush and lock wait
    are exactly such stalls."""
    loop_write_limit: float = LOOP_WRITE_LIMIT
    """With `write_on_loop=True`: the seconds one write may hold the loop before the backend
    goes back to its thread. Wall time: a full garbage collection of a large heap (tens of
    milliseconds) or a busy machine counts too, which is why the default is not lower."""
    process_fields: bool | None = None
    """Each line carries the writing process's host name and pid (`host=... pid=...` in text
    and logfmt; `"host"`, `"pid"` or the style's names in JSON), as SQLite rows do. None (the
    default): on when `shared` is, else off. Needs a built-in format."""

    def __post_init__(self) -> None:
        require_path("FileConfig", "file_path", self.file_path)
        require_bool("FileConfig", "fsync", self.fsync)
        require_mode("FileConfig", self.mode)
        require_positive_number("FileConfig", "max_file_size_mb", self.max_file_size_mb, MAX_MIB)
        int_at_least("FileConfig", "max_backups", self.max_backups, 0, MAX_BACKUPS)
        require_format("FileConfig", self.format, FORMAT_NAMES)
        optional_level("FileConfig", "level", self.level)
        optional_rotation_period("FileConfig", "rotate_every", self.rotate_every)
        optional_duration("FileConfig", "max_age", self.max_age)
        optional_positive_number("FileConfig", "max_total_mb", self.max_total_mb, MAX_MIB)
        require_bool("FileConfig", "compress", self.compress)
        require_bool("FileConfig", "shared", self.shared)
        stalls = {}
        if self.fsync:
            stalls["fsync=True"] = "each flush to disk"
        if self.shared:
            stalls["shared=True"] = "the wait for the lock"
        check_loop_writes("FileConfig", self.write_on_loop, self.loop_write_limit, stalls)
        check_json_shape("FileConfig", self.format, self.json_fields, self.json_style)
        if self.process_fields is not None:
            require_bool("FileConfig", "process_fields", self.process_fields)
            if self.process_fields and not isinstance(self.format, str):
                raise ConfigError(
                    "FileConfig.process_fields=True needs a built-in format (text, json, "
                    f"logfmt), got format={shown(self.format)}",
                    key="process_fields",
                )
        if self.reopen_check_interval is not None:
            number_at_least(
                "FileConfig", "reopen_check_interval", self.reopen_check_interval, 0, MAX_SECONDS
            )

    @property
    def with_process_fields(self) -> bool:
        """Whether lines carry the host and pid: `process_fields`, or `shared` when None (a
        custom formatter gets no process fields)."""
        wanted = self.shared if self.process_fields is None else self.process_fields
        return wanted and isinstance(self.format, str)

    @property
    def max_bytes(self) -> int:
        """The size limit in bytes."""
        return max(1, int(self.max_file_size_mb * 1024 * 1024))

    @property
    def rotation_period(self) -> float | str | None:
        """`rotate_every` parsed: `"midnight"`, a period in seconds, or None."""
        return optional_rotation_period("FileConfig", "rotate_every", self.rotate_every)

    @property
    def max_age_seconds(self) -> float | None:
        """`max_age` in seconds, or None."""
        return optional_duration("FileConfig", "max_age", self.max_age)

    @property
    def max_total_bytes(self) -> int | None:
        """`max_total_mb` in bytes, or None."""
        if self.max_total_mb is None:
            return None
        return max(1, int(self.max_total_mb * 1024 * 1024))
