"""A log call never breaks the application by default (`Config(raise_errors=False)`): it
returns True when the entry was accepted (async) or written (sync), False when it was not, and
the loss is counted, said in the log and once per burst on stderr. `raise_errors=True` brings
back the exceptions. Programming errors raise either way."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from asynclog import (
    BackendWriteError,
    Config,
    ConfigError,
    Level,
    LogEntry,
    LogError,
    LogManager,
    ManagerClosedError,
    QueueFullError,
    Sink,
)

from .conftest import FailingBackend, GateBackend, RecordingBackend, assert_settled


async def _stalled(**options: object) -> tuple[LogManager, GateBackend]:
    """An async manager whose worker holds one entry in a write that does not return."""
    backend = GateBackend()
    config = Config(backend=backend, async_mode=True, queue_size=3, put_timeout=0, **options)  # type: ignore[arg-type]
    lm = LogManager(config)
    await lm.start()
    assert await lm.info("in the worker's hands") is True
    await backend.writing.wait()
    return lm, backend


def _drop_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "dropped" in line and "delivery to" in line]


async def test_a_full_queue_returns_false_counts_and_reports_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lm, backend = await _stalled()
    results = [await lm.info(f"m{index}") for index in range(10)]
    assert results == [True] * 3 + [False] * 7
    stats = lm.get_stats()
    assert (stats.accepted, stats.dropped, stats.pending) == (11, 7, 4)
    assert len(_drop_lines(capsys.readouterr().err)) == 1, "one stderr line for the burst"
    backend.release()
    await lm.close()
    reports = [entry for entry in backend.entries if entry.message.startswith("asynclog dropped")]
    assert [report.fields["dropped"] for report in reports] == [7]
    assert [entry.message for entry in backend.entries if entry not in reports] == [
        "in the worker's hands",
        "m0",
        "m1",
        "m2",
    ]
    assert_settled(lm.get_stats())


@pytest.mark.parametrize(
    ("overflow", "expected"), [("drop_newest", False), ("drop_oldest", True), ("block", True)]
)
async def test_each_policy_says_whether_the_new_entry_got_in(overflow: str, expected: bool) -> None:
    lm, backend = await _stalled(overflow=overflow)
    for index in range(3):
        assert await lm.info(f"m{index}") is True
    if overflow == "block":
        call = asyncio.create_task(lm.info("late"))
        await asyncio.sleep(0.01)
        assert not call.done()
        backend.release()
        assert await asyncio.wait_for(call, 2) is expected
    else:
        assert await lm.info("late") is expected
        backend.release()
    await lm.close()
    assert_settled(lm.get_stats())


async def test_a_producer_refused_when_close_begins_gets_false() -> None:
    backend = GateBackend()
    config = Config(backend=backend, async_mode=True, queue_size=1, overflow="block")
    lm = LogManager(config)
    await lm.start()
    await lm.info("in the worker's hands")
    await backend.writing.wait()
    await lm.info("queued")
    waiting = asyncio.create_task(lm.info("waits for room"))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(lm.close())
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(waiting, 2) is False
    backend.release()
    await closing
    kept = [m for m in backend.messages if not m.startswith("asynclog dropped 1 entries")]
    assert kept == ["in the worker's hands", "queued"]
    assert len(backend.messages) == 3  # and the in-band report of the refused one
    assert lm.get_stats().dropped == 1
    assert_settled(lm.get_stats())


async def test_a_lost_sync_write_returns_false_and_is_reported_in_band(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = FailingBackend(fail_on={1})
    async with LogManager(Config(backend=backend, retry_attempts=0, fallback="none")) as lm:
        assert await lm.info("a") is True
        assert await lm.info("lost") is False
        assert await lm.info("b") is True
    assert backend.messages[0] == "a"
    assert backend.messages[1].startswith("asynclog dropped 1 entries between ")
    assert backend.messages[2] == "b"
    stats = lm.get_stats()
    assert (stats.written, stats.dropped, stats.write_errors) == (3, 1, 1)
    assert len(_drop_lines(capsys.readouterr().err)) == 1


async def test_calls_return_true_when_accepted_or_written_and_false_when_filtered() -> None:
    for async_mode in (True, False):
        backend = RecordingBackend()
        config = Config(backend=backend, async_mode=async_mode, level="INFO")
        async with LogManager(config) as lm:
            view = lm.bind(k=1)
            assert await lm.info("plain") is True
            assert await lm.warning("with a field", n=2) is True
            assert await lm.write_log(Level.ERROR, "write_log") is True
            assert await view.info("bound") is True
            assert await lm.debug("below the level") is False
            assert await view.debug("below the level") is False
            try:
                raise ValueError("boom")
            except ValueError:
                assert await lm.exception("caught") is True
        assert backend.messages == ["plain", "with a field", "write_log", "bound", "caught"]


async def test_programming_errors_still_raise() -> None:
    lm = LogManager(Config(backend=RecordingBackend(), async_mode=True))
    with pytest.raises(ManagerClosedError, match="is not started"):
        await lm.info("too early")
    await lm.start()
    with pytest.raises(ValueError, match="unknown"):
        await lm.write_log("LOUD", "bad level")
    failures: list[BaseException] = []

    def from_a_thread() -> None:
        try:
            asyncio.run(lm.info("wrong thread"))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    thread.join(5)
    assert len(failures) == 1 and isinstance(failures[0], LogError)
    assert "called from a thread other than" in str(failures[0])
    await lm.close()
    with pytest.raises(ManagerClosedError, match="is closed"):
        await lm.info("too late")


async def test_raise_errors_true_raises_queue_full_naming_the_backend() -> None:
    lm, backend = await _stalled(raise_errors=True)
    for index in range(3):
        await lm.info(f"m{index}")
    with pytest.raises(
        QueueFullError,
        match=r"^log queue full \(3 entries\) for 0s; entry dropped \(backend 'GateBackend'\)$",
    ):
        await lm.info("late")
    backend.release()
    await lm.close()


async def test_raise_errors_true_with_several_backends_says_which_others_took_it() -> None:
    class Down(RecordingBackend):
        async def write_batch(self, entries: Sequence[LogEntry]) -> None:
            raise OSError("disk gone")

    recorder, quiet = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[
            Sink(Down(), name="down"),
            Sink(recorder, name="recorder"),
            Sink(quiet, name="errors-only", level="ERROR"),
        ],
        retry_attempts=0,
        fallback="none",
        raise_errors=True,
    )
    async with LogManager(config) as lm:
        with pytest.raises(
            BackendWriteError,
            match=r"disk gone; the other backends at its level: 'recorder'$",
        ):
            await lm.info("m")
    assert recorder.messages == ["m"] and quiet.messages == []


async def test_raise_errors_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="raise_errors must be a bool, got 'yes'"):
        Config(raise_errors="yes")  # type: ignore[arg-type]
