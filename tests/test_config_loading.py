"""Config from dicts, TOML files and the environment: same validation, errors name the key path."""

from __future__ import annotations

import dataclasses
import os
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
    Sink,
    SQLiteConfig,
)
from asynclog._config import BACKEND_NAMES
from asynclog._loading import ENV_VARIABLES, load_config

from .conftest import RecordingBackend, message_of, read_lines

NAMES = ", ".join(BACKEND_NAMES)

FACTORY = "tests.test_config_loading:make_backend"


def make_backend(delay: float = 0.0) -> RecordingBackend:
    """The factory of the `type = "custom"` entries below."""
    return RecordingBackend(delay=delay)


def not_a_backend() -> int:
    return 42


def failing_factory() -> RecordingBackend:
    raise RuntimeError("no broker")


def _error(data: object, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


def _load_error(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    return caught.value


# --- dicts ------------------------------------------------------------------------------------


def test_single_backend_form_round_trips() -> None:
    data = {
        "backend": "sqlite",
        "backend_config": {"db_path": "/var/log/app.db", "table": "app_logs", "mode": "600"},
        "async_mode": True,
        "queue_size": 50,
        "put_timeout": 0,
        "level": "info",
        "name": "svc",
        "batch_size": 10,
        "overflow": "drop_oldest",
        "priority_level": 50,
        "max_queue_bytes": 4096,
        "max_entry_bytes": 1024,
        "retry_attempts": 1,
        "retry_backoff": 0.5,
        "fallback": "stderr",
    }
    expected = Config(
        backend="sqlite",
        backend_config=SQLiteConfig(db_path="/var/log/app.db", table="app_logs", mode=0o600),
        async_mode=True,
        queue_size=50,
        put_timeout=0,
        level="info",
        name="svc",
        batch_size=10,
        overflow="drop_oldest",
        priority_level=50,
        max_queue_bytes=4096,
        max_entry_bytes=1024,
        retry_attempts=1,
        retry_backoff=0.5,
        fallback="stderr",
    )
    config = Config.from_dict(data)
    assert config == expected
    assert config.min_level == Level.INFO
    assert config.sinks == expected.sinks
    assert Config.from_dict({}) == Config()
    assert Config.from_dict({"backend": "console"}).sinks[0].target == ConsoleConfig()


def test_backends_list_round_trips_including_a_custom_factory() -> None:
    data = {
        "level": 20,
        "backends": [
            {"type": "file", "file_path": "/tmp/a.log", "max_file_size_mb": 1, "format": "json"},
            {"type": "sqlite", "db_path": "/tmp/a.db", "level": "error", "name": "db"},
            {"type": "console", "stream": "stdout", "format": "logfmt"},
            {"type": "custom", "factory": FACTORY, "options": {"delay": 0.5}, "level": "warning"},
            {"type": "custom", "factory": make_backend, "name": "mine"},
        ],
    }
    config = Config.from_dict(data)
    assert config.backends is not None
    assert list(config.backends[:3]) == [
        FileConfig(file_path="/tmp/a.log", max_file_size_mb=1, format="json"),
        SQLiteConfig(db_path="/tmp/a.db", level="error", name="db"),
        ConsoleConfig(stream="stdout", format="logfmt"),
    ]
    custom, own = config.backends[3], config.backends[4]
    assert isinstance(custom, Sink) and isinstance(custom.backend, RecordingBackend)
    assert (custom.backend.delay, custom.level, custom.name) == (0.5, "warning", None)
    assert isinstance(own, Sink) and own.name == "mine"
    assert [(spec.name, spec.min_level) for spec in config.sinks] == [
        ("file", 20),
        ("db", 40),
        ("console", 20),
        ("RecordingBackend", 30),
        ("mine", 20),
    ]


def test_every_init_field_of_each_backend_config_is_accepted() -> None:
    """The keys come from dataclasses.fields(): a field added to a config class just works."""
    for kind, spec_class in [("file", FileConfig), ("sqlite", SQLiteConfig)]:
        default = spec_class()
        values = {f.name: getattr(default, f.name) for f in dataclasses.fields(default) if f.init}
        config = Config.from_dict({"backends": [{"type": kind, **values}]})
        assert config.backends == [default]
        single = Config.from_dict({"backend": kind, "backend_config": values})
        assert single.backend_config == default


def test_objects_from_python_pass_through() -> None:
    backend = RecordingBackend()
    config = Config.from_dict(
        {
            "backends": [
                FileConfig(file_path="/tmp/x.log"),
                Sink(RecordingBackend(), name="s"),
                backend,
            ]
        }
    )
    assert [spec.name for spec in config.sinks] == ["file", "s", "RecordingBackend"]
    assert Config.from_dict({"backend": backend}).sinks[0].target is backend


@pytest.mark.parametrize(
    ("value", "mode"), [(0o600, 0o600), ("0o600", 0o600), ("600", 0o600), (" 0O755 ", 0o755)]
)
def test_mode_is_an_int_or_an_octal_string(value: object, mode: int) -> None:
    config = Config.from_dict({"backends": [{"type": "file", "mode": value}]})
    assert config.backends == [FileConfig(mode=mode)]


def test_priority_level_none_is_spelled_as_a_string() -> None:
    assert Config.from_dict({"priority_level": "none"}).priority_level is None
    assert Config.from_dict({"priority_level": "None"}).priority_level is None


LOADER = "tests.test_config_loading"


@pytest.mark.parametrize(
    ("data", "message", "key"),
    [
        (
            {"backends": [{"type": "file"}, {"type": "file", "max_file_size_mb": -1}]},
            "backends[1].max_file_size_mb: must be > 0, got -1",
            "backends[1].max_file_size_mb",
        ),
        (
            {"backends": [{"type": "file", "max_file_size_mb": "10"}]},
            "backends[0].max_file_size_mb: must be a number, got '10'",
            "backends[0].max_file_size_mb",
        ),
        (
            {"backends": [{"type": "file", "max_size": 1}]},
            "backends[0].max_size: unknown key; expected one of type, "
            + ", ".join(f.name for f in dataclasses.fields(FileConfig) if f.init),
            "backends[0].max_size",
        ),
        (
            {"backends": [{"type": "sqlite", "table": "sqlite_x"}]},
            "backends[0].table: may not start with 'sqlite_', got 'sqlite_x'",
            "backends[0].table",
        ),
        (
            {"backends": [{"type": "console", "level": "loud"}]},
            "backends[0].level: unknown level name 'loud'; expected one of debug, info, "
            "warning, error, critical",
            "backends[0].level",
        ),
        (
            {"backends": [{"type": "file", "mode": "rw-r-----"}]},
            'backends[0].mode: must be an octal permission mode like 0o640 or "640", '
            "got 'rw-r-----'",
            "backends[0].mode",
        ),
        (
            {"backends": [{"type": "file", "mode": 640}]},
            "backends[0].mode: must be a permission mode like 0o640, got 640",
            "backends[0].mode",
        ),
        (
            {"backends": [{"file_path": "a.log"}]},
            f"backends[0].type: missing key; expected one of {NAMES}, custom",
            "backends[0].type",
        ),
        (
            {"backends": [{"type": "kafka"}]},
            f"backends[0].type: unknown backend type 'kafka'; expected one of {NAMES}, custom",
            "backends[0].type",
        ),
        (
            {"backends": [{"type": "file"}, 3]},
            "backends[1]: must be a table with a 'type' key, got int",
            "backends[1]",
        ),
        ({"backends": "file"}, "backends: must be a list of tables, got str", "backends"),
        ({"backends": []}, "backends: must name at least one backend", "backends"),
        (
            {"backend": "file", "backends": [{"type": "file"}]},
            "backends: give either backend/backend_config or backends, not both",
            "backends",
        ),
        (
            {"backend": "sqlite", "backend_config": {"table": "1x"}},
            "backend_config.table: must be a plain identifier (letters, digits, underscore), "
            "got '1x'",
            "backend_config.table",
        ),
        (
            {"backend_config": {"max_backups": -1}},
            "backend_config.max_backups: must be >= 0, got -1",
            "backend_config.max_backups",
        ),
        (
            {"backend": "console", "backend_config": {"stream": "tty"}},
            "backend_config.stream: must be one of stderr, stdout, got 'tty'",
            "backend_config.stream",
        ),
        (
            {"backend": "kafka", "backend_config": {}},
            f"backend: unknown backend 'kafka'; expected one of {NAMES}",
            "backend",
        ),
        (
            {"backend": "kafka"},
            f"backend: unknown backend 'kafka'; expected one of {NAMES} or an "
            "object implementing Backend",
            "backend",
        ),
        (
            {"backend_config": "big"},
            "backend_config: must be a table of FileConfig settings, got str",
            "backend_config",
        ),
        ({"queue_size": 0}, "queue_size: must be >= 1, got 0", "queue_size"),
        ({"async_mode": "yes"}, "async_mode: must be a bool, got 'yes'", "async_mode"),
        (
            {"level": "loud"},
            "level: unknown level name 'loud'; expected one of debug, info, warning, error, "
            "critical",
            "level",
        ),
        (
            {"fallback": "disk"},
            "fallback: must be one of auto, stderr, none or a Backend, got 'disk'",
            "fallback",
        ),
        (
            {"queue": 5},
            "queue: unknown key; expected one of "
            + ", ".join(f.name for f in dataclasses.fields(Config) if f.init),
            "queue",
        ),
        (
            {"backends": [{"type": "custom"}]},
            "backends[0].factory: missing key; a custom backend needs factory = "
            '"package.module:callable"',
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": "make_backend"}]},
            "backends[0].factory: must be \"package.module:callable\", got 'make_backend'",
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": "no_such_mod.x:f"}]},
            "backends[0].factory: cannot import 'no_such_mod.x': ModuleNotFoundError: "
            "No module named 'no_such_mod'",
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": f"{LOADER}:nope"}]},
            f"backends[0].factory: module '{LOADER}' has no attribute 'nope'",
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": f"{LOADER}:LOADER"}]},
            f"backends[0].factory: '{LOADER}:LOADER' is not callable",
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": f"{LOADER}:failing_factory"}]},
            f"backends[0].factory: {LOADER}:failing_factory raised RuntimeError: no broker",
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": f"{LOADER}:not_a_backend"}]},
            f"backends[0].factory: {LOADER}:not_a_backend returned int, which lacks open, "
            "write_batch, close",
            "backends[0].factory",
        ),
        (
            {"backends": [{"type": "custom", "factory": FACTORY, "options": [1]}]},
            "backends[0].options: must be a table, got list",
            "backends[0].options",
        ),
        (
            {"backends": [{"type": "custom", "factory": FACTORY, "level": 0}]},
            "backends[0].level: level must be between 1 and 100, got 0",
            "backends[0].level",
        ),
        (
            {"backends": [{"type": "custom", "factory": FACTORY, "name": ""}]},
            "backends[0].name: must be a non-empty str, got ''",
            "backends[0].name",
        ),
        (
            {"backends": [{"type": "custom", "factory": FACTORY, "file_path": "x"}]},
            "backends[0].file_path: unknown key; expected one of type, factory, options, "
            "level, name",
            "backends[0].file_path",
        ),
    ],
)
def test_errors_name_the_key_path_once(data: dict[str, Any], message: str, key: str) -> None:
    error = _error(data)
    assert (str(error), error.key) == (message, key)


def test_data_that_is_not_a_mapping_is_refused() -> None:
    error = _error([("level", "info")])
    assert str(error) == "the configuration must be a mapping (a dict or TOML table), got list"
    assert error.key is None


# --- the environment --------------------------------------------------------------------------


def test_env_overrides_win_over_the_data_only_when_env_is_given() -> None:
    data = {"level": "debug", "async_mode": False, "queue_size": 10, "name": "file"}
    env = {
        "ASYNCLOG_LEVEL": " Warning ",
        "ASYNCLOG_ASYNC": "ON",
        "ASYNCLOG_QUEUE_SIZE": "500",
        "ASYNCLOG_NAME": "from-env",
        "UNRELATED": "x",
    }
    config = Config.from_dict(data, env=env)
    assert (config.min_level, config.async_mode, config.queue_size, config.name) == (
        Level.WARNING,
        True,
        500,
        "from-env",
    )
    assert Config.from_dict(data) == Config(level="debug", queue_size=10, name="file")
    assert Config.from_dict({}, env={"ASYNCLOG_LEVEL": "35"}).min_level == 35
    assert set(ENV_VARIABLES) == set(env) - {"UNRELATED"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(v, True) for v in ("1", "true", "YES", "On")] + [(v, False) for v in ("0", "False", "no")],
)
def test_asynclog_async_accepts_the_usual_spellings(raw: str, expected: bool) -> None:
    config = Config.from_dict({"async_mode": not expected}, env={"ASYNCLOG_ASYNC": raw})
    assert config.async_mode is expected


def test_blank_env_variables_are_ignored() -> None:
    env = {"ASYNCLOG_LEVEL": "", "ASYNCLOG_ASYNC": "  ", "ASYNCLOG_NAME": ""}
    assert Config.from_dict({"level": "error"}, env=env) == Config(level="error")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ASYNCLOG_ASYNC": "maybe"},
            "ASYNCLOG_ASYNC: expected 1/0, true/false, yes/no or on/off, got 'maybe'",
        ),
        (
            {"ASYNCLOG_LEVEL": "loud"},
            "ASYNCLOG_LEVEL: unknown level name 'loud'; expected one of debug, info, warning, "
            "error, critical",
        ),
        ({"ASYNCLOG_LEVEL": "0"}, "ASYNCLOG_LEVEL: level must be between 1 and 100, got 0"),
        ({"ASYNCLOG_QUEUE_SIZE": "ten"}, "ASYNCLOG_QUEUE_SIZE: must be an integer, got 'ten'"),
        ({"ASYNCLOG_QUEUE_SIZE": "0"}, "ASYNCLOG_QUEUE_SIZE: must be >= 1, got 0"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], message: str) -> None:
    error = _error({}, env=env)
    assert (str(error), error.key) == (message, next(iter(env)))


# --- TOML files -------------------------------------------------------------------------------

FILE_SETTINGS = """\
level = "info"
async_mode = true

[[backends]]
type = "file"
file_path = "logs/app.log"
mode = 0o600

[[backends]]
type = "console"
level = "error"
"""


def _expected_file_config(base: Path) -> Config:
    return Config(
        level="info",
        async_mode=True,
        backends=[
            FileConfig(file_path=str(base / "logs" / "app.log"), mode=0o600),
            ConsoleConfig(level="error"),
        ],
    )


def test_settings_at_the_top_level(tmp_path: Path) -> None:
    path = tmp_path / "asynclog.toml"
    path.write_text(FILE_SETTINGS)
    assert load_config(path, env={}) == _expected_file_config(tmp_path)


def test_settings_in_an_asynclog_table_ignore_the_rest_of_the_file(tmp_path: Path) -> None:
    settings = FILE_SETTINGS.replace("[[backends]]", "[[asynclog.backends]]")
    path = tmp_path / "app.toml"
    path.write_text('port = 8080\n[database]\nurl = "x"\n[asynclog]\n' + settings)
    assert load_config(str(path), env={}) == _expected_file_config(tmp_path)


def test_settings_in_pyproject_tool_asynclog(tmp_path: Path) -> None:
    settings = FILE_SETTINGS.replace("[[backends]]", "[[tool.asynclog.backends]]")
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "app"\n[tool.ruff]\nline-length = 100\n')
    error = _load_error(path, env={})
    assert str(error) == f"{path}: no [tool.asynclog] table"
    path.write_text('[project]\nname = "app"\n[tool.asynclog]\n' + settings)
    assert load_config(path, env={}) == _expected_file_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[asynclog]\n[tool.asynclog]\n",
            "both [asynclog] and [tool.asynclog] are present; keep one",
        ),
        ("asynclog = 3\n", "asynclog must be a table, got int"),
        ("level = \n", "invalid TOML: Invalid value (at line 1, column 9)"),
        (
            'level = "info"\n[asynclog\n',
            "invalid TOML: Expected ']' at the end of a table declaration (at line 2, column 10)",
        ),
        (
            "[[backends]]\ntype = 'file'\n[[backends]]\ntype = 'file'\nmax_file_size_mb = -1\n",
            "backends[1].max_file_size_mb: must be > 0, got -1",
        ),
        ("queue_size = 0\n", "queue_size: must be >= 1, got 0"),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "asynclog.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == f"{path}: {message}"


def test_a_key_error_in_a_file_keeps_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "asynclog.toml"
    path.write_text("[backend_config]\nmax_size = 3\n")
    error = _load_error(path, env={})
    assert error.key == "backend_config.max_size"
    assert str(error).startswith(f"{path}: backend_config.max_size: unknown key; expected one")


def test_missing_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    error = _load_error(missing)
    assert (str(error), error.key) == (f"{missing}: no such file", None)
    error = _load_error(tmp_path)
    assert str(error).startswith(f"{tmp_path}: cannot read: ")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    error = _load_error(latin)
    assert str(error) == f"{latin}: invalid TOML: not UTF-8 (invalid continuation byte at byte 11)"


def test_env_overrides_the_file_and_env_none_ignores_it(tmp_path: Path) -> None:
    path = tmp_path / "asynclog.toml"
    path.write_text('level = "info"\nqueue_size = 5\n')
    env = {"ASYNCLOG_LEVEL": "error", "ASYNCLOG_QUEUE_SIZE": "0"}
    error = _load_error(path, env=env)
    assert (str(error), error.key) == (
        "ASYNCLOG_QUEUE_SIZE: must be >= 1, got 0",
        "ASYNCLOG_QUEUE_SIZE",
    ), "an env error names the variable, not the file"
    config = load_config(path, env={"ASYNCLOG_LEVEL": "error"})
    assert (config.min_level, config.queue_size) == (Level.ERROR, 5)
    assert load_config(path, env=None).min_level == Level.INFO


def test_relative_paths_are_relative_to_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "asynclog.toml").write_text(
        "[[backends]]\ntype = 'file'\nfile_path = '../logs/app.log'\n"
        f"[[backends]]\ntype = 'file'\nfile_path = '{tmp_path / 'abs.log'}'\n"
        "[[backends]]\ntype = 'sqlite'\ndb_path = 'app.db'\n"
        "[[backends]]\ntype = 'file'\nfile_path = '~/home.log'\n"
    )
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/asynclog.toml", env={})
    assert config.backends == [
        FileConfig(file_path=os.path.join(conf, "../logs/app.log")),
        FileConfig(file_path=str(tmp_path / "abs.log")),
        SQLiteConfig(db_path=str(conf / "app.db")),
        FileConfig(file_path=os.path.expanduser("~/home.log")),
    ]


def test_from_dict_keeps_relative_paths_unless_given_a_base_dir(tmp_path: Path) -> None:
    data = {"backend_config": {"file_path": "logs/app.log"}}
    assert Config.from_dict(data).backend_config == FileConfig(file_path="logs/app.log")
    resolved = Config.from_dict(data, base_dir=tmp_path).backend_config
    assert resolved == FileConfig(file_path=str(tmp_path / "logs" / "app.log"))


async def test_load_config_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "asynclog.toml"
    path.write_text(
        '[asynclog]\nlevel = "info"\n[asynclog.backend_config]\nfile_path = "logs/app.log"\n'
    )
    config = load_config(path, env={"ASYNCLOG_ASYNC": "yes"})
    assert config.async_mode is True
    async with LogManager(config) as lm:
        await lm.debug("dropped")
        await lm.info("x")
    lines = read_lines(tmp_path / "logs" / "app.log")
    assert [message_of(line) for line in lines] == ["x"]
