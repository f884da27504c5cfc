"""A trio application: nurseries of producers, a cancelled nursery, the getting-started example
under `trio.run` (only its import and its `asyncio.run` line changed). (The rest of the core
runs on trio in test_portable_core.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from asynclog import Config, FileConfig, LogEntry, LogError, LogManager, run_in_thread

from .conftest import assert_settled, message_of, read_lines

ROOT = Path(__file__).resolve().parent.parent
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

TASKS = 100
PER_TASK = 1000
QUEUE_SIZE = 1000
BATCH_SIZE = 256


def test_a_nursery_of_100_tasks_writes_every_entry_once_in_order_within_the_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    depths: list[int] = []
    batch_sizes: list[int] = []

    async def main() -> None:
        config = Config(
            backend_config=FileConfig(file_path=str(path), max_file_size_mb=500),
            async_mode=True,
            queue_size=QUEUE_SIZE,
            batch_size=BATCH_SIZE,
            overflow="block",
        )
        async with LogManager(config) as lm:

            def observe(sink: str, entries: Sequence[LogEntry], seconds: float) -> None:
                batch_sizes.append(len(entries))
                depths.append(lm.get_stats().queue_size)

            lm.observe_writes(observe)

            async def produce(task: int) -> None:
                for index in range(PER_TASK):
                    await lm.info(f"t{task} {index}")
                    if index % 100 == 0:
                        depths.append(lm.get_stats().queue_size)

            async with trio.open_nursery() as nursery:
                for task in range(TASKS):
                    nursery.start_soon(produce, task)
        stats = lm.get_stats()
        assert_settled(stats)
        assert (stats.accepted, stats.written, stats.dropped) == (TASKS * PER_TASK,) * 2 + (0,)
        assert stats.queue_capacity == QUEUE_SIZE

    trio.run(main)
    messages = [message_of(line) for line in read_lines(path)]
    assert len(messages) == TASKS * PER_TASK
    assert len(set(messages)) == TASKS * PER_TASK  # every entry once
    by_task: dict[str, list[int]] = {}
    for message in messages:
        task, index = message.split()
        by_task.setdefault(task, []).append(int(index))
    assert by_task == {f"t{task}": list(range(PER_TASK)) for task in range(TASKS)}
    assert max(depths) <= QUEUE_SIZE
    assert max(batch_sizes) <= BATCH_SIZE
    assert sum(batch_sizes) == TASKS * PER_TASK


def test_cancelling_a_nursery_mid_logging_leaves_the_counts_exact(tmp_path: Path) -> None:
    path = tmp_path / "app.log"

    async def main() -> None:
        config = Config(
            backend_config=FileConfig(file_path=str(path)),
            async_mode=True,
            queue_size=100,
            overflow="block",
        )
        async with LogManager(config) as lm:

            async def produce(task: int) -> None:
                index = 0
                while True:
                    await lm.info(f"t{task} {index}")
                    index += 1
                    if index % 10 == 0:
                        await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as nursery:
                for task in range(50):
                    nursery.start_soon(produce, task)
                # Cancelled mid-logging: entries queued or waiting for room at that moment.
                while (stats := lm.get_stats()).accepted < 20_000 or stats.pending == 0:  # noqa: ASYNC110
                    await trio.sleep(0.001)
                nursery.cancel_scope.cancel()
        stats = lm.get_stats()
        assert_settled(stats)
        assert stats.accepted >= 20_000
        assert stats.written == len(read_lines(path))

    trio.run(main)


def test_a_bare_start_and_close_work_under_trio_outside_any_nursery(tmp_path: Path) -> None:
    path = tmp_path / "app.log"

    async def main() -> None:
        lm = LogManager(Config(backend_config=FileConfig(file_path=str(path)), async_mode=True))
        await lm.start()  # the workers are trio system tasks: no nursery needed
        for index in range(100):
            await lm.info(f"m{index}")
        report = await lm.close()
        assert (report.written, report.dropped) == (100, 0)

    trio.run(main)
    assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(100)]


def _getting_started_on_trio() -> str:
    """The first program of docs/getting-started.md with exactly its two asyncio lines swapped
    for trio's: the import and `asyncio.run(main())`."""
    text = (ROOT / "docs" / "getting-started.md").read_text()
    program = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert program is not None
    code = program.group(1)
    swaps = [
        ("import asyncio\n", "import trio\n"),
        ("asyncio.run(main())\n", "trio.run(main)\n"),
    ]
    for old, new in swaps:
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    assert "asyncio" not in code
    return code


def test_the_getting_started_example_runs_under_trio_run(tmp_path: Path) -> None:
    code = _getting_started_on_trio()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "logs" / "app.log").read_text().splitlines()
    assert done.stdout.splitlines() == written
    assert [_TIMESTAMP.sub("T", line) for line in written] == [
        "T INFO asynclog order received order_id=1",
        "T WARNING asynclog payment slow order_id=1 ms=812",
        "T INFO asynclog order received order_id=2",
        "T WARNING asynclog payment slow order_id=2 ms=812",
    ]


def test_docs_trio_shows_exactly_that_program() -> None:
    text = (ROOT / "docs" / "trio.md").read_text()
    assert _getting_started_on_trio() in text


def test_run_in_thread_inside_trio_run_is_refused_as_inside_asyncio_run() -> None:
    async def main() -> None:
        with pytest.raises(LogError, match=r"run_in_thread\(\) is for code without a running"):
            run_in_thread(Config())

    trio.run(main)
