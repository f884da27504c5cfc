"""Hostile configuration and text: DSN secrets, values that would overflow later, nesting that
would exhaust the stack, and characters that would reorder a line on screen."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import traceback
from pathlib import Path
from typing import Any

import pytest

from asynclog import (
    Config,
    ConfigError,
    FileConfig,
    LogEntry,
    LogError,
    LogManager,
    OTLPConfig,
    PostgresBackend,
    PostgresConfig,
    SQLiteConfig,
    SyslogConfig,
    load_config,
)
from asynclog.__main__ import main
from asynclog.formatters import escape, json_format, logfmt_format, text_format

# --- PostgreSQL DSN secrets -------------------------------------------------------------------

MASKED = [
    (
        "postgresql://app:s3cr3t@db:5432/logs?sslpassword=SSLSECRET&sslmode=require",
        "postgresql://app:***@db:5432/logs?sslpassword=***&sslmode=require",
        ["s3cr3t", "SSLSECRET"],
    ),
    (
        "postgresql://app:p%40ss%2Fw0rd%3F@db/logs",
        "postgresql://app:***@db/logs",
        ["p%40ss", "w0rd", "p@ss/w0rd?"],
    ),
    (
        "postgres://db/logs?pass%77ord=ENCODEDNAME&SslPassword=MIXEDCASE",
        "postgres://db/logs?pass%77ord=***&SslPassword=***",
        ["ENCODEDNAME", "MIXEDCASE"],
    ),
    (
        "postgresql://app:MULTIHOST@h1:5432,h2:5433,[::1]:5434/logs",
        "postgresql://app:***@h1:5432,h2:5433,[::1]:5434/logs",
        ["MULTIHOST"],
    ),
    (
        "postgresql://db/logs?options=-c%20x%3Dy&my_password=CUSTOM+KEY&password=SEMI;COLON",
        "postgresql://db/logs?options=-c%20x%3Dy&my_password=***&password=***",
        ["CUSTOM", "KEY", "SEMI", "COLON"],
    ),
    ("postgresql://app:@db/logs", "postgresql://app:***@db/logs", []),
]


@pytest.mark.parametrize(("dsn", "masked", "secrets"), MASKED)
def test_every_dsn_secret_is_masked_in_the_repr(
    dsn: str, masked: str, secrets: list[str]
) -> None:
    config = PostgresConfig(dsn=dsn)
    assert config.masked_dsn == masked
    assert f"dsn='{masked}'" in repr(config)
    for text in (repr(config), str(config), repr(PostgresBackend(config))):
        for secret in secrets:
            assert secret not in text


MISREAD = [
    # a raw '@', '?', '/', '#' in the password: asyncpg would take part of it as the host,
    # the query, the path or a fragment, and the old mask showed that part
    ("postgresql://app:p@ss-TAIL@db/logs", ["ss-TAIL", "p@ss"], "'@'"),
    ("postgresql://app:pa?ss-TAIL@db/logs", ["pa?ss", "ss-TAIL"], "'@'"),
    ("postgresql://app:pa/ss-TAIL@db/logs", ["pa/ss", "ss-TAIL"], "'@'"),
    ("postgresql://app:pa#ss-TAIL@db/logs", ["pa#ss", "ss-TAIL"], "'@'"),
    ("postgresql://app@db/logs?password=SE&CRET-TAIL", ["SE&", "CRET-TAIL"], "name=value"),
    ("postgresql://app@db/logs?sslpassword=a@b-TAIL", ["a@b", "b-TAIL"], "'@'"),
    ("postgresql://app:FORGOTTEN-HOST/logs", ["FORGOTTEN-HOST"], "not a number"),
    ("postgresql://h1:5432,h2:PORTSECRET/logs", ["PORTSECRET"], "not a number"),
    ("postgresql://app:se\ncret@db/logs", ["se\ncret", "se\\ncret", "cret"], "control"),
]


@pytest.mark.parametrize(("dsn", "secrets", "problem"), MISREAD)
def test_a_dsn_asyncpg_would_misread_is_refused_without_its_secret(
    dsn: str, secrets: list[str], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        PostgresConfig(dsn=dsn)
    message = str(info.value)
    assert info.value.key == "dsn"
    assert problem in message and "***" in message
    for secret in secrets:
        assert secret not in message


def test_a_keyword_value_dsn_is_refused_without_its_passwords() -> None:
    with pytest.raises(ConfigError, match="keyword/value DSN") as info:
        PostgresConfig(dsn="host=db user=app password='se cret' sslpassword=KEYPASS")
    assert "host=db user=app password=*** sslpassword=***" in str(info.value)
    assert "se cret" not in str(info.value) and "KEYPASS" not in str(info.value)
    with pytest.raises(ConfigError, match="dsn is required") as bare:
        PostgresConfig(dsn="hunter2")  # no shape at all: shown as a whole secret
    assert "hunter2" not in str(bare.value)


async def test_connection_errors_show_no_secret_even_when_the_driver_echoes_it() -> None:
    # The password equals the host, so asyncio's own message ("Connect call failed
    # ('127.0.0.1', 1)") holds it (uvloop's says "Connection refused" without the host);
    # the sslpassword is in the query.
    dsn = "postgresql://app:127.0.0.1@127.0.0.1:1/logs?sslpassword=SSLSECRET&sslmode=disable"
    with pytest.raises(LogError, match="cannot connect to PostgreSQL") as info:
        await PostgresBackend(PostgresConfig(dsn=dsn, connect_timeout=5)).open()
    printed = "".join(traceback.format_exception(info.value))
    assert "postgresql://app:***@127.0.0.1:1/logs?sslpassword=***&sslmode=disable" in printed
    assert "SSLSECRET" not in printed
    message = str(info.value)
    assert "('***', 1)" in message or "Connection refused" in message
    assert "127.0.0.1'" not in printed  # not in the message, nor in a chained cause


async def test_a_driver_error_without_a_secret_keeps_its_cause() -> None:
    dsn = "postgresql://app:NOT-ECHOED@127.0.0.1:1/logs?sslmode=disable"
    with pytest.raises(LogError, match=r"Connect call failed|Connection refused") as info:
        await PostgresBackend(PostgresConfig(dsn=dsn, connect_timeout=5)).open()
    assert isinstance(info.value.__cause__, OSError)
    assert "NOT-ECHOED" not in "".join(traceback.format_exception(info.value))


# --- numbers that pass validation and fail later -----------------------------------------------

HUGE_INT = 10**5000  # beyond any float, and beyond int's repr limit of 4300 digits

BOUNDED: list[tuple[type[Any], dict[str, Any], str, object, str]] = [
    (Config, {}, "retry_attempts", 2000, "must be <= 100, got 2000"),
    (Config, {}, "retry_attempts", HUGE_INT, "must be <= 100, got <int of 16610 bits>"),
    (Config, {}, "retry_backoff", 1e308, "must be <= 30, got 1e+308"),
    (Config, {}, "retry_backoff", math.inf, "must be a finite number, got inf"),
    (Config, {}, "retry_backoff", math.nan, "must be a finite number, got nan"),
    (Config, {}, "retry_backoff", -0.5, "must be >= 0, got -0.5"),
    (Config, {}, "retry_backoff", True, "must be a number, got True"),
    (Config, {}, "put_timeout", 1e9, "must be <= 86400, got 1000000000.0"),
    (Config, {}, "put_timeout", HUGE_INT, "must be a finite number, got <int of 16610 bits>"),
    (Config, {}, "queue_size", 10**10, "must be <= 1000000000, got 10000000000"),
    (Config, {}, "queue_size", True, "must be an int, got True"),
    (Config, {}, "batch_size", 10**10, "must be <= 1000000000"),
    (Config, {}, "max_entry_bytes", 2**41, "must be <= 1099511627776"),
    (Config, {}, "max_queue_bytes", 2**41, "must be <= 1099511627776"),
    (Config, {}, "level", HUGE_INT, "between 1 and 100, got <int of 16610 bits>"),
    (FileConfig, {}, "max_file_size_mb", 1e308, "must be <= 1073741824, got 1e+308"),
    (FileConfig, {}, "max_file_size_mb", HUGE_INT, "must be a finite number"),
    (FileConfig, {}, "max_total_mb", 1e308, "must be <= 1073741824, got 1e+308"),
    (FileConfig, {}, "max_backups", 10**9, "must be <= 10000, got 1000000000"),
    (FileConfig, {}, "reopen_check_interval", 1e300, "must be <= 86400"),
    (FileConfig, {}, "rotate_every", "0." + "0" * 322 + "5s", "must be at least 1 s"),
    (FileConfig, {}, "rotate_every", "0.5s", "must be at least 1 s, got '0.5s'"),
    (FileConfig, {}, "max_age", HUGE_INT, "must be seconds > 0"),
    (FileConfig, {}, "mode", True, "must be an int, got True"),
    (SQLiteConfig, {}, "busy_timeout", 3e6, "must be <= 86400, got 3000000.0"),
    (SQLiteConfig, {}, "retention_interval", 1e308, "must be <= 86400"),
    (SQLiteConfig, {}, "max_rows", 2**63, "must be <= 9223372036854775807"),
    (SQLiteConfig, {}, "max_rows", True, "must be an int >= 1 or None, got True"),
    (SyslogConfig, {}, "reconnect_attempts", 2000, "must be <= 100, got 2000"),
    (SyslogConfig, {}, "reconnect_backoff", 1e308, "must be <= 30"),
    (SyslogConfig, {}, "connect_timeout", 1e308, "must be <= 86400"),
    (SyslogConfig, {}, "ack_timeout", HUGE_INT, "must be a finite number"),
    (SyslogConfig, {}, "relp_window", 10**9, "must be <= 100000"),
    (SyslogConfig, {}, "port", True, "must be an int, got True"),
    (OTLPConfig, {}, "timeout", 1e308, "must be <= 86400"),
    (OTLPConfig, {}, "max_retry_time", 1e308, "must be <= 86400"),
    (OTLPConfig, {}, "retry_backoff", 1e308, "must be <= 30"),
    (PostgresConfig, {"dsn": "postgresql://db/logs"}, "reconnect_attempts", 2000, "<= 100"),
    (PostgresConfig, {"dsn": "postgresql://db/logs"}, "reconnect_backoff", 1e308, "<= 30"),
    (PostgresConfig, {"dsn": "postgresql://db/logs"}, "command_timeout", 1e308, "<= 86400"),
    (PostgresConfig, {"dsn": "postgresql://db/logs"}, "connect_timeout", 1e308, "<= 86400"),
]


@pytest.mark.parametrize(
    ("config_class", "base", "field", "value", "expected"),
    BOUNDED,
    ids=[f"{row[0].__name__}.{row[2]}-{n}" for n, row in enumerate(BOUNDED)],
)
def test_a_value_that_would_fail_later_is_refused_at_construction(
    config_class: type[Any], base: dict[str, Any], field: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_class(**base, **{field: value})
    assert info.value.key == field
    assert expected in str(info.value)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    ("config_class", "base", "field", "value"),
    [
        (Config, {}, "retry_attempts", 100),
        (Config, {}, "retry_backoff", 30),
        (Config, {}, "put_timeout", 86400),
        (SQLiteConfig, {}, "busy_timeout", 86400),
        (FileConfig, {}, "max_backups", 10_000),
        (FileConfig, {}, "rotate_every", "1s"),
        (SyslogConfig, {}, "reconnect_attempts", 100),
        (PostgresConfig, {"dsn": "postgresql://db/logs"}, "reconnect_backoff", 30.0),
    ],
)
def test_the_documented_maximum_itself_is_accepted(
    config_class: type[Any], base: dict[str, Any], field: str, value: object
) -> None:
    assert getattr(config_class(**base, **{field: value}), field) == value


async def test_the_largest_file_sizes_still_write_and_rotate(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = FileConfig(file_path=path, max_file_size_mb=2**30, max_total_mb=2**30)
    async with LogManager(Config(backend="file", backend_config=config)) as lm:
        await lm.info("first")
        await lm.info("second")
    assert lm.get_stats().written == 2
    assert [line.split(" ", 3)[3] for line in path.read_text().splitlines()] == [
        "first",
        "second",
    ]


def test_a_huge_queue_size_from_the_environment_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at most 20 digits") as info:
        Config.from_dict({}, env={"ASYNCLOG_QUEUE_SIZE": "9" * 5000})
    assert info.value.key == "ASYNCLOG_QUEUE_SIZE"
    assert len(str(info.value)) < 400


def _nested_list(depth: int) -> list[Any]:
    nested: list[Any] = []
    for _ in range(depth):
        nested = [nested]
    return nested


def test_deeply_nested_values_give_config_errors(tmp_path: Path) -> None:
    arrays = tmp_path / "arrays.toml"
    arrays.write_text("queue_size = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(arrays, env=None)
    dotted = tmp_path / "dotted.toml"  # tomllib builds this without recursion
    dotted.write_text("level." + ".".join(["a"] * 5000) + " = 1\n")
    with pytest.raises(ConfigError, match="level must be a Level") as level:
        load_config(dotted, env=None)
    assert level.value.key == "level"
    backend = tmp_path / "backend.toml"
    backend.write_text('[[backends]]\ntype = "file"\nmax_age.' + ".".join(["a"] * 5000) + " = 1\n")
    with pytest.raises(ConfigError, match="must be seconds > 0") as age:
        load_config(backend, env=None)
    assert age.value.key == "backends[0].max_age"
    with pytest.raises(ConfigError, match=r"must be an int, got \[\[\[\[\.\.\.\]\]\]\]"):
        Config(queue_size=_nested_list(100_000))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="plain identifier") as table:
        Config.from_dict({"backend": "sqlite", "backend_config": {"table": _nested_list(10**5)}})
    assert table.value.key == "backend_config.table"


# --- display spoofing --------------------------------------------------------------------------

BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
"""LRE RLE PDF LRO RLO, LRI RLI FSI PDI."""


def _has_bidi(text: str) -> bool:
    return any(chr(code) in text for code in BIDI)


@pytest.mark.parametrize("code", BIDI, ids=[f"U+{code:04X}" for code in BIDI])
def test_bidi_controls_are_escaped_in_every_format(code: int) -> None:
    char = chr(code)
    entry = LogEntry(
        0.0,
        20,
        f"invoice {char}fdp.exe",
        f"log{char}ger",
        {f"k{char}": f"v{char}"},
        f"Traceback {char}",
    )
    escaped = f"\\u{code:04x}"
    assert escape(f"a{char}b") == f"a{escaped}b"
    for formatter in (text_format, logfmt_format, json_format):
        line = formatter(entry)
        assert char not in line
        assert line.count(escaped) == 5  # message, logger, key, value, traceback
    decoded = json.loads(json_format(entry))
    assert decoded["message"] == entry.message and decoded["fields"] == {f"k{char}": f"v{char}"}


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
async def test_files_hold_no_bidi_control_in_any_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"app.{fmt}.log"
    config = Config(
        async_mode=True,
        name="svc\u2067",
        backend="file",
        backend_config=FileConfig(file_path=path, format=fmt),  # type: ignore[arg-type]
    )
    async with LogManager(config) as lm:
        for index in range(50):  # one batch: the batch formatting path
            await lm.info(f"paid \u202e{index}gnp.exe\u202c", **{"to\u2066": "eve\u2069"})
        await lm.info("a plain one")
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 51
    assert not _has_bidi(text)
    assert text.count("\\u202e") == 50 and text.count("\\u2067") == 51


async def test_query_and_tail_show_no_bidi_control(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db))
    async with LogManager(config) as lm:
        await lm.info("user \u202eevil\u202c logged in", **{"note\u2068": "x\u2069"})
    with sqlite3.connect(db) as conn:  # stored as given: escaping is for display
        assert conn.execute("SELECT message FROM logs").fetchone()[0].count("\u202e") == 1
    conn.close()
    for argv in (["query", db], ["query", db, "--json"], ["tail", db], ["tail", db, "--json"]):
        assert main([str(arg) for arg in argv]) == 0
        out = capsys.readouterr().out
        assert "evil" in out and not _has_bidi(out)
        assert "\\u202e" in out and "\\u2068" in out
    foreign = tmp_path / "other.log"  # written by another program, controls raw
    foreign.write_text("2026-01-01T00:00:00Z INFO x \u202eabc\u2066 \u2028 done\n", "utf-8")
    assert main(["tail", str(foreign)]) == 0
    out = capsys.readouterr().out
    assert out == "2026-01-01T00:00:00Z INFO x \\u202eabc\\u2066 \\u2028 done\n"


def test_logfmt_never_repeats_a_key() -> None:
    fields = {
        "level": "debug",
        "msg": "forged",
        "ts": "1999",
        "logger": "root",
        "exception": "none",
        "fields.level": 1,
        "a b": 2,
        "a_b": 3,
        "user": "bob",
    }
    line = logfmt_format(LogEntry(0.0, 40, "real", "app", fields, None))
    assert line == (
        "ts=1970-01-01T00:00:00.000000Z level=error logger=app msg=real "
        "fields.level=debug fields.msg=forged fields.ts=1999 fields.logger=root "
        "fields.exception=none fields.fields.level=1 a_b=2 fields.a_b=3 user=bob"
    )
    keys = re.findall(r"(?:^| )([^ =]+)=", line)
    assert len(keys) == len(set(keys)) == 13
    with_traceback = logfmt_format(LogEntry(0.0, 40, "m", "app", {"exception": "x"}, "tb"))
    assert with_traceback.endswith("fields.exception=x exception=tb")
