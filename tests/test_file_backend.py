"""File backend: one entry per line, size rotation without splitting entries, open errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, LogError, LogManager
from asynclog.backends._rotation import Run, plan_runs, rotate_files

from .conftest import message_of, read_lines


def test_plan_runs_keeps_each_file_within_the_limit() -> None:
    assert plan_runs([], 0, 100) == []
    assert plan_runs([10, 10], 0, 100) == [Run(0, 2, False)]
    assert plan_runs([40, 40, 40], 0, 100) == [Run(0, 2, False), Run(2, 3, True)]
    assert plan_runs([30], 80, 100) == [Run(0, 1, True)]
    assert plan_runs([20], 80, 100) == [Run(0, 1, False)], "exactly at the limit fits"
    assert plan_runs([150, 10], 0, 100) == [Run(0, 1, False), Run(1, 2, True)]
    assert plan_runs([10, 150], 50, 100) == [Run(0, 1, False), Run(1, 2, True)]


def test_rotate_files_shifts_backups_and_drops_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    for name, text in [("app.log", "now"), ("app.log.1", "one"), ("app.log.2", "two")]:
        (tmp_path / name).write_text(text)
    rotate_files(str(path), 2)
    assert sorted(os.listdir(tmp_path)) == ["app.log.1", "app.log.2"]
    assert (tmp_path / "app.log.1").read_text() == "now"
    assert (tmp_path / "app.log.2").read_text() == "one"
    path.write_text("fresh")
    rotate_files(str(path), 0)
    assert not path.exists()


async def _write(
    log_path: Path, count: int, *, max_mb: float, backups: int, async_mode: bool = True
) -> None:
    config = Config(
        backend="file",
        async_mode=async_mode,
        batch_size=37,
        backend_config=FileConfig(file_path=log_path, max_file_size_mb=max_mb, max_backups=backups),
    )
    async with LogManager(config) as lm:
        for index in range(count):
            await lm.info(f"entry {index:05d} " + "x" * 40)


def _files_oldest_first(log_path: Path, backups: int) -> list[Path]:
    rotated = [Path(f"{log_path}.{n}") for n in range(backups, 0, -1)]
    return [path for path in rotated if path.exists()] + [log_path]


@pytest.mark.parametrize("async_mode", [True, False])
async def test_rotation_keeps_every_line_and_each_file_within_the_limit(
    log_path: Path, async_mode: bool
) -> None:
    limit_mb = 0.01  # 10,485 bytes; each line is about 100 bytes
    await _write(log_path, 350, max_mb=limit_mb, backups=5, async_mode=async_mode)
    files = _files_oldest_first(log_path, 5)
    assert len(files) == 4
    messages = [message_of(line) for path in files for line in read_lines(path)]
    assert messages == [f"entry {index:05d} " + "x" * 40 for index in range(350)]
    for path in files:
        assert 0 < path.stat().st_size <= FileConfig(max_file_size_mb=limit_mb).max_bytes


async def test_rotation_deletes_the_oldest_past_max_backups(log_path: Path) -> None:
    await _write(log_path, 1000, max_mb=0.01, backups=2)
    files = _files_oldest_first(log_path, 5)
    assert [path.name for path in files] == ["app.log.2", "app.log.1", "app.log"]
    assert not Path(f"{log_path}.3").exists()
    indexes = [int(message_of(line).split()[1]) for path in files for line in read_lines(path)]
    assert indexes == list(range(indexes[0], 1000)), "the newest entries survive, contiguous"
    assert 200 < len(indexes) < 320


async def test_max_backups_zero_keeps_only_the_current_file(log_path: Path) -> None:
    await _write(log_path, 500, max_mb=0.01, backups=0)
    assert sorted(os.listdir(log_path.parent)) == ["app.log"]
    indexes = [int(message_of(line).split()[1]) for line in read_lines(log_path)]
    assert indexes == list(range(indexes[0], 500))
    assert log_path.stat().st_size <= 10485


async def test_messages_with_line_breaks_stay_one_line(log_path: Path) -> None:
    await _write_messages(log_path, ["a\nb", "c\r\nd", "INFO\nforged 2026 INFO x", "e\u2028f"])
    lines = read_lines(log_path)
    assert [message_of(line) for line in lines] == [
        "a\\nb",
        "c\\r\\nd",
        "INFO\\nforged 2026 INFO x",
        "e\\u2028f",
    ]


async def test_json_format_writes_one_object_per_line(log_path: Path) -> None:
    config = Config(
        backend="file",
        async_mode=True,
        backend_config=FileConfig(file_path=log_path, format="json"),
    )
    async with LogManager(config) as lm:
        await lm.info("two\nlines", user="ann", n=1)
        await lm.error("lone \udc80 surrogate")
    first, second = (json.loads(line) for line in read_lines(log_path))
    assert (first["message"], first["level"], first["fields"]) == (
        "two\nlines",
        "INFO",
        {"user": "ann", "n": 1},
    )
    assert (second["message"], second["level"]) == ("lone \udc80 surrogate", "ERROR")


async def _write_messages(log_path: Path, messages: list[str]) -> None:
    config = Config(backend="file", backend_config=FileConfig(file_path=log_path))
    async with LogManager(config) as lm:
        for message in messages:
            await lm.info(message)


async def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "app.log"
    await _write_messages(path, ["deep"])
    assert [message_of(line) for line in read_lines(path)] == ["deep"]


async def test_a_path_that_cannot_be_opened_raises_log_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    path = blocker / "app.log"
    lm = LogManager(Config(backend="file", backend_config=FileConfig(file_path=path)))
    with pytest.raises(LogError, match=f"cannot open log file '{path}'"):
        await lm.start()
    await lm.close()  # closing a manager that never started is fine


async def test_reopening_appends_and_mends_a_torn_last_line(log_path: Path) -> None:
    await _write_messages(log_path, ["first"])
    with log_path.open("ab") as handle:
        handle.write(b"2026-01-01T00:00:00.000000Z INFO asynclog torn wri")  # a crash mid-write
    await _write_messages(log_path, ["second"])
    lines = read_lines(log_path)
    assert len(lines) == 3
    assert message_of(lines[0]) == "first"
    assert lines[1].endswith("torn wri")
    assert message_of(lines[2]) == "second"
