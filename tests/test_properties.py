"""Property-based: arbitrary text and field values survive every format."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from asynclog import FileConfig, Level, LogEntry, SQLiteConfig
from asynclog.backends.file import FileBackend
from asynclog.backends.sqlite import SQLiteBackend
from asynclog.formatters import text_format

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
field_maps = st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=5)
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)


def _entry(message: str, fields: dict[str, Any]) -> LogEntry:
    return LogEntry(time.time(), Level.INFO, message, "prop", MappingProxyType(fields))


@given(any_text, field_maps)
def test_the_text_format_always_yields_exactly_one_line(
    message: str, fields: dict[str, Any]
) -> None:
    line = text_format(_entry(message, fields))
    encoded = line.encode("utf-8")  # never raises: surrogates are escaped
    assert b"\n" not in encoded and b"\r" not in encoded
    assert len(line.splitlines()) == 1
    assert all(ch.isprintable() for ch in line if ord(ch) < 0xA0), "no C0/C1 control survives"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(any_text, field_maps), min_size=1, max_size=5))
async def test_text_and_fields_round_trip_through_the_json_file_format(
    batch: list[tuple[str, dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        backend = FileBackend(FileConfig(file_path=Path(folder) / "a.log", format="json"))
        await backend.open()
        await backend.write_batch([_entry(m, f) for m, f in batch])
        await backend.close()
        raw = (Path(folder) / "a.log").read_bytes()
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == len(batch)
    for line, (message, fields) in zip(lines, batch, strict=True):
        decoded = json.loads(line.decode("utf-8"))
        assert decoded["message"] == message
        assert decoded["fields"] == fields


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=200), field_maps), min_size=1, max_size=5))
async def test_text_and_fields_round_trip_through_sqlite(
    batch: list[tuple[str, dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.db"
        backend = SQLiteBackend(SQLiteConfig(db_path=path))
        await backend.open()
        await backend.write_batch([_entry(m, f) for m, f in batch])
        await backend.close()
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT message, fields FROM logs ORDER BY id").fetchall()
        db.close()
    assert [(message, json.loads(fields)) for message, fields in rows] == [
        (message, fields) for message, fields in batch
    ]
