"""The SQLite backend binds NULL as a literal for the columns no entry of a batch fills
(exception, location): every mix of entries still reads back exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from asynclog import Config, LogManager, SQLiteConfig


def rows_of(db_path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as connection:
        return connection.execute(
            "SELECT level, logger, message, fields, exception, module, function, line "
            "FROM logs ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("capture_location", [False, True])
async def test_a_batch_mixing_fields_exceptions_and_names_reads_back_exactly(
    tmp_path: Path, capture_location: bool
) -> None:
    db_path = tmp_path / "shapes.db"
    config = Config(
        backend_config=SQLiteConfig(db_path=db_path),
        async_mode=True,
        name="app",
        capture_location=capture_location,
    )
    async with LogManager(config) as lm:
        await lm.info("plain")
        await lm.info("with fields", user="ann", n=3)
        await lm.get_logger("app.db").warning("other logger")
        try:
            raise ValueError("boom")
        except ValueError:
            await lm.exception("failed", step=2)
        await lm.info("plain again")
    rows = rows_of(db_path)
    assert [row[:4] for row in rows] == [
        (20, "app", "plain", "{}"),
        (20, "app", "with fields", '{"user": "ann", "n": 3}'),
        (30, "app.db", "other logger", "{}"),
        (40, "app", "failed", '{"step": 2}'),
        (20, "app", "plain again", "{}"),
    ]
    exceptions = [row[4] for row in rows]
    assert exceptions[:3] == [None, None, None] and exceptions[4] is None
    assert isinstance(exceptions[3], str) and "ValueError: boom" in exceptions[3]
    locations = [row[5:] for row in rows]
    if capture_location:
        assert all(
            row
            == (
                __name__,
                "test_a_batch_mixing_fields_exceptions_and_names_reads_back_exactly",
                row[2],
            )
            for row in locations
        )
        assert all(isinstance(row[2], int) and row[2] > 0 for row in locations)
    else:
        assert locations == [(None, None, None)] * 5


async def test_a_batch_with_fields_only_reads_back_exactly(tmp_path: Path) -> None:
    db_path = tmp_path / "fields.db"
    config = Config(backend_config=SQLiteConfig(db_path=db_path), async_mode=True, name="app")
    async with LogManager(config) as lm:
        for index in range(3):
            await lm.info(f"m{index}", index=index)
    assert rows_of(db_path) == [
        (20, "app", f"m{index}", f'{{"index": {index}}}', None, None, None, None)
        for index in range(3)
    ]
