"""Configuration from plain data, the work behind `Config.from_dict`, `load_config` (TOML) and
the environment.

The dict shape mirrors the dataclasses: the top-level keys are `Config`'s fields, a backend's
settings are the fields of its config class. The allowed keys are read from
`dataclasses.fields()`, so a field added to a config class is accepted here with no change,
and a backend's `type` is looked up in `_backend_registry` when the entry is read, so a
registered backend is accepted too. Every error is a `ConfigError` whose message starts with
the key path (`backends[1].max_file_size_mb: must be > 0, got -1`) and whose `key` is that path.

The class to build is a parameter (`Config.from_dict` passes itself): this module imports
nothing from `_config`, which imports it; `_loading` holds the public entry points.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._backend_registry import (
    BACKEND_NAMES,
    Sink,
    backend_name,
    missing_methods,
    settings_class,
)
from ._errors import ConfigError
from ._validate import StrPath, level_number, shown

__all__ = ["ENV_VARIABLES", "build", "load"]

C = TypeVar("C")

CUSTOM_TYPE = "custom"
"""The `type` of a `backends` entry made by a factory of your own; every other `type` is the
name of a registered backend."""
CUSTOM_KEYS = ("type", "factory", "options", "level", "name")

ENV_VARIABLES: dict[str, str] = {
    "ASYNCLOG_LEVEL": "level",
    "ASYNCLOG_ASYNC": "async_mode",
    "ASYNCLOG_QUEUE_SIZE": "queue_size",
    "ASYNCLOG_NAME": "name",
}
"""The environment variables read (when an environment is given) and the field each sets."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def build(
    cls: type[C],
    data: Mapping[str, object],
    *,
    env: Mapping[str, str] | None = None,
    base_dir: StrPath | None = None,
) -> C:
    """Build and validate a `cls` (`Config`) from plain data (parsed TOML or JSON, or a literal
    dict).

    `env`: apply the `ASYNCLOG_*` overrides found in it (they win over `data`); None: none.
    `base_dir`: resolve relative paths (and `~`) in path fields against it; None: keep them.
    """
    return _build(cls, data, env=env, base_dir=base_dir, source=None)


def load(cls: type[C], path: StrPath, *, env: Mapping[str, str] | None) -> C:
    """Read a TOML file and build a validated `cls` (`Config`) from it: see `load_config`.
    `env`: apply the `ASYNCLOG_*` overrides found in it (they win over the file); None: none."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: invalid TOML: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    settings = _settings_of(data, source)
    base_dir = os.path.dirname(os.path.abspath(source))
    return _build(cls, settings, env=env, base_dir=base_dir, source=source)


def _settings_of(data: dict[str, Any], source: str) -> Mapping[str, object]:
    tool = data.get("tool")
    in_tool = isinstance(tool, dict) and "asynclog" in tool
    if in_tool and "asynclog" in data:
        raise ConfigError(f"{source}: both [asynclog] and [tool.asynclog] are present; keep one")
    if in_tool:
        assert isinstance(tool, dict)
        table, name = tool["asynclog"], "tool.asynclog"
    elif "asynclog" in data:
        table, name = data["asynclog"], "asynclog"
    elif os.path.basename(source) == "pyproject.toml":
        raise ConfigError(f"{source}: no [tool.asynclog] table")
    else:
        return data
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {name} must be a table, got {type(table).__name__}")
    return table


def _build(
    cls: type[C],
    data: object,
    *,
    env: Mapping[str, str] | None,
    base_dir: StrPath | None,
    source: str | None,
) -> C:
    overrides = _env_overrides(env)
    try:
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"the configuration must be a mapping (a dict or TOML table), "
                f"got {type(data).__name__}"
            )
        kwargs = _config_kwargs(data, _init_fields(cls), base_dir)
    except ConfigError as exc:
        raise _from_file(exc, source) from None
    kwargs.update({field: value for field, (value, _) in overrides.items()})
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        path, detail = _locate(exc, "")
        if path in overrides:
            variable = overrides[path][1]
            raise ConfigError(f"{variable}: {detail}", variable) from None
        raise _from_file(_error(path, detail), source) from None


def _from_file(exc: ConfigError, source: str | None) -> ConfigError:
    return exc if source is None else ConfigError(f"{source}: {exc}", exc.key)


def _config_kwargs(
    data: Mapping[str, object], fields: tuple[str, ...], base_dir: StrPath | None
) -> dict[str, Any]:
    _check_keys(data, fields, "")
    if "backends" in data and ("backend" in data or "backend_config" in data):
        raise _error("backends", "give either backend/backend_config or backends, not both")
    kwargs: dict[str, Any] = dict(data)
    if "backend_config" in data:
        kwargs["backend_config"] = _backend_config(
            data.get("backend"), data["backend_config"], base_dir
        )
    if "backends" in data:
        kwargs["backends"] = _backends(data["backends"], base_dir)
    if isinstance(data.get("levels"), Mapping):
        kwargs["levels"] = _flat_levels(data["levels"])  # type: ignore[arg-type]
    priority = data.get("priority_level")
    if isinstance(priority, str) and priority.strip().lower() == "none":
        kwargs["priority_level"] = None  # TOML has no null
    return kwargs


def _flat_levels(levels: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """`[levels]` with its nested tables flattened: in TOML, an unquoted `app.db = "DEBUG"`
    is the table `{"app": {"db": "DEBUG"}}`, meant as the logger name `"app.db"`."""
    flat: dict[str, object] = {}
    for name, value in levels.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flat_levels(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def _backend_config(backend: object, value: object, base_dir: StrPath | None) -> object:
    """The settings of `backend_config`: a table's backend is `backend`, else the table's own
    `type`, else "file"; settings already built name their backend themselves (`Config` checks
    them against `backend`)."""
    if value is None or backend_name(value) is not None:
        return value
    if backend is not None and not isinstance(backend, str):
        return value  # Config refuses settings for a Backend object itself
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind is not None and backend is not None and kind != backend:
        raise _error(
            "backend_config.type",
            f"{shown(kind)} contradicts backend = {shown(backend)}; give one of them, or the same",
        )
    name = backend if backend is not None else kind if kind is not None else "file"
    spec_class = settings_class(name)
    if spec_class is None:
        raise _error(
            "backend" if backend is not None else "backend_config.type",
            f"unknown backend {shown(name)}; expected one of {', '.join(BACKEND_NAMES)}",
        )
    if not isinstance(value, Mapping):
        raise _error(
            "backend_config",
            f"must be a table of {spec_class.__name__} settings, got {type(value).__name__}",
        )
    return _spec(spec_class, value, "backend_config", base_dir, extra=("type",))


def _backends(value: object, base_dir: StrPath | None) -> list[object]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _error("backends", f"must be a list of tables, got {type(value).__name__}")
    built: list[object] = []
    for index, item in enumerate(value):
        path = f"backends[{index}]"
        if isinstance(item, Mapping):
            built.append(_entry(item, path, base_dir))
        elif isinstance(item, Sink) or backend_name(item) is not None or not (
            missing_methods(item)
        ):
            built.append(item)  # an object given from Python; Config validates it
        else:
            raise _error(path, f"must be a table with a 'type' key, got {type(item).__name__}")
    return built


def _entry(item: Mapping[str, object], path: str, base_dir: StrPath | None) -> object:
    expected = f"expected one of {', '.join((*BACKEND_NAMES, CUSTOM_TYPE))}"
    if "type" not in item:
        raise _error(f"{path}.type", f"missing key; {expected}")
    kind = item["type"]
    if kind == CUSTOM_TYPE:
        return _custom(item, path)
    spec_class = settings_class(kind)
    if spec_class is None:
        raise _error(f"{path}.type", f"unknown backend type {shown(kind)}; {expected}")
    return _spec(spec_class, item, path, base_dir, extra=("type",))


def _spec(
    spec_class: type[Any],
    data: Mapping[str, object],
    path: str,
    base_dir: StrPath | None,
    *,
    extra: tuple[str, ...] = (),
) -> object:
    fields = _init_fields(spec_class)
    _check_keys(data, (*extra, *fields), path)
    path_fields = {
        field.name for field in dataclasses.fields(spec_class) if "Path" in str(field.type)
    }
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in extra:
            continue
        if key == "mode":
            value = _mode(value, _join(path, key))
        elif key in path_fields and base_dir is not None:
            value = _resolve(value, base_dir)
        kwargs[key] = value
    try:
        return spec_class(**kwargs)
    except ConfigError as exc:
        raise _error(*_locate(exc, path)) from None


def _custom(item: Mapping[str, object], path: str) -> Sink:
    _check_keys(item, CUSTOM_KEYS, path)
    where = f"{path}.factory"
    if "factory" not in item:
        raise _error(
            where, 'missing key; a custom backend needs factory = "package.module:callable"'
        )
    reference = item["factory"]
    factory = _import_factory(reference, where)
    label = reference if isinstance(reference, str) else getattr(factory, "__name__", "factory")
    options = item.get("options", {})
    if not isinstance(options, Mapping) or not all(isinstance(key, str) for key in options):
        raise _error(f"{path}.options", f"must be a table, got {type(options).__name__}")
    try:
        backend = factory(**options)
    except Exception as exc:
        raise _error(where, f"{label} raised {type(exc).__name__}: {exc}") from exc
    missing = missing_methods(backend)
    if missing:
        raise _error(
            where, f"{label} returned {type(backend).__name__}, which lacks {', '.join(missing)}"
        )
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise _error(f"{path}.name", f"must be a non-empty str, got {shown(name)}")
    fields: dict[str, Any] = {"backend": backend, "level": item.get("level"), "name": name}
    try:
        return Sink(**fields)
    except ConfigError as exc:
        raise _error(*_locate(exc, path)) from None


def _import_factory(reference: object, where: str) -> Callable[..., object]:
    if callable(reference) and not isinstance(reference, str):
        return reference  # given from Python
    if not isinstance(reference, str) or not re.fullmatch(r"[\w.]+:[\w.]+", reference):
        raise _error(where, f'must be "package.module:callable", got {shown(reference)}')
    module_name, _, attribute = reference.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise _error(
            where, f"cannot import {shown(module_name)}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise _error(where, f"module {shown(module_name)} has no attribute {shown(attribute)}")
        target = getattr(target, part)
    if not callable(target):
        raise _error(where, f"{shown(reference)} is not callable")
    return target


def _mode(value: object, path: str) -> object:
    """`mode` may be an int (TOML `0o640`) or an octal string: `"0o640"` or `"640"`."""
    if not isinstance(value, str):
        return value  # the config class validates it
    text = value.strip().lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise _error(
            path, f'must be an octal permission mode like 0o640 or "640", got {shown(value)}'
        )
    return int(text, 8)


def _resolve(value: object, base_dir: StrPath) -> object:
    """A relative path, after `~` expansion, joined to `base_dir`; anything else unchanged."""
    if not isinstance(value, str | os.PathLike):
        return value
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        return value  # the config class refuses it
    text = os.path.expanduser(text)
    return text if os.path.isabs(text) else os.path.join(os.fspath(base_dir), text)


def _env_overrides(env: Mapping[str, str] | None) -> dict[str, tuple[object, str]]:
    """`{field: (value, variable)}` for each `ASYNCLOG_*` variable set (and not blank)."""
    if env is None:
        return {}
    overrides: dict[str, tuple[object, str]] = {}
    for variable, field in ENV_VARIABLES.items():
        raw = env.get(variable)
        if raw is None or not raw.strip():
            continue
        overrides[field] = (_ENV_PARSERS[field](variable, raw.strip()), variable)
    return overrides


def _env_level(variable: str, raw: str) -> object:
    try:
        return level_number(int(raw) if re.fullmatch(r"[+-]?\d{1,20}", raw) else raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}", variable) from None


def _env_bool(variable: str, raw: str) -> object:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(
        f"{variable}: expected 1/0, true/false, yes/no or on/off, got {shown(raw)}", variable
    )


def _env_int(variable: str, raw: str) -> object:
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ConfigError(f"{variable}: must be an integer, got {shown(raw)}", variable)
    if len(raw) > 20:  # (and int() refuses more than 4300 digits)
        raise ConfigError(f"{variable}: must be at most 20 digits, got {shown(raw)}", variable)
    return int(raw)


def _env_str(variable: str, raw: str) -> object:
    return raw


_ENV_PARSERS: dict[str, Callable[[str, str], object]] = {
    "level": _env_level,
    "async_mode": _env_bool,
    "queue_size": _env_int,
    "name": _env_str,
}


def _init_fields(cls: type[Any]) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls) if field.init)


def _check_keys(data: Mapping[Any, object], allowed: tuple[str, ...], path: str) -> None:
    for key in data:
        if key not in allowed:
            raise _error(
                _join(path, _key_text(key)), f"unknown key; expected one of {', '.join(allowed)}"
            )


def _key_text(key: object) -> str:
    """A key as a key path shows it: itself, or a bounded repr if it is long or odd."""
    if isinstance(key, str) and key.isprintable() and 0 < len(key) <= 100:
        return key
    return shown(key)


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def _locate(exc: ConfigError, prefix: str) -> tuple[str | None, str]:
    """The full key path of a config class's error, and its message without the field name
    (`FileConfig.max_file_size_mb must be ...` -> `must be ...`), so the path appears once."""
    message = str(exc)
    if not exc.key:
        return (prefix or None), message
    leaf = exc.key.rsplit(".", 1)[-1]
    lead = re.match(
        rf"(?:backends\[\d+\]:\s*)?(?:[A-Za-z_]\w*\.)?{re.escape(leaf)}(?![\w\[.=])\s*:?\s*",
        message,
    )
    if lead and lead.end() < len(message):
        message = message[lead.end() :]
    return _join(prefix, exc.key), message


def _error(path: str | None, detail: str) -> ConfigError:
    return ConfigError(f"{path}: {detail}" if path else detail, path)
