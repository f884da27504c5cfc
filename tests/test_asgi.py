"""A real ASGI app under a real server: examples/starlette_app.py served by uvicorn on
127.0.0.1 and hit by a few thousand concurrent requests. The app's entries and uvicorn's own
access and error records all arrive through asynclog in the JSON file, one per request and
event: none lost, none doubled."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from asynclog import LogManager
from asynclog.stdlib import AsyncLogHandler

from .conftest import read_lines

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "starlette_app.py"
HELLO_REQUESTS = 3000
BOOM_REQUESTS = 20
CONCURRENCY = 200
ACCESS_LINE = re.compile(r'127\.0\.0\.1:\d+ - "GET (\S+) HTTP/1\.1" (\d{3})')
WAITING_FOR_CONNECTIONS = "Waiting for connections to close. (CTRL+C to force quit)"
RESTORED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "app")


def load_example() -> ModuleType:
    """examples/starlette_app.py as a fresh module (not as __main__: nothing is served)."""
    spec = importlib.util.spec_from_file_location("starlette_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("APP_LOG_FILE", str(tmp_path / "logs" / "app.log"))
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate)
        for name in RESTORED_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    yield load_example()
    # uvicorn.Config configured these loggers (handlers on pytest's captured streams): restore.
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[int]:
    """Serve `app` with uvicorn in this loop on a free port of 127.0.0.1 (yielded), with
    uvicorn's default logging config (as `uvicorn.run` in the example); shut down on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # it failed: raise its error
                    pytest.fail("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task  # closes the connections, then runs the lifespan shutdown: lm.close()


async def fetch_all(
    port: int, requests: list[tuple[str, str]], *, close: frozenset[str] = frozenset()
) -> list[tuple[str, int, Any]]:
    """GET every (path, request id) over CONCURRENCY keep-alive connections at once;
    returns (request id, status, JSON) per request."""
    base_url = f"http://127.0.0.1:{port}"  # plain http: verify=False skips loading CA certs
    todo = iter(requests)
    results: list[tuple[str, int, Any]] = []

    async def connection() -> None:
        # A client of its own per connection: httpx's pool is costly with hundreds in one.
        async with httpx.AsyncClient(base_url=base_url, verify=False, timeout=30) as client:
            for path, request_id in todo:
                headers = {"X-Request-ID": request_id}
                if path in close:  # uvicorn closes the connection after an error: say so
                    headers["Connection"] = "close"
                response = await client.get(path, headers=headers)
                results.append((request_id, response.status_code, response.json()))

    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    return results


def read_entries(path: Path) -> list[dict[str, Any]]:
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no rotation, no DLQ
    return [json.loads(line) for line in read_lines(path)]


def by_logger(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in entries:
        grouped[entry["logger"]].append(entry)
    return grouped


def access_of(entry: dict[str, Any]) -> tuple[str, int]:
    """(path with query, status) of a uvicorn access entry."""
    match = ACCESS_LINE.fullmatch(entry["message"])
    assert match is not None, entry
    assert (entry["level"], entry["exception"]) == ("INFO", None), entry
    return match[1], int(match[2])


def assert_lifecycle(entries: list[dict[str, Any]], port: int) -> None:
    """uvicorn's messages while asynclog ran: after the lifespan started it, until it closed.
    (uvicorn's `extra={"color_message": ...}` arrives as a field, as any `extra` does.)"""
    messages = [(e["level"], e["message"], sorted(e["fields"]), e["exception"]) for e in entries]
    if messages.count(("INFO", WAITING_FOR_CONNECTIONS, [], None)) == 1:  # a client lingered
        messages.remove(("INFO", WAITING_FOR_CONNECTIONS, [], None))
    running = f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)"
    assert messages == [
        ("INFO", "Application startup complete.", [], None),
        ("INFO", running, ["color_message"], None),
        ("INFO", "Shutting down", [], None),
        ("INFO", "Waiting for application shutdown.", [], None),
    ]


def assert_all_written(lm: LogManager, file_entries: int, console_entries: int) -> None:
    assert lm.closed
    stats = lm.get_stats()
    assert (stats.dropped, stats.write_errors, stats.dead_lettered, stats.pending) == (0, 0, 0, 0)
    file, console = stats.backends["file"], stats.backends["console"]
    assert (file.accepted, file.written) == (file_entries, file_entries)
    assert (console.accepted, console.written) == (console_entries, console_entries)


def test_the_example_app_is_a_starlette_app_that_logs_nothing_when_imported(
    example: ModuleType, tmp_path: Path
) -> None:
    assert isinstance(example.app, Starlette)
    assert not (tmp_path / "logs").exists()  # the manager is made in the lifespan, not here


async def test_thousands_of_concurrent_requests_each_logged_once_by_app_and_uvicorn(
    example: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = [(f"/hello?user=u{i}", f"hello-{i}") for i in range(HELLO_REQUESTS)]
    requests += [("/boom", f"boom-{i}") for i in range(BOOM_REQUESTS)]
    random.Random(7).shuffle(requests)
    async with serving(example.app) as port:
        lm = example.app.state.log
        assert isinstance(lm, LogManager) and lm.running
        responses = await fetch_all(port, requests, close=frozenset({"/boom"}))
    expected_responses = sorted(
        [(f"hello-{i}", 200, {"hello": f"u{i}"}) for i in range(HELLO_REQUESTS)]
        + [(f"boom-{i}", 500, {"error": "internal"}) for i in range(BOOM_REQUESTS)]
    )
    assert sorted(responses) == expected_responses

    entries = read_entries(tmp_path / "logs" / "app.log")
    grouped = by_logger(entries)
    assert set(grouped) == {"app", "uvicorn.access", "uvicorn.error"}

    # The app: one "hello" per /hello with its request_id from the context; one error per /boom.
    assert sorted(
        (e["level"], e["message"], sorted(e["fields"].items()), e["exception"] is None)
        for e in grouped["app"]
    ) == sorted(
        [
            ("INFO", "hello", [("request_id", f"hello-{i}"), ("user", f"u{i}")], True)
            for i in range(HELLO_REQUESTS)
        ]
        + [
            ("ERROR", "unhandled error", [("path", "/boom"), ("request_id", f"boom-{i}")], False)
            for i in range(BOOM_REQUESTS)
        ]
    )
    for entry in grouped["app"]:
        if entry["level"] == "ERROR":
            assert entry["exception"]["stack"].startswith("Traceback (most recent call last):\n")
            stack = entry["exception"]["stack"]
            assert stack.endswith('raise RuntimeError("boom")\nRuntimeError: boom')

    # uvicorn's access line: one per request. It is logged inside send(), so it carries the
    # request's context when the response is sent inside RequestContext's block (/hello), but
    # not the 500 that Starlette's outermost ServerErrorMiddleware sends after that block.
    access = [(access_of(e), dict(e["fields"])) for e in grouped["uvicorn.access"]]
    assert sorted(access, key=repr) == sorted(
        [((f"/hello?user=u{i}", 200), {"request_id": f"hello-{i}"}) for i in range(HELLO_REQUESTS)]
        + [(("/boom", 500), {})] * BOOM_REQUESTS,
        key=repr,
    )

    # uvicorn's error logger: one traceback per /boom (no request context: logged by the
    # server after the app returned), and the lifecycle messages logged while asynclog ran.
    server_errors = [e for e in grouped["uvicorn.error"] if e["level"] == "ERROR"]
    assert len(server_errors) == BOOM_REQUESTS
    for entry in server_errors:
        assert (entry["message"], entry["fields"]) == ("Exception in ASGI application\n", {})
        assert entry["exception"]["stack"].startswith("Traceback (most recent call last):\n")
        assert entry["exception"]["stack"].endswith("RuntimeError: boom")
    lifecycle = [e for e in grouped["uvicorn.error"] if e["level"] != "ERROR"]
    assert_lifecycle(lifecycle, port)
    assert len(lifecycle) + len(server_errors) == len(grouped["uvicorn.error"])

    # Nothing lost, nothing doubled: exactly what the server did, and what the manager counted.
    assert len(entries) == 2 * HELLO_REQUESTS + 3 * BOOM_REQUESTS + len(lifecycle)
    assert_all_written(lm, file_entries=len(entries), console_entries=2 * BOOM_REQUESTS)

    # uvicorn's own handlers spoke only before the lifespan started asynclog and after it
    # closed (its undo put them back); its access handler (stdout) never did.
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if line.startswith("INFO:")] == [
        f"INFO:     Started server process [{os.getpid()}]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application shutdown complete.",
        f"INFO:     Finished server process [{os.getpid()}]",
    ]
    assert out == ""
    for name in ("uvicorn", "uvicorn.access", "app"):
        assert not any(isinstance(h, AsyncLogHandler) for h in logging.getLogger(name).handlers)


async def test_stdlib_logging_from_the_thread_pool_and_slow_requests_all_arrive(
    example: ModuleType, tmp_path: Path
) -> None:
    requests = [(f"/sync?n={i}", f"sync-{i}") for i in range(300)]
    requests += [("/slow", f"slow-{i}") for i in range(100)]
    random.Random(11).shuffle(requests)
    async with serving(example.app) as port:
        responses = await fetch_all(port, requests)
    assert sorted(responses) == sorted(
        [(f"sync-{i}", 200, {"square": i * i}) for i in range(300)]
        + [(f"slow-{i}", 200, {"slept": 0.05}) for i in range(100)]
    )

    entries = read_entries(tmp_path / "logs" / "app.log")
    grouped = by_logger(entries)
    # logging.getLogger("app.sync") in a worker thread: the request's context came along
    # (run_in_threadpool copies it into the thread, the handler hands it to the loop).
    assert sorted(
        (e["level"], e["message"], sorted(e["fields"].items()), e["exception"])
        for e in grouped["app.sync"]
    ) == sorted(
        ("INFO", "blocking work done", [("n", i), ("request_id", f"sync-{i}")], None)
        for i in range(300)
    )
    assert sorted(
        (e["level"], e["message"], sorted(e["fields"].items()), e["exception"])
        for e in grouped["app"]
    ) == sorted(
        ("INFO", "slow done", [("request_id", f"slow-{i}"), ("seconds", 0.05)], None)
        for i in range(100)
    )
    access = [(access_of(e), e["fields"]) for e in grouped["uvicorn.access"]]
    assert sorted(access, key=repr) == sorted(
        [((f"/sync?n={i}", 200), {"request_id": f"sync-{i}"}) for i in range(300)]
        + [(("/slow", 200), {"request_id": f"slow-{i}"}) for i in range(100)],
        key=repr,
    )
    lifecycle = grouped["uvicorn.error"]
    assert_lifecycle(lifecycle, port)
    assert len(entries) == 300 + 100 + 400 + len(lifecycle)
    assert set(grouped) == {"app", "app.sync", "uvicorn.access", "uvicorn.error"}
    assert_all_written(example.app.state.log, file_entries=len(entries), console_entries=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_example_runs_as_a_script(tmp_path: Path) -> None:
    """`python examples/starlette_app.py` serves, logs through asynclog, stops on Ctrl+C."""
    port = free_port()
    log_file = tmp_path / "logs" / "app.log"
    env = {**os.environ, "APP_LOG_FILE": str(log_file), "APP_PORT": str(port)}
    with subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    response = httpx.get(
                        f"http://127.0.0.1:{port}/hello?user=ada",
                        headers={"X-Request-ID": "script-1"},
                    )
                    break
                except httpx.ConnectError:
                    assert process.poll() is None, process.communicate()
                    assert time.monotonic() < deadline, "the example did not start"
                    time.sleep(0.05)
            assert (response.status_code, response.json()) == (200, {"hello": "ada"})
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert out == ""  # uvicorn's access handler (stdout) was replaced by asynclog's
    assert "Application shutdown complete." in err
    entries = [json.loads(line) for line in read_lines(log_file)]
    hello, access = (e for e in entries if e["logger"] != "uvicorn.error")
    assert (hello["logger"], hello["message"]) == ("app", "hello")
    assert hello["fields"] == {"request_id": "script-1", "user": "ada"}
    assert (access["logger"], access_of(access)) == ("uvicorn.access", ("/hello?user=ada", 200))
    assert access["fields"] == {"request_id": "script-1"}
    assert_lifecycle([e for e in entries if e["logger"] == "uvicorn.error"], port)
