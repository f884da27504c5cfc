"""Shutdown: close with a deadline, a forgotten close, SIGINT/SIGTERM, kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asynclog import Config, FileConfig, LogManager

from .conftest import GateBackend, assert_settled, message_of, read_lines

ROOT = Path(__file__).resolve().parent.parent


def run_python(
    code: str, *args: str, timeout: float = 60, **popen: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


async def test_close_with_a_timeout_abandons_a_stuck_backend_and_reports_it() -> None:
    backend = GateBackend()  # never released: a backend that hangs forever
    lm = LogManager(Config(backend=backend, async_mode=True, queue_size=100))
    await lm.start()
    for index in range(50):
        await lm.info(f"m{index}")
    await backend.writing.wait()
    began = time.monotonic()
    report = await lm.close(timeout=0.2)
    assert time.monotonic() - began < 3, "close(timeout) must not hang on a stuck backend"
    assert (report.written, report.abandoned, report.dropped) == (0, 50, 50)
    assert backend.closed
    assert_settled(lm.get_stats())
    assert await lm.close() == report, "a second close returns the same report"


async def test_close_without_a_timeout_drains_everything_and_reports_it(log_path: Path) -> None:
    config = Config(backend="file", async_mode=True, backend_config=FileConfig(file_path=log_path))
    lm = LogManager(config)
    await lm.start()
    for index in range(3000):
        await lm.info(f"m{index}")
    report = await lm.close()
    assert (report.written, report.dropped, report.abandoned) == (3000, 0, 0)
    assert len(read_lines(log_path)) == 3000


FORGETFUL = """
    import asyncio, sys
    from asynclog import Config, FileConfig, SQLiteConfig, LogManager
    kind, path = sys.argv[1], sys.argv[2]
    options = FileConfig(file_path=path) if kind == "file" else SQLiteConfig(db_path=path)
    managers = []

    async def main():
        lm = LogManager(Config(backend=kind, backend_config=options, async_mode=True))
        managers.append(lm)  # kept alive, never closed
        await lm.start()
        for index in range(5000):
            await lm.info(f"m{index}")
        print("accepted", lm.get_stats().accepted, flush=True)

    asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_program_that_forgets_close_loses_nothing(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("app.log" if kind == "file" else "app.db")
    done = run_python(FORGETFUL, kind, str(path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "accepted 5000" in done.stdout
    assert "ResourceWarning: <LogManager 'asynclog' async running> was not closed" in done.stderr
    if kind == "file":
        messages = [message_of(line) for line in read_lines(path)]
    else:
        with sqlite3.connect(path) as db:
            messages = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
        db.close()
    # At least once: the batch in the worker's hands when asyncio.run cancelled it may have
    # reached the backend already, and is written again. Nothing is lost.
    assert list(dict.fromkeys(messages)) == [f"m{index}" for index in range(5000)]
    assert len(messages) - 5000 <= 1000


SIGNALLED = """
    import asyncio, json, sys, asynclog
    from asynclog import Config, FileConfig, LogManager
    use_helper = sys.argv[2] == "helper"

    async def produce(lm, number):
        index = 0
        while True:
            await lm.info(f"p{number} {index}")
            index += 1
            if index % 50 == 0:
                await asyncio.sleep(0)

    async def main():
        config = Config(backend="file", async_mode=True, overflow="block",
                        backend_config=FileConfig(file_path=sys.argv[1], max_file_size_mb=500))
        lm = LogManager(config)
        try:
            async with lm:
                print("ready", flush=True)
                if use_helper:
                    with asynclog.cancel_on_signals():
                        await asyncio.gather(*(produce(lm, n) for n in range(20)))
                else:
                    await asyncio.gather(*(produce(lm, n) for n in range(20)))
        finally:
            stats = lm.get_stats()
            print(json.dumps({"accepted": stats.accepted, "written": stats.written,
                              "dropped": stats.dropped, "pending": stats.pending}), flush=True)

    asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("signum", "mode"),
    [(signal.SIGINT, "plain"), (signal.SIGTERM, "helper"), (signal.SIGINT, "helper")],
)
def test_sigint_and_sigterm_during_heavy_logging_leave_every_entry_on_disk(
    tmp_path: Path, signum: int, mode: str
) -> None:
    path = tmp_path / "app.log"
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGNALLED), str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1])
    lines = read_lines(path)
    assert stats["accepted"] > 1000
    # A producer cancelled while it waited for room never got its entry in: write_log raised
    # CancelledError to it, and the entry is counted dropped. Everything else is on disk.
    assert stats["pending"] == 0 and stats["dropped"] <= 20, err
    assert len(lines) == stats["written"] == stats["accepted"] - stats["dropped"]
    per_producer: dict[str, list[int]] = {}
    for line in lines:
        if " WARNING asynclog asynclog dropped " in line:
            continue  # the in-band report of the cancelled producers' entries
        producer, index = message_of(line).split()
        per_producer.setdefault(producer, []).append(int(index))
    for indexes in per_producer.values():
        assert indexes == list(range(len(indexes)))
    if mode == "helper":
        assert process.returncode == 0, err
    else:
        assert process.returncode != 0 and "KeyboardInterrupt" in err


WRITER = """
    import asyncio, sys
    from asynclog import Config, FileConfig, SQLiteConfig, LogManager

    async def main():
        file_lm = LogManager(Config(backend="file", async_mode=True,
                                    backend_config=FileConfig(file_path=sys.argv[1])))
        db_lm = LogManager(Config(backend="sqlite", async_mode=True,
                                  backend_config=SQLiteConfig(db_path=sys.argv[2])))
        async with file_lm, db_lm:
            print("ready", flush=True)
            index = 0
            while True:
                await file_lm.info(f"entry {index} " + "y" * (index % 300))
                await db_lm.info(f"entry {index}", n=index)
                index += 1
                if index % 100 == 0:
                    await asyncio.sleep(0)

    asyncio.run(main())
"""


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_whole_lines_and_an_intact_database(tmp_path: Path) -> None:
    log_path, db_path = tmp_path / "app.log", tmp_path / "app.db"
    rng = random.Random(7)
    torn: list[bytes] = []  # torn last lines, mended into lines of their own by the next open
    for _ in range(20):
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(log_path), str(db_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        data = log_path.read_bytes()
        lines = data.split(b"\n")
        for line in lines[:-1]:
            if line in torn:
                continue
            text = line.decode("utf-8")
            assert " INFO asynclog entry " in text or " WARNING asynclog " in text, text
        if lines[-1]:
            torn.append(lines[-1])
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            bad = db.execute(
                "SELECT count(*) FROM logs WHERE logger != 'asynclog' AND (message NOT LIKE"
                " 'entry %' OR json_extract(fields, '$.n') IS NOT CAST(substr(message, 7) AS INT))"
            ).fetchone()
            assert bad == (0,)
        db.close()

    # The next open mends a torn last line, so the next session starts on a line of its own.
    async def reopen() -> None:
        config = Config(backend="file", backend_config=FileConfig(file_path=log_path))
        async with LogManager(config) as lm:
            await lm.info("after the crashes")

    asyncio.run(reopen())
    assert message_of(read_lines(log_path)[-1]) == "after the crashes"
    print(f"torn last lines seen: {len(torn)} of 20 kills")
