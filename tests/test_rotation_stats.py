"""`LogStats.rotated_files_deleted`: the files a real rotation (max_backups) and retention
(max_age, max_total_mb) deleted, counted exactly, per backend and in the totals."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, LogEntry, LogManager
from asynclog.metrics import PrometheusCollector

from .conftest import read_lines

LINE = 100  # bytes per line, newline included
PER_FILE = 3
MIB = 1024 * 1024


def padded(entry: LogEntry) -> str:
    return entry.message.ljust(LINE - 1)


def file_config(path: Path, **options: object) -> FileConfig:
    """A file that holds exactly PER_FILE lines of LINE bytes."""
    return FileConfig(
        file_path=str(path),
        format=padded,
        max_file_size_mb=(PER_FILE * LINE + 0.5) / MIB,
        **options,  # type: ignore[arg-type]
    )


async def write(lm: LogManager, count: int) -> None:
    for number in range(count):
        assert await lm.info(f"m{number:02d}")


def messages(path: Path) -> list[str]:
    if path.suffix == ".gz":
        return [line.rstrip() for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    return [line.rstrip() for line in read_lines(path)]


@pytest.mark.parametrize("async_mode", [True, False], ids=["async", "sync"])
async def test_rotations_past_max_backups_are_counted(tmp_path: Path, async_mode: bool) -> None:
    path = tmp_path / "app.log"
    config = Config(async_mode=async_mode, backends=[file_config(path, max_backups=2)])
    async with LogManager(config) as lm:
        assert lm.get_stats().rotated_files_deleted == 0
        await write(lm, 30)  # 10 files' worth: 9 rotations, the first 2 fill .1 and .2
    stats = lm.get_stats()
    assert (stats.rotated_files_deleted, stats.backends["file"].rotated_files_deleted) == (7, 7)
    samples = [
        (sample.labels["backend"], sample.value)
        for family in PrometheusCollector(lm, registry=None).collect()
        if family.name == "asynclog_rotated_files_deleted"
        for sample in family.samples
    ]
    assert samples == [("file", 7.0)]
    assert sorted(os.listdir(tmp_path)) == ["app.log", "app.log.1", "app.log.2"]
    assert messages(tmp_path / "app.log.2") == ["m21", "m22", "m23"]
    assert messages(tmp_path / "app.log.1") == ["m24", "m25", "m26"]
    assert messages(path) == ["m27", "m28", "m29"]


async def test_max_backups_zero_deletes_every_full_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    async with LogManager(Config(backends=[file_config(path, max_backups=0)])) as lm:
        await write(lm, 10)  # rotations before m03, m06, m09: each deletes the full file
    assert lm.get_stats().rotated_files_deleted == 3
    assert messages(path) == ["m09"]


async def test_compressed_backups_deleted_are_counted_once_each(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = Config(backends=[file_config(path, max_backups=1, compress=True)])
    async with LogManager(config) as lm:
        await write(lm, 15)  # 4 rotations, each after the first deletes .1 or .1.gz
    assert lm.get_stats().rotated_files_deleted == 3
    assert sorted(os.listdir(tmp_path)) == ["app.log", "app.log.1.gz"]
    assert messages(tmp_path / "app.log.1.gz") == ["m09", "m10", "m11"]


async def test_retention_deletions_are_counted_at_start_and_after_rotations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    week_ago = time.time() - 7 * 86400
    for number in (1, 2, 3):  # left by an earlier run, last written a week ago
        old = tmp_path / f"app.log.{number}"
        old.write_text("old\n")
        os.utime(old, (week_ago, week_ago))
    (tmp_path / "other.log.1").write_text("not ours\n")
    config = Config(backends=[file_config(path, max_backups=5, max_age="1d")])
    async with LogManager(config) as lm:
        assert lm.get_stats().rotated_files_deleted == 3  # expired, deleted at start
        await write(lm, 6)  # one rotation: a fresh .1, nothing expired
    assert lm.get_stats().rotated_files_deleted == 3
    assert sorted(os.listdir(tmp_path)) == ["app.log", "app.log.1", "other.log.1"]

    # max_total_mb: the rotated files may hold 2 files' worth; the oldest beyond go.
    capped = tmp_path / "capped.log"
    config = Config(
        backends=[file_config(capped, max_backups=10, max_total_mb=(2 * PER_FILE * LINE) / MIB)]
    )
    async with LogManager(config) as lm:
        await write(lm, 15)  # 4 rotations: .1 .. .4 made, the 2 oldest deleted
    assert lm.get_stats().rotated_files_deleted == 2
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith("capped")) == [
        "capped.log",
        "capped.log.1",
        "capped.log.2",
    ]


async def test_two_backends_each_count_their_own(tmp_path: Path) -> None:
    config = Config(
        backends=[
            file_config(tmp_path / "a.log", max_backups=1, name="a"),
            file_config(tmp_path / "b.log", max_backups=3, name="b"),
        ]
    )
    async with LogManager(config) as lm:
        await write(lm, 18)  # 5 rotations each
    stats = lm.get_stats()
    assert (
        stats.backends["a"].rotated_files_deleted,
        stats.backends["b"].rotated_files_deleted,
    ) == (
        4,
        2,
    )
    assert stats.rotated_files_deleted == 6
