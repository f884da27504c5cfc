"""`backends.sqlite.insert_rows`: a batch inserted as a few multi-row statements (powers of two
within SQLite's variable limit) holds exactly the rows, in order, as executemany would have
written them."""

from __future__ import annotations

import sqlite3

import pytest

from asynclog.backends.sqlite import insert_rows

INSERT = "INSERT INTO t (a, b, c) VALUES (?, 'lit', ?)"


@pytest.mark.parametrize("variables", [32766, 40, 7])
@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8, 9, 13, 16, 17, 31, 100, 1000, 2049])
def test_rows_are_inserted_exactly_and_in_order(variables: int, count: int) -> None:
    connection = sqlite3.connect(":memory:")
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variables)
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a REAL, b TEXT, c TEXT)")
    rows = [(i + 0.25, None if i % 3 == 0 else f"row {i}") for i in range(count)]
    insert_rows(connection, INSERT, rows)
    expected = sqlite3.connect(":memory:")
    expected.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a REAL, b TEXT, c TEXT)")
    expected.executemany(INSERT, rows)
    query = "SELECT id, a, typeof(a), b, c, typeof(c) FROM t ORDER BY id"
    assert connection.execute(query).fetchall() == expected.execute(query).fetchall()
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (count,)
