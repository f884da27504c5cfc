"""The `asynclog` command line: query, tail (and -f), stats, errors, colours, the entry point."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from asynclog import Config, FileConfig, Level, LogEntry, LogManager
from asynclog.__main__ import main
from asynclog._cli import Renderer, bar, render_stats
from asynclog._tail import DbFollower, FileFollower, follow
from asynclog.formatters import text_format

from .test_query import ROWS, T0, make_db

LINES = [
    "2026-11-27T10:00:00.000000Z DEBUG api cache warm",
    "2026-11-27T10:01:00.000000Z INFO api.http GET /users 200 user_id=42 ms=12.5",
    "2026-11-27T10:02:00.000000Z WARNING api slow query took 1200ms user_id=42",
    "2026-11-27T11:00:00.000000Z ERROR worker connection timeout to db1 user_id=7 retry=True",
    "2026-11-27T11:01:00.000000Z INFO api 100% done_ok",
    "2026-11-27T12:00:00.000000Z CRITICAL worker crash: timeout exceeded user_id=42\n"
    "    Traceback (most recent call last):\n"
    '      File "app.py", line 3\n'
    "    ValueError: boom",
    "2026-11-27T12:01:00.000000Z Level 25 apix custom level note=None",
]
"""The text format of each of ROWS (the CRITICAL one with its traceback)."""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "app.db")


@pytest.fixture
def fts_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "fts.db", fts=True)


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records(out: str) -> list[str]:
    """Output split into records (continuation lines stay with their record)."""
    found: list[str] = []
    for line in out.splitlines():
        if line.startswith("    ") and found:
            found[-1] += "\n" + line
        else:
            found.append(line)
    return found


def before_minutes(out: str) -> list[str]:
    """The lines of `stats` before its per-minute histogram (tests/test_cli_filelog.py checks
    that one)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Per minute"))
    assert lines[start - 1] == ""
    return lines[: start - 1]


def query_out(capsys: pytest.CaptureFixture[str], db: Path, *options: str) -> list[str]:
    code, out, err = run(capsys, "query", db, *options)
    assert (code, err) == (0, "")
    return records(out)


# --- query -----------------------------------------------------------------------------------


def test_query_everything_in_the_text_format(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert query_out(capsys, db) == LINES


def test_query_each_filter(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert query_out(capsys, db, "--level", "error") == [LINES[3], LINES[5]]
    assert query_out(capsys, db, "--level", "25") == [LINES[2], LINES[3], LINES[5], LINES[6]]
    assert query_out(capsys, db, "--since", "2026-11-27T12:00:00") == LINES[5:]
    assert query_out(capsys, db, "--until", "2026-11-27T10:01:00Z") == LINES[:1]
    assert query_out(capsys, db, "--since", "2026-11-27T11:00", "--until", "2026-11-27T12:00") == [
        LINES[3],
        LINES[4],
    ]
    assert query_out(capsys, db, "--since", "1h") == []  # the data is from long ago
    assert query_out(capsys, db, "--logger", "api") == [LINES[0], LINES[1], LINES[2], LINES[4]]
    assert query_out(capsys, db, "--grep", "timeout") == [LINES[3], LINES[5]]
    assert query_out(capsys, db, "--grep", "out") == [LINES[3], LINES[5]]  # LIKE: substrings
    assert query_out(capsys, db, "--field", "user_id=42") == [LINES[1], LINES[2], LINES[5]]
    assert query_out(capsys, db, "--field", "retry=true") == [LINES[3]]
    assert query_out(capsys, db, "--limit", "2") == LINES[5:]


def test_query_combinations(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert query_out(
        capsys, db, "--level", "warning", "--field", "user_id=42", "--grep", "query"
    ) == [LINES[2]]
    assert query_out(capsys, db, "--logger", "worker", "--limit", "1") == [LINES[5]]
    assert query_out(
        capsys, db, "--field", "user_id=42", "--field", "ms=12.5", "--since", "2026-11-27"
    ) == [LINES[1]]


def test_query_fts_path(capsys: pytest.CaptureFixture[str], fts_db: Path) -> None:
    assert query_out(capsys, fts_db, "--grep", "timeout") == [LINES[3], LINES[5]]
    assert query_out(capsys, fts_db, "--grep", "out") == []  # FTS5 matches words
    assert query_out(capsys, fts_db, "--grep", "slow quer") == [LINES[2]]


def test_query_json(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "query", db, "--json", "--level", "critical")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "timestamp": "2026-11-27T12:00:00.000000Z",
            "level": "CRITICAL",
            "logger": "worker",
            "message": "crash: timeout exceeded",
            "fields": {"user_id": 42},
            "exception": {"type": "ValueError", "message": "boom", "stack": ROWS[5][5]},
        }
    ]


def test_query_limit_is_the_newest_n_oldest_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Inserted out of time order: the limit picks by time, not by id.
    rows: list[tuple[Any, ...]] = [
        (T0 + 30, 20, "a", "late", {}, None),
        (T0, 20, "a", "early", {}, None),
    ]
    rows += [(T0 + 10, 20, "a", "middle", {}, None)]
    db = make_db(tmp_path / "order.db", rows)
    out = query_out(capsys, db, "--limit", "2")
    assert [line.split(" ", 3)[3] for line in out] == ["middle", "late"]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["query", "stats", "tail"])
def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    missing = tmp_path / "missing.db"
    assert run(capsys, command, missing) == (2, "", f"asynclog: error: {missing}: no such file\n")


@pytest.mark.parametrize("command", ["query", "stats", "tail"])
def test_not_sqlite(capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    assert run(capsys, command, path) == (
        2,
        "",
        f"asynclog: error: {path}: not an asynclog database: not an SQLite file\n",
    )


def test_sqlite_without_the_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY)")
    conn.close()
    for command in ("query", "stats", "tail"):
        assert run(capsys, command, path) == (
            2,
            "",
            f"asynclog: error: {path}: not an asynclog database: it has no table 'logs' "
            "(tables in it: events)\n",
        )
    code, _, err = run(capsys, "query", path, "--table", "events")
    assert code == 2
    assert "table 'events' lacks the column(s) ts, level, logger" in err


def test_table_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "custom.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY, ts REAL, level INTEGER, logger TEXT, "
            "message TEXT, fields TEXT, exception TEXT)"
        )
        conn.execute("INSERT INTO audit VALUES (1, ?, 20, 'a', 'hi', '{}', NULL)", (T0,))
    conn.close()
    assert query_out(capsys, path, "--table", "audit") == ["2026-11-27T10:00:00.000000Z INFO a hi"]


def test_bad_arguments(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    for bad in (
        ["--level", "loud"],
        ["--since", "yesterday"],
        ["--limit", "0"],
        ["--field", "novalue"],
        ["--color", "pink"],
    ):
        code, out, err = run(capsys, "query", db, *bad)
        assert (code, out) == (2, ""), bad
        assert "usage: asynclog query" in err and "error:" in err
    code, _, err = run(capsys, "query", db, "--since", "yesterday")
    assert "not a time: 'yesterday'" in err
    assert "Traceback" not in err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert all(name in out for name in ("query", "tail", "stats", "demo"))


# --- colours ---------------------------------------------------------------------------------


def test_colours_forced_on(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    out = query_out(capsys, db, "--color", "always", "--level", "warning")
    assert out[0] == (
        "2026-11-27T10:02:00.000000Z \x1b[33mWARNING\x1b[0m api slow query took 1200ms user_id=42"
    )
    assert out[1].startswith("2026-11-27T11:00:00.000000Z \x1b[31mERROR\x1b[0m worker")
    assert out[2].startswith("2026-11-27T12:00:00.000000Z \x1b[1;31mCRITICAL\x1b[0m worker")


def test_colours_auto(
    capsys: pytest.CaptureFixture[str], db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert "\x1b[" not in "\n".join(query_out(capsys, db))  # piped: none
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert "\x1b[32mINFO\x1b[0m" in "\n".join(query_out(capsys, db))  # a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in "\n".join(query_out(capsys, db))
    assert query_out(capsys, db, "--color", "never") == LINES


def test_raw_records_are_coloured_by_level() -> None:
    render = Renderer(colour=True)
    assert render.raw("2026-11-27T10:00:00.000000Z ERROR api x") == (
        "2026-11-27T10:00:00.000000Z \x1b[31mERROR\x1b[0m api x"
    )
    assert render.raw('{"timestamp": "t", "level": "WARNING", "logger": "a"}') == (
        '{"timestamp": "t", "level": "\x1b[33mWARNING\x1b[0m", "logger": "a"}'
    )
    assert render.raw("ts=t level=debug logger=a msg=x") == (
        "ts=t level=\x1b[2mdebug\x1b[0m logger=a msg=x"
    )
    assert render.raw("no level here") == "no level here"
    # A foreign file's control characters are shown, never sent to the terminal.
    assert Renderer().raw("evil \x1b[2J\x07 text\tok") == "evil \\x1b[2J\\x07 text\tok"


# --- stats -----------------------------------------------------------------------------------


def test_stats(
    capsys: pytest.CaptureFixture[str], db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "stats", db, "--since", "2026-11-27", "--until", "2026-11-28")
    assert code == 0
    assert before_minutes(out) == [
        "Entries since 2026-11-27T00:00:00Z until 2026-11-28T00:00:00Z: 7 "
        "(2026-11-27T10:00:00Z to 2026-11-27T12:01:00Z)",
        "",
        "By level:",
        "  DEBUG             1  " + "#" * 18,
        "  INFO              2  " + "#" * 36,
        "  Level 25          1  " + "#" * 18,
        "  WARNING           1  " + "#" * 18,
        "  ERROR             1  " + "#" * 18,
        "  CRITICAL          1  " + "#" * 18,
        "",
        "Per hour (UTC):",
        "  2026-11-27 10:00  3  " + "#" * 36,
        "  2026-11-27 11:00  2  " + "#" * 24,
        "  2026-11-27 12:00  2  " + "#" * 24,
    ]


def test_stats_until_and_logger(
    capsys: pytest.CaptureFixture[str], db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "stats", db, "--logger", "worker", "--until", "2026-11-27T13:00")
    assert code == 0
    assert before_minutes(out) == [
        "Entries until 2026-11-27T13:00:00Z: 2 (2026-11-27T11:00:00Z to 2026-11-27T12:00:00Z)",
        "",
        "By level:",
        "  DEBUG             0",
        "  INFO              0",
        "  WARNING           0",
        "  ERROR             1  " + "#" * 36,
        "  CRITICAL          1  " + "#" * 36,
        "",
        "Per hour (UTC), the 24 hours before 2026-11-27T13:00:00Z:",
        "  2026-11-27 11:00  1  " + "#" * 36,
        "  2026-11-27 12:00  1  " + "#" * 36,
    ]


def test_stats_empty_hours_in_between_and_no_entries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    rows: list[tuple[Any, ...]] = [
        (T0, 20, "a", "x", {}, None),
        (T0 + 2 * 3600, 20, "a", "y", {}, None),
    ]
    db = make_db(tmp_path / "gap.db", rows)
    code, out, _ = run(capsys, "stats", db, "--since", "2026-11-27")
    assert before_minutes(out)[-4:] == [
        "Per hour (UTC):",
        "  2026-11-27 10:00  1  " + "#" * 26,
        "  2026-11-27 11:00  0",
        "  2026-11-27 12:00  1  " + "#" * 26,
    ]
    code, out, _ = run(capsys, "stats", db, "--since", "2026-12-01")
    assert code == 0
    assert out.splitlines()[0] == "Entries since 2026-12-01T00:00:00Z: 0"
    assert before_minutes(out)[-2:] == ["Per hour (UTC):", "  (none)"]
    assert out.splitlines()[-2:] == ["Per minute (UTC), by level:", "  (none)"]


def test_stats_blocks_on_a_terminal(
    capsys: pytest.CaptureFixture[str], db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    _, out, _ = run(capsys, "stats", db, "--since", "2026-11-27", "--until", "2026-11-28")
    lines = out.splitlines()
    assert lines[4] == "  INFO              2  " + "█" * 36
    assert lines[3] == "  DEBUG             1  " + "█" * 18
    assert before_minutes(out)[-2] == "  2026-11-27 11:00  2  " + "█" * 24


def test_bars() -> None:
    assert bar(0, 10, 20, True) == ""
    assert bar(10, 10, 4, True) == "████"
    assert bar(1, 16, 2, True) == "▏"  # 1/16 of 2 cells: one eighth
    assert bar(5, 8, 1, True) == "▋"  # five eighths
    assert bar(1, 1000, 10, True) == "▏"  # tiny but not zero: a sliver
    assert bar(1, 1000, 10, False) == "#"
    assert bar(3, 4, 8, False) == "######"


def test_render_stats_colours_levels() -> None:
    lines = render_stats(
        1, (T0, T0), {40: 1}, {}, since=None, until=None, width=40, colour=True, blocks=True
    )
    assert "  \x1b[31mERROR\x1b[0m     1  \x1b[31m" + "█" * 24 + "\x1b[0m" in lines
    assert lines[-2:] == ["Per hour (UTC), last 24 hours:", "  (none)"]


# --- tail ------------------------------------------------------------------------------------


def test_tail_database(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "tail", db, "-n", "2")
    assert (code, records(out)) == (0, LINES[5:])
    _, out, _ = run(capsys, "tail", db)
    assert records(out) == LINES  # fewer than the default 10
    _, out, _ = run(capsys, "tail", db, "-n", "1", "--json")
    assert json.loads(out)["message"] == "custom level"


def write_text_log(path: Path) -> Path:
    """ROWS in the text format, the way the file backend writes them."""
    path.write_text("".join(text_format(_entry(row)) + "\n" for row in ROWS))
    return path


def _entry(row: tuple[Any, ...]) -> LogEntry:
    ts, level, logger, message, fields, exception = row
    return LogEntry(ts, level, message, logger, fields, exception)


def test_tail_text_file_keeps_tracebacks_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = write_text_log(tmp_path / "app.log")
    assert records(run(capsys, "tail", log, "-n", "2")[1]) == LINES[5:]
    assert records(run(capsys, "tail", log, "-n", "3")[1]) == LINES[4:]
    assert records(run(capsys, "tail", log, "-n", "100")[1]) == LINES
    assert run(capsys, "tail", log, "-n", "0")[1] == ""


def test_tail_file_written_by_asynclog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    async def write() -> None:
        config = Config(backend="file", backend_config=FileConfig(file_path=log), name="svc")
        async with LogManager(config) as lm:
            for index in range(30):
                await lm.write_log(Level.INFO, f"line {index}")

    import asyncio

    log = tmp_path / "written.log"
    asyncio.run(write())
    out = records(run(capsys, "tail", log, "-n", "3")[1])
    assert [line.split(" ", 3)[3] for line in out] == ["line 27", "line 28", "line 29"]


def test_tail_json_reads_a_text_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    log = write_text_log(tmp_path / "app.log")
    code, out, err = run(capsys, "tail", log, "--json", "-n", "2")
    assert (code, err) == (0, "")
    from_db = run(capsys, "tail", db, "--json", "-n", "2")[1]
    # The text format keeps no types: its field values come back as strings.
    assert [json.loads(line) for line in out.splitlines()] == [
        {**record, "fields": {k: str(v) for k, v in record["fields"].items()}}
        for record in map(json.loads, from_db.splitlines())
    ]


def test_tail_last_records_across_blocks(tmp_path: Path) -> None:
    # Records far bigger than the 64 KiB read block, so the backward scan must grow.
    log = tmp_path / "big.log"
    big = "x" * 100_000
    log.write_text(f"first\n    {big}\nsecond\n    {big}\n    {big}\nthird\n")
    follower = FileFollower(log)
    assert follower.start(2) == [f"second\n    {big}\n    {big}", "third"]
    follower.close()


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def drain(follower: FileFollower) -> list[str]:
    """Poll until two polls in a row return nothing (the held last record is out by then)."""
    found: list[str] = []
    empty = 0
    while empty < 2:
        got = follower.poll()
        found += got
        empty = 0 if got else empty + 1
    return found


def test_follower_appends_partial_lines_and_tracebacks(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("one\ntwo\nthr")  # a writer in the middle of a line
    follower = FileFollower(log)
    assert follower.start(10) == ["one", "two"]
    assert drain(follower) == []
    _append(log, "ee\nfour\n")
    assert follower.poll() == ["three"]  # "four" is held: a traceback might follow
    _append(log, "    Traceback\n    Error: x\n")
    assert follower.poll() == []
    assert follower.poll() == ["four\n    Traceback\n    Error: x"]  # quiet poll: complete
    follower.close()


def test_follower_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old 1\n")
    follower = FileFollower(log)
    assert follower.start(10) == ["old 1"]
    _append(log, "old 2\n")
    log.rename(tmp_path / "app.log.1")
    _append(tmp_path / "app.log.1", "old 3 (written before the writer switched)\n")
    # Renamed away, no new file yet: the old one is still read ("old 3" is held back).
    assert follower.poll() == ["old 2"]
    log.write_text("new 1\nnew 2\n")
    assert drain(follower) == [
        "old 3 (written before the writer switched)",
        "new 1",
        "new 2",
    ]
    _append(log, "new 3\n")
    assert drain(follower) == ["new 3"]
    follower.close()


def test_follower_truncation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("a long first line\nanother long line\n")
    follower = FileFollower(log)
    assert follower.start(1) == ["another long line"]
    with log.open("w") as handle:  # copytruncate: same file, emptied in place
        handle.write("fresh\n")
    assert drain(follower) == ["fresh"]
    follower.close()


def test_db_follower(tmp_path: Path) -> None:
    db = make_db(tmp_path / "f.db")
    follower = DbFollower(db)
    assert [e.message for e in follower.start(1)] == ["custom level"]
    assert follower.poll() == []
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO logs (ts, level, logger, message, fields) VALUES (1, 20, 'a', 'new', '{}')"
        )
    conn.close()
    assert [e.message for e in follower.poll()] == ["new"]
    assert follower.poll() == []
    db.unlink()
    assert follower.poll() == []  # gone for a moment: wait for it
    make_db(db, ROWS[:1])  # recreated: followed from its start
    assert [e.message for e in follower.poll()] == ["cache warm"]


def test_follow_loop_stops(tmp_path: Path) -> None:
    batches = iter([["a", "b"], [], ["c"], ["d", "e"]])
    seen: list[str] = []
    sleeps: list[float] = []
    count = follow(
        lambda: next(batches), seen.append, interval=0.25, max_records=4, sleep=sleeps.append
    )
    assert (count, seen, sleeps) == (4, ["a", "b", "c", "d"], [0.25] * 3)
    polls = iter([["x"], ["y"]])
    assert follow(lambda: next(polls), seen.append, stop=lambda: True, sleep=sleeps.append) == 1


# --- the real console script -----------------------------------------------------------------


def _lines(stream: IO[str]) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return found


def _take(lines: queue.Queue[str], count: int) -> list[str]:
    return [lines.get(timeout=5) for _ in range(count)]


@pytest.fixture
def spawn() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(*argv: object) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "asynclog", *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": ""},
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_console_script(db: Path) -> None:
    script = Path(sys.executable).with_name("asynclog")
    done = subprocess.run(
        [str(script), "query", str(db), "--level", "error", "--limit", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "\n".join(LINES[5:6]) + "\n", "")
    missing = subprocess.run(
        [str(script), "query", str(db) + ".nope"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert missing.stderr == f"asynclog: error: {db}.nope: no such file\n"


def test_tail_follow_subprocess(tmp_path: Path, spawn: Any) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026-11-27T10:00:00.000000Z INFO api before\n")
    process = spawn("tail", log, "-f", "--interval", "0.02")
    lines = _lines(process.stdout)
    assert _take(lines, 1) == ["2026-11-27T10:00:00.000000Z INFO api before"]
    _append(log, "2026-11-27T10:00:01.000000Z ERROR api appended\n    Traceback: x\n")
    assert _take(lines, 2) == ["2026-11-27T10:00:01.000000Z ERROR api appended", "    Traceback: x"]
    log.rename(tmp_path / "app.log.1")
    log.write_text("after rotation\n")
    assert _take(lines, 1) == ["after rotation"]
    log.write_text("")  # truncated in place (copytruncate) ...
    _append(log, "cut\n")  # ... and written again (shorter than before: see the docs)
    assert _take(lines, 1) == ["cut"]
    process.send_signal(signal.SIGINT)  # Ctrl-C: a quiet exit 0
    assert process.wait(timeout=5) == 0
    assert process.stderr.read() == ""
