"""`write_log` takes the level methods' quick path for a `Level` or a standard level's int, and
`Intake.accept` for everything else: both ways give the same entries and the same errors."""

from __future__ import annotations

import pytest

from asynclog import Config, Level, LogManager, QueueFullError
from tests.conftest import GateBackend, RecordingBackend


async def test_write_log_stores_the_level_a_call_of_any_kind_gives() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True, level="DEBUG")) as lm:
        assert await lm.write_log(Level.WARNING, "a Level")
        assert await lm.write_log(20, "an int of a standard level")
        assert await lm.write_log(25, "a custom level")
        assert await lm.write_log("error", "a level name")
        assert await lm.write_log(Level.INFO, "with fields", user="ann")
        assert await lm.write_log(Level.INFO, "with %s", "args")
    got = [
        (entry.level, type(entry.level), entry.message, dict(entry.fields))
        for entry in backend.entries
    ]
    assert got == [
        (Level.WARNING, Level, "a Level", {}),
        (Level.INFO, Level, "an int of a standard level", {}),
        (25, int, "a custom level", {}),
        (Level.ERROR, Level, "a level name", {}),
        (Level.INFO, Level, "with fields", {"user": "ann"}),
        (Level.INFO, Level, "with args", {}),
    ]


@pytest.mark.parametrize(
    ("level", "message"),
    [(True, "got True"), (20.0, "got 20.0"), (0, "got 0"), ("verbose", "'verbose'")],
)
async def test_write_log_rejects_a_bad_level_naming_it(level: object, message: str) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        with pytest.raises(ValueError, match=message):
            await lm.write_log(level, "x")  # type: ignore[arg-type]
    assert backend.entries == []


async def test_write_log_below_the_level_is_filtered_either_way() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True, level="WARNING")) as lm:
        assert not await lm.write_log(Level.INFO, "quick path")
        assert not await lm.write_log(15, "full path")
        assert await lm.write_log(Level.ERROR, "kept")
        assert lm.get_stats().filtered == 2
    assert backend.messages == ["kept"]


async def test_write_log_on_a_full_queue_applies_the_overflow_policy() -> None:
    gate = GateBackend()
    config = Config(
        backend=gate,
        async_mode=True,
        queue_size=2,
        batch_size=1,
        put_timeout=0,
        raise_errors=True,
    )
    async with LogManager(config) as lm:
        results = []
        for index in range(4):
            try:
                results.append(await lm.write_log(Level.INFO, f"m{index}"))
            except QueueFullError:
                results.append(None)
        stats = lm.get_stats()
        gate.release()
    # nothing yields to the worker while the queue has room: two queued, two refused
    assert results == [True, True, None, None]
    assert stats.dropped == 2
    report, *messages = gate.messages
    assert report.startswith("asynclog dropped 2 entries")
    assert messages == ["m0", "m1"]
