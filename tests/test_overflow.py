"""Overload: overflow policies, priority entries, in-band drop reports, a byte-bounded queue."""

from __future__ import annotations

import asyncio

import pytest

from asynclog import Config, Level, LogManager, QueueFullError

from .conftest import GateBackend, assert_settled


async def _stalled(**options: object) -> tuple[LogManager, GateBackend]:
    backend = GateBackend()
    options.setdefault("queue_size", 10)
    options.setdefault("raise_errors", True)  # the raising form; test_raise_errors.py: default
    lm = LogManager(Config(backend=backend, async_mode=True, **options))  # type: ignore[arg-type]
    await lm.start()
    await lm.info("in flight")  # the worker takes it and stalls in write_batch
    await backend.writing.wait()
    return lm, backend


def _reports(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("asynclog dropped ")]


async def test_drop_newest_returns_at_once_and_counts_each_drop() -> None:
    lm, backend = await _stalled(overflow="drop_newest")
    for index in range(25):
        await lm.info(f"m{index}")  # never raises
    stats = lm.get_stats()
    assert (stats.queue_size, stats.dropped, stats.accepted) == (10, 15, 26)
    backend.release()
    await lm.close()
    messages = backend.messages
    assert _reports(messages) == [messages[1]]
    assert backend.entries[1].fields["dropped"] == 15
    assert [m for m in messages if m not in _reports(messages)] == ["in flight"] + [
        f"m{index}" for index in range(10)
    ]
    assert_settled(lm.get_stats())


async def test_drop_oldest_evicts_the_oldest_queued_entry_but_never_a_priority_one() -> None:
    lm, backend = await _stalled(overflow="drop_oldest")
    await lm.error("keep me")  # priority: never evicted
    for index in range(14):
        await lm.info(f"m{index}")
    backend.release()
    await lm.close()
    kept = [m for m in backend.messages if not m.startswith("asynclog dropped")]
    assert kept == ["in flight", "keep me"] + [f"m{index}" for index in range(5, 14)]
    stats = lm.get_stats()
    assert stats.dropped == 5
    assert_settled(stats)


async def test_block_waits_for_room_however_long() -> None:
    lm, backend = await _stalled(overflow="block", put_timeout=0.01)
    for index in range(10):
        await lm.info(f"m{index}")
    blocked = asyncio.create_task(lm.info("waits"))
    await asyncio.sleep(0.1)  # ten times put_timeout
    assert not blocked.done()
    backend.release()
    await blocked
    await lm.close()
    assert backend.messages == ["in flight"] + [f"m{index}" for index in range(10)] + ["waits"]
    assert_settled(lm.get_stats())


async def test_priority_entries_get_in_when_the_queue_is_full() -> None:
    lm, backend = await _stalled(put_timeout=0.01)
    for index in range(10):
        await lm.info(f"m{index}")
    with pytest.raises(QueueFullError):
        await lm.info("normal, dropped")
    for index in range(16):  # the reserve: max(16, queue_size // 10)
        await lm.error(f"e{index}")
    beyond = asyncio.create_task(lm.critical("beyond the reserve: waits without a timeout"))
    await asyncio.sleep(0.05)
    stats = lm.get_stats()
    assert (stats.queue_size, stats.dropped, stats.pending) == (26, 1, 28)
    assert not beyond.done()
    backend.release()
    await beyond
    await lm.close()
    kept = [m for m in backend.messages if not m.startswith("asynclog dropped")]
    assert kept == (
        ["in flight"]
        + [f"m{i}" for i in range(10)]
        + [f"e{i}" for i in range(16)]
        + ["beyond the reserve: waits without a timeout"]
    )
    assert_settled(lm.get_stats())


async def test_priority_level_none_treats_every_entry_alike() -> None:
    lm, backend = await _stalled(put_timeout=0, priority_level=None)
    for index in range(10):
        await lm.info(f"m{index}")
    with pytest.raises(QueueFullError):
        await lm.critical("no priority lane")
    backend.release()
    await lm.close()
    assert_settled(lm.get_stats())


async def test_queue_bounded_by_bytes_refuses_a_burst_of_huge_messages() -> None:
    lm, backend = await _stalled(put_timeout=0, max_queue_bytes=100_000, queue_size=1000)
    big = "x" * 20_000
    accepted = 0
    with pytest.raises(QueueFullError):
        for _ in range(1000):
            await lm.info(big)
            accepted += 1
    assert accepted == 4  # 4 x ~20 kB fit under 100 kB; the count bound (1000) is far away
    assert 80_000 <= lm.get_stats().queue_bytes <= 100_000
    backend.release()
    await lm.close()
    assert len([m for m in backend.messages if m == big]) == 4
    assert_settled(lm.get_stats())


async def test_timeout_policy_is_the_default_and_reports_drops_in_band() -> None:
    lm, backend = await _stalled(put_timeout=0)
    for index in range(10):
        await lm.info(f"m{index}")
    for _ in range(3):
        with pytest.raises(QueueFullError):
            await lm.info("dropped")
    backend.release()
    await lm.close()
    (report,) = [e for e in backend.entries if e.logger == "asynclog" and e.level == Level.WARNING]
    assert report.fields["dropped"] == 3
    assert report.fields["first_drop"] <= report.fields["last_drop"]
    assert_settled(lm.get_stats())
