"""Review of issue 15 (second pass): the console, the CLI on file logs and the packaging,
attacked as a user and an attacker would."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from asynclog import Config, ConsoleConfig, LogManager

from .test_cli_filelog import ROOT, cli

RECORD = "2026-11-27T10:00:00.000000Z INFO app {}\n"


def log_with_siblings(tmp_path: Path) -> Path:
    """`app.log` (one record) and a regular rotated `app.log.1` (one record)."""
    log = tmp_path / "app.log"
    log.write_text(RECORD.format("live"))
    (tmp_path / "app.log.1").write_text(RECORD.format("rotated"))
    return log


def test_all_does_not_read_a_sibling_that_is_a_symbolic_link(tmp_path: Path) -> None:
    log = log_with_siblings(tmp_path)
    secret = tmp_path / "elsewhere" / "secret.log"
    secret.parent.mkdir()
    secret.write_text(RECORD.format("the root password is hunter2"))
    (tmp_path / "app.log.2").symlink_to(secret)
    code, out, err = cli("query", log, "--all")
    assert code == 0
    assert out == RECORD.format("rotated") + RECORD.format("live")
    assert "hunter2" not in out + err
    assert f"asynclog: note: could not read {tmp_path / 'app.log.2'}" in err
    assert "symbolic link" in err


def test_all_skips_a_sibling_that_is_a_fifo(tmp_path: Path) -> None:
    log = log_with_siblings(tmp_path)
    os.mkfifo(tmp_path / "app.log.2")
    code, out, err = cli("query", log, "--all")  # hung in open() before the fix
    assert code == 0
    assert out == RECORD.format("rotated") + RECORD.format("live")
    assert "not a regular file" in err


def test_query_json_prints_a_lone_surrogate_as_its_json_escape(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026-11-27T10:00:00.000000Z INFO app a\\ud800b k=\\udcff\n")
    code, out, err = cli("query", log, "--json")
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert (record["message"], record["fields"]) == ("a\ud800b", {"k": "\udcff"})


def test_a_json_timestamp_no_calendar_can_hold_is_a_malformed_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        '{"timestamp": 1e20, "level": "INFO", "message": "far"}\n'
        '{"timestamp": -1e20, "level": "INFO", "message": "past"}\n'
        '{"timestamp": 1796205600, "level": "INFO", "message": "near"}\n'
    )
    note = f"asynclog: note: skipped 2 malformed lines (the first: {log} line 1)\n"
    assert cli("query", log) == (0, "2026-12-02T10:00:00.000000Z INFO  near\n", note)
    code, out, err = cli("stats", log)
    assert (code, err) == (0, note)
    assert out.startswith("Entries: 1 (2026-12-02T10:00:00Z to 2026-12-02T10:00:00Z)\n")


def test_an_iso_time_whose_zone_leaves_the_calendar_is_a_malformed_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        '{"timestamp": "0001-01-01T00:00:00+01:00", "level": "INFO", "message": "before"}\n'
        '{"timestamp": "9999-12-31T23:59:59-05:00", "level": "INFO", "message": "after"}\n'
        '{"timestamp": "9999-12-31T23:59:59+00:00", "level": "INFO", "message": "last"}\n'
    )
    note = f"asynclog: note: skipped 2 malformed lines (the first: {log} line 1)\n"
    assert cli("query", log) == (0, "9999-12-31T23:59:59.000000Z INFO  last\n", note)


def test_a_json_line_nested_too_deep_is_a_malformed_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    deep = "[" * 100_000 + "]" * 100_000
    log.write_text(
        '{"timestamp": 1796205600, "level": "INFO", "message": "ok"}\n'
        '{"timestamp": 1796205600, "level": "INFO", "message": "deep", '
        f'"fields": {{"a": {deep}}}}}\n'
    )
    note = f"asynclog: note: skipped 1 malformed line (the first: {log} line 2)\n"
    assert cli("query", log) == (0, "2026-12-02T10:00:00.000000Z INFO  ok\n", note)
    code, out, err = cli("tail", log, "--json")
    assert (code, err) == (0, "asynclog: note: skipped 1 malformed line\n")
    assert [json.loads(line)["message"] for line in out.splitlines()] == ["ok"]


def test_a_big_file_without_newlines_is_refused_without_being_read_whole(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "core"
    with junk.open("wb") as handle:
        for _ in range(256):
            handle.write(b"x" * 1024 * 1024)
    limit = 384 * 1024 * 1024  # less than the file read whole and decoded

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "asynclog", "query", str(junk)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=limited,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"asynclog: error: {junk}: not an asynclog log: neither an SQLite " + (
        "database nor asynclog's text or JSON lines\n"
    )


def test_a_gzip_cut_short_prints_what_it_holds_then_says_why_it_stops(tmp_path: Path) -> None:
    lines = [
        f"2026-11-27T10:{i // 60:02d}:{i % 60:02d}.000000Z INFO app entry {i}\n"
        for i in range(3000)
    ]
    packed = gzip.compress("".join(lines).encode())
    cut = tmp_path / "app.log.1.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    code, out, err = cli("query", cut)
    assert code == 2
    assert err == (
        f"asynclog: error: {cut}: cannot read: Compressed file ended before the end-of-stream "
        "marker was reached\n"
    )
    printed = out.splitlines(keepends=True)
    assert len(printed) > 100 and printed == lines[: len(printed)]


@pytest.mark.parametrize("value", ["99999999999d", "1" + "0" * 400 + "s"])
def test_a_relative_time_before_the_year_1_is_a_usage_error(tmp_path: Path, value: str) -> None:
    log = log_with_siblings(tmp_path)
    for command in ("stats", "query"):
        code, out, err = cli(command, log, "--since", value)
        assert (code, out) == (2, "")
        assert err.splitlines()[-1] == (
            f"asynclog {command}: error: argument --since: not a time: {value!r}: "
            "that long ago is before the year 1"
        )


def test_records_held_at_exit_reach_stderr_escaped(tmp_path: Path) -> None:
    script = tmp_path / "held.py"
    script.write_text(
        "import logging\n"
        "from asynclog.stdlib import AsyncLogHandler\n"
        'logging.addLevelName(25, "NOTE\\x1b]0;pwned\\x07")\n'
        'log = logging.getLogger("app\\x1b[2J")\n'
        'log.addHandler(AsyncLogHandler("a manager never started"))\n'
        "log.setLevel(1)\n"
        'log.log(25, "hi \\x1b[31mred\\n2026-11-27 INFO forged")\n'
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == (
        "NOTE\\x1b]0;pwned\\x07:app\\x1b[2J:hi \\x1b[31mred\\n2026-11-27 INFO forged\n"
    )


def test_all_ignores_siblings_numbered_with_other_than_ascii_digits(tmp_path: Path) -> None:
    log = log_with_siblings(tmp_path)
    (tmp_path / "app.log.\u00b2").write_text(RECORD.format("superscript two"))
    (tmp_path / "app.log.\u0661").write_text(RECORD.format("arabic-indic one"))
    assert cli("query", log, "--all") == (0, RECORD.format("rotated") + RECORD.format("live"), "")


def test_a_per_minute_bar_with_many_small_levels_stays_within_the_terminal(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    stamp = "2026-11-27T10:00:30.000000Z"
    lines = [f"{stamp} INFO app busy\n"] * 1000 + [
        f"{stamp} {level} app rare\n" for level in ("DEBUG", "WARNING", "ERROR", "CRITICAL")
    ]
    log.write_text("".join(lines))
    code, out, err = cli("stats", log, "--since", "2026-11-27", columns=60)
    assert (code, err) == (0, "")
    minute = [line for line in out.splitlines() if line.endswith("WEC")]
    assert minute == ["  2026-11-27 10:00  1,004  D" + "I" * 28 + "WEC"]  # 32 cells of room
    assert max(len(line) for line in out.splitlines() if line.startswith("  ")) == 59


async def test_a_console_log_call_with_no_stderr_returns_false_without_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sys.stderr is None under pythonw and in some daemons: the console's write fails, and so
    # must the report of that failure, quietly.
    lm = LogManager(Config(backend_config=ConsoleConfig(), retry_attempts=1, retry_backoff=0))
    await lm.start()
    monkeypatch.setattr(sys, "stderr", None)
    try:
        assert await lm.info("nowhere to go") is False
    finally:
        monkeypatch.undo()
        await lm.close()
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped) == (1, 0, 1)
