"""Shared test helpers: in-memory backends and file readers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from asynclog import LogEntry
from asynclog._handlers import HandlerSet
from asynclog._report import BurstReporter
from asynclog._stats import Counters
from asynclog._writer import Writer

TEST_LOOP = os.environ.get("ASYNCLOG_TEST_LOOP", "asyncio")
"""The event loop the async tests run on: `asyncio` (the default) or `uvloop` (CI runs the
suite once more with `ASYNCLOG_TEST_LOOP=uvloop`). Code that makes its own loop (`asyncio.run`,
`asyncio.new_event_loop`, the scripts run in subprocesses) keeps asyncio's."""

if TEST_LOOP == "uvloop":
    import uvloop

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        """pytest-asyncio (1.4+) runs each async test on a loop made by this factory. (Overriding
        its `event_loop_policy` fixture, the older way, is deprecated since 1.4.)"""
        return {"uvloop": uvloop.new_event_loop}

elif TEST_LOOP != "asyncio":
    raise pytest.UsageError(f"ASYNCLOG_TEST_LOOP must be 'asyncio' or 'uvloop', got {TEST_LOOP!r}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"asynclog tests: event loop {TEST_LOOP} (ASYNCLOG_TEST_LOOP)"


@contextlib.asynccontextmanager
async def heartbeat(interval: float) -> AsyncIterator[list[int]]:
    """Counts the loop's wake-ups every `interval` seconds while the block runs (`beats[0]`):
    proof that the event loop was free meanwhile."""
    beats = [0]

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            beats[0] += 1

    task = asyncio.create_task(beat())
    try:
        yield beats
    finally:
        task.cancel()


class RecordingBackend:
    """Keeps every written entry in memory; optionally sleeps per batch to act slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.entries: list[LogEntry] = []
        self.batches: list[int] = []
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.batches.append(len(entries))
        self.entries.extend(entries)

    async def close(self) -> None:
        self.closed = True

    @property
    def messages(self) -> list[str]:
        return [entry.message for entry in self.entries]


class GateBackend(RecordingBackend):
    """Every write waits until `release()` is called: a stalled disk or database."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.writing = asyncio.Event()

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.writing.set()
        await self.gate.wait()
        await super().write_batch(entries)

    def release(self) -> None:
        self.gate.set()


class FailingBackend(RecordingBackend):
    """Raises on the batches whose 0-based index is in `fail_on`."""

    def __init__(self, fail_on: set[int]) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.calls = 0

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        call, self.calls = self.calls, self.calls + 1
        if call in self.fail_on:
            raise OSError(28, "No space left on device")
        await super().write_batch(entries)


def read_lines(path: Path) -> list[str]:
    """The file's lines, split on b"\\n" only (the way a log shipper splits)."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "file must end with a whole line"
    return [line.decode("utf-8") for line in data.split(b"\n")[:-1]]


def message_of(line: str) -> str:
    """The message of a text-format line with no fields: after time, level and logger."""
    return line.split(" ", 3)[3]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "app.log"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "app.db"


def assert_settled(stats: object) -> None:
    """The invariant at a quiet moment: every accepted entry is written, dropped or
    dead-lettered, and nothing is pending."""
    from asynclog import LogStats

    assert isinstance(stats, LogStats)
    assert stats.pending == 0, stats
    assert stats.accepted == stats.written + stats.dropped + stats.dead_lettered, stats


def make_writer(
    backend: Any,
    *,
    blocking: bool = False,
    fallback: Any = None,
    retry_attempts: int = 0,
    retry_backoff: float = 0.0,
    handlers: Sequence[Any] = (),
    name: str = "unit",
) -> Writer:
    """A `Writer` on its own (the unit tests of the writer and the sink): its counters and
    handlers fresh, reports on stderr under `name`."""
    counters = Counters()
    reporter = BurstReporter(name)
    handler_set = HandlerSet(counters, reporter)
    for handler in handlers:
        handler_set.add(handler)
    return Writer(
        backend,
        handler_set,
        counters,
        reporter,
        blocking=blocking,
        fallback=fallback,
        retry_attempts=retry_attempts,
        retry_backoff=retry_backoff,
    )


# --- tests that need a real server or program -------------------------------------------------
#
# Such a test is marked `@needs_real(group, missing, enable)` (or calls `skip_real(...)` when only
# running it finds the thing missing). When `missing` says what is absent it skips, and the run
# ends with ONE line naming every skipped group and the command that provides it, so that a
# `make test` without PostgreSQL or rsyslog cannot pass for a complete run.

REAL_SERVER_SKIPS = pytest.StashKey[dict[str, "SkippedGroup"]]()
SUMMARY_PREFIX = "real-server tests skipped:"


@dataclass
class SkippedGroup:
    """One group of real-server tests that skipped in this run."""

    enable: str
    """The command that provides what is missing."""
    reasons: list[str] = field(default_factory=list)
    """What was missing, each reason once."""
    tests: int = 0


def needs_real(group: str, missing: str | None, enable: str) -> pytest.MarkDecorator:
    """Mark tests needing a real server or program: `group` names it in the summary, `missing`
    says what is absent (None: present, the tests run), `enable` is the command providing it."""
    return pytest.mark.real_server(group, missing=missing, enable=enable)


def skip_real(config: pytest.Config, group: str, missing: str, enable: str) -> NoReturn:
    """Skip the running test as `needs_real` does, counted in the same summary line."""
    skipped = config.stash.setdefault(REAL_SERVER_SKIPS, {})
    entry = skipped.setdefault(group, SkippedGroup(enable))
    entry.tests += 1
    if missing not in entry.reasons:
        entry.reasons.append(missing)
    pytest.skip(f"{missing}: these tests need {group}; to run them: {enable}")


def real_server_summary(skipped: Mapping[str, SkippedGroup]) -> str | None:
    """The one summary line naming each skipped group and its command; None if none skipped."""
    if not skipped:
        return None
    groups = [
        f"{group}, {entry.tests} test{'s' if entry.tests != 1 else ''} "
        f"({'; '.join(entry.reasons)}) -> {entry.enable}"
        for group, entry in skipped.items()
    ]
    return f"{SUMMARY_PREFIX} {' | '.join(groups)}"


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background by a shell without job control (`(cmd &)`, nohup in a
    # script) ignores SIGINT, and every child inherits that: the tests that stop a child
    # with SIGINT (tail -f, the shutdown tests) would wait for it forever.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "real_server(group, missing, enable): needs a real server or program (tests/conftest.py "
        "needs_real); skips when `missing` is set, and the run's summary names the group",
    )


@pytest.hookimpl(tryfirst=True)  # before the fixtures that would start the server
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("real_server"):
        missing = marker.kwargs["missing"]
        if missing is not None:
            skip_real(item.config, marker.args[0], missing, marker.kwargs["enable"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    line = real_server_summary(config.stash.get(REAL_SERVER_SKIPS, {}))
    if line is not None:
        terminalreporter.write_line(line, yellow=True, bold=True)


@pytest.fixture(autouse=True)
def _no_machine_proxy_or_otel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's proxy (`*_proxy`, `*_PROXY`) and `OTEL_*` variables would change what
    `OTLPConfig()` and httpx clients do: every test starts without them (a test sets its own
    with `monkeypatch.setenv`; subprocesses inherit the cleaned environment)."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
