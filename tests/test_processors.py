"""Processors: `Config(processors=...)`, `Sink(..., processors=...)` and the built-ins of
`asynclog.processors`, run at the call, before anything else sees the entry."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asynclog import (
    Config,
    ConfigError,
    FileConfig,
    Level,
    LogEntry,
    LogManager,
    Sink,
    SQLiteConfig,
)
from asynclog.metrics import PrometheusCollector
from asynclog.processors import dedupe, rate_limit, redact, sample
from asynclog.stdlib import AsyncLogHandler
from asynclog.testing import capture_logs

from .conftest import GateBackend, RecordingBackend, assert_settled, read_lines

SECRET = "hunter2-s3cret"


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(message: str = "m", level: int = Level.INFO, **fields: object) -> LogEntry:
    return LogEntry(1.0, level, message, "app", MappingProxyType(dict(fields)))


# ---- redact ------------------------------------------------------------------------------


@pytest.mark.parametrize("async_mode", [False, True])
async def test_a_redacted_key_reaches_no_backend_handler_or_capture(
    tmp_path: Path, async_mode: bool
) -> None:
    log_path, db_path = tmp_path / "app.log", tmp_path / "app.db"
    config = Config(
        async_mode=async_mode,
        backends=[FileConfig(file_path=log_path, format="json"), SQLiteConfig(db_path=db_path)],
        processors=[redact(keys=["password", "TOKEN"], patterns=[r"hunter2-\w+"])],
    )
    handled: list[LogEntry] = []
    async with LogManager(config) as lm:
        lm.register_handler(handled.append)
        with capture_logs() as captured:
            await lm.info(
                f"login with {SECRET}",
                user="ann",
                auth={"PassWord": SECRET, "scopes": ["read"]},
                sessions=[{"token": SECRET}, {"id": 7}],
            )
            try:
                raise ValueError(f"bad {SECRET}")
            except ValueError:
                await lm.exception("failed")
            lm.write_log_threadsafe(Level.INFO, "from a thread", password=SECRET)
            await asyncio.sleep(0.05)  # the handed-in entry lands on the loop
    texts = {
        "file": log_path.read_text(),
        "sqlite": repr(sqlite3.connect(db_path).execute("SELECT * FROM logs").fetchall()),
        "handler": repr(handled),
        "capture": repr(captured),
    }
    for where, text in texts.items():
        assert SECRET not in text, where
        assert "hunter2" not in text, where
    assert [e.message for e in captured] == ["login with ***", "failed", "from a thread"]
    first = captured[0]
    assert first.fields == {
        "user": "ann",
        "auth": {"PassWord": "***", "scopes": ["read"]},
        "sessions": [{"token": "***"}, {"id": 7}],
    }
    assert captured[1].exception is not None and "ValueError: bad ***" in captured[1].exception
    assert captured[2].fields == {"password": "***"}
    assert len(handled) == 3
    assert len(read_lines(log_path)) == 3
    stats = lm.get_stats()
    assert stats.filtered == 0 and stats.filtered_by == {"level": 0, "redact": 0}
    assert_settled(stats)


async def test_a_redacted_key_from_a_stdlib_record(tmp_path: Path) -> None:
    backend = RecordingBackend()
    logger = logging.getLogger("test_processors.stdlib")
    logger.propagate = False
    async with LogManager(Config(backend=backend, processors=[redact(keys=["password"])])) as lm:
        handler = AsyncLogHandler(lm)
        logger.addHandler(handler)
        try:
            logger.warning("stdlib", extra={"password": SECRET})
            await asyncio.sleep(0.05)
        finally:
            logger.removeHandler(handler)
    assert [e.message for e in backend.entries] == ["stdlib"]
    assert SECRET not in repr(backend.entries)


def test_redact_leaves_an_entry_without_matches_as_it_is() -> None:
    processor = redact(keys=["password"], patterns=[r"\d{4}-\d{4}"])
    plain = entry("nothing here", user="ann", nested={"a": [1, 2]})
    assert processor(plain) is plain
    masked = processor(entry("card 1234-5678 ok", password=1, other="1234-5678"))
    assert masked.message == "card *** ok"
    assert masked.fields == {"password": "***", "other": "1234-5678"}  # values: keys only
    assert redact(keys=["k"], replacement="[hidden]")(entry(K="v")).fields == {"K": "[hidden]"}


def test_redact_rejects_bad_arguments_by_name() -> None:
    with pytest.raises(TypeError, match=r"redact: keys must be a list of str, got str 'password' "
                       r"\(write keys=\['password'\]\)"):
        redact(keys="password")
    with pytest.raises(ValueError, match=r"redact: invalid pattern '\(unclosed': "):
        redact(patterns=["(unclosed"])
    with pytest.raises(TypeError, match="redact: keys must hold str, got int 3"):
        redact(keys=["a", 3])  # type: ignore[list-item]


# ---- sample --------------------------------------------------------------------------------


def test_sample_with_a_key_decides_the_same_for_the_same_value() -> None:
    users = [f"user-{number}" for number in range(1000)]
    first, second = sample(0.25, key="user"), sample(0.25, key="user")
    kept = [user for user in users if first(entry(user=user)) is not None]
    assert [user for user in users if second(entry(user=user)) is not None] == kept
    assert kept == [u for u in users if zlib.crc32(u.encode()) < 0.25 * 2**32]  # documented
    assert 200 < len(kept) < 300
    again = [user for user in users for _ in range(3) if first(entry(user=user)) is not None]
    assert again == [user for user in kept for _ in range(3)]


def test_sample_with_a_key_decides_the_same_in_another_process() -> None:
    script = (
        "from types import MappingProxyType\n"
        "from asynclog import LogEntry\n"
        "from asynclog.processors import sample\n"
        "s = sample(0.5, key='id')\n"
        "print(','.join(str(i) for i in range(200) if s(LogEntry(0.0, 10, 'm', 'a', "
        "MappingProxyType({'id': i}))) is not None))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    here = sample(0.5, key="id")
    assert out == ",".join(str(i) for i in range(200) if here(entry(id=i)) is not None)


def test_sample_keeps_everything_at_or_above_below_and_draws_the_rest() -> None:
    draws = iter([0.05, 0.5, 0.09, 0.95])
    processor = sample(0.1, below="warning", rng=lambda: next(draws))
    results = [
        processor(entry(str(index), level))
        for index, level in enumerate(
            [Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.INFO, Level.DEBUG]
        )
    ]
    assert [r.message if r is not None else None for r in results] == [
        "0", None, "2", "3", "4", None
    ]
    no_field = sample(0.0, key="user")
    assert no_field(entry("x")) is None  # no such field: drawn (rate 0: never kept)
    with pytest.raises(ValueError, match=r"sample: rate must be a number from 0 to 1, got 1.5"):
        sample(1.5)
    with pytest.raises(ValueError, match=r"sample: below: unknown level name 'loud'"):
        sample(0.5, below="loud")


# ---- rate_limit ----------------------------------------------------------------------------


async def test_rate_limit_counts_are_exact_with_a_fake_clock() -> None:
    clock = FakeClock()
    backend = RecordingBackend()
    config = Config(backend=backend, processors=[rate_limit(2, 3, clock=clock)])
    async with LogManager(config) as lm:
        results = [await lm.info("hot") for _ in range(5)]  # burst 3 at once
        await lm.info("other")  # its own bucket
        clock.now += 0.5  # one token back
        results += [await lm.info("hot") for _ in range(2)]
        clock.now += 100  # the bucket refills to the burst, not more
        results += [await lm.info("hot") for _ in range(4)]
    assert results == [True] * 3 + [False] * 2 + [True, False] + [True] * 3 + [False]
    assert backend.messages == ["hot"] * 3 + ["other", "hot"] + ["hot"] * 3
    stats = lm.get_stats()
    assert stats.filtered == 4
    assert stats.filtered_by == {"level": 0, "rate_limit": 4}
    assert stats.accepted == stats.written == 8


def test_rate_limit_keys_and_the_bounded_memory_of_buckets() -> None:
    clock = FakeClock()
    by_template = rate_limit(1, 1, clock=clock)
    first = entry("user 1 logged in")._replace(template="user %s logged in")
    second = entry("user 2 logged in")._replace(template="user %s logged in")
    assert by_template(first) is first
    assert by_template(second) is None  # the same template: the same bucket
    assert by_template(entry("user 2 logged in")) is not None  # no template: its message

    by_field = rate_limit(1, 1, key="tenant", clock=clock)
    assert by_field(entry(tenant="a")) is not None
    assert by_field(entry(tenant="a")) is None
    assert by_field(entry(tenant="b")) is not None
    assert by_field(entry()) is not None  # without the field: one shared bucket
    assert by_field(entry()) is None

    lru = rate_limit(1, 1, key="logger", max_keys=2, clock=clock)
    for name in ("a", "b"):
        assert lru(entry()._replace(logger=name)) is not None
    assert lru(entry()._replace(logger="a")) is None  # "a" is now the most recent
    assert lru(entry()._replace(logger="c")) is not None  # forgets "b", the least recent
    assert lru(entry()._replace(logger="a")) is None
    assert lru(entry()._replace(logger="b")) is not None  # a fresh bucket
    with pytest.raises(ValueError, match="rate_limit: burst must be an int of at least 1"):
        rate_limit(1, 0)


# ---- dedupe --------------------------------------------------------------------------------


@pytest.mark.parametrize("async_mode", [False, True])
async def test_dedupe_collapses_repeats_into_one_entry_and_flushes_at_close(
    async_mode: bool,
) -> None:
    clock = FakeClock()
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=async_mode, processors=[dedupe(clock=clock)])
    async with LogManager(config) as lm:
        for _ in range(4):
            clock.now += 0.1
            await lm.warning("disk slow", disk="sda")
        await lm.warning("disk slow", disk="sdb")  # other fields: a different entry
        await lm.info("tick")
        clock.now += 0.1
        await lm.info("tick")
        clock.now += 2  # past the window: the summary, then a fresh first
        await lm.info("tick")
        await lm.info("tick")
        await lm.info("tick")
    assert [(e.level, e.message, dict(e.fields)) for e in backend.entries] == [
        (Level.WARNING, "disk slow", {"disk": "sda"}),
        (Level.WARNING, "disk slow (repeated 3 times)", {"disk": "sda", "repeated": 3}),
        (Level.WARNING, "disk slow", {"disk": "sdb"}),
        (Level.INFO, "tick", {}),
        (Level.INFO, "tick (repeated 1 time)", {"repeated": 1}),
        (Level.INFO, "tick", {}),
        (Level.INFO, "tick (repeated 2 times)", {"repeated": 2}),  # flushed by close()
    ]
    assert backend.entries[1].logger == "asynclog"
    stats = lm.get_stats()
    assert stats.filtered_by == {"level": 0, "dedupe": 6}
    assert stats.accepted == stats.written == 7
    assert_settled(stats)


async def test_a_summary_and_the_next_entry_wait_in_order_for_a_full_queue() -> None:
    backend = GateBackend()
    config = Config(
        backend=backend, async_mode=True, queue_size=1, overflow="block", processors=[dedupe()]
    )
    async with LogManager(config) as lm:
        await lm.info("first")  # the worker takes it and waits at the gate
        await backend.writing.wait()
        await lm.info("a")  # the queue's one slot
        await lm.info("a")  # swallowed
        call = asyncio.create_task(lm.info("b"))  # the summary of "a", then "b": no room
        await asyncio.sleep(0.01)
        pending = lm.get_stats().pending  # "first" in hand, "a" queued, two waiting
        backend.release()
        assert await call
        assert pending == 4
    assert backend.messages == ["first", "a", "a (repeated 1 time)", "b"]
    assert_settled(lm.get_stats())


@pytest.mark.parametrize("async_mode", [False, True])
async def test_entries_from_threads_go_through_dedupe_in_order(async_mode: bool) -> None:
    backend = RecordingBackend()
    config = Config(backend=backend, async_mode=async_mode, processors=[dedupe()])
    async with LogManager(config) as lm:
        await asyncio.to_thread(
            lambda: [lm.write_log_threadsafe(Level.INFO, m) for m in ("x", "x", "x", "y", "z")]
        )
        await lm.info("w")  # behind the handed-in entries (sync mode: the backlog)
        await asyncio.sleep(0.05)
    assert backend.messages == ["x", "x (repeated 2 times)", "y", "z", "w"]
    assert_settled(lm.get_stats())


# ---- the contract: None, lists, failures ----------------------------------------------------


async def test_a_raising_processor_lets_the_entry_through_and_is_reported_once_per_burst(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = {"fail": True}

    def flaky(entry: LogEntry) -> LogEntry:
        if calls["fail"]:
            raise RuntimeError("boom")
        return entry._replace(message=entry.message.upper())

    def tagged(entry: LogEntry) -> LogEntry:
        return entry._replace(fields=MappingProxyType({**entry.fields, "tag": 1}))

    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, processors=[flaky, tagged])) as lm:
        assert await lm.info("one")
        assert await lm.info("two")
        calls["fail"] = False
        assert await lm.info("three")
    assert [(e.message, dict(e.fields)) for e in backend.entries] == [
        ("one", {"tag": 1}),
        ("two", {"tag": 1}),
        ("THREE", {"tag": 1}),
    ]
    err = capsys.readouterr().err
    assert err.count("processor 'flaky' failed: it raised RuntimeError('boom')") == 1
    assert "the entry went on unprocessed" in err
    assert "processor 'flaky' recovered; 1 more failures not shown" in err
    assert lm.get_stats().filtered == 0


async def test_a_processor_returning_something_else_is_reported_like_a_raising_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def wrong(entry: LogEntry) -> object:
        return entry.message

    def mixed(entry: LogEntry) -> object:
        return [entry, "extra"]

    backend = RecordingBackend()
    processors: Sequence[object] = [wrong, mixed]
    async with LogManager(Config(backend=backend, processors=processors)) as lm:  # type: ignore[arg-type]
        assert await lm.info("kept")
    assert backend.messages == ["kept"]
    err = capsys.readouterr().err
    assert (
        "processor 'wrong' failed: it returned a str, not a LogEntry, a list of them or None"
        in err
    )
    assert "processor 'mixed' failed: it returned a sequence holding a str" in err


async def test_none_filters_and_a_list_replaces_the_entry() -> None:
    def drop_debug_noise(entry: LogEntry) -> LogEntry | None:
        return None if entry.message.startswith("noise") else entry

    def split(entry: LogEntry) -> list[LogEntry]:
        if entry.message != "pair":
            return [entry]
        return [entry._replace(message="pair 1"), entry._replace(message="pair 2")]

    def empty(entry: LogEntry) -> list[LogEntry]:
        return [] if entry.message == "vanish" else [entry]

    backend = RecordingBackend()
    config = Config(backend=backend, level="info", processors=[drop_debug_noise, split, empty])
    with capture_logs() as captured:
        async with LogManager(config) as lm:
            assert await lm.info("noise 1") is False
            assert await lm.debug("below the level") is False
            assert await lm.info("pair") is True
            assert await lm.info("vanish") is False
            await lm.info("plain")
    assert backend.messages == ["pair 1", "pair 2", "plain"]
    assert [e.message for e in captured] == ["pair 1", "pair 2", "plain"]
    stats = lm.get_stats()
    assert stats.filtered_by == {"level": 1, "drop_debug_noise": 1, "split": 0, "empty": 1}
    assert stats.filtered == 3
    assert stats.accepted == stats.written == 3


# ---- per-sink processors ---------------------------------------------------------------------


@pytest.mark.parametrize("async_mode", [False, True])
async def test_per_sink_processors_with_two_sinks(tmp_path: Path, async_mode: bool) -> None:
    audit = RecordingBackend()
    log_path = tmp_path / "app.log"

    def only_warnings(entry: LogEntry) -> LogEntry | None:
        return entry if entry.level >= Level.WARNING else None

    config = Config(
        async_mode=async_mode,
        backends=[
            Sink(audit, name="audit", processors=[redact(keys=["card"])]),
            Sink(FileConfig(file_path=log_path), processors=[only_warnings]),
        ],
    )
    with capture_logs() as captured:
        async with LogManager(config) as lm:
            await lm.info("paid", card="4111")
            await lm.warning("refund", card="4111")
    assert [(e.message, dict(e.fields)) for e in audit.entries] == [
        ("paid", {"card": "***"}),
        ("refund", {"card": "***"}),
    ]
    lines = read_lines(log_path)
    assert len(lines) == 1 and lines[0].endswith(" WARNING asynclog refund card=4111")
    assert [dict(e.fields) for e in captured] == [{"card": "4111"}] * 2  # the manager's view
    stats = lm.get_stats()
    assert stats.backends["audit"].filtered == 0
    assert stats.backends["audit"].filtered_by == {"redact": 0}
    assert stats.backends["file"].filtered == 1
    assert stats.backends["file"].filtered_by == {"only_warnings": 1}
    assert stats.backends["file"].accepted == stats.backends["file"].written == 1
    assert stats.filtered == 1
    assert stats.filtered_by == {"level": 0, "redact": 0, "only_warnings": 1}
    assert stats.accepted == stats.written == 3
    assert_settled(stats)


async def test_one_sink_with_processors_still_runs_them() -> None:
    backend = RecordingBackend()
    config = Config(backends=[Sink(backend, processors=[redact(keys=["k"])])], async_mode=True)
    async with LogManager(config) as lm:
        await lm.info("plain")
        await lm.info("field", k="v")
    assert [dict(e.fields) for e in backend.entries] == [{}, {"k": "***"}]


async def test_a_sinks_flush_goes_to_that_sink_only() -> None:
    first, second = RecordingBackend(), RecordingBackend()
    config = Config(backends=[Sink(first, processors=[dedupe()]), Sink(second, name="second")])
    async with LogManager(config) as lm:
        await lm.info("same")
        await lm.info("same")
    assert first.messages == ["same", "same (repeated 1 time)"]
    assert second.messages == ["same", "same"]
    stats = lm.get_stats()
    assert stats.backends["RecordingBackend"].filtered_by == {"dedupe": 1}
    assert_settled(stats)


def test_processors_must_be_a_list_of_callables() -> None:
    with pytest.raises(ConfigError, match=r"Config.processors\[1\] must be callable") as error:
        Config(backend=RecordingBackend(), processors=[redact(), "redact"])  # type: ignore[list-item]
    assert error.value.key == "processors[1]"
    with pytest.raises(ConfigError, match=r"Config\.processors must be a list of callables, got"):
        Config(backend=RecordingBackend(), processors=redact())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Sink.processors\[0\] must be callable"):
        Sink(RecordingBackend(), processors=[3])  # type: ignore[list-item]


def test_a_sink_of_settings_takes_their_name_and_level_unless_it_gives_its_own(
    tmp_path: Path,
) -> None:
    own = Sink(FileConfig(file_path=tmp_path / "a.log", name="audit", level="warning"))
    other = Sink(FileConfig(file_path=tmp_path / "b.log", level="info"), name="b", level="error")
    config = Config(backends=[own, other])
    assert [(spec.name, spec.min_level) for spec in config.sinks] == [
        ("audit", Level.WARNING),
        ("b", Level.ERROR),
    ]
    with pytest.raises(ConfigError, match=r"backends\[0\] and backends\[1\] both write to"):
        Config(backends=[Sink(FileConfig(file_path=tmp_path / "a.log")), own])
    with pytest.raises(ConfigError, match=r"Sink\.backend must implement Backend; object lacks"):
        Sink(object())


async def test_the_metrics_count_filtered_entries_by_cause() -> None:
    registry = CollectorRegistry()
    config = Config(backend=RecordingBackend(), name="app", level="info",
                    processors=[sample(0.0)])
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    async with lm:
        await lm.info("sampled out")
        await lm.debug("below")
        await lm.warning("kept")
    text = generate_latest(registry).decode()
    assert 'asynclog_entries_filtered_total{manager="app"} 2.0' in text
    assert 'asynclog_entries_filtered_by_cause_total{cause="sample",manager="app"} 1.0' in text
    assert 'asynclog_entries_filtered_by_cause_total{cause="level",manager="app"} 1.0' in text


async def test_several_entries_of_one_call_dropped_for_a_full_queue_are_each_counted() -> None:
    backend = GateBackend()
    config = Config(
        backend=backend,
        async_mode=True,
        queue_size=1,
        overflow="drop_newest",
        processors=[dedupe()],
    )
    async with LogManager(config) as lm:
        await lm.info("first")  # the worker takes it and waits at the gate
        await backend.writing.wait()
        await lm.info("a")  # the queue's one slot
        await lm.info("a")  # swallowed
        assert await lm.info("b") is False  # the summary of "a" and "b": no room for either
        stats = lm.get_stats()
        backend.release()
    assert stats.dropped == 2 and stats.accepted == 4
    reports = [m for m in backend.messages if m.startswith("asynclog dropped 2 entries")]
    assert len(reports) == 1
    assert [m for m in backend.messages if m not in reports] == ["first", "a"]
    assert_settled(lm.get_stats())
