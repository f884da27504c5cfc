"""Issue 13, the core defects: each test states the promised behaviour and fails on the code
as it was when the issue was filed (a hang becomes a failure within seconds: every wait here
is bounded, and every subprocess has a timeout).

Only the public API is used: `asynclog`, `asynclog.stdlib`, `asynclog.testing`.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from asynclog import (
    BackendWriteError,
    Config,
    Level,
    LogEntry,
    LogManager,
    ManagerClosedError,
    Sink,
    SQLiteConfig,
)

from .conftest import GateBackend, RecordingBackend, assert_settled, message_of, read_lines

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
SUBPROCESS_TIMEOUT = 20.0
"""Seconds a helper script may take (it needs about one); past that it hangs, which fails."""
HANG = 5.0
"""Seconds an in-process wait may take before it counts as a deadlock."""

T = TypeVar("T")


async def within(awaitable: Awaitable[T], what: str, seconds: float = HANG) -> T:
    """`awaitable`'s result; a failure naming `what` if it takes longer than `seconds`."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        pass
    pytest.fail(f"{what} did not finish within {seconds:g} s: it hangs")


async def wait_until(condition: Callable[[], bool], what: str, seconds: float = HANG) -> None:
    """Poll `condition` until it holds (the stats have nothing to await); fail after `seconds`."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 (polling the stats is the point)
            await asyncio.sleep(0.005)

    await within(poll(), what, seconds)


class Ran:
    """How a helper script ended: `exited` is False when it had to be killed at the timeout."""

    def __init__(self, exited: bool, returncode: int | None, stdout: str, stderr: str) -> None:
        self.exited = exited
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def __repr__(self) -> str:
        return (
            f"<exited={self.exited} returncode={self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr[-3000:]}>"
        )


def run_script(name: str, *args: str, timeout: float = SUBPROCESS_TIMEOUT) -> Ran:
    """Run tests/scripts/`name` with asynclog imported from this repository."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, str(SCRIPTS / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        return Ran(False, None, _text(expired.stdout), _text(expired.stderr))
    return Ran(True, done.returncode, done.stdout, done.stderr)


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output


def drop_reports(entries: Sequence[LogEntry]) -> list[LogEntry]:
    """The in-band drop reports among `entries`."""
    return [
        entry
        for entry in entries
        if entry.logger == "asynclog"
        and entry.level == Level.WARNING
        and entry.message.startswith("asynclog dropped ")
    ]


class SlowOpen(RecordingBackend):
    """A backend whose open() takes far longer than anyone waits; `opening` is set once it began."""

    def __init__(self) -> None:
        super().__init__()
        self.opening = asyncio.Event()

    async def open(self) -> None:
        self.opening.set()
        await asyncio.sleep(60)
        await super().open()


class Abort(BaseException):
    """A BaseException that is not a cancellation (like KeyboardInterrupt or SystemExit)."""


class AbortingOpen(RecordingBackend):
    async def open(self) -> None:
        raise Abort("the operator pulled the plug")


# ---- 1. cancelled while the backends open ---------------------------------------------------


@pytest.mark.parametrize("how", ["cancelled", "BaseException"])
async def test_start_closes_the_backends_it_opened_when_interrupted_by_any_exception(
    how: str,
) -> None:
    first = RecordingBackend()
    second = SlowOpen() if how == "cancelled" else AbortingOpen()
    lm = LogManager(Config(backends=[Sink(first, name="first"), Sink(second, name="second")]))
    if how == "cancelled":
        starting = asyncio.create_task(lm.start())
        assert isinstance(second, SlowOpen)
        await within(second.opening.wait(), "opening the second backend")
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(starting, "start() after its cancellation")
    else:
        with pytest.raises(Abort, match="the operator pulled the plug"):
            await within(lm.start(), "start()")
    assert first.opened
    assert first.closed, (
        f"start() interrupted by {how} must close the backend it had already opened "
        "before it re-raises"
    )
    with pytest.raises(ManagerClosedError):
        await lm.info("after a failed start")


def test_a_program_cancelled_while_start_opens_sqlite_then_a_slow_backend_exits(
    tmp_path: Path,
) -> None:
    ran = run_script("cancel_during_open.py", str(tmp_path / "app.db"))
    assert ran.exited, (
        f"the process must exit once asyncio.run returns; it was still alive after "
        f"{SUBPROCESS_TIMEOUT:g} s (an unclosed aiosqlite connection thread): {ran!r}"
    )
    assert ran.lines[:2] == ["start raised CancelledError", "sqlite closed: True"], (
        "the cancellation must reach the caller of start(), and start() must close the SQLite "
        f"backend it had opened: {ran!r}"
    )
    assert ran.returncode == 0, ran
    assert ran.lines == [
        "start raised CancelledError",
        "sqlite closed: True",
        "asyncio.run returned",
    ]


# ---- 2. close() called from a handler or from a backend's write ------------------------------


class ClosingBackend(RecordingBackend):
    """A backend whose write of a "fatal" entry decides to shut the manager down."""

    def __init__(self) -> None:
        super().__init__()
        self.lm: LogManager | None = None
        self.close_returned = asyncio.Event()

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        await super().write_batch(entries)
        if self.lm is not None and any(entry.message == "fatal" for entry in entries):
            await self.lm.close()
            self.close_returned.set()


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("where", ["handler", "backend"])
async def test_close_called_from_inside_the_pipeline_returns_and_the_manager_closes(
    mode: str, where: str
) -> None:
    backend = ClosingBackend()
    lm = LogManager(Config(backend=backend, async_mode=mode == "async"))
    close_returned = backend.close_returned
    if where == "backend":
        backend.lm = lm
    else:

        async def shut_down_on_fatal(entry: LogEntry) -> None:
            if entry.message == "fatal":
                await lm.close()
                close_returned.set()

        lm.register_handler(shut_down_on_fatal)
    await lm.start()
    await lm.info("before 1")
    await lm.info("before 2")
    caller = asyncio.create_task(lm.critical("fatal"))
    await within(close_returned.wait(), f"close() called from a {where} ({mode} mode)", seconds=3)
    await within(caller, "the call whose entry the close came from")
    assert lm.closed
    report = await within(lm.close(), "close() from outside, after the inner one")
    stats = lm.get_stats()
    assert sorted(backend.messages) == ["before 1", "before 2", "fatal"], (
        "every entry accepted before the close is written exactly once"
    )
    assert (report.written, report.dropped, report.abandoned) == (3, 0, 0)
    assert (stats.accepted, stats.written) == (3, 3)
    assert_settled(stats)


# ---- 4. fork() ------------------------------------------------------------------------------


def test_a_forked_child_never_writes_the_parents_entries_and_its_inherited_manager_refuses(
    tmp_path: Path,
) -> None:
    ran = run_script("fork_inherits_manager.py", str(tmp_path))
    assert ran.exited, ran
    assert ran.returncode == 0, ran
    assert ran.lines == ["exit codes: 0 0 0 0", "parent report: written=500 dropped=0"], ran
    messages = [message_of(line) for line in read_lines(tmp_path / "parent.log")]
    counts = collections.Counter(messages)
    assert len(messages) == 500, (
        f"the parent's file must hold its own 500 entries, once each; it holds {len(messages)} "
        f"lines (p1 {counts['p1']} times, {sum(1 for m in messages if m.startswith('child'))} "
        "lines logged by the children through the inherited manager)"
    )
    assert messages == [f"p{index}" for index in range(500)]
    for index in range(4):
        findings = (tmp_path / f"child-{index}.txt").read_text().splitlines()
        assert len(findings) == 3, findings
        for call, finding in zip(("info", "threadsafe"), findings, strict=False):
            assert finding.startswith(f"{call}: ManagerClosedError: ") and "fork" in finding, (
                f"child {index}: a log call on the manager inherited through fork() must raise "
                f"ManagerClosedError saying so; {finding!r}"
            )
        assert findings[2] == "own manager: returned"
        own = [message_of(line) for line in read_lines(tmp_path / f"child-{index}.log")]
        assert own == [f"own {index}"]


# ---- 5. handed in from a thread, waiting for room, when the loop ends ------------------------


@pytest.mark.parametrize("how", ["loop-closed", "asyncio-run"])
def test_an_entry_handed_in_while_waiting_for_room_is_written_when_the_loop_ends(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "app.log"
    ran = run_script("blocked_hand_in_at_loop_end.py", how, str(path))
    assert ran.exited, ran
    assert ran.returncode == 0, ran
    assert ran.lines[:2] == ["before the end: accepted=16 pending=16", "the loop is gone"], ran
    messages = [message_of(line) for line in read_lines(path)]
    expected = [f"c{index}" for index in range(11)] + [f"t{index}" for index in range(5)]
    missing = sorted(set(expected) - set(messages))
    assert collections.Counter(messages) == collections.Counter(expected), (
        f"every accepted entry must be written once at exit ({how}); missing {missing}, "
        f"file: {messages}; {ran.lines[-1]}"
    )
    assert messages == expected
    assert ran.lines[2:] == ["at exit: accepted=16 written=16 dropped=0 pending=0"]


def test_stdlib_records_from_a_thread_survive_a_loop_stopped_and_closed_mid_stream(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    ran = run_script("stdlib_loop_closed_mid_stream.py", str(path))
    assert ran.exited, ran
    assert ran.returncode == 0, ran
    assert len(ran.lines) == 2, ran
    records_line, stats_line = ran.lines
    records = int(records_line.removeprefix("records: "))
    final = dict(item.split("=") for item in stats_line.removeprefix("at exit: ").split())
    accepted, written, dropped, dead_lettered, pending = (
        int(final[key]) for key in ("accepted", "written", "dropped", "dead_lettered", "pending")
    )
    lines = read_lines(path)
    logged = [message_of(line) for line in lines if " asynclog asynclog dropped " not in line]
    twice = [message for message, count in collections.Counter(logged).items() if count > 1]
    assert not twice, f"records written twice: {twice[:10]}"
    assert set(logged) <= {f"r{index}" for index in range(records)}
    assert (pending, accepted) == (0, written + dropped + dead_lettered), (
        f"at exit every accepted record is written or counted dropped: {stats_line}"
    )
    assert len(logged) + dropped == records, (
        f"{records} records were logged; {len(logged)} are in the file and {dropped} were "
        f"counted dropped: {records - len(logged) - dropped} vanished ({stats_line})"
    )


# ---- 6. a stray CancelledError from a backend ----------------------------------------------


class CancelledByItsClient(RecordingBackend):
    """A backend whose client library cancels the request it awaits (a timeout of its own, a
    connection it dropped) on the first `failures` writes: the write raises CancelledError,
    yet nobody cancelled the task that writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            loop = asyncio.get_running_loop()
            request = loop.create_future()
            loop.call_soon(request.cancel)
            await request  # raises CancelledError; this task's cancelling() stays 0
        await super().write_batch(entries)


async def raised_by(call: Awaitable[None]) -> str:
    """The name of the exception `call` raised (a CancelledError included), or "nothing"."""
    try:
        await within(call, "a log call")
    except (asyncio.CancelledError, Exception) as exc:
        return type(exc).__name__
    return "nothing"


async def settled(lm: LogManager) -> None:
    """Wait (bounded) until nothing the manager accepted is pending."""
    await wait_until(lambda: not lm.get_stats().pending, "settling every accepted entry")


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("outcome", ["retried", "dead-lettered", "dropped"])
async def test_a_cancelled_error_from_a_backend_is_a_write_failure_not_a_cancellation(
    mode: str, outcome: str
) -> None:
    # retried: the first call fails, the retry works. Otherwise both calls for the batch fail
    # (one retry), then the fallback takes it, or there is none; the backend recovers after.
    backend = CancelledByItsClient(failures=1 if outcome == "retried" else 2)
    fallback = RecordingBackend()
    config = Config(
        backend=backend,
        async_mode=mode == "async",
        retry_attempts=1,
        retry_backoff=0.01,
        fallback=fallback if outcome == "dead-lettered" else "none",
        raise_errors=True,  # the sync loss raises: it must be a BackendWriteError
    )
    lm = LogManager(config)
    await lm.start()
    lost_in_sync_mode = mode == "sync" and outcome == "dropped"
    assert await raised_by(lm.info("m")) == (
        "BackendWriteError" if lost_in_sync_mode else "nothing"
    ), "the producer was never cancelled: a backend's CancelledError is a failed write for it"
    await settled(lm)
    assert await raised_by(lm.info("after")) == "nothing"
    await within(lm.close(), "close()")
    stats = lm.get_stats()
    failed_calls = 1 if outcome == "retried" else 2
    assert (stats.write_errors, stats.retries) == (failed_calls, 1), (
        "each write that raised CancelledError counts in write_errors, and is retried"
    )
    reports = drop_reports(backend.entries)
    written = [entry.message for entry in backend.entries if entry not in reports]
    if outcome == "retried":
        assert written == ["m", "after"]
        assert (stats.dead_lettered, stats.dropped) == (0, 0)
    elif outcome == "dead-lettered":
        assert written == ["after"]
        assert fallback.messages == ["m"]
        assert (stats.dead_lettered, stats.dropped) == (1, 0)
    else:
        assert written == ["after"]
        assert (stats.dead_lettered, stats.dropped) == (0, 1)
    assert_settled(stats)


# ---- 7. sync-mode SQLite: the caller cancelled while its transaction waits for a lock --------


async def test_a_sync_sqlite_write_cancelled_while_waiting_for_a_lock_is_counted_as_it_ended(
    db_path: Path,
) -> None:
    config = Config(backend="sqlite", backend_config=SQLiteConfig(db_path=db_path, busy_timeout=5))
    lm = LogManager(config)
    await lm.start()
    await lm.info("first")
    other = sqlite3.connect(db_path, isolation_level=None)  # another process, say
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        caller = asyncio.create_task(lm.info("second"))
        await asyncio.sleep(0.3)
        assert not caller.done(), "the write should be waiting for the lock"
        caller.cancel()
        await within(asyncio.wait({caller}), "the cancelled caller")
    finally:
        other.execute("ROLLBACK")
        other.close()
    await within(lm.close(), "close()")
    with sqlite3.connect(db_path) as db:
        rows = [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    stats = lm.get_stats()
    assert len(rows) == stats.written, (
        f"the table holds {rows} but the stats say written={stats.written}, "
        f"dropped={stats.dropped}: the stats must count what happened to the row"
    )
    assert_settled(stats)


# ---- 8. sync mode: callers waiting for the delivery lock ------------------------------------


async def _ten_slow_sync_callers() -> tuple[LogManager, RecordingBackend, list[asyncio.Task[None]]]:
    backend = RecordingBackend(delay=0.2)
    lm = LogManager(Config(backend=backend, raise_errors=True))
    await lm.start()
    callers = [asyncio.create_task(lm.info(f"m{index}")) for index in range(10)]
    await asyncio.sleep(0.1)  # the first write is under way; nine callers wait for the lock
    return lm, backend, callers


async def test_sync_callers_waiting_for_the_lock_count_as_pending() -> None:
    lm, _, callers = await _ten_slow_sync_callers()
    stats = lm.get_stats()
    try:
        assert stats.accepted == 10
        assert (
            stats.accepted == stats.written + stats.dropped + stats.dead_lettered + stats.pending
        ), f"accepted == written + dropped + dead_lettered + pending must hold mid-run: {stats}"
    finally:
        await within(lm.close(), "close()")
        await within(asyncio.wait(callers), "the callers")


async def test_a_sync_close_with_a_deadline_reports_what_the_stats_end_with() -> None:
    lm, backend, callers = await _ten_slow_sync_callers()
    report = await within(lm.close(timeout=0.3), "close(timeout=0.3)")
    outcomes = await within(
        asyncio.gather(*callers, return_exceptions=True), "the callers after close"
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    final = lm.get_stats()
    assert (report.written, report.dropped, report.dead_lettered, report.abandoned) == (
        final.written,
        final.dropped,
        final.dead_lettered,
        len(refused),
    ), (
        f"the CloseReport {report} must match the stats the manager ends with ({final}); "
        f"{len(refused)} callers were refused after close() returned"
    )
    assert all(isinstance(outcome, ManagerClosedError) for outcome in refused), refused
    assert len(backend.entries) == final.written == 10 - len(refused)
    assert_settled(final)


# ---- 9. drops are reported in-band and on stderr, in every mode ------------------------------


HANDED_IN = 10_500
"""More entries than the line holds (10,000) while the backend is stalled."""


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_drops_from_the_line_are_reported_in_band_and_once_on_stderr(
    mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = GateBackend()
    config = Config(backend=backend, async_mode=mode == "async", queue_size=10, overflow="block")
    lm = LogManager(config)
    await lm.start()

    def hand_in() -> None:
        for index in range(HANDED_IN):
            lm.write_log_threadsafe("INFO", f"t{index}")

    await within(asyncio.to_thread(hand_in), "handing entries in from a thread")
    await wait_until(
        lambda: lm.get_stats().accepted >= HANDED_IN, "the handed-in entries reaching the loop"
    )
    backend.release()
    await settled(lm)
    await lm.info("after the burst")
    await within(lm.close(), "close()")
    stats = lm.get_stats()
    dropped = stats.dropped
    assert dropped > 0, "the line holds at most 10,000 entries: the rest must have been dropped"
    reports = drop_reports(backend.entries)
    assert sum(report.fields["dropped"] for report in reports) == dropped, (
        f"{dropped} entries were dropped from the line in {mode} mode; the in-band reports "
        f"written to the backend say {[report.message for report in reports]}"
    )
    kept = [entry.message for entry in backend.entries if entry not in reports]
    assert len(kept) == len(set(kept)) == HANDED_IN - dropped + 1
    stderr = [line for line in capsys.readouterr().err.splitlines() if "drop" in line]
    assert 1 <= len(stderr) <= 2, (
        f"the burst of {dropped} drops must be reported on stderr once (then summed up), "
        f"got {stderr}"
    )
    assert_settled(stats)


async def test_a_sync_mode_entry_lost_to_a_failing_backend_is_reported_in_band() -> None:
    class DownOnce(RecordingBackend):
        failed = False

        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            if not self.failed:
                self.failed = True
                raise OSError(28, "No space left on device")
            await super().write_batch(entries)

    backend = DownOnce()
    async with LogManager(
        Config(backend=backend, raise_errors=True, retry_attempts=0, fallback="none")
    ) as lm:
        with pytest.raises(BackendWriteError):
            await lm.info("lost")
        await lm.info("next")
    reports = drop_reports(backend.entries)
    assert [report.fields["dropped"] for report in reports] == [1], (
        "the entry lost in sync mode must be reported in the log once the backend writes "
        f"again, as async mode does; the backend got {backend.messages}"
    )
    assert [entry.message for entry in backend.entries if entry not in reports] == ["next"]
    assert_settled(lm.get_stats())
