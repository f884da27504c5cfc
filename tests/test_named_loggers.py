"""Named loggers (`lm.get_logger`, `asynclog.get_logger`), levels by logger name
(`Config.levels`, `lm.set_level`) and the stdlib records that obey them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import asynclog
from asynclog import (
    BoundLogger,
    Config,
    ConfigError,
    ConsoleConfig,
    Level,
    LogError,
    Logger,
    LogManager,
    ManagerClosedError,
    Sink,
    load_config,
)
from asynclog.stdlib import install

from .conftest import RecordingBackend, assert_settled

LEVELS = {"app": "INFO", "app.db": "DEBUG", "httpx": "WARNING"}


def _logged(backend: RecordingBackend) -> list[tuple[str, Level, str]]:
    return [(entry.logger, entry.level, entry.message) for entry in backend.entries]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# ---- the view --------------------------------------------------------------------------------


async def test_get_logger_returns_one_view_per_name_carrying_that_name() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, name="svc")) as lm:
        db = lm.get_logger("app.db")
        assert lm.get_logger("app.db") is db
        assert lm.get_logger("app") is not db
        assert isinstance(db, Logger)
        assert BoundLogger is Logger
        assert (db.name, db.manager, dict(db.fields), db.level) == ("app.db", lm, {}, Level.DEBUG)
        bound = db.bind(table="users")
        assert (bound.name, dict(bound.fields)) == ("app.db", {"table": "users"})
        assert lm.bind(a=1).name == "svc"
        assert repr(bound) == f"<Logger 'app.db' DEBUG {{'table': 'users'}} of {lm!r}>"
        assert await db.debug("d %s", 1) is True
        assert await db.info("i") is True
        assert await db.warning("w") is True
        assert await db.error("e") is True
        assert await db.critical("c") is True
        assert await db.write_log("INFO", "wl") is True
        try:
            raise KeyError("k")
        except KeyError:
            assert await db.exception("x") is True
        assert await bound.info("row") is True
        db.write_log_threadsafe("INFO", "threadsafe %d", 2)
        await _settle()
        await lm.info("own")
    assert _logged(backend) == [
        ("app.db", Level.DEBUG, "d 1"),
        ("app.db", Level.INFO, "i"),
        ("app.db", Level.WARNING, "w"),
        ("app.db", Level.ERROR, "e"),
        ("app.db", Level.CRITICAL, "c"),
        ("app.db", Level.INFO, "wl"),
        ("app.db", Level.ERROR, "x"),
        ("app.db", Level.INFO, "row"),
        ("app.db", Level.INFO, "threadsafe 2"),
        ("svc", Level.INFO, "own"),
    ]
    assert dict(backend.entries[7].fields) == {"table": "users"}
    assert_settled(lm.get_stats())


@pytest.mark.parametrize("name", ["", ".app", "app.", "app..db", 3])
async def test_a_bad_logger_name_is_refused(name: object) -> None:
    lm = LogManager(Config(backend=RecordingBackend()))
    with pytest.raises(ValueError, match="a logger name must be a non-empty dotted str"):
        lm.get_logger(name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a logger name must be a non-empty dotted str"):
        lm.set_level(name, "INFO")  # type: ignore[arg-type]


# ---- Config.levels ---------------------------------------------------------------------------


@pytest.mark.parametrize("async_mode", [True, False])
async def test_the_longest_dotted_prefix_wins(async_mode: bool) -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, level="ERROR", levels=LEVELS, async_mode=async_mode)
    async with LogManager(config) as lm:
        results = [
            await lm.get_logger("app").debug("app debug"),
            await lm.get_logger("app").info("app info"),
            await lm.get_logger("app.db").debug("app.db debug"),
            await lm.get_logger("app.db.pool").debug("app.db.pool debug"),
            await lm.get_logger("app.web").debug("app.web debug"),
            await lm.get_logger("app.web").info("app.web info"),
            await lm.get_logger("apple").warning("apple warning"),
            await lm.get_logger("apple").error("apple error"),
            await lm.get_logger("httpx").info("httpx info"),
            await lm.get_logger("httpx").warning("httpx warning"),
            await lm.warning("own warning"),
            await lm.error("own error"),
            await lm.bind(a=1).warning("bound warning"),
        ]
        assert results == [
            False, True, True, True, False, True, False, True, False, True, False, True, False,
        ]  # fmt: skip
        assert lm.get_stats().filtered == 1  # lm.warning; a view's filtered call is a no-op
    assert [entry.message for entry in backend.entries] == [
        "app info",
        "app.db debug",
        "app.db.pool debug",
        "app.web info",
        "apple error",
        "httpx warning",
        "own error",
    ]
    assert_settled(lm.get_stats())


async def test_the_manager_s_own_calls_use_the_level_of_its_name() -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, name="svc.api", level="ERROR", levels={"svc": "DEBUG"})
    async with LogManager(config) as lm:
        assert await lm.debug("own debug") is True
        assert lm.nowait.debug("nowait debug") is True
        assert await lm.get_logger("other").warning("other warning") is False
    assert backend.messages == ["own debug", "nowait debug"]


async def test_a_backend_s_own_level_still_applies() -> None:
    quiet, loud = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(quiet, name="quiet", level="WARNING"), Sink(loud, name="loud")],
        level="INFO",
        levels={"app.db": "DEBUG"},
    )
    async with LogManager(config) as lm:
        assert await lm.get_logger("app.db").debug("db debug") is True
        assert await lm.get_logger("app.db").warning("db warning") is True
        assert await lm.debug("own debug") is False
    assert quiet.messages == ["db warning"]
    assert loud.messages == ["db debug", "db warning"]


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"app": "LOUD"}, "levels['app']: unknown level name 'LOUD'"),
        ({"app.db": 0}, "levels['app.db']: level must be between 1 and 100, got 0"),
        ({"": "INFO"}, "levels: a logger name must be a non-empty dotted str, got ''"),
        ({"a..b": "INFO"}, "levels: a logger name must be a non-empty dotted str, got 'a..b'"),
        ({1: "INFO"}, "levels: a logger name must be a non-empty dotted str, got 1"),
        (["app"], "levels must be a mapping of logger names to levels, got ['app']"),
    ],
)
def test_bad_levels_are_a_config_error_naming_the_key(levels: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(levels=levels)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert caught.value.key == "levels"


def test_levels_from_a_dict_and_from_toml(tmp_path: Path) -> None:
    config = Config.from_dict({"level": "WARNING", "levels": LEVELS})
    assert dict(config.level_map) == {"app": 20, "app.db": 10, "httpx": 30}
    path = tmp_path / "asynclog.toml"
    path.write_text(
        '[asynclog]\nlevel = "WARNING"\n\n[asynclog.levels]\napp = "INFO"\n'
        '"app.db" = "DEBUG"\nhttpx.client = 30\n'
    )
    loaded = load_config(path, env={})
    assert dict(loaded.level_map) == {"app": 20, "app.db": 10, "httpx.client": 30}
    with pytest.raises(ConfigError, match=r"levels\['app'\]: unknown level name 'LOUD'"):
        Config.from_dict({"levels": {"app": "LOUD"}})


# ---- set_level -------------------------------------------------------------------------------


async def test_set_level_changes_existing_views_and_the_manager_s_own_calls() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, name="svc", level="INFO")) as lm:
        db = lm.get_logger("app.db")
        bound = db.bind(request="r1")
        web = lm.get_logger("app.web")
        assert await db.debug("before") is False
        assert await bound.debug("bound before") is False
        lm.set_level("app.db", "DEBUG")  # below Config.level: the sink lets it through
        assert db.level == Level.DEBUG
        assert await db.debug("after") is True
        assert await bound.debug("bound after") is True
        assert db.nowait.debug("nowait after") is True
        assert await web.debug("web still filtered") is False
        lm.set_level("app", Level.ERROR)
        assert await web.warning("web filtered") is False
        assert await db.debug("db keeps its own level") is True
        assert await lm.debug("own before") is False
        lm.set_level("svc", 10)
        assert await lm.debug("own after") is True  # the level shortcut follows too
        with pytest.raises(ValueError, match="unknown level name 'LOUD'"):
            lm.set_level("svc", "LOUD")
    assert backend.messages == [
        "after",
        "bound after",
        "nowait after",
        "db keeps its own level",
        "own after",
    ]
    assert lm.get_stats().filtered == 1  # lm.debug("own before"); views count nothing


# ---- stdlib records --------------------------------------------------------------------------


async def test_stdlib_records_obey_the_levels_by_their_logger_name() -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, level="ERROR", levels=LEVELS)
    async with LogManager(config) as lm:
        installation = install(lm, level=logging.DEBUG, loggers=["app", "httpx", "other"])
        for name in ("app", "httpx", "other"):  # pytest's own handler is on the root
            logging.getLogger(name).propagate = False
        try:
            logging.getLogger("app").debug("app debug")
            logging.getLogger("app").info("app info")
            logging.getLogger("app.db").debug("app.db debug %s", "formatted")
            logging.getLogger("httpx").info("httpx info")
            logging.getLogger("httpx").warning("httpx warning")
            logging.getLogger("other").warning("other warning")
            logging.getLogger("other").error("other error")
            await _settle()
            lm.set_level("httpx", "DEBUG")
            logging.getLogger("httpx").debug("httpx debug after set_level")
            await _settle()
            assert lm.get_stats().filtered == 3
        finally:
            for name in ("app", "httpx", "other"):
                logging.getLogger(name).propagate = True
            installation.undo()
    assert _logged(backend) == [
        ("app", Level.INFO, "app info"),
        ("app.db", Level.DEBUG, "app.db debug formatted"),
        ("httpx", Level.WARNING, "httpx warning"),
        ("other", Level.ERROR, "other error"),
        ("httpx", Level.DEBUG, "httpx debug after set_level"),
    ]


# ---- asynclog.get_logger ---------------------------------------------------------------------


async def test_asynclog_get_logger_with_no_manager_running_is_a_clear_error() -> None:
    with pytest.raises(LogError, match=r"asynclog\.get_logger: no LogManager is running"):
        asynclog.get_logger("app")


async def test_asynclog_get_logger_uses_the_only_running_manager() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        log = asynclog.get_logger("app.module")
        assert log is lm.get_logger("app.module")
        await log.info("via the module function")
    assert _logged(backend) == [("app.module", Level.INFO, "via the module function")]


async def test_several_running_managers_need_a_default() -> None:
    async with (
        LogManager(Config(backend=RecordingBackend(), name="one")),
        LogManager(Config(backend=RecordingBackend(), name="two")),
    ):
        with pytest.raises(LogError, match=r"several LogManagers are running \('one', 'two'\)"):
            asynclog.get_logger("app")
        backend = RecordingBackend()
        async with LogManager(Config(backend=backend, name="three", default=True)) as chosen:
            assert asynclog.get_logger("app").manager is chosen
            await asynclog.get_logger("app").info("to the default")
    assert backend.messages == ["to the default"]


async def test_a_default_manager_not_started_yet_gives_views_that_raise_until_it_starts() -> None:
    backend = RecordingBackend()
    lm = LogManager(Config(backend=backend, default=True))
    log = asynclog.get_logger("early.module")  # at import time, before start
    with pytest.raises(ManagerClosedError, match="is not started"):
        await log.info("too early")
    with pytest.raises(ConfigError, match="is the default already") as caught:
        LogManager(Config(backend=RecordingBackend(), default=True, name="second"))
    assert caught.value.key == "default"
    async with lm:
        assert await log.info("started") is True
    async with LogManager(Config(backend=RecordingBackend(), default=True, name="next")) as nxt:
        assert asynclog.get_logger("early.module").manager is nxt  # the closed one gave way
    assert backend.messages == ["started"]


def test_default_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="default must be a bool, got 'yes'"):
        Config(default="yes")  # type: ignore[arg-type]


def test_console_config_still_validates() -> None:
    assert (
        Config(backend="console", backend_config=ConsoleConfig(level="INFO")).sinks[0].own_level
        == 20
    )
