"""Hostile or broken input: huge text, broken reprs, odd levels, other threads, file modes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, LogError, LogManager, SQLiteConfig

from .conftest import RecordingBackend, assert_settled, read_lines


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    def __str__(self) -> str:
        raise RuntimeError("str exploded")


async def test_huge_messages_and_fields_are_truncated_with_a_visible_marker() -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=True, max_entry_bytes=1024)
    async with LogManager(config) as lm:
        await lm.info("m" * 5000, blob="f" * 3000, small="ok")
        await lm.info("é" * 1000)  # 2000 bytes in UTF-8 but only 1000 characters
    first, second = backend.entries
    assert first.message.startswith("m" * 900)
    assert first.message.endswith("...[truncated 4024 bytes]")
    assert len(first.message.encode()) <= 1024
    assert first.fields["blob"].endswith("...[truncated 2024 bytes]")
    assert first.fields["small"] == "ok"
    assert second.message.endswith("bytes]") and len(second.message.encode()) <= 1024
    assert_settled(lm.get_stats())


async def test_a_message_or_field_whose_str_and_repr_raise_does_not_lose_the_entry(
    tmp_path: Path,
) -> None:
    paths = {"text": tmp_path / "a.log", "json": tmp_path / "b.log"}
    managers = [
        LogManager(
            Config(
                backend="file",
                async_mode=True,
                name=fmt,
                backend_config=FileConfig(file_path=path, format=fmt),
            )
        )  # type: ignore[arg-type]
        for fmt, path in paths.items()
    ]
    managers.append(
        LogManager(
            Config(
                backend="sqlite",
                async_mode=True,
                backend_config=SQLiteConfig(db_path=tmp_path / "c.db"),
            )
        )
    )
    for lm in managers:
        async with lm:
            await lm.info(Unprintable(), obj=Unprintable(), n=1)
        assert lm.get_stats().written == 1
        assert_settled(lm.get_stats())
    (text_line,) = read_lines(paths["text"])
    assert "<unrepresentable Unprintable: RuntimeError>" in text_line
    (json_line,) = read_lines(paths["json"])
    decoded = json.loads(json_line)
    assert decoded["fields"] == {"obj": "<unrepresentable Unprintable: RuntimeError>", "n": 1}
    with sqlite3.connect(tmp_path / "c.db") as db:
        (row,) = db.execute("SELECT message, fields FROM logs").fetchall()
    db.close()
    assert row[0] == "<unrepresentable Unprintable: RuntimeError>"


@pytest.mark.parametrize("level", [0, 101, -5, "verbose", None, 3.5, True, b"info"])
async def test_invalid_levels_raise_value_error_naming_the_value(level: object) -> None:
    async with LogManager(Config(backend=RecordingBackend(), async_mode=True)) as lm:
        with pytest.raises(ValueError, match=repr(level).replace("(", r"\(").replace(".", r"\.")):
            await lm.write_log(level, "x")  # type: ignore[arg-type]
    assert lm.get_stats().accepted == 0


async def test_levels_may_be_given_as_names_and_numbers() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, level="info")) as lm:
        await lm.write_log("WARNING", "a")
        await lm.write_log("debug", "filtered")
        await lm.write_log(45, "b")
        await lm.write_log(1, "filtered too")
    assert [(e.level, e.message) for e in backend.entries] == [(30, "a"), (45, "b")]
    stats = lm.get_stats()
    assert (stats.filtered, stats.accepted, stats.written) == (2, 2, 2)


async def test_write_log_from_another_thread_raises_a_clear_error() -> None:
    lm = LogManager(Config(backend=RecordingBackend(), async_mode=True))
    await lm.start()
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            asyncio.run(lm.info("from a thread with its own loop"))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    await lm.close()
    (error,) = errors
    assert isinstance(error, LogError)
    assert "use lm.write_log_threadsafe" in str(error)
    assert lm.get_stats().accepted == 0


async def test_files_and_databases_are_created_with_mode_0640(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        async with LogManager(
            Config(backend="file", backend_config=FileConfig(file_path=tmp_path / "a.log"))
        ) as lm:
            await lm.info("x")
        async with LogManager(
            Config(backend="sqlite", backend_config=SQLiteConfig(db_path=tmp_path / "a.db"))
        ) as lm:
            await lm.info("x")
        custom = FileConfig(file_path=tmp_path / "b.log", mode=0o600)
        async with LogManager(Config(backend="file", backend_config=custom)) as lm:
            await lm.info("x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a.log").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "a.db").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b.log").stat().st_mode) == 0o600


async def test_rotated_files_keep_the_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        config = FileConfig(file_path=tmp_path / "a.log", max_file_size_mb=0.001, max_backups=2)
        async with LogManager(Config(backend="file", backend_config=config)) as lm:
            for index in range(50):
                await lm.info(f"line {index}")
    finally:
        os.umask(old_umask)
    for name in ("a.log", "a.log.1", "a.log.2"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
