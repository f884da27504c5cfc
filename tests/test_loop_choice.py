"""The async tests run on the event loop `ASYNCLOG_TEST_LOOP` names (see conftest.py)."""

from __future__ import annotations

import asyncio

from .conftest import TEST_LOOP


async def test_the_tests_run_on_the_loop_asked_for() -> None:
    loop = asyncio.get_running_loop()
    if TEST_LOOP == "uvloop":
        import uvloop

        assert isinstance(loop, uvloop.Loop), type(loop)
    else:
        assert isinstance(loop, asyncio.BaseEventLoop), type(loop)
        assert type(loop).__module__.startswith("asyncio."), type(loop)
