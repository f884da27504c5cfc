"""`FileConfig(write_on_loop=True)`: async mode writes each batch on the event loop's thread,
and a slow write sends the later ones to the backend's thread. The option's checks, shared with
`SQLiteConfig`, are tested here for both."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, ConfigError, FileBackend, FileConfig, LogManager, SQLiteConfig

from .conftest import message_of, read_lines
from .portable import wait_until


class ThreadNoting(FileBackend):
    """Notes the thread of every write (`write_lines` is the documented place to wrap one);
    `slow` writes sleep that long first, `failing` ones raise an OSError instead."""

    def __init__(self, config: FileConfig, slow: Sequence[float] = (), failing: int = 0) -> None:
        super().__init__(config)
        self.threads: list[int] = []
        self._slow = list(slow)
        self._failing = failing

    def write_lines(self, entries: Sequence[Any], lines: list[str]) -> None:
        self.threads.append(threading.get_ident())
        if self._failing:
            self._failing -= 1
            raise OSError(28, "No space left on device")
        if self._slow:
            time.sleep(self._slow.pop(0))
        super().write_lines(entries, lines)


async def _log(backend: FileBackend, count: int, batch: int = 50, **options: Any) -> LogManager:
    """`count` entries, `batch` at a time before yielding, so that the worker writes several."""
    config = Config(backend=backend, async_mode=True, retry_backoff=0, **options)
    async with LogManager(config) as lm:
        for index in range(count):
            await lm.info(f"m{index}")
            if index % batch == batch - 1:
                await wait_until(lambda: not lm.get_stats().pending)  # this batch written
    return lm


CONFIGS = [FileConfig, SQLiteConfig]
"""The settings with `write_on_loop` (SQLite's own behaviour: test_sqlite_write_on_loop.py)."""


@pytest.mark.parametrize("config", CONFIGS)
def test_it_is_off_by_default(config: type[FileConfig | SQLiteConfig]) -> None:
    assert config().write_on_loop is False
    assert config().loop_write_limit == 0.1


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_value_that_is_not_a_bool_is_refused(
    config: type[FileConfig | SQLiteConfig], value: object
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(write_on_loop=value)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"{config.__name__}.write_on_loop must be")
    assert caught.value.key == "write_on_loop"


@pytest.mark.parametrize(
    ("config", "setting", "why"),
    [
        (FileConfig, {"fsync": True}, "fsync=True: each flush to disk"),
        (FileConfig, {"shared": True}, "shared=True: the wait for the lock"),
        (SQLiteConfig, {"synchronous": "FULL"}, "synchronous='FULL': each commit's flush to disk"),
    ],
)
def test_it_refuses_the_options_that_would_stall_the_loop(
    config: type[FileConfig | SQLiteConfig], setting: dict[str, Any], why: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(write_on_loop=True, **setting)
    assert str(caught.value) == (
        f"{config.__name__}.write_on_loop=True cannot be combined with {why} would stall the "
        "event loop"
    )
    assert caught.value.key == "write_on_loop"


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("value", [0, -1, 61, "0.1", float("nan")])
def test_a_bad_loop_write_limit_is_refused(
    config: type[FileConfig | SQLiteConfig], value: object
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(write_on_loop=True, loop_write_limit=value)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"{config.__name__}.loop_write_limit must be")
    assert caught.value.key == "loop_write_limit"


@pytest.mark.parametrize("config", CONFIGS)
def test_a_loop_write_limit_needs_write_on_loop(config: type[FileConfig | SQLiteConfig]) -> None:
    with pytest.raises(ConfigError) as caught:
        config(loop_write_limit=0.2)
    assert str(caught.value) == (
        f"{config.__name__}.loop_write_limit needs write_on_loop=True (without it every write "
        "is on the backend's thread), got loop_write_limit=0.2"
    )
    assert caught.value.key == "loop_write_limit"


def test_it_is_read_from_a_dict(tmp_path: Path) -> None:
    backend = {"type": "file", "file_path": str(tmp_path / "a.log"), "write_on_loop": True}
    config = Config.from_dict({"backends": [backend]})
    assert config.backends is not None
    assert isinstance(config.backends[0], FileConfig)
    assert config.backends[0].write_on_loop is True


async def test_async_mode_writes_every_batch_on_the_loops_thread(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = FileConfig(file_path=path, write_on_loop=True, loop_write_limit=10)
    backend = ThreadNoting(config)
    lm = await _log(backend, 500)
    assert len(backend.threads) >= 10
    assert set(backend.threads) == {threading.get_ident()}
    assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(500)]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.write_errors) == (500, 500, 0, 0)


async def test_without_it_the_batches_go_to_the_backends_thread(tmp_path: Path) -> None:
    backend = ThreadNoting(FileConfig(file_path=tmp_path / "app.log"))
    await _log(backend, 200)
    assert len(backend.threads) >= 4
    assert threading.get_ident() not in backend.threads
    assert len(set(backend.threads)) == 1


async def test_a_slow_write_sends_the_later_ones_to_the_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.log"
    slow = (0.0, 0.35)  # the first write is quick, the second slower than the limit
    config = FileConfig(file_path=path, write_on_loop=True, loop_write_limit=0.3)
    backend = ThreadNoting(config, slow=slow)
    lm = await _log(backend, 300)
    loop_thread = threading.get_ident()
    assert backend.threads[:2] == [loop_thread, loop_thread]
    later = backend.threads[2:]
    assert len(later) >= 3
    assert loop_thread not in later
    assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(300)]
    assert lm.get_stats().written == 300
    err = capsys.readouterr().err
    assert err.count("asynclog[file]: a write to") == 1
    assert f"a write to {str(path)!r} held the event loop for " in err
    assert err.endswith(
        " ms; later writes go to the backend's thread (write_on_loop=True is for a fast local "
        "disk)\n"
    )


async def test_a_failed_write_on_the_loop_is_retried_as_on_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    config = FileConfig(file_path=path, write_on_loop=True, loop_write_limit=10)
    backend = ThreadNoting(config, failing=2)
    lm = await _log(backend, 100, batch=100)
    stats = lm.get_stats()
    assert (stats.written, stats.dropped, stats.dead_lettered) == (100, 0, 0)
    assert stats.retries == 2
    assert set(backend.threads) == {threading.get_ident()}
    assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(100)]


async def test_sync_mode_is_unchanged_by_it(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    backend = ThreadNoting(FileConfig(file_path=path, write_on_loop=True))
    async with LogManager(Config(backend=backend)) as lm:
        for index in range(20):
            await lm.info(f"m{index}")
    assert backend.threads == [threading.get_ident()] * 20
    assert [message_of(line) for line in read_lines(path)] == [f"m{i}" for i in range(20)]
