"""What a `Config` takes as a backend: a registered backend's settings, a `Sink`, or a Backend.

A backend that `Config` knows by name registers itself when its module is imported:

    register_backend("x", XConfig, XBackend)

- `"x"` is what `Config(backend="x")` and a `type = "x"` table of `Config.from_dict` /
  `load_config` say, and the backend's default name in the stats;
- `XConfig` is its settings: a dataclass validated at construction (raising `ConfigError`
  naming the field), with the fields `level` and `name` every backend has; `Config` takes an
  instance as `backend_config=` or in `backends=[...]`, `Config.from_dict` builds one from a
  table of its fields;
- `XBackend` (any callable) makes the Backend from an `XConfig` when a manager starts.

This module imports nothing of asynclog's but `_errors`, `_levels` and `_validate` (at run
time), so that `_config`, `_config_data` and the backend modules can all import it. Its tables
are read when a check runs: a backend registered after `_config` was imported is known to every
check, and `BACKEND_CONFIGS` / `BACKEND_NAMES` are live views, not copies.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, KeysView, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ConfigError
from ._levels import Level
from ._processing import Processor, check_processors
from ._validate import optional_level, shown

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = [
    "BACKEND_CONFIGS",
    "BACKEND_NAMES",
    "Sink",
    "backend_name",
    "make_backend",
    "missing_methods",
    "register_backend",
    "settings_class",
    "settings_classes",
]

S = TypeVar("S")

RESERVED_NAMES = ("custom",)
"""Names a backend cannot take: `type = "custom"` is a factory's backend in `from_dict`."""

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")

_classes: dict[str, type[Any]] = {}
_names: dict[type[Any], str] = {}
_factories: dict[type[Any], Callable[[Any], Backend]] = {}
_lock = threading.Lock()

BACKEND_CONFIGS: Mapping[str, type[Any]] = MappingProxyType(_classes)
"""Each registered backend's name and its settings class, in the order they registered (a live
view: it shows backends registered later too)."""

BACKEND_NAMES: KeysView[str] = BACKEND_CONFIGS.keys()
"""The registered backends' names (a live view)."""


def register_backend(name: str, settings: type[S], factory: Callable[[S], Backend]) -> None:
    """Make `name` a backend `Config` knows: `settings` its settings dataclass, `factory` what
    makes the backend from them. A name or a settings class registered twice is a
    `ConfigError`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise ConfigError(
            "a backend's name must be lowercase letters, digits, '_' or '-' starting with a "
            f"letter (at most 64), and not {', '.join(RESERVED_NAMES)}; got {shown(name)}"
        )
    if not isinstance(settings, type) or not dataclasses.is_dataclass(settings):
        raise ConfigError(f"backend {name!r}: its settings must be a dataclass, got {settings!r}")
    fields = {field.name for field in dataclasses.fields(settings) if field.init}
    lacking = [field for field in ("level", "name") if field not in fields]
    if lacking:
        raise ConfigError(
            f"backend {name!r}: {settings.__name__} lacks the field(s) {', '.join(lacking)} "
            "every backend's settings have"
        )
    if not callable(factory):
        raise ConfigError(f"backend {name!r}: its factory must be callable, got {factory!r}")
    with _lock:
        if name in _classes:
            raise ConfigError(
                f"backend {name!r} is already registered (settings "
                f"{_classes[name].__qualname__}); choose another name"
            )
        if settings in _names:
            raise ConfigError(
                f"backend {name!r}: {settings.__qualname__} already holds the settings of "
                f"backend {_names[settings]!r}"
            )
        _classes[name] = settings
        _names[settings] = name
        _factories[settings] = factory


def settings_class(name: object) -> type[Any] | None:
    """The settings class of the backend called `name`; None if no backend is."""
    return _classes.get(name) if isinstance(name, str) else None


def settings_classes() -> tuple[type[Any], ...]:
    """Every registered settings class, in the order they registered."""
    return tuple(_classes.values())


def backend_name(item: object) -> str | None:
    """The name of the backend whose settings `item` is (an instance of a registered settings
    class, as `isinstance` says; its own class first, then the earliest registered base),
    else None."""
    exact = _names.get(type(item))
    if exact is not None:
        return exact
    for settings, name in list(_names.items()):
        if isinstance(item, settings):
            return name
    return None


def make_backend(item: object) -> Backend | None:
    """The backend a registered backend's settings ask for; None if `item` is not such
    settings."""
    name = backend_name(item)
    return None if name is None else _factories[_classes[name]](item)


def missing_methods(backend: object) -> list[str]:
    """The methods of the `Backend` protocol `backend` lacks (none: it is a backend)."""
    return [
        name
        for name in ("open", "write_batch", "close")
        if not callable(getattr(backend, name, None))
    ]


@dataclass(frozen=True, slots=True)
class Sink:
    """One entry of `Config(backends=[...])` with its own minimum level, name in the stats and
    processors: a backend object of your own, or a registered backend's settings
    (`Sink(FileConfig(...), processors=[...])`). (A plain Backend object or settings in that
    list take the defaults.)"""

    backend: Backend | Any
    """A Backend object, or the settings of a registered backend (`FileConfig(...)`...)."""
    level: Level | int | str | None = None
    """This backend's own minimum level; None: the settings' level, else the manager's."""
    name: str | None = None
    """Its name in the stats; None: the settings' name, else the backend's default name."""
    processors: Sequence[Processor] = ()
    """This backend's own processors, run at the call after the manager's (see
    docs/processors.md): what they filter out this backend never accepts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "processors", check_processors("Sink", self.processors))
        missing = [] if backend_name(self.backend) is not None else missing_methods(self.backend)
        if missing:
            raise ConfigError(
                f"Sink.backend must implement Backend; {type(self.backend).__name__} lacks "
                f"{', '.join(missing)}",
                key="backend",
            )
        optional_level("Sink", "level", self.level)
