"""A backend registered from outside asynclog works as the built-ins do.

The backend below is all a new backend needs: its settings dataclass, its backend class and
the registration call. Nothing else in asynclog is changed for it; `Config(backend=...)`,
`Config(backends=[...])`, `Config.from_dict` / `load_config` (`type = "memory"`), the stats
name and the error messages all come from the registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from asynclog import (
    Config,
    ConfigError,
    FileConfig,
    Level,
    LogEntry,
    LogManager,
    load_config,
)
from asynclog._backend_registry import BACKEND_NAMES, register_backend
from asynclog._config import BACKEND_CONFIGS
from asynclog.backends import backend_for


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """Settings of the memory backend."""

    label: str = "default"
    """Which list of `MemoryBackend.written` the messages go to."""
    level: Level | int | str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ConfigError(
                f"MemoryConfig.label must be a non-empty str, got {self.label!r}", "label"
            )


class MemoryBackend:
    """Keeps the messages it writes, by label, in a list every instance shares."""

    written: ClassVar[dict[str, list[str]]] = {}

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config

    async def open(self) -> None:
        self.written.setdefault(self.config.label, [])

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.written[self.config.label].extend(entry.message for entry in entries)

    async def close(self) -> None:
        return None


register_backend("memory", MemoryConfig, MemoryBackend)


@pytest.fixture(autouse=True)
def _empty_memory() -> None:
    MemoryBackend.written.clear()


def test_the_registered_backend_is_known_by_name() -> None:
    assert "memory" in BACKEND_NAMES
    assert BACKEND_CONFIGS["memory"] is MemoryConfig
    assert {"console", "file", "otlp", "postgres", "sqlite", "syslog"} < set(BACKEND_NAMES)
    backend = backend_for(MemoryConfig(label="x"))
    assert isinstance(backend, MemoryBackend) and backend.config.label == "x"


@pytest.mark.parametrize("async_mode", [True, False])
async def test_backend_by_name(async_mode: bool) -> None:
    config = Config(backend="memory", async_mode=async_mode)
    assert config.sinks[0].target == MemoryConfig()
    async with LogManager(config) as lm:
        await lm.info("one")
        await lm.debug("two")
    assert MemoryBackend.written == {"default": ["one", "two"]}
    stats = lm.get_stats()
    assert list(stats.backends) == ["memory"]
    assert stats.backends["memory"].written == 2


async def test_backend_by_name_with_its_settings() -> None:
    config = Config(backend="memory", backend_config=MemoryConfig(label="mine", name="kept"))
    async with LogManager(config) as lm:
        await lm.info("hello")
    assert MemoryBackend.written == {"mine": ["hello"]}
    assert list(lm.get_stats().backends) == ["kept"]


async def test_several_backends_with_default_names_numbered(tmp_path: Path) -> None:
    config = Config(
        backends=[
            MemoryConfig(label="all"),
            MemoryConfig(label="errors", level="ERROR"),
            FileConfig(file_path=tmp_path / "app.log"),
        ],
        async_mode=True,
    )
    assert [spec.name for spec in config.sinks] == ["memory", "memory-2", "file"]
    assert config.sinks[1].min_level == Level.ERROR
    async with LogManager(config) as lm:
        await lm.info("fine")
        await lm.error("broken")
    assert MemoryBackend.written == {"all": ["fine", "broken"], "errors": ["broken"]}
    stats = lm.get_stats()
    assert {name: part.written for name, part in stats.backends.items()} == {
        "memory": 2,
        "memory-2": 1,
        "file": 2,
    }
    assert (tmp_path / "app.log").read_text().count("\n") == 2


async def test_from_dict_and_toml(tmp_path: Path) -> None:
    config = Config.from_dict(
        {
            "backends": [
                {"type": "memory", "label": "dict", "level": "info"},
                {"type": "memory", "label": "named", "name": "audit"},
            ]
        }
    )
    assert config.sinks[0].target == MemoryConfig(label="dict", level="info")
    async with LogManager(config) as lm:
        await lm.debug("quiet")
        await lm.warning("loud")
    assert MemoryBackend.written == {"dict": ["loud"], "named": ["quiet", "loud"]}
    assert list(lm.get_stats().backends) == ["memory", "audit"]

    single = Config.from_dict({"backend": "memory", "backend_config": {"label": "one"}})
    assert single.sinks[0].target == MemoryConfig(label="one")

    path = tmp_path / "asynclog.toml"
    path.write_text('[[asynclog.backends]]\ntype = "memory"\nlabel = "toml"\n')
    assert load_config(path, env={}).sinks[0].target == MemoryConfig(label="toml")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Config(backend="memory", backend_config=FileConfig()),
            "backend_config for backend 'memory' must be MemoryConfig, got FileConfig, the "
            "settings of backend 'file': leave backend unset (the settings name their backend) "
            "or give backend='file'",
        ),
        (
            lambda: Config(backend="file", backend_config=MemoryConfig()),
            "backend_config for backend 'file' must be FileConfig, got MemoryConfig, the "
            "settings of backend 'memory': leave backend unset (the settings name their "
            "backend) or give backend='memory'",
        ),
        (
            lambda: Config.from_dict(
                {"backend": "file", "backend_config": {"type": "memory", "label": "x"}}
            ),
            "backend_config.type: 'memory' contradicts backend = 'file'; give one of them, "
            "or the same",
        ),
        (
            lambda: Config(backends=[MemoryConfig(name="")]),
            "backends[0]: a backend's name must be a non-empty str, got ''",
        ),
        (
            lambda: Config(backends=[MemoryConfig(name="x"), MemoryConfig(name="x")]),
            "two backends are named 'x'; names must differ",
        ),
        (
            lambda: Config.from_dict({"backends": [{"type": "memory", "colour": "red"}]}),
            "backends[0].colour: unknown key; expected one of type, label, level, name",
        ),
        (
            lambda: Config.from_dict({"backends": [{"type": "memory", "label": ""}]}),
            "backends[0].label: must be a non-empty str, got ''",
        ),
        (
            lambda: Config.from_dict({"backend": "memory", "backend_config": {"size": 1}}),
            "backend_config.size: unknown key; expected one of type, label, level, name",
        ),
    ],
)
def test_validation_as_for_the_built_ins(make: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()  # type: ignore[operator]
    assert str(info.value) == message


def test_errors_listing_the_backends_name_the_registered_one() -> None:
    names = ", ".join(BACKEND_NAMES)
    assert names.endswith("memory")
    with pytest.raises(ConfigError) as info:
        Config(backend="kafka")
    assert f"expected one of {names} or an object" in str(info.value)
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"backends": [{"type": "kafka"}]})
    assert str(info.value) == (
        f"backends[0].type: unknown backend type 'kafka'; expected one of {names}, custom"
    )
    with pytest.raises(ConfigError) as info:
        Config(backends=[object()])
    assert "a backends entry must be a backend config (ConsoleConfig, FileConfig, " in str(
        info.value
    )
    listed = "SyslogConfig, MemoryConfig, LoudMemoryConfig), a Sink or a Backend; object lacks"
    assert listed in str(info.value)


@dataclass(frozen=True)
class OtherConfig:
    level: Level | int | str | None = None
    name: str | None = None


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("memory", OtherConfig, "backend 'memory' is already registered (settings MemoryConfig)"),
        ("file", OtherConfig, "backend 'file' is already registered (settings FileConfig)"),
        ("memory2", MemoryConfig, "MemoryConfig already holds the settings of backend 'memory'"),
        ("custom", OtherConfig, "and not custom; got 'custom'"),
        ("Bad Name", OtherConfig, "got 'Bad Name'"),
        ("plain", dict, "backend 'plain': its settings must be a dataclass"),
        (
            "nameless",
            dataclasses.make_dataclass("Nameless", [("level", int, 0)]),
            "backend 'nameless': Nameless lacks the field(s) name",
        ),
    ],
)
def test_a_bad_or_duplicate_registration_is_refused(
    name: str, settings: type, message: str
) -> None:
    before = dict(BACKEND_CONFIGS)
    with pytest.raises(ConfigError) as info:
        register_backend(name, settings, MemoryBackend)
    assert message in str(info.value)
    assert dict(BACKEND_CONFIGS) == before


def test_the_backend_is_inferred_from_its_settings(tmp_path: Path) -> None:
    config = Config(backend_config=MemoryConfig())  # no backend="memory" needed
    assert [spec.name for spec in config.sinks] == ["memory"]
    assert Config(backend="memory", backend_config=MemoryConfig()).sinks == config.sinks
    from_table = Config.from_dict({"backend_config": {"type": "memory", "label": "t"}})
    assert from_table.sinks[0].target == MemoryConfig(label="t")
    assert Config.from_dict({"backend_config": MemoryConfig()}).sinks == config.sinks
    path = tmp_path / "asynclog.toml"
    path.write_text('[asynclog.backend_config]\ntype = "memory"\nlabel = "toml"\n')
    assert load_config(path, env={}).sinks[0].target == MemoryConfig(label="toml")


@dataclass(frozen=True, slots=True)
class LoudMemoryConfig(MemoryConfig):
    """A subclass registered as a backend of its own."""


register_backend("loud-memory", LoudMemoryConfig, MemoryBackend)


def test_a_registered_subclass_names_its_own_backend_not_its_base() -> None:
    assert [spec.name for spec in Config(backend_config=LoudMemoryConfig()).sinks] == [
        "loud-memory"
    ]
    assert [spec.name for spec in Config(backends=[LoudMemoryConfig()]).sinks] == ["loud-memory"]
    with pytest.raises(ConfigError, match="got LoudMemoryConfig, the settings of backend 'loud"):
        Config(backend="memory", backend_config=LoudMemoryConfig())
