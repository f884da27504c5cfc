"""`Config` and the sink specs. Each validates itself and raises `ConfigError` naming the field."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from . import _config_data
from ._backend_registry import (
    BACKEND_CONFIGS,
    BACKEND_NAMES,
    Sink,
    backend_name,
    missing_methods,
    settings_class,
    settings_classes,
)
from ._errors import ConfigError
from ._file_config import FORMAT_NAMES, FileConfig, JsonFields, JsonStyle, check_json_shape
from ._levels import Level
from ._otlp_config import OTLPConfig
from ._postgres_config import PostgresConfig
from ._processing import Processor, check_processors, processor_name
from ._sqlite_config import SQLiteConfig
from ._syslog_config import SyslogConfig
from ._validate import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_BYTES,
    MAX_COUNT,
    MAX_SECONDS,
    FormatSpec,
    int_at_least,
    level_number,
    number_at_least,
    optional_level,
    require_choice,
    require_format,
    shown,
)
from .processors import Dedupe, RateLimit

if TYPE_CHECKING:
    from ._validate import StrPath
    from .backends.base import Backend

__all__ = [
    "BACKEND_CONFIGS",
    "BACKEND_NAMES",
    "Config",
    "ConsoleConfig",
    "FileConfig",
    "OTLPConfig",
    "PostgresConfig",
    "SQLiteConfig",
    "Sink",
    "SinkSpec",
    "SyslogConfig",
]

OVERFLOW_POLICIES = ("timeout", "block", "drop_newest", "drop_oldest")
FALLBACK_NAMES = ("auto", "stderr", "none")

Overflow = Literal["timeout", "block", "drop_newest", "drop_oldest"]

CONSOLE_FORMAT_NAMES = (*FORMAT_NAMES, "pretty", "auto")
"""The console's formats: the file's, and the pretty one (`"auto"`: pretty on a terminal)."""


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """Settings of the console backend."""

    format: FormatSpec = "auto"
    """`"auto"` (the default: `"pretty"` when the stream is a terminal, else `"text"`),
    `"pretty"` (colours, for a developer's terminal: docs/console.md), `"text"`, `"json"`,
    `"logfmt"`, or any callable `(LogEntry) -> str`."""
    stream: Literal["stderr", "stdout"] = "stderr"
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"console"`."""
    json_fields: JsonFields = "nested"
    """With `format="json"`: `"nested"` or `"flat"`, as `FileConfig.json_fields`."""
    json_style: JsonStyle | None = None
    """With `format="json"`: `"ecs"`, `"gcp"` or `"otel"`, as `FileConfig.json_style`."""

    def __post_init__(self) -> None:
        require_format("ConsoleConfig", self.format, CONSOLE_FORMAT_NAMES)
        require_choice("ConsoleConfig", "stream", self.stream, ("stderr", "stdout"))
        optional_level("ConsoleConfig", "level", self.level)
        check_json_shape("ConsoleConfig", self.format, self.json_fields, self.json_style)


BackendSpec = (
    FileConfig | SQLiteConfig | ConsoleConfig | PostgresConfig | OTLPConfig | SyslogConfig
)
"""The settings classes of the built-in backends, for the type checker. At run time `Config`
takes the settings of any backend registered with `_backend_registry.register_backend` (the
built-ins register in their `backends/` modules), and reads that registry when it validates:
`BACKEND_CONFIGS` and `BACKEND_NAMES` are live views of it."""


class SinkSpec(NamedTuple):
    """One validated destination: its unique name, what to build, and its minimum level."""

    name: str
    target: BackendSpec | Backend
    min_level: int
    processors: tuple[Processor, ...] = ()
    """The sink's own processors (`Sink(processors=...)`)."""
    own_level: int | None = None
    """The backend's own level, if it has one (`min_level` also counts `Config`'s levels)."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `LogManager` needs. Invalid values raise `ConfigError` at construction."""

    backend: str | Backend | None = None
    """`"file"`, `"sqlite"`, `"console"` (stderr), or any object implementing `Backend`;
    None (the default) means the backend `backend_config` is the settings of, else `"file"`
    (unless `backends` is given)."""
    backend_config: BackendSpec | None = None
    """Settings of a registered backend (`SQLiteConfig(...)`: SQLite, even without `backend`);
    `None` takes that backend's defaults."""
    backends: Sequence[BackendSpec | Sink | Backend] | None = None
    """Several backends at once, each with its own worker and queue (async mode), level and
    format: `[FileConfig(...), SQLiteConfig(...), ConsoleConfig(...), Sink(obj), obj]`.
    Replaces `backend`/`backend_config`, which must then stay unset."""
    async_mode: bool = False
    """False (default): `write_log` writes before it returns. True: a queue and a worker task."""
    queue_size: int = 1000
    """Async mode: how many entries may wait for the worker (per backend)."""
    put_timeout: float = 0.1
    """Async mode: seconds `write_log` waits for room in a full queue before it drops the
    entry (`QueueFullError` with `raise_errors=True`)."""
    raise_errors: bool = False
    """False (default): a log call never raises for a full queue or a failed write; the entry
    is counted dropped and reported (in the log and on stderr), and the call returns False.
    True: it raises `QueueFullError` / `BackendWriteError` instead."""
    level: Level | int | str = Level.DEBUG
    """Entries below this level are discarded at the call."""
    name: str = "asynclog"
    """The logger name every entry carries."""
    levels: Mapping[str, Level | int | str] | None = None
    """Levels by logger name (`lm.get_logger(name)`, stdlib records): `{"app": "INFO",
    "app.db": "DEBUG"}`. The longest dotted prefix of a name wins (`"app"` covers `"app.db"`,
    not `"apple"`); names it does not cover are at `level`."""
    default: bool = False
    """This manager is the one `asynclog.get_logger(name)` uses (only one such manager may be
    alive and not closed at a time: a second raises `ConfigError` at construction)."""
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
    capture_location: bool = False
    """True: every entry carries the module, function and line of its call
    (`LogEntry.location`), found by walking the stack at each call (see docs/configuration.md
    for what it costs). Off by default."""
    fallback: str | Backend = "auto"
    """Where a batch goes when the retries fail: `"auto"` (a JSON-lines dead-letter file beside
    the primary, or stderr when the primary has no path), `"stderr"`, `"none"`, or a Backend."""
    processors: Sequence[Processor] = ()
    """Callables `LogEntry -> LogEntry | list[LogEntry] | None` run in order at the call,
    before the entry is queued: what they remove no handler, capture or backend sees; None
    filters the entry out (`stats.filtered_by`). See docs/processors.md and
    `asynclog.processors`. A backend's own: `Sink(..., processors=[...])`."""
    otel_context: bool = True
    """True (default): an entry logged while an OpenTelemetry span is current carries its
    `trace_id`, `span_id` and `trace_flags` fields, once the application has imported
    `opentelemetry.trace` (free until then). False: never."""
    min_level: int = field(init=False, repr=False, compare=False, default=0)
    level_map: Mapping[str, int] = field(
        init=False, repr=False, compare=False, default_factory=lambda: MappingProxyType({})
    )
    """`levels`, validated: level numbers by logger name (read-only)."""
    priority_min: int = field(init=False, repr=False, compare=False, default=0)
    sinks: tuple[SinkSpec, ...] = field(init=False, repr=False, compare=False, default=())
    """The validated destinations, in order (one for `backend=`)."""

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, object],
        *,
        env: Mapping[str, str] | None = None,
        base_dir: StrPath | None = None,
    ) -> Config:
        """A validated Config from plain data (parsed TOML/JSON); see docs/configuration-files.md.
        `env`: apply its `ASYNCLOG_*` overrides; `base_dir`: resolve relative paths against it."""
        return _config_data.build(cls, data, env=env, base_dir=base_dir)

    def __post_init__(self) -> None:
        if not isinstance(self.raise_errors, bool):
            raise ConfigError(
                f"raise_errors must be a bool, got {self.raise_errors!r}", "raise_errors"
            )
        if not isinstance(self.default, bool):
            raise ConfigError(f"default must be a bool, got {shown(self.default)}", "default")
        if not isinstance(self.async_mode, bool):
            raise ConfigError(
                f"async_mode must be a bool, got {shown(self.async_mode)}", "async_mode"
            )
        if not isinstance(self.capture_location, bool):
            raise ConfigError(
                f"capture_location must be a bool, got {shown(self.capture_location)}",
                "capture_location",
            )
        if not isinstance(self.otel_context, bool):
            raise ConfigError(
                f"otel_context must be a bool, got {shown(self.otel_context)}", "otel_context"
            )
        int_at_least("Config", "queue_size", self.queue_size, 1, MAX_COUNT)
        number_at_least("Config", "put_timeout", self.put_timeout, 0, MAX_SECONDS)
        int_at_least("Config", "batch_size", self.batch_size, 1, MAX_COUNT)
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty str, got {shown(self.name)}", "name")
        try:
            min_level = level_number(self.level)
        except ValueError as exc:
            raise ConfigError(f"level: {exc}", "level") from None
        object.__setattr__(self, "min_level", min_level)
        object.__setattr__(self, "level_map", _level_map(self.levels))
        self._check_reliability()
        object.__setattr__(self, "processors", check_processors("Config", self.processors))
        object.__setattr__(self, "sinks", self._resolve_sinks())
        _check_stateful_processors(self.processors, self.sinks)

    def _check_reliability(self) -> None:
        if not isinstance(self.overflow, str) or self.overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, "
                f"got {shown(self.overflow)}",
                "overflow",
            )
        priority = 101  # above every level: nothing is priority
        if self.priority_level is not None:
            try:
                priority = level_number(self.priority_level)
            except ValueError as exc:
                raise ConfigError(f"priority_level: {exc}", "priority_level") from None
        object.__setattr__(self, "priority_min", priority)
        if self.max_queue_bytes is not None:
            int_at_least("Config", "max_queue_bytes", self.max_queue_bytes, 1024, MAX_BYTES)
        int_at_least("Config", "max_entry_bytes", self.max_entry_bytes, 256, MAX_BYTES)
        int_at_least("Config", "retry_attempts", self.retry_attempts, 0, MAX_ATTEMPTS)
        number_at_least("Config", "retry_backoff", self.retry_backoff, 0, MAX_BACKOFF)
        fallback = self.fallback
        if isinstance(fallback, str):
            if fallback not in FALLBACK_NAMES:
                raise ConfigError(
                    f"fallback must be one of {', '.join(FALLBACK_NAMES)} or a Backend, "
                    f"got {shown(fallback)}",
                    "fallback",
                )
        elif missing_methods(fallback):
            raise ConfigError(
                f"fallback {type(fallback).__name__} lacks {', '.join(missing_methods(fallback))}",
                "fallback",
            )

    def _resolve_sinks(self) -> tuple[SinkSpec, ...]:
        if self.backends is None:
            return (self._single_sink(),)
        if self.backend is not None or self.backend_config is not None:
            raise ConfigError(
                "give either backend/backend_config or backends, not both", "backends"
            )
        if isinstance(self.backends, str | bytes) or not isinstance(self.backends, Sequence):
            raise ConfigError(
                f"backends must be a list, got {type(self.backends).__name__}", "backends"
            )
        if not self.backends:
            raise ConfigError("backends must name at least one backend", "backends")
        if len(self.backends) > 1 and not isinstance(self.fallback, str):
            raise ConfigError(
                "a Backend object as fallback serves a single backend; with several backends "
                "use fallback='auto', 'stderr' or 'none'",
                "fallback",
            )
        specs: list[SinkSpec] = []
        for index, item in enumerate(self.backends):
            try:
                specs.append(self._sink_of(item))
            except ConfigError as exc:
                key = f"backends[{index}]" + (f".{exc.key}" if exc.key else "")
                raise ConfigError(f"backends[{index}]: {exc}", key) from None
        _check_distinct_targets(specs)
        return _unique_names(specs, [_given_name(item) for item in self.backends])

    def _single_sink(self) -> SinkSpec:
        backend, options = self.backend, self.backend_config
        if backend is None:  # the backend its settings name (SQLiteConfig: "sqlite"), else file
            backend = "file" if options is None else _inferred_backend(options)
        if not isinstance(backend, str):
            missing = missing_methods(backend)
            if missing:
                raise ConfigError(
                    f"backend must be a backend name or implement Backend; "
                    f"{type(backend).__name__} lacks {', '.join(missing)}",
                    "backend",
                )
            if options is not None:
                raise ConfigError(
                    "backend_config must be None when backend is a Backend object",
                    "backend_config",
                )
            return self._spec(type(backend).__name__, backend, None)
        expected = settings_class(backend)
        if expected is None:
            raise ConfigError(
                f"unknown backend {shown(backend)}; expected one of {', '.join(BACKEND_NAMES)} "
                "or an object implementing Backend",
                "backend",
            )
        if options is None:
            options = expected()
        elif backend_name(options) != backend:
            raise ConfigError(_contradiction(backend, expected, options), "backend_config")
        return self._sink_of(options)

    def _sink_of(self, item: object) -> SinkSpec:
        default = backend_name(item)
        if default is not None:
            settings = cast("BackendSpec", item)  # (or any registered backend's settings)
            given = settings.name
            return self._spec(default if given is None else given, settings, settings.level)
        if isinstance(item, Sink):
            return self._spec_of_sink(item)
        missing = missing_methods(item)
        if missing:
            raise ConfigError(
                "a backends entry must be a backend config ("
                + ", ".join(config_type.__name__ for config_type in settings_classes())
                + f"), a Sink or a Backend; {type(item).__name__} lacks {', '.join(missing)}"
            )
        return self._spec(type(item).__name__, item, None)  # type: ignore[arg-type]

    def _spec_of_sink(self, sink: Sink) -> SinkSpec:
        """A `Sink`: of a Backend object, or of a registered backend's settings (its name and
        level unless the Sink gives them)."""
        target = sink.backend
        registered = backend_name(target)
        if registered is None:
            name, level = type(target).__name__, sink.level
        else:
            settings = cast("BackendSpec", target)
            name = settings.name if settings.name is not None else registered
            level = sink.level if sink.level is not None else settings.level
        spec = self._spec(name if sink.name is None else sink.name, target, level)
        return spec._replace(processors=tuple(sink.processors))

    def _spec(self, name: str, target: BackendSpec | Backend, level: object) -> SinkSpec:
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"a backend's name must be a non-empty str, got {shown(name)}", "name"
            )
        own = optional_level("backend", "level", level)
        lowest = min([self.min_level, *self.level_map.values()])  # the lowest any name has
        return SinkSpec(
            name, target, lowest if own is None else max(own, lowest), own_level=own
        )


def _level_map(levels: object) -> Mapping[str, int]:
    """`Config.levels` checked: non-empty str names (no empty dotted component), levels."""
    if levels is None:
        return MappingProxyType({})
    if not isinstance(levels, Mapping):
        raise ConfigError(
            f"levels must be a mapping of logger names to levels, got {shown(levels)}", "levels"
        )
    checked: dict[str, int] = {}
    for name, level in levels.items():
        if not isinstance(name, str) or not name or "" in name.split("."):
            raise ConfigError(
                f"levels: a logger name must be a non-empty dotted str, got {shown(name)}",
                "levels",
            )
        try:
            checked[name] = level_number(level)
        except ValueError as exc:
            raise ConfigError(f"levels[{name!r}]: {exc}", "levels") from None
    return MappingProxyType(checked)


def _unique_names(specs: list[SinkSpec], given: list[str | None]) -> tuple[SinkSpec, ...]:
    """Names given explicitly must differ; default names that repeat ("file", "file") are
    numbered ("file", "file-2"), skipping any name already taken."""
    explicit = [name for name in given if name is not None]
    for duplicate in explicit:
        if explicit.count(duplicate) > 1:
            raise ConfigError(
                f"two backends are named {shown(duplicate)}; names must differ", "backends"
            )
    taken = set(explicit)
    unique = []
    for spec, given_name in zip(specs, given, strict=True):
        if given_name is None:
            candidate, number = spec.name, 1
            while candidate in taken:
                number += 1
                candidate = f"{spec.name}-{number}"
            spec = spec._replace(name=candidate)
        taken.add(spec.name)
        unique.append(spec)
    return tuple(unique)


def _check_stateful_processors(
    processors: Sequence[Processor], sinks: Sequence[SinkSpec]
) -> None:
    """A `dedupe()` or `rate_limit()` keeps the state of one stream of entries: used twice in
    one Config, it would take the second place's entries for repeats of the first's."""
    places = [("Config.processors", processors)]
    places += [(f"the processors of backend {sink.name!r}", sink.processors) for sink in sinks]
    seen: dict[int, str] = {}
    for where, chain in places:
        for processor in chain:
            if not isinstance(processor, Dedupe | RateLimit):
                continue
            first = seen.get(id(processor))
            if first is not None:
                name = processor_name(processor)
                raise ConfigError(
                    f"one {name}() processor is used twice, in {first} and in {where}: it "
                    f"keeps the state of one stream of entries; give each place its own {name}()",
                    "processors",
                )
            seen[id(processor)] = where


def _check_distinct_targets(specs: list[SinkSpec]) -> None:
    """Two backends on one file would interleave and rotate each other's writes; one Backend
    object listed twice would be opened twice and write every entry twice."""
    seen: dict[object, int] = {}
    for index, spec in enumerate(specs):
        target = spec.target
        key: object
        if isinstance(target, FileConfig):
            key = os.path.abspath(os.fspath(target.file_path))
            what = f"the file {key!r}"
        elif isinstance(target, SQLiteConfig):
            key = os.path.abspath(os.fspath(target.db_path))
            what = f"the file {key!r}"
        elif backend_name(target) is not None:
            continue
        else:
            key = id(target)
            what = f"the same {type(target).__name__} object"
        if key in seen:
            raise ConfigError(
                f"backends[{seen[key]}] and backends[{index}] both write to {what}",
                f"backends[{index}]",
            )
        seen[key] = index


def _inferred_backend(options: object) -> str:
    """The backend `backend_config=` names by its type when `backend=` is not given."""
    name = backend_name(options)
    if name is not None:
        return name
    kinds = ", ".join(settings.__name__ for settings in settings_classes())
    hint = "; a Backend object goes in backend=" if not missing_methods(options) else ""
    raise ConfigError(
        f"backend_config must be a backend's settings ({kinds}), got {type(options).__name__}"
        + hint,
        "backend_config",
    )


def _contradiction(backend: str, expected: type[Any], options: object) -> str:
    """Why `backend=` and `backend_config=` disagree, naming both."""
    message = (
        f"backend_config for backend {backend!r} must be {expected.__name__}, "
        f"got {type(options).__name__}"
    )
    own = backend_name(options)
    if own is None:
        return message
    return (
        f"{message}, the settings of backend {own!r}: leave backend unset (the settings name "
        f"their backend) or give backend={own!r}"
    )


def _given_name(item: object) -> str | None:
    if isinstance(item, Sink):
        if item.name is None and backend_name(item.backend) is not None:
            return cast("str | None", getattr(item.backend, "name", None))
        return item.name
    if backend_name(item) is not None:
        return item.name  # type: ignore[attr-defined, no-any-return]
    return None
