"""`asynclog demo` (`make demo`): what it prints, line by line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import asynclog
from asynclog import Config, FileConfig, LogManager
from asynclog._demo import WHY_SLOWER, run_demo, stats_table

HEADINGS = (
    "backend  accepted  written  dropped  dead-lettered  pending  write errors  retries  filtered"
)


async def test_the_demo_prints_a_table_per_backend_and_why_its_rate_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_demo(tmp_path, tasks=4, per_task=25)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "asynclog demo: 4 tasks x 25 entries, async mode, queue_size=1000, put_timeout=0.1 s"
    )
    timing = r"100 entries written in \d+\.\d ms \([\d,]+ entries/s\)"
    assert re.fullmatch(rf"file   {re.escape(str(tmp_path / 'app.log'))}: {timing}", lines[1])
    assert lines[2:4] == [
        f"  {HEADINGS}",
        "  file          100      100        0              0        0             0        0"
        "         0",
    ]
    assert lines[4] == f"  lines in {tmp_path / 'app.log'}: 100"
    assert re.fullmatch(rf"sqlite {re.escape(str(tmp_path / 'app.db'))}: {timing}", lines[5])
    assert lines[6:8] == [
        f"  {HEADINGS}",
        "  sqlite        100      100        0              0        0             0        0"
        "         0",
    ]
    assert lines[8:10] == [f"  rows in {tmp_path / 'app.db'}: 100", "  last five rows:"]
    rows = [line.split(maxsplit=3) for line in lines[10:15]]
    assert [(row[0], row[2], row[3]) for row in rows] == [
        (str(76 + seq), "INFO", f'asynclog Worker 3 - Log {seq} {{"worker": 3, "seq": {seq}}}')
        for seq in range(20, 25)
    ]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6}", row[1]) for row in rows)
    assert lines[15:] == ["", *WHY_SLOWER.splitlines()]
    assert "LogStats(" not in "\n".join(lines)
    assert "2 fields" in WHY_SLOWER and "message only" in WHY_SLOWER


async def test_several_backends_get_a_row_each_and_a_total(tmp_path: Path) -> None:
    """(`filtered` counts the manager's level filter, in the total: a backend's own level is
    not a discard, the entry went to the other backend.)"""
    config = Config(
        async_mode=True,
        overflow="block",  # no drop however loaded the machine is
        level="INFO",
        backends=[
            FileConfig(file_path=tmp_path / "all.log", name="all"),
            FileConfig(file_path=tmp_path / "errors.log", name="errors", level="ERROR"),
        ],
    )
    async with LogManager(config) as lm:
        for index in range(1_234):
            await lm.info("entry %d", index)
        await lm.error("one error")
        await lm.debug("filtered by the manager's level")
    assert stats_table(lm.get_stats()) == [
        "backend  accepted  written  dropped  dead-lettered  pending  write errors  retries"
        "  filtered",
        "all         1,235    1,235        0              0        0             0        0"
        "         0",
        "errors          1        1        0              0        0             0        0"
        "         0",
        "total       1,236    1,236        0              0        0             0        0"
        "         1",
    ]


def test_python_m_asynclog_demo_runs_the_full_scenario(tmp_path: Path) -> None:
    """What `make demo` runs, as a user runs it: 100,000 entries into each backend. (On a
    loaded machine a full queue may drop a few after its 0.1 s `put_timeout`: then the table,
    the file and stderr say so, and every entry is still accounted for.)"""
    checkout = str(Path(asynclog.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-m", "asynclog", "demo"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": checkout},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("asynclog demo: 100 tasks x 1000 entries")
    for row, kind, count_line, noun in ((3, "file", 4, "lines"), (7, "sqlite", 8, "rows")):
        name, *counts = lines[row].split()
        accepted, written, dropped, dead, pending, errors, retries, filtered = (
            int(count.replace(",", "")) for count in counts
        )
        assert name == kind
        assert (dead, pending, errors, retries, filtered) == (0, 0, 0, 0, 0)
        assert accepted == written + dropped
        # the in-band drop reports (one a burst) are entries too: accepted beyond the 100,000
        assert (accepted > 100_000) == bool(dropped) == (f"to {kind!r} failed" in done.stderr)
        target = "logs/app.log" if kind == "file" else "logs/app.db"
        assert lines[count_line] == f"  {noun} in {target}: {written:,}"
