from __future__ import annotations

import pytest

from asynclog import Config, LogManager


@pytest.mark.parametrize("async_mode", [True, False])
async def test_console_backend_writes_the_text_format_to_stderr(
    async_mode: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    async with LogManager(Config(backend="console", async_mode=async_mode, name="cli")) as lm:
        await lm.warning("disk low", free_mb=12)
        await lm.info("two\nlines")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" WARNING cli disk low free_mb=12")
    assert lines[1].endswith(" INFO cli two\\nlines")
