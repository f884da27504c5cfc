"""Review 20: the SQLite backend's partial level index (what reads it, how their plans change)
and the rsyslog fixture's handling of the half line a SIGKILLed daemon leaves."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynclog import Config, LogManager, SQLiteConfig
from asynclog.backends.sqlite import schema_statements
from asynclog.query import (
    COLUMNS,
    LogDB,
    build_after,
    build_last,
    build_select,
    make_filters,
    query,
    select_columns,
)

from .rsyslog_fixture import Rsyslog

# --- the rsyslog fixture's torn lines ---------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Rsyslog]:
    """An `Rsyslog` whose daemon is never started: `killed` stands a `sleep` in for it."""
    rsyslog = Rsyslog(tmp_path)
    yield rsyslog
    rsyslog.stop()


def killed(server: Rsyslog, written: bytes) -> None:
    """A daemon appends `written` to the output and is SIGKILLed."""
    server.process = subprocess.Popen(["sleep", "60"])
    with server.output.open("ab") as output:
        output.write(written)
    server.kill()


def append(server: Rsyslog, written: bytes) -> None:
    with server.output.open("ab") as output:
        output.write(written)


def test_a_daemon_killed_in_the_line_a_killed_one_left_half_done_loses_no_later_line(
    server: Rsyslog,
) -> None:
    """The second daemon is killed before its first line, which continues the first daemon's
    half line, ends: the third daemon's lines all arrive."""
    killed(server, b'{"i":0}\n{"i":')
    killed(server, b'{"i":1,"m":"x')
    append(server, b'{"i":2}\n{"i":3}\n')
    assert server.records() == [{"i": 0}, {"i": 2}, {"i": 3}]


def test_killed_with_the_file_ending_in_a_newline_or_empty_cuts_nothing(server: Rsyslog) -> None:
    killed(server, b"")
    killed(server, b'{"i":0}\n')
    append(server, b'{"i":1}\n')
    assert server.records() == [{"i": 0}, {"i": 1}]


def test_a_half_line_cut_inside_a_utf8_character_is_not_read_yet(server: Rsyslog) -> None:
    """rsyslogd writes its buffer in pieces: a poll may find the last line cut in the middle
    of a character (every message starts with a BOM, three bytes)."""
    bom_message = '{"msg":"\ufeffentry 1"}'.encode()
    append(server, b'{"msg":"\xef\xbb\xbfentry 0"}\n' + bom_message[:10])
    assert server.records() == [{"msg": "\ufeffentry 0"}]
    append(server, bom_message[10:] + b"\n")
    assert server.records() == [{"msg": "\ufeffentry 0"}, {"msg": "\ufeffentry 1"}]


# --- the partial level index: what reads it -----------------------------------------------------

T0 = 1_796_000_000.0
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
ORDERED_BY_ID = "SEARCH logs USING INTEGER PRIMARY KEY (rowid>?)"


@pytest.fixture
def analyzed(tmp_path: Path) -> Path:
    """3,000 rows, one in 30 an ERROR, the rest INFO; statistics gathered (`ANALYZE`), as
    docs/sqlite-schema.md suggests for a large table."""
    path = tmp_path / "analyzed.db"
    with sqlite3.connect(path) as db:
        for statement in schema_statements("logs"):
            db.execute(statement)
        db.executemany(
            "INSERT INTO logs (ts, level, logger, message, fields) VALUES (?, ?, 'api', ?, '{}')",
            [(T0 + i, 40 if i % 30 == 0 else 20, f"m{i}") for i in range(3_000)],
        )
        db.execute("ANALYZE")
    db.close()
    return path


def plan(path: Path, statement: tuple[str, list[object]]) -> str:
    sql, params = statement
    with sqlite3.connect(path) as db:
        rows = db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    db.close()
    return " / ".join(str(row[-1]) for row in rows)


def test_tail_f_polls_the_new_rows_by_id_not_every_error(analyzed: Path) -> None:
    """`asynclog tail -f --level error` asks for the rows after the last one it showed: a
    range of ids. Searching the level index instead reads every ERROR of the table (and sorts
    them) at each poll."""
    filters = make_filters(level="error")
    statement = build_after("logs", filters, False, columns=select_columns(COLUMNS), last_id=2990)
    assert plan(analyzed, statement) == ORDERED_BY_ID
    with LogDB(analyzed) as db:
        assert [(i, e.message) for i, e in db.after(2900, filters)] == [
            (2911, "m2910"),
            (2941, "m2940"),
            (2971, "m2970"),
        ]


def test_the_last_errors_and_the_newest_errors_are_read_in_order(analyzed: Path) -> None:
    """`asynclog tail --level error` and `query(level="error", limit=10)` read backwards in id
    or time order until they have their rows, as they did with the full level index, instead
    of reading and sorting every ERROR of the table."""
    filters = make_filters(level="error", limit=10)
    last = build_last("logs", filters, False, columns=select_columns(COLUMNS), count=10)
    assert "logs_level_ts" not in plan(analyzed, last)
    assert "logs_level_ts" not in plan(analyzed, build_select("logs", filters, False))
    # Without a limit every ERROR is read anyway: the level index serves that.
    unlimited = build_select("logs", make_filters(level="error"), False)
    assert "SEARCH logs USING INDEX logs_level_ts" in plan(analyzed, unlimited)
    with LogDB(analyzed) as db:
        assert [e.message for _, e in db.last(3, filters)] == ["m2910", "m2940", "m2970"]
        assert [e.message for e in db.entries(filters)][-3:] == ["m2910", "m2940", "m2970"]


async def test_tail_finds_an_entry_by_its_trace_id(tmp_path: Path) -> None:
    """A valid trace id is stored in its column only: `LogDB.last` and `LogDB.after` (the
    `asynclog tail` and `tail -f` reads) look there, as `query()` and `LogDB.entries` do."""
    path = tmp_path / "traced.db"
    manager = LogManager(Config(backend="sqlite", backend_config=SQLiteConfig(db_path=path)))
    await manager.start()
    await manager.error("traced", trace_id=TRACE_ID, span_id="b7ad6b7169203331")
    await manager.info("outside any span")
    await manager.close()
    filters = make_filters(fields={"trace_id": TRACE_ID})
    assert [entry.message async for entry in query(path, fields={"trace_id": TRACE_ID})] == [
        "traced"
    ]
    with LogDB(path) as db:
        assert [e.message for e in db.entries(filters)] == ["traced"]
        assert [(i, e.message) for i, e in db.last(10, filters)] == [(1, "traced")]
        assert [(i, e.message) for i, e in db.after(0, filters)] == [(1, "traced")]


# --- the SQL of docs/sqlite-schema.md ----------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "sqlite-schema.md"


def documented_sql() -> list[str]:
    """The SQL of every `sqlite3 logs/app.db "..."` command line of the doc."""
    prefix = 'sqlite3 logs/app.db "'
    lines = DOC.read_text(encoding="utf-8").splitlines()
    return [
        line[len(prefix) : line.rindex('"')].replace('\\"', '"')
        for line in lines
        if line.startswith(prefix)
    ]


async def test_the_documented_sqlite3_commands_run_and_show_every_time(tmp_path: Path) -> None:
    """Each query runs on a table the backend made (with `fts=True`), and a time it shows is a
    time, not NULL (`datetime(..., 'subsec')` needs SQLite 3.42, newer than many systems')."""
    path = tmp_path / "app.db"
    config = SQLiteConfig(db_path=path, fts=True)
    manager = LogManager(Config(backend="sqlite", backend_config=config))
    await manager.start()
    await manager.error("connection timeout to db1", user_id=42)
    await manager.warning("connection reset by peer")
    await manager.close()
    statements = documented_sql()
    assert len(statements) >= 8
    with sqlite3.connect(path) as db:
        for sql in statements:
            cursor = db.execute(sql)
            rows = cursor.fetchall()
            shown = [column[0] for column in cursor.description or ()]
            for index, name in enumerate(shown):
                if name.startswith(("datetime(", "strftime(")):
                    assert rows and all(row[index] is not None for row in rows), sql
    db.close()
