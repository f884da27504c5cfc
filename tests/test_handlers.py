"""Handlers see every entry in order; one that raises stops neither the others nor the writes."""

from __future__ import annotations

import pytest

from asynclog import Config, Handler, LogEntry, LogManager

from .conftest import RecordingBackend


class ListHandler:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def handle(self, entry: LogEntry) -> None:
        self.seen.append(entry.message)


class AsyncListHandler:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, entry: LogEntry) -> None:
        self.seen.append(entry.message)


class RaisingHandler:
    def __init__(self) -> None:
        self.calls = 0

    def handle(self, entry: LogEntry) -> None:
        self.calls += 1
        raise RuntimeError(f"handler broke on {entry.message}")


class AsyncRaisingHandler:
    async def handle(self, entry: LogEntry) -> None:
        raise ValueError("async handler broke")


@pytest.mark.parametrize("async_mode", [True, False])
async def test_handlers_see_every_entry_in_order_despite_raising_neighbours(
    async_mode: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = RecordingBackend()
    plain, coroutine, raising = ListHandler(), AsyncListHandler(), RaisingHandler()
    from_callable: list[str] = []
    async with LogManager(Config(backend=backend, async_mode=async_mode)) as lm:
        lm.register_handler(raising)
        lm.register_handler(plain)
        lm.register_handler(AsyncRaisingHandler())
        lm.register_handler(coroutine)
        lm.register_handler(lambda entry: from_callable.append(entry.message))
        assert lm.get_stats().handler_count == 5
        for index in range(200):
            await lm.info(f"m{index}")
    expected = [f"m{index}" for index in range(200)]
    assert plain.seen == coroutine.seen == from_callable == backend.messages == expected
    stats = lm.get_stats()
    assert (stats.handler_errors, stats.written, stats.write_errors) == (400, 200, 0)
    err = capsys.readouterr().err
    assert err.count("handler failed") == 1, "a burst of failures is reported once on stderr"
    assert "handler broke on m0" in err


async def test_unregistered_handler_sees_nothing_more() -> None:
    handler = ListHandler()
    async with LogManager(Config(backend=RecordingBackend(), async_mode=True)) as lm:
        lm.register_handler(handler)
        await lm.info("before")
        await lm.close()
    lm2 = LogManager(Config(backend=RecordingBackend()))
    async with lm2:
        lm2.register_handler(handler)
        await lm2.info("seen")
        lm2.unregister_handler(handler)
        lm2.unregister_handler(handler)  # unknown: ignored, as in logging
        await lm2.info("unseen")
        assert lm2.get_stats().handler_count == 0
    assert handler.seen == ["before", "seen"]


def test_handler_protocol_and_bad_handlers() -> None:
    assert isinstance(ListHandler(), Handler)
    assert isinstance(AsyncListHandler(), Handler)
    lm = LogManager(Config(backend=RecordingBackend()))
    with pytest.raises(TypeError, match="needs a handle\\(entry\\) method or must be callable"):
        lm.register_handler(42)  # type: ignore[arg-type]
