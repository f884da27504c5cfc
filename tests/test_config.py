"""Every invalid configuration is refused at construction with a ConfigError naming it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asynclog import (
    Config,
    ConfigError,
    ConsoleConfig,
    FileConfig,
    Level,
    LogManager,
    OTLPConfig,
    PostgresConfig,
    SQLiteConfig,
    SyslogConfig,
    load_config,
)
from asynclog._backend_registry import BACKEND_CONFIGS, BACKEND_NAMES

from .conftest import RecordingBackend


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Config(backend="kafka"), "unknown backend 'kafka'"),
        (lambda: FileConfig(max_file_size_mb=-1), "max_file_size_mb must be > 0, got -1"),
        (lambda: FileConfig(max_file_size_mb=0), "max_file_size_mb must be > 0, got 0"),
        (lambda: FileConfig(max_file_size_mb=math.nan), "max_file_size_mb must be a finite"),
        (lambda: FileConfig(max_file_size_mb="10"), "max_file_size_mb must be a number"),
        (lambda: FileConfig(max_backups=-1), "max_backups must be >= 0, got -1"),
        (lambda: FileConfig(max_backups=1.5), "max_backups must be an int, got 1.5"),
        (lambda: FileConfig(file_path=""), "file_path must be a non-empty path"),
        (lambda: FileConfig(format="xml"), "FileConfig.format must be one of text, json"),
        (lambda: Config(queue_size=0), "queue_size must be >= 1, got 0"),
        (lambda: Config(queue_size=True), "queue_size must be an int, got True"),
        (lambda: Config(put_timeout=-0.5), "put_timeout must be >= 0, got -0.5"),
        (lambda: Config(batch_size=0), "batch_size must be >= 1, got 0"),
        (lambda: Config(level="loud"), "unknown level name 'loud'"),
        (lambda: Config(level=0), "level must be between 1 and 100, got 0"),
        (lambda: Config(async_mode="yes"), "async_mode must be a bool, got 'yes'"),
        (lambda: Config(name=""), "name must be a non-empty str"),
        (lambda: SQLiteConfig(table="logs; DROP TABLE x"), "table must be a plain identifier"),
        (lambda: SQLiteConfig(table="1logs"), "table must be a plain identifier"),
        (lambda: SQLiteConfig(table="sqlite_master"), "may not start with 'sqlite_'"),
        (lambda: SQLiteConfig(db_path=""), "db_path must be a non-empty path"),
        (
            lambda: Config(backend="sqlite", backend_config=FileConfig()),
            "backend_config for backend 'sqlite' must be SQLiteConfig, got FileConfig",
        ),
        (
            lambda: Config(backend="file", backend_config=SQLiteConfig()),
            "backend_config for backend 'file' must be FileConfig, got SQLiteConfig",
        ),
        (
            lambda: Config(backend="console", backend_config=FileConfig()),
            "backend_config for backend 'console' must be ConsoleConfig, got FileConfig",
        ),
        (lambda: Config(backend=object()), "object lacks open, write_batch, close"),
        (
            lambda: Config(backend=RecordingBackend(), backend_config=FileConfig()),
            "backend_config must be None when backend is a Backend object",
        ),
    ],
)
def test_invalid_config_raises_config_error_naming_the_field(make: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LogManager(make())
    assert message in str(caught.value)


def test_config_error_is_a_value_error_and_a_log_error() -> None:
    from asynclog import LogError

    with pytest.raises(ValueError):
        Config(queue_size=-3)
    assert issubclass(ConfigError, LogError)


def test_valid_configs_are_accepted_and_normalise_the_level() -> None:
    assert Config().min_level == Level.DEBUG
    assert Config(level="warning").min_level == Level.WARNING
    assert Config(level="WARN").min_level == Level.WARNING
    assert Config(level=25).min_level == 25
    assert FileConfig(max_file_size_mb=0.01).max_bytes == 10485
    assert (
        Config(backend="sqlite", backend_config=SQLiteConfig(table="app_logs")).backend == "sqlite"
    )
    LogManager(Config(backend=RecordingBackend(), async_mode=True, put_timeout=0))


def test_log_manager_rejects_something_that_is_not_a_config() -> None:
    with pytest.raises(TypeError, match="LogManager needs a Config, got dict"):
        LogManager({"backend": "file"})  # type: ignore[arg-type]


def test_backend_config_alone_names_its_backend(tmp_path: Path) -> None:
    config = Config(backend_config=SQLiteConfig(db_path=tmp_path / "a.db"))
    assert [(spec.name, type(spec.target).__name__) for spec in config.sinks] == [
        ("sqlite", "SQLiteConfig")
    ]
    assert [spec.name for spec in Config().sinks] == ["file"]  # nothing given: a file


BUILT_IN_SETTINGS = [
    ("console", ConsoleConfig()),
    ("file", FileConfig(file_path="/tmp/asynclog-infer.log")),
    ("otlp", OTLPConfig()),
    ("postgres", PostgresConfig(dsn="postgresql://u@127.0.0.1:5432/db")),
    ("sqlite", SQLiteConfig(db_path="/tmp/asynclog-infer.db")),
    ("syslog", SyslogConfig()),
]


def test_every_built_in_backend_is_listed_above() -> None:
    built_in = {n for n, c in BACKEND_CONFIGS.items() if c.__module__.startswith("asynclog.")}
    assert built_in == {name for name, _ in BUILT_IN_SETTINGS}


BUILT_IN_IDS = [name for name, _ in BUILT_IN_SETTINGS]


@pytest.mark.parametrize(("name", "settings"), BUILT_IN_SETTINGS, ids=BUILT_IN_IDS)
def test_each_built_in_settings_type_names_its_backend(name: str, settings: Any) -> None:
    inferred = Config(backend_config=settings)
    assert [(spec.name, spec.target) for spec in inferred.sinks] == [(name, settings)]
    assert inferred.sinks == Config(backend=name, backend_config=settings).sinks
    from_dict = Config.from_dict({"backend_config": settings})
    assert from_dict.sinks == inferred.sinks


@pytest.mark.parametrize(("name", "settings"), BUILT_IN_SETTINGS, ids=BUILT_IN_IDS)
def test_a_backend_that_contradicts_its_settings_names_both(name: str, settings: Any) -> None:
    other = "sqlite" if name != "sqlite" else "file"
    expected = type(SQLiteConfig() if other == "sqlite" else FileConfig()).__name__
    with pytest.raises(ConfigError) as caught:
        Config(backend=other, backend_config=settings)
    assert str(caught.value) == (
        f"backend_config for backend {other!r} must be {expected}, got "
        f"{type(settings).__name__}, the settings of backend {name!r}: leave backend unset "
        f"(the settings name their backend) or give backend={name!r}"
    )
    assert caught.value.key == "backend_config"


def test_backend_config_that_is_no_backends_settings_is_refused() -> None:
    kinds = ", ".join(settings.__name__ for settings in BACKEND_CONFIGS.values())
    with pytest.raises(ConfigError) as caught:
        Config(backend_config={"file_path": "x.log"})  # type: ignore[arg-type]
    assert str(caught.value) == f"backend_config must be a backend's settings ({kinds}), got dict"
    with pytest.raises(ConfigError) as caught:
        Config(backend_config=RecordingBackend())  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"backend_config must be a backend's settings ({kinds}), got RecordingBackend; "
        "a Backend object goes in backend="
    )


def test_a_subclass_of_a_built_in_settings_type_is_that_backend(tmp_path: Path) -> None:
    @dataclass(frozen=True, slots=True)
    class TeamSQLiteConfig(SQLiteConfig):
        """A team's defaults on top of SQLiteConfig."""

    settings = TeamSQLiteConfig(db_path=tmp_path / "team.db")
    assert [spec.name for spec in Config(backend_config=settings).sinks] == ["sqlite"]
    assert [spec.name for spec in Config(backend="sqlite", backend_config=settings).sinks] == [
        "sqlite"
    ]


def test_a_backend_config_table_names_its_backend_by_type(tmp_path: Path) -> None:
    data = {"backend_config": {"type": "sqlite", "db_path": "app.db", "table": "t"}}
    config = Config.from_dict(data, base_dir=tmp_path)
    assert config.sinks[0].target == SQLiteConfig(db_path=str(tmp_path / "app.db"), table="t")
    same = Config.from_dict({"backend": "sqlite", **data}, base_dir=tmp_path)
    assert same.sinks == config.sinks
    path = tmp_path / "asynclog.toml"
    path.write_text('[backend_config]\ntype = "console"\nstream = "stdout"\n')
    assert load_config(path, env={}).sinks[0].target == ConsoleConfig(stream="stdout")


@pytest.mark.parametrize(
    ("data", "message", "key"),
    [
        (
            {"backend": "file", "backend_config": {"type": "sqlite"}},
            "backend_config.type: 'sqlite' contradicts backend = 'file'; give one of them, "
            "or the same",
            "backend_config.type",
        ),
        (
            {"backend_config": {"type": "kafka"}},
            "backend_config.type: unknown backend 'kafka'; expected one of {names}",
            "backend_config.type",
        ),
        (
            {"backend": "file", "backend_config": SQLiteConfig()},
            "backend_config: for backend 'file' must be FileConfig, got SQLiteConfig, the "
            "settings of backend 'sqlite': leave backend unset (the settings name their "
            "backend) or give backend='sqlite'",
            "backend_config",
        ),
    ],
)
def test_from_dict_refuses_a_contradiction_naming_both(
    data: dict[str, Any], message: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(data)
    names = ", ".join(BACKEND_NAMES)  # read now: a test module may register one more
    assert (str(caught.value), caught.value.key) == (message.format(names=names), key)
