"""Every invalid configuration is refused at construction with a ConfigError naming it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, ConfigError, FileConfig, Level, LogManager, SQLiteConfig

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
