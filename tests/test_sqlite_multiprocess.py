"""SQLite shared by several processes (WAL, busy timeout, `BEGIN IMMEDIATE`, a locked batch
retried whole), the `host`/`pid` columns, and the migration of older databases to them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, LogEntry, LogManager, SQLiteConfig
from asynclog.backends.sqlite import SCHEMA_VERSION, SQLiteBackend
from asynclog.query import LogDB, make_filters, query

ROOT = Path(__file__).resolve().parent.parent

WRITER = """
    import asyncio, json, os, sys
    from asynclog import Config, LogManager, SQLiteConfig

    async def main():
        path, proc, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        options = json.loads(sys.argv[5])
        config = Config(
            backend="sqlite",
            async_mode=True,
            overflow="block",
            retry_attempts=12,
            retry_backoff=0.02,
            backend_config=SQLiteConfig(db_path=path, **options.pop("sqlite", {})),
            **options,
        )
        async with LogManager(config) as lm:
            print("ready", flush=True)
            while not os.path.exists(go):
                await asyncio.sleep(0.005)
            for i in range(count):
                await lm.info(f"p{proc} {i}")
        s = lm.get_stats()
        stats = {"pid": os.getpid(), "written": s.written, "dropped": s.dropped,
                 "dead_lettered": s.dead_lettered, "write_errors": s.write_errors,
                 "retries": s.retries}
        print(json.dumps(stats), flush=True)

    asyncio.run(main())
"""

OPENER = """
    import asyncio, json, sys
    from asynclog import SQLiteConfig
    from asynclog.backends.sqlite import SQLiteBackend

    async def main():
        backend = SQLiteBackend(SQLiteConfig(db_path=sys.argv[1]))
        print("ready", flush=True)
        await backend.open()
        await backend.close()
        print(json.dumps(list(backend.added_columns)), flush=True)

    asyncio.run(main())
"""

OLD_SCHEMA = [
    "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, level INTEGER NOT NULL, "
    "logger TEXT NOT NULL, message TEXT NOT NULL, fields TEXT, exception TEXT)",
    "CREATE INDEX logs_ts ON logs (ts)",
    "CREATE INDEX logs_level_ts ON logs (level, ts)",
]
"""The schema of version 0, as the backend created it before `host` and `pid`."""


STDERR: dict[int, Path] = {}
"""The file each child's stderr goes to, by pid."""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start `python -c script args...`; stderr goes to a file (no pipe to fill up)."""
    started: list[subprocess.Popen[str]] = []

    def start(script: str, *argv: object) -> subprocess.Popen[str]:
        path = tmp_path / f"stderr-{len(started)}.txt"
        with path.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(script), *map(str, argv)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
            )
        STDERR[process.pid] = path
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
        STDERR.pop(process.pid, None)


def _wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == "ready\n", f"child said {line!r}; exit code {process.poll()}"


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    out, _ = process.communicate(timeout=timeout)
    errors = STDERR[process.pid].read_text()
    assert process.returncode == 0, f"child failed ({process.returncode}): {out}{errors}"
    return out


def _wait_for_report(process: subprocess.Popen[str], text: str, timeout: float = 60) -> None:
    """Until the child has written `text` to its stderr."""
    deadline = time.monotonic() + timeout
    while text not in STDERR[process.pid].read_text():
        assert process.poll() is None, f"child ended ({process.returncode}) before {text!r}"
        assert time.monotonic() < deadline, f"child did not report {text!r}"
        time.sleep(0.01)


def _run_writers(
    spawn: Any, tmp_path: Path, db: Path, processes: int, count: int, **options: Any
) -> list[dict[str, int]]:
    """`processes` writers of `count` entries each: all open the database, then all start
    logging at once (a file is the starting gun). Returns each one's stats."""
    go = tmp_path / "go"
    children = [
        spawn(WRITER, db, proc, count, go, json.dumps(options)) for proc in range(processes)
    ]
    for child in children:
        _wait_ready(child)
    go.touch()
    return [json.loads(_finish(child).strip().splitlines()[-1]) for child in children]


def _check_shared_table(db: Path, stats: list[dict[str, int]], count: int) -> None:
    """Every entry of every writer exactly once, in each writer's order, with its host/pid."""
    pids = [s["pid"] for s in stats]
    assert len(set(pids)) == len(stats)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, message, host, pid FROM logs ORDER BY id").fetchall()
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    assert check == "ok"
    assert version == SCHEMA_VERSION
    assert len(rows) == count * len(stats)
    assert {host for _, _, host, _ in rows} == {socket.gethostname()}
    by_pid: dict[int, list[str]] = {}
    for _, message, _, pid in rows:  # id order
        by_pid.setdefault(pid, []).append(message)
    assert sorted(by_pid) == sorted(pids)
    for proc, pid in enumerate(pids):
        assert by_pid[pid] == [f"p{proc} {i}" for i in range(count)], f"writer {proc}"


# --- several processes -----------------------------------------------------------------------


def test_four_processes_share_one_database(spawn: Any, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    started = time.perf_counter()
    stats = _run_writers(spawn, tmp_path, db, processes=4, count=50_000)
    elapsed = time.perf_counter() - started
    print(f"4 x 50,000 entries: {elapsed:.2f} s; {stats}")
    for one in stats:
        assert (one["written"], one["dropped"], one["dead_lettered"]) == (50_000, 0, 0), one
    _check_shared_table(db, stats, 50_000)


def test_a_batch_that_finds_the_database_locked_is_retried_whole(
    spawn: Any, tmp_path: Path
) -> None:
    """busy_timeout=0 and the database locked by someone else when the writers start: every
    writer's first batch fails at `BEGIN IMMEDIATE` ("database is locked"), the lock is let
    go once each has said so; the retries land each batch once (no duplicates, no gaps), in
    order, and from then on the writers contend with each other (no busy wait at all)."""
    db = tmp_path / "shared.db"
    go = tmp_path / "go"
    options = {"batch_size": 100, "sqlite": {"busy_timeout": 0}}
    children = [spawn(WRITER, db, proc, 5_000, go, json.dumps(options)) for proc in range(4)]
    for child in children:
        _wait_ready(child)
    with sqlite3.connect(db, isolation_level=None) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        go.touch()
        for child in children:
            _wait_for_report(child, "database is locked")
        blocker.execute("COMMIT")
    blocker.close()
    stats = [json.loads(_finish(child).strip().splitlines()[-1]) for child in children]
    for one in stats:
        assert (one["written"], one["dropped"], one["dead_lettered"]) == (5_000, 0, 0), one
        assert one["write_errors"] >= 1, one
        assert one["retries"] == one["write_errors"], "each failed attempt was retried"
    _check_shared_table(db, stats, 5_000)


def test_max_rows_with_several_writers_holds_after_the_last_close(
    spawn: Any, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    options = {"batch_size": 100, "sqlite": {"max_rows": 1_000, "retention_interval": 0}}
    stats = _run_writers(spawn, tmp_path, db, processes=3, count=3_000, **options)
    assert all(one["written"] == 3_000 for one in stats), stats
    with sqlite3.connect(db) as conn:
        count, low, high = conn.execute("SELECT count(*), min(id), max(id) FROM logs").fetchone()
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
    conn.close()
    assert check == "ok"
    assert (count, high - low + 1) == (1_000, 1_000), "the newest 1,000 by id"
    assert high == 9_000


# --- host and pid ----------------------------------------------------------------------------


async def test_each_row_records_host_and_pid(db_path: Path) -> None:
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path))
    async with LogManager(config) as lm:
        await lm.info("one")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT message, host, pid FROM logs").fetchall()
        columns = [(r[1], r[2], r[3]) for r in conn.execute("PRAGMA table_info(logs)")][7:]
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    assert rows == [("one", socket.gethostname(), os.getpid())]
    assert columns == [
        ("host", "TEXT", 0),
        ("pid", "INTEGER", 0),
        ("module", "TEXT", 0),
        ("function", "TEXT", 0),
        ("line", "INTEGER", 0),
        ("trace_id", "TEXT", 0),
        ("span_id", "TEXT", 0),
        ("trace_flags", "INTEGER", 0),
    ]
    assert version == SCHEMA_VERSION == 3


async def test_flush_at_exit_records_host_and_pid(db_path: Path) -> None:
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path))
    await backend.open()
    backend.flush_at_exit([LogEntry(time.time(), 20, "late", "svc")])
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT message, host, pid FROM logs").fetchall()
    conn.close()
    assert rows == [("late", socket.gethostname(), os.getpid())]


# --- migration -------------------------------------------------------------------------------

ADDED = ("host", "pid", "module", "function", "line", "trace_id", "span_id", "trace_flags")
"""The columns an original (version 0) table gets."""


def _make_old_db(path: Path, table: str = "logs", fts: bool = False, rows: int = 3) -> None:
    """A database as asynclog wrote it before `host`/`pid`: user_version 0, WAL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in OLD_SCHEMA:
            conn.execute(statement.replace("logs", table))
        conn.executemany(
            f"INSERT INTO {table} (ts, level, logger, message, fields, exception) "
            "VALUES (?, 20, 'old', ?, '{}', NULL)",
            [(1_000.0 + i, f"old {i}") for i in range(rows)],
        )
        if fts:
            conn.execute(
                f'CREATE VIRTUAL TABLE {table}_fts USING fts5(message, content="{table}", '
                'content_rowid="id")'
            )
            conn.execute(
                f"CREATE TRIGGER {table}_fts_insert AFTER INSERT ON {table} BEGIN "
                f"INSERT INTO {table}_fts(rowid, message) VALUES (new.id, new.message); END"
            )
            conn.execute(f"INSERT INTO {table}_fts({table}_fts) VALUES ('rebuild')")
    conn.close()


def _columns(path: Path, table: str = "logs") -> list[str]:
    with sqlite3.connect(path) as conn:
        names = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    conn.close()
    return names


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    return int(version)


@pytest.mark.parametrize("fts", [False, True])
async def test_an_old_database_gets_host_and_pid_columns(db_path: Path, fts: bool) -> None:
    _make_old_db(db_path, fts=fts)
    assert _user_version(db_path) == 0
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path))
    await backend.open()
    await backend.write_batch([LogEntry(2_000.0, 30, "new row", "svc")])
    await backend.close()
    assert backend.added_columns == ADDED
    assert _columns(db_path)[-len(ADDED) :] == list(ADDED)
    assert _user_version(db_path) == SCHEMA_VERSION
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT message, host, pid FROM logs ORDER BY id").fetchall()
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
        if fts:  # the batch went through the temp table, which has the new columns too
            found = conn.execute("SELECT rowid FROM logs_fts WHERE logs_fts MATCH 'new'")
            assert found.fetchall() == [(4,)]
    conn.close()
    assert rows == [
        ("old 0", None, None),
        ("old 1", None, None),
        ("old 2", None, None),
        ("new row", socket.gethostname(), os.getpid()),
    ]
    assert check == "ok"
    # Reading back works on the migrated table (and did on the old one: test_query).
    assert [entry.message async for entry in query(db_path)] == [r[0] for r in rows]
    again = SQLiteBackend(SQLiteConfig(db_path=db_path))
    await again.open()
    await again.close()
    assert again.added_columns == ()
    assert _columns(db_path).count("host") == 1


async def test_each_table_is_checked_on_its_own(db_path: Path) -> None:
    """user_version is per database, the table per config: a second old table in a database
    already at version 1 is still migrated when a backend opens it."""
    _make_old_db(db_path, table="logs")
    _make_old_db(db_path, table="audit")
    first = SQLiteBackend(SQLiteConfig(db_path=db_path, table="logs"))
    await first.open()
    await first.close()
    assert _user_version(db_path) == SCHEMA_VERSION
    assert "host" not in _columns(db_path, "audit")
    second = SQLiteBackend(SQLiteConfig(db_path=db_path, table="audit"))
    await second.open()
    await second.close()
    assert second.added_columns == ADDED
    assert _columns(db_path, "audit")[-len(ADDED) :] == list(ADDED)


async def test_a_newer_user_version_is_left_as_it_is(db_path: Path) -> None:
    _make_old_db(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    backend = SQLiteBackend(SQLiteConfig(db_path=db_path))
    await backend.open()
    await backend.close()
    assert _user_version(db_path) == 7
    assert _columns(db_path)[-len(ADDED) :] == list(ADDED)


async def test_two_backends_migrating_at_once_add_the_columns_once(db_path: Path) -> None:
    """Both wait for a lock someone else holds, then race for it: one adds the columns,
    the other finds them when it holds the lock."""
    _make_old_db(db_path)
    backends = [SQLiteBackend(SQLiteConfig(db_path=db_path)) for _ in range(2)]
    with sqlite3.connect(db_path, isolation_level=None) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        opening = [asyncio.create_task(backend.open()) for backend in backends]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in opening)
        blocker.execute("COMMIT")
    blocker.close()
    await asyncio.gather(*opening)
    for backend in backends:
        await backend.close()
    assert sorted(backend.added_columns for backend in backends) == [(), ADDED]
    assert _columns(db_path)[-len(ADDED) :] == list(ADDED)


def test_two_processes_opening_an_old_database_at_once(spawn: Any, db_path: Path) -> None:
    _make_old_db(db_path)
    with sqlite3.connect(db_path, isolation_level=None) as blocker:
        blocker.execute("BEGIN IMMEDIATE")  # both children wait for it, then race
        children = [spawn(OPENER, db_path) for _ in range(2)]
        for child in children:
            _wait_ready(child)
        time.sleep(0.3)
        blocker.execute("COMMIT")
    blocker.close()
    added = sorted(json.loads(_finish(child, timeout=30)) for child in children)
    assert added == [[], list(ADDED)]
    assert _columns(db_path)[-len(ADDED) :] == list(ADDED)
    assert _user_version(db_path) == SCHEMA_VERSION


def test_the_readers_work_on_old_and_new_databases(tmp_path: Path) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    _make_old_db(old)
    _make_old_db(new)
    with sqlite3.connect(new) as conn:
        conn.execute("ALTER TABLE logs ADD COLUMN host TEXT")
        conn.execute("ALTER TABLE logs ADD COLUMN pid INTEGER")
    conn.close()
    for path in (old, new):
        with LogDB(path) as reader:
            assert [e.message for e in reader.entries(make_filters())] == [
                "old 0",
                "old 1",
                "old 2",
            ]
