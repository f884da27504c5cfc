"""`python -m asynclog demo`: the design note's high-volume scenario, into a file and SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from ._config import Config, FileConfig, SQLiteConfig
from ._levels import Level, level_name
from ._manager import LogManager
from ._stats import LogStats

TASKS = 100
PER_TASK = 1000


COLUMNS = (
    ("accepted", "accepted"),
    ("written", "written"),
    ("dropped", "dropped"),
    ("dead_lettered", "dead-lettered"),
    ("pending", "pending"),
    ("write_errors", "write errors"),
    ("retries", "retries"),
    ("filtered", "filtered"),
)
"""The `LogStats` counters the table shows, with their headings: accepted = written + dropped
+ dead-lettered + pending."""

WHY_SLOWER = (
    "Why entries/s differs from the README's headline: each demo entry carries 2 fields\n"
    "(worker=, seq=), which the call copies and the worker formats; the headline is\n"
    "`await lm.info(msg)` with a message only, the median of 5 runs each in a fresh process\n"
    "(`make bench`; `python -m bench calls` compares the cost of each call shape)."
)


async def _produce(lm: LogManager, worker: int, per_task: int) -> None:
    for index in range(per_task):
        await lm.write_log(Level.INFO, f"Worker {worker} - Log {index}", worker=worker, seq=index)


async def _run_one(config: Config, tasks: int, per_task: int) -> tuple[float, LogStats]:
    began = time.perf_counter()
    async with LogManager(config) as lm:
        await asyncio.gather(*(_produce(lm, worker, per_task) for worker in range(tasks)))
    elapsed = time.perf_counter() - began
    return elapsed, lm.get_stats()


def stats_table(stats: LogStats) -> list[str]:
    """`stats` as a table: a row per backend, and a total row when there are several."""
    rows = [(name, own) for name, own in stats.backends.items()]
    if len(rows) != 1:
        rows.append(("total", stats))
    cells = [
        ["backend", *(heading for _, heading in COLUMNS)],
        *([name, *(f"{getattr(own, key):,}" for key, _ in COLUMNS)] for name, own in rows),
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    return [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        )
        for row in cells
    ]


def _report(label: str, elapsed: float, stats: LogStats) -> None:
    rate = stats.written / elapsed if elapsed > 0 else float("inf")
    print(
        f"{label}: {stats.written:,} entries written in {elapsed * 1000:.1f} ms "
        f"({rate:,.0f} entries/s)"
    )
    for line in stats_table(stats):
        print(f"  {line}")


async def run_demo(
    log_dir: Path = Path("logs"), tasks: int = TASKS, per_task: int = PER_TASK
) -> None:
    """Run `tasks` x `per_task` entries in async mode into a file, then into SQLite; report."""
    log_path, db_path = log_dir / "app.log", log_dir / "app.db"
    for stale in (log_path, db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)
    print(
        f"asynclog demo: {tasks} tasks x {per_task} entries, async mode, "
        f"queue_size=1000, put_timeout=0.1 s"
    )
    file_config = Config(
        backend="file",
        async_mode=True,
        backend_config=FileConfig(file_path=log_path, max_file_size_mb=100, max_backups=1),
    )
    elapsed, stats = await _run_one(file_config, tasks, per_task)
    _report(f"file   {log_path}", elapsed, stats)
    with log_path.open("rb") as handle:
        print(f"  lines in {log_path}: {sum(1 for _ in handle):,}")

    sqlite_config = Config(
        backend="sqlite", async_mode=True, backend_config=SQLiteConfig(db_path=db_path)
    )
    elapsed, stats = await _run_one(sqlite_config, tasks, per_task)
    _report(f"sqlite {db_path}", elapsed, stats)
    with sqlite3.connect(db_path) as db:
        (count,) = db.execute("SELECT count(*) FROM logs").fetchone()
        print(f"  rows in {db_path}: {count:,}")
        print("  last five rows:")
        rows = db.execute(
            "SELECT id, ts, level, logger, message, fields FROM logs ORDER BY id DESC LIMIT 5"
        ).fetchall()
    for row_id, ts, level, logger, message, fields in reversed(rows):
        stamp = time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}"
        print(f"    {row_id:>6} {stamp} {level_name(level):<5} {logger} {message} {fields}")
    db.close()
    print()
    print(WHY_SLOWER)


def demo() -> None:
    """Entry point of `python -m asynclog demo`."""
    asyncio.run(run_demo())
