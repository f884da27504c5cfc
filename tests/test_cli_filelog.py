"""`asynclog query` / `stats` on the file backend's logs (text and JSON lines, rotated and
gzipped), relative times, the per-minute histogram, malformed lines and `--version`: the real
command in a subprocess, on files a real `LogManager` wrote."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import asynclog
from asynclog import Config, FileConfig, Level, Location, LogEntry, LogManager
from asynclog._filelog_read import field_matches, log_files, parse_json_line, parse_text_record
from asynclog.formatters import json_format, text_format

from .test_cli import LINES, records
from .test_query import ROWS, T0, TRACEBACK, make_db

ROOT = Path(__file__).resolve().parent.parent

Row = tuple[float, int, str, str, dict[str, Any], str | None]


def cli(*argv: object, columns: int = 60) -> tuple[int, str, str]:
    """`python -m asynclog ARGV` in a subprocess: (exit status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "asynclog", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def start_cli(*argv: object) -> subprocess.Popen[str]:
    """`python -m asynclog ARGV` started in a subprocess, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "asynclog", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def query(*argv: object) -> list[str]:
    """The records `asynclog query ARGV` prints (it must succeed quietly)."""
    code, out, err = cli("query", *argv)
    assert (code, err) == (0, "")
    return records(out)


async def write_rows(
    path: Path,
    rows: Sequence[Row],
    *,
    fmt: str = "text",
    max_file_size_mb: float = 10.0,
    max_backups: int = 5,
    compress: bool = False,
) -> Path:
    """Log `rows` through a real `LogManager` with the file backend; a processor gives each
    entry the row's timestamp and traceback text (everything else goes through the calls)."""
    planned = iter([(ts, exception) for ts, _, _, _, _, exception in rows])

    def stamp(entry: LogEntry) -> LogEntry:
        ts, exception = next(planned)
        return entry._replace(timestamp=ts, exception=exception)

    config = Config(
        backend="file",
        backend_config=FileConfig(
            file_path=str(path),
            format=fmt,
            max_file_size_mb=max_file_size_mb,
            max_backups=max_backups,
            compress=compress,
        ),
        processors=[stamp],
    )
    async with LogManager(config) as lm:
        for _, level, logger, message, fields, _ in rows:
            await lm.get_logger(logger).write_log(level, message, **fields)
    return path


# --- the same entries in a database, a text file and a JSON file -----------------------------


@pytest.fixture
async def logs(tmp_path: Path) -> dict[str, Path]:
    return {
        "db": make_db(tmp_path / "app.db"),
        "text": await write_rows(tmp_path / "app.log", ROWS),
        "json": await write_rows(tmp_path / "app.json.log", ROWS, fmt="json"),
    }


async def test_text_and_json_files_print_as_the_database_does(logs: dict[str, Path]) -> None:
    assert query(logs["text"]) == LINES
    assert query(logs["json"]) == LINES
    # The JSON file's own lines come back as they are with --json (the types kept).
    assert query(logs["json"], "--json") == logs["json"].read_text().splitlines()


@pytest.mark.parametrize(
    "options",
    [
        ["--level", "error"],
        ["--level", "25"],
        ["--logger", "api"],
        ["--grep", "TIMEOUT"],
        ["--grep", "%"],
        ["--field", "user_id=42"],
        ["--field", "user_id=42", "--field", "ms=12.50"],
        ["--field", "retry=true"],
        ["--field", "note=null"],
        ["--since", "2026-11-27T11:00", "--until", "2026-11-27T12:00"],
        ["--since", "2026-11-27T12:00:00+01:00"],
        ["--limit", "2"],
        ["--logger", "worker", "--level", "critical", "--limit", "5"],
    ],
)
async def test_filters_select_what_they_select_in_the_database(
    logs: dict[str, Path], options: list[str]
) -> None:
    from_db = query(logs["db"], *options)
    assert from_db, "every option set here matches something"
    assert query(logs["text"], *options) == from_db
    assert query(logs["json"], *options) == from_db


async def test_exact_lines_of_a_few_filters(logs: dict[str, Path]) -> None:
    warned = query(logs["text"], "--field", "user_id=42", "--level", "warning")
    assert warned == [LINES[2], LINES[5]]
    assert query(logs["json"], "--logger", "apix") == [LINES[6]]
    assert query(logs["text"], "--grep", "nothing like this") == []
    # A text file's field values are text: --json shows them as strings.
    (line,) = query(logs["text"], "--level", "critical", "--json")
    assert json.loads(line) == {
        "timestamp": "2026-11-27T12:00:00.000000Z",
        "level": "CRITICAL",
        "logger": "worker",
        "message": "crash: timeout exceeded",
        "fields": {"user_id": "42"},
        "exception": {"type": "ValueError", "message": "boom", "stack": TRACEBACK},
    }


# --- what the text format escapes comes back as it was ---------------------------------------

AWKWARD: list[Row] = [
    (T0, 20, "api", "two\nlines and a tab\there", {"path": "C:\\temp\\new"}, None),
    (T0 + 1, 20, "api", 'quotes " and = signs', {"q": 'say "hi" = x', "empty": ""}, None),
    (T0 + 2, 40, "api", "\x1b[31mred\x1b[0m \u2028 \u202e", {"k": "v w"}, "Trace\n  line\\n"),
    (T0 + 3, 20, "x", "", {"only": "fields"}, None),
    (T0 + 4, 20, "db", "  leading spaces", {}, "one line"),
]


async def test_escaped_text_reads_back_exactly(tmp_path: Path) -> None:
    text = await write_rows(tmp_path / "app.log", AWKWARD)
    as_json = await write_rows(tmp_path / "app.json", AWKWARD, fmt="json")
    written = records(text.read_text())
    assert len(written) == 5
    assert query(text) == written
    assert query(as_json) == written
    from_json = [json.loads(line) for line in query(as_json, "--json")]
    assert [
        (e["message"], e["fields"], e["exception"] and e["exception"]["stack"]) for e in from_json
    ] == [
        (m, f, e) for _, _, _, m, f, e in AWKWARD
    ]
    assert [json.loads(line) for line in query(text, "--json")] == from_json
    assert query(text, "--grep", "LINES AND") == [written[0]]
    assert query(text, "--field", 'q=say "hi" = x') == [written[1]]
    assert query(text, "--field", "path=C:\\temp\\new") == [written[0]]


def test_parsers_invert_the_formats() -> None:
    entries = [
        LogEntry(T0 + 0.25, Level.INFO, "m x=1 done", "a.b", MappingProxyType({"n": 3}), None),
        LogEntry(
            T0 + 1.000001,
            Level.WARNING,
            "located",
            "w",
            MappingProxyType({"k": "a b"}),
            "tb",
            None,
            Location("pkg.mod", "<lambda>", 7),
        ),
        LogEntry(T0, 25, "custom", "x", MappingProxyType({}), None),
    ]
    for entry in entries:
        line = text_format(entry)
        parsed = parse_text_record(line.split("\n"))
        assert parsed is not None and text_format(parsed) == line
        from_json = parse_json_line(json_format(entry))
        assert from_json is not None and json_format(from_json) == json_format(entry)
    # The text format cannot tell `x=1` in a message from a field: the tail is read as fields.
    parsed = parse_text_record([text_format(entries[0])])
    assert parsed is not None
    assert (parsed.message, dict(parsed.fields)) == ("m x=1 done", {"n": "3"})
    assert parsed.location is None
    assert parse_text_record(["2026-11-27T10:00:00.000000Z INFO api m x=1"]) == LogEntry(
        T0, Level.INFO, "m", "api", MappingProxyType({"x": "1"}), None
    )


def test_flat_json_lines_are_read_too() -> None:
    line = (
        '{"timestamp": "2026-11-27T10:00:00.500000Z", "level": "ERROR", "logger": "api", '
        '"message": "failed", "user_id": 42, "exception": null}'
    )
    entry = parse_json_line(line)
    assert entry is not None
    assert (entry.timestamp, entry.level, entry.logger, entry.message) == (
        T0 + 0.5,
        Level.ERROR,
        "api",
        "failed",
    )
    assert dict(entry.fields) == {"user_id": 42}
    assert parse_json_line('{"level": "INFO", "message": "no time"}') is None
    assert parse_json_line("[1, 2]") is None


def test_field_comparison_follows_the_database() -> None:
    assert field_matches(42, "42") and field_matches("42", "42.0") and field_matches(12.5, "12.50")
    assert field_matches(True, "true") and field_matches("True", "true")
    assert field_matches(None, "null") and field_matches("None", "null")
    assert not field_matches(True, "1") and not field_matches("4 2", "42")
    assert not field_matches(" 42", "42") and not field_matches("abc", "nan")


# --- rotation and gzip -----------------------------------------------------------------------


def numbered_rows(count: int, start: float = T0) -> list[Row]:
    return [
        (start + i, 30 if i % 10 == 9 else 20, "app", f"entry {i:03d}", {"seq": i}, None)
        for i in range(count)
    ]


def seqs(lines: list[str]) -> list[int]:
    return [int(line.split("entry ")[1].split()[0]) for line in lines]


async def test_query_all_on_a_rotated_gzipped_json_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    await write_rows(
        path, numbered_rows(200), fmt="json", max_file_size_mb=0.004, max_backups=50, compress=True
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    rotated = [name for name in names if name.startswith("app.log.")]
    assert len(rotated) >= 3 and all(name.endswith(".gz") for name in rotated), names
    with gzip.open(tmp_path / "app.log.1.gz", "rt") as handle:
        assert json.loads(handle.readline())["message"].startswith("entry ")

    everything = query(path, "--all")
    assert seqs(everything) == list(range(200))
    live = query(path)
    assert 0 < len(live) < 200 and seqs(live) == list(range(200 - len(live), 200))
    assert seqs(query(path, "--all", "--level", "warning")) == list(range(9, 200, 10))
    assert seqs(query(path, "--all", "--limit", "3")) == [197, 198, 199]
    assert seqs(query(path, "--all", "--field", "seq=5")) == [5]
    assert query(path, "--all", "--json")[0] == (
        '{"timestamp": "2026-11-27T10:00:00.000000Z", "level": "INFO", "logger": "app", '
        '"message": "entry 000", "fields": {"seq": 0}, "exception": null}'
    )


async def test_query_all_on_rotated_text_with_old_backups_deleted(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    await write_rows(path, numbered_rows(300), max_file_size_mb=0.003, max_backups=2, compress=True)
    assert {p.name for p in tmp_path.iterdir()} >= {"app.log", "app.log.1.gz", "app.log.2.gz"}
    assert not (tmp_path / "app.log.3.gz").exists()
    kept = seqs(query(path, "--all"))
    assert kept == list(range(300 - len(kept), 300)) and 0 < len(kept) < 300
    # A gzipped file reads on its own too; a plain backup is read in its place, oldest first,
    # and a `.gz.tmp` (a compression in progress) is never read.
    oldest = seqs(query(tmp_path / "app.log.2.gz"))
    assert oldest == kept[: len(oldest)]
    with gzip.open(tmp_path / "app.log.2.gz", "rb") as handle:
        (tmp_path / "app.log.3").write_bytes(handle.read())
    (tmp_path / "app.log.3.gz.tmp").write_bytes(b"half written\n")
    assert seqs(query(path, "--all")) == oldest + kept


def test_log_files_order_and_names(tmp_path: Path) -> None:
    base = tmp_path / "app.log"
    for name in ("app.log", "app.log.1", "app.log.2.gz", "app.log.10.gz", "app.log.3.gz.tmp"):
        (tmp_path / name).write_text("")
    (tmp_path / "app.log.2").write_text("")  # compression caught between the two names
    for name in ("app.log.lock", "app.log.01", "app.log.x", "other.log.1"):
        (tmp_path / name).write_text("")
    assert log_files(str(base), every=True) == [
        f"{base}.10.gz",
        f"{base}.2",
        f"{base}.1",
        str(base),
    ]
    assert log_files(str(base), every=False) == [str(base)]


# --- relative times --------------------------------------------------------------------------


async def test_relative_times(tmp_path: Path) -> None:
    now = time.time()
    rows: list[Row] = [
        (now - 3 * 86400, 20, "t", "three days ago", {}, None),
        (now - 3 * 3600, 20, "t", "three hours ago", {}, None),
        (now - 30 * 60, 20, "t", "half an hour ago", {}, None),
        (now - 5 * 60, 20, "t", "five minutes ago", {}, None),
        (now - 20, 20, "t", "twenty seconds ago", {}, None),
    ]
    path = await write_rows(tmp_path / "app.log", rows, fmt="json")

    def messages(*options: str) -> list[str]:
        return [line.split(" ", 3)[3] for line in query(path, *options)]

    assert messages("--since", "10m") == ["five minutes ago", "twenty seconds ago"]
    assert messages("--since", "2h", "--until", "10m") == ["half an hour ago"]
    assert messages("--until", "1h") == ["three days ago", "three hours ago"]
    assert messages("--since", "2d") == [m for _, _, _, m, _, _ in rows[1:]]
    assert messages("--since", "300s") == ["twenty seconds ago"]
    assert messages("--since", "1w", "--until", "2d") == ["three days ago"]


@pytest.mark.parametrize("value", ["10x", "yesterday", "m10", "5 minutes"])
def test_a_bad_time_is_a_usage_error_naming_it(tmp_path: Path, value: str) -> None:
    path = tmp_path / "app.log"
    path.write_text(LINES[0] + "\n")
    code, out, err = cli("query", path, "--since", value)
    assert (code, out) == (2, "")
    assert err.splitlines()[0].startswith("usage: asynclog query")
    assert err.splitlines()[-1].startswith(
        f"asynclog query: error: argument --since: not a time: {value!r}; use a relative time"
    )


# --- stats and its per-minute histogram ------------------------------------------------------

MINUTE_ROWS: list[Row] = [
    *[(T0 + 5 + i, 20, "api", "hit", {}, None) for i in range(8)],  # 10:00: 8 info
    *[(T0 + 10 + i, 10, "api", "dbg", {}, None) for i in range(2)],  # 10:00: 2 debug
    (T0 + 70, 30, "api", "slow", {}, None),  # 10:01: 1 warning
    *[(T0 + 180 + i, 20, "api", "hit", {}, None) for i in range(4)],  # 10:03: 4 info,
    *[(T0 + 190 + i, 40, "db", "fail", {}, None) for i in range(3)],  # 3 error,
    (T0 + 200, 50, "db", "down", {}, None),  # 1 critical
    (T0 + 210, 25, "db", "custom", {}, None),  # and one of level 25
]


async def test_stats_histogram_of_a_text_file(tmp_path: Path) -> None:
    path = await write_rows(tmp_path / "app.log", MINUTE_ROWS)
    code, out, err = cli("stats", path, "--since", "2026-11-27")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Entries since 2026-11-27T00:00:00Z: 20 (2026-11-27T10:00:05Z to 2026-11-27T10:03:30Z)",
        "",
        "By level:",
        "  DEBUG              2  ######",
        "  INFO              12  " + "#" * 35,
        "  Level 25           1  ###",
        "  WARNING            1  ###",
        "  ERROR              3  #########",
        "  CRITICAL           1  ###",
        "",
        "Per hour (UTC):",
        "  2026-11-27 10:00  20  " + "#" * 35,
        "",
        "Per minute (UTC), by level (D=DEBUG I=INFO +=other W=WARNING E=ERROR C=CRITICAL):",
        "  2026-11-27 10:00  10  " + "D" * 7 + "I" * 28,
        "  2026-11-27 10:01   1  WWWW",
        "  2026-11-27 10:02   0",
        "  2026-11-27 10:03   9  " + "I" * 14 + "+" * 4 + "E" * 10 + "C" * 4,
    ]


async def test_stats_minutes_option_and_json_file(tmp_path: Path) -> None:
    path = await write_rows(tmp_path / "app.log", MINUTE_ROWS, fmt="json")
    code, out, _ = cli("stats", path, "--minutes", "2")
    assert code == 0
    assert out.splitlines()[-3:] == [
        "Per minute (UTC), by level (I=INFO +=other E=ERROR C=CRITICAL), the 2 minutes to "
        "2026-11-27 10:03:",
        "  2026-11-27 10:02   0",
        "  2026-11-27 10:03   9  " + "I" * 16 + "+" * 3 + "E" * 12 + "C" * 4,
    ]
    code, out, _ = cli("stats", path, "--logger", "db")
    assert out.splitlines()[-2:] == [
        "Per minute (UTC), by level (+=other E=ERROR C=CRITICAL):",
        "  2026-11-27 10:03  5  " + "+" * 7 + "E" * 22 + "C" * 7,
    ]
    assert cli("stats", path, "--minutes", "0")[0] == 2


async def test_stats_histogram_of_a_database(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db", MINUTE_ROWS)
    text = await write_rows(tmp_path / "app.log", MINUTE_ROWS)
    from_file = cli("stats", text, "--since", "2026-11-27")
    assert from_file[2] == "" and "Per minute (UTC), by level" in from_file[1]
    assert cli("stats", db, "--since", "2026-11-27") == from_file


# --- malformed lines, other files, errors, --version -----------------------------------------


async def test_malformed_lines_are_skipped_counted_and_said_once(tmp_path: Path) -> None:
    path = await write_rows(tmp_path / "app.log", ROWS[:3])
    good = path.read_text().splitlines()
    path.write_text(
        "\n".join(
            [
                good[0],
                "not a record at all",
                "    and its continuation",
                good[1],
                '{"timestamp": "2026-11-27T10:05:00.000000Z", "level": "INFO"',
                "2026-13-45T99:00:00.000000Z INFO api impossible date",
                "",
                good[2],
                "2026-11-27T10:09:00.000000Z NOTICE api unknown level",
            ]
        )
        + "\n"
    )
    code, out, err = cli("query", path)
    assert (code, out.splitlines()) == (0, good)
    assert err == f"asynclog: note: skipped 5 malformed lines (the first: {path} line 2)\n"
    code, out, err = cli("stats", path, "--since", "2026-11-27")
    assert code == 0 and out.startswith("Entries since 2026-11-27T00:00:00Z: 3 ")
    assert err.count("skipped 5 malformed lines") == 1


def test_a_file_that_is_no_log_is_an_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\nmilk\n")
    assert cli("query", notes) == (
        2,
        "",
        f"asynclog: error: {notes}: not an asynclog log: neither an SQLite database nor "
        "asynclog's text or JSON lines\n",
    )
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert cli("query", empty) == (0, "", "")
    db = make_db(tmp_path / "app.db")
    assert cli("query", db, "--all") == (
        2,
        "",
        f"asynclog: error: {db}: --all reads rotated log files; this is a database\n",
    )
    # Content decides, not the name: a database called app.log is read as a database.
    renamed = tmp_path / "app.log"
    renamed.write_bytes(db.read_bytes())
    assert records(cli("query", renamed)[1]) == LINES


def test_version() -> None:
    assert cli("--version") == (0, f"asynclog {asynclog.__version__}\n", "")


# --- tail ------------------------------------------------------------------------------------


async def test_tail_filters_files_and_databases(logs: dict[str, Path]) -> None:
    json_lines = logs["json"].read_text().splitlines()
    for source, shown in (("text", LINES), ("json", json_lines), ("db", LINES)):
        code, out, err = cli("tail", logs[source], "--level", "warning", "-n", "2")
        assert (code, err, records(out)) == (0, "", [shown[3], shown[5]]), source
        out = cli("tail", logs[source], "--logger", "api", "--grep", "o", "-n", "5")[1]
        assert records(out) == [shown[2], shown[4]], source
        out = cli("tail", logs[source], "--since", "2026-11-27T12:00", "--level", "info")[1]
        assert records(out) == shown[5:], source
    json_tail = cli("tail", logs["json"], "--field", "user_id=42", "--json", "-n", "1")[1]
    assert json_tail == json_lines[5] + "\n"
    assert cli("tail", logs["text"], "--field", "user_id=7", "--json")[1] == (
        '{"timestamp": "2026-11-27T11:00:00.000000Z", "level": "ERROR", "logger": "worker", '
        '"message": "connection timeout to db1", "fields": {"user_id": "7", "retry": "True"}, '
        '"exception": null}\n'
    )


async def test_tail_follow_with_a_filter(tmp_path: Path) -> None:
    path = await write_rows(tmp_path / "app.log", numbered_rows(10))  # entry 009 is a warning
    process = start_cli("tail", path, "-f", "--interval", "0.02", "--level", "warning", "-n", 1)
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().endswith(" WARNING app entry 009 seq=9\n")
        later = [
            (T0 + 60, 20, "app", "quiet", {}, None),
            (T0 + 61, 40, "app", "loud", {"n": 1}, "Traceback\n  here"),
            (T0 + 62, 10, "app", "quiet again", {}, None),
            (T0 + 63, 30, "app", "last", {}, None),
        ]
        await write_rows(path, later)
        assert [process.stdout.readline() for _ in range(4)] == [
            "2026-11-27T10:01:01.000000Z ERROR app loud n=1\n",
            "    Traceback\n",
            "      here\n",
            "2026-11-27T10:01:03.000000Z WARNING app last\n",
        ]
        with path.open("a") as handle:
            handle.write("garbage line\n2026-11-27T10:02:00.000000Z ERROR app appended\n")
        assert process.stdout.readline() == "2026-11-27T10:02:00.000000Z ERROR app appended\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == "asynclog: note: skipped 1 malformed line\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the Python API --------------------------------------------------------------------------


async def test_query_api_reads_log_files(logs: dict[str, Path], tmp_path: Path) -> None:
    from_db = [entry async for entry in asynclog.query(logs["db"], level="warning")]
    assert len(from_db) == 3
    assert [entry async for entry in asynclog.query(logs["json"], level="warning")] == from_db
    from_text = [entry async for entry in asynclog.query(logs["text"], fields={"user_id": 42})]
    assert [(e.timestamp, e.message, dict(e.fields)) for e in from_text] == [
        (T0 + 60, "GET /users 200", {"user_id": "42", "ms": "12.5"}),
        (T0 + 120, "slow query took 1200ms", {"user_id": "42"}),
        (T0 + 7200, "crash: timeout exceeded", {"user_id": "42"}),
    ]

    path = tmp_path / "rot.log"
    await write_rows(path, numbered_rows(120), fmt="json", max_file_size_mb=0.004, compress=True)
    assert (tmp_path / "rot.log.1.gz").exists()
    every = [entry.fields["seq"] async for entry in asynclog.query(path, rotated=True)]
    assert every == list(range(120))
    live = [entry.fields["seq"] async for entry in asynclog.query(path)]
    assert live == every[len(every) - len(live) :] and len(live) < 120

    with pytest.raises(asynclog.QueryError, match="rotated applies to log files"):
        [entry async for entry in asynclog.query(logs["db"], rotated=True)]
    notes = tmp_path / "notes.txt"
    notes.write_text("milk\n")
    with pytest.raises(asynclog.QueryError) as raised:
        [entry async for entry in asynclog.query(notes)]
    assert str(raised.value) == (
        f"{notes}: not an asynclog log: neither an SQLite database nor asynclog's text or JSON "
        "lines"
    )
    with pytest.raises(asynclog.QueryError) as raised:
        [entry async for entry in asynclog.query(tmp_path / "nope.log")]
    assert str(raised.value) == f"{tmp_path / 'nope.log'}: no such file"
