"""asynclog.aiohttp under a real aiohttp server: examples/aiohttp_app.py served by
web.AppRunner on a free port of 127.0.0.1, hit by concurrent httpx requests. Every entry of a
request, aiohttp's own access line included, carries that request's id, exactly once."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from aiohttp import web

import asynclog
import asynclog.aiohttp
from asynclog import Config, FileConfig, LogManager

from .conftest import read_lines

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "aiohttp_app.py"
CONCURRENCY = 50
GIVEN = 600
GENERATED = 200
BOOMS = 20
ACCESS_LINE = re.compile(r'127\.0\.0\.1 \[[^\]]+\] "GET (\S+) HTTP/1\.1" (\d{3}) \d+ "-" "[^"]*"')
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("APP_LOG_FILE", str(tmp_path / "logs" / "app.log"))
    spec = importlib.util.spec_from_file_location("aiohttp_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` in this loop on a free port (yielded); cleanup closes the app's manager."""
    runner = web.AppRunner(app, access_log_class=asynclog.aiohttp.AccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        address = runner.addresses[0]
        yield int(address[1])
    finally:
        await runner.cleanup()


async def fetch_all(
    port: int, requests: list[tuple[str, str | None]]
) -> list[tuple[str | None, str, int, Any]]:
    """GET every (path, request id or None) over CONCURRENCY keep-alive connections at once;
    returns (id sent, id echoed, status, body) per request."""
    todo = iter(requests)
    results: list[tuple[str | None, str, int, Any]] = []

    async def connection() -> None:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", verify=False, timeout=30
        ) as client:
            for path, sent in todo:
                headers = {"X-Request-ID": sent} if sent is not None else {}
                response = await client.get(path, headers=headers)
                body = response.json() if response.status_code == 200 else response.text
                results.append((sent, response.headers["X-Request-ID"], response.status_code, body))

    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    return results


def read_entries(path: Path) -> list[dict[str, Any]]:
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return [json.loads(line) for line in read_lines(path)]


def test_the_example_app_logs_nothing_when_made(example: ModuleType, tmp_path: Path) -> None:
    assert isinstance(example.make_app(), web.Application)
    assert not (tmp_path / "logs").exists()  # the manager starts with the app, not here


async def test_concurrent_requests_each_access_line_carries_its_request_id(
    example: ModuleType, tmp_path: Path
) -> None:
    requests: list[tuple[str, str | None]] = [
        (f"/hello?user=u{i}", f"given-{i}") for i in range(GIVEN)
    ]
    requests += [(f"/hello?user=g{i}", None) for i in range(GENERATED)]
    requests += [("/boom", f"boom-{i}") for i in range(BOOMS)]
    requests += [("/hello?user=bad", "has spaces in it"), ("/hello?user=long", "x" * 201)]
    random.Random(15).shuffle(requests)
    app = example.make_app()
    async with serving(app) as port:
        lm = app[example.LOG]
        assert lm.running
        results = await fetch_all(port, requests)
    assert lm.closed
    stats = lm.get_stats()
    assert (stats.dropped, stats.write_errors, stats.pending) == (0, 0, 0)

    # What the clients saw: their own id echoed, or a fresh one.
    assert len(results) == len(requests)
    echoed: dict[str, tuple[str, int]] = {}  # request id -> (path, status)
    paths = {sent: path for path, sent in requests if sent is not None}
    by_sent = {sent: (echo, status, body) for sent, echo, status, body in results if sent}
    for sent, echo, status, body in results:
        if sent is not None and asynclog.aiohttp.valid_request_id(sent):
            assert echo == sent
            path = paths[sent]
        else:
            assert HEX32.fullmatch(echo), echo
            path = "/hello?user=" + body["hello"]
        assert echo not in echoed
        echoed[echo] = (path, status)
        if path == "/boom":
            assert (status, body) == (500, "500: Internal Server Error")
        else:
            assert (status, body) == (200, {"hello": path.split("=")[1]})
    assert by_sent["has spaces in it"][2] == {"hello": "bad"}
    assert by_sent["x" * 201][2] == {"hello": "long"}

    entries = read_entries(tmp_path / "logs" / "app.log")
    per_request: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in entries:
        per_request[entry["fields"]["request_id"]].append(entry)
    assert set(per_request) == set(echoed)
    for identifier, (path, status) in echoed.items():
        mine = per_request[identifier]
        assert [e["logger"] for e in mine] == (
            ["aiohttp.server", "aiohttp.access"] if path == "/boom" else ["app", "aiohttp.access"]
        ), mine
        first, access = mine
        match = ACCESS_LINE.fullmatch(access["message"])
        assert match is not None, access
        assert (match[1], int(match[2])) == (path, status)
        assert access["fields"]["response_status"] == status
        assert (access["level"], access["exception"]) == ("INFO", None)
        if path == "/boom":
            assert (first["level"], first["message"]) == (
                "ERROR",
                "Error handling request GET /boom",
            )
            assert first["exception"]["stack"].startswith("Traceback (most recent call last):")
            assert first["exception"]["stack"].rstrip().endswith("RuntimeError: boom")
        else:
            assert (first["level"], first["message"]) == ("INFO", "hello")
            assert first["fields"] == {"request_id": identifier, "user": path.split("=")[1]}
    assert len(entries) == 2 * len(requests)


async def test_a_thread_of_the_request_and_an_http_error_keep_the_id(
    example: ModuleType, tmp_path: Path
) -> None:
    app = example.make_app()
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        square = await c.get("/sync?n=3", headers={"X-Request-ID": "t-1"})
        missing = await c.get("/nowhere", headers={"X-Request-ID": "t-2"})
    assert (square.status_code, square.json(), square.headers["X-Request-ID"]) == (
        200,
        {"square": 9},
        "t-1",
    )
    assert (missing.status_code, missing.headers["X-Request-ID"]) == (404, "t-2")
    entries = read_entries(tmp_path / "logs" / "app.log")
    assert [(e["logger"], e["fields"]["request_id"]) for e in entries] == [
        ("app.sync", "t-1"),
        ("aiohttp.access", "t-1"),
        ("aiohttp.access", "t-2"),
    ]
    assert entries[0]["message"] == "blocking work done"
    assert entries[0]["fields"]["n"] == 3
    assert '"GET /sync?n=3 HTTP/1.1" 200' in entries[1]["message"]
    assert '"GET /nowhere HTTP/1.1" 404' in entries[2]["message"]


async def test_options_and_a_logger_of_ones_own(tmp_path: Path) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(asynclog.aiohttp.request_id(request, "trace") or "")
        if request.path == "/fail":
            raise ValueError("bad thing")
        return web.Response(text="ok")

    async with LogManager(Config(backends=[FileConfig(file_path=str(tmp_path / "x.log"))])) as lm:
        errors = logging.getLogger("test_aiohttp.errors")
        asynclog.stdlib.install(lm, loggers=["test_aiohttp.errors"])
        counter = iter(range(100))
        middleware = asynclog.aiohttp.request_id_middleware(
            header="X-Trace",
            field="trace",
            make_id=lambda: f"made-{next(counter)}",
            echo=False,
            error_logger=errors,
        )
        app = web.Application(middlewares=[middleware])
        app.router.add_get("/ok", handler)
        app.router.add_get("/fail", handler)
        async with (
            serving(app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            ok = await client.get("/ok", headers={"X-Trace": "abc"})
            fail = await client.get("/fail")
            ignored = await client.get("/ok", headers={"X-Request-ID": "other"})
    assert [r.status_code for r in (ok, fail, ignored)] == [200, 500, 200]
    assert all("X-Trace" not in r.headers for r in (ok, fail, ignored))
    assert seen == ["abc", "made-0", "made-1"]
    lines = (tmp_path / "x.log").read_text().splitlines()
    assert lines[0].split(" ", 1)[1] == (
        "ERROR test_aiohttp.errors Error handling request GET /fail trace=made-0"
    )
    assert (lines[1], lines[-1]) == (
        "    Traceback (most recent call last):",
        "    ValueError: bad thing",
    )
    assert not any(line[:4].isdigit() for line in lines[1:])  # one entry, its traceback


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="header must be a non-empty str, got ''"):
        asynclog.aiohttp.request_id_middleware(header="")
    with pytest.raises(ValueError, match="field must be a non-empty str, got None"):
        asynclog.aiohttp.request_id_middleware(field=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="make_id must be callable, got 'x'"):
        asynclog.aiohttp.request_id_middleware(make_id="x")  # type: ignore[arg-type]


def test_valid_request_ids() -> None:
    valid = asynclog.aiohttp.valid_request_id
    assert valid("abc-123_X.y:z/+=")
    assert valid("x" * 200)
    assert not valid("x" * 201)
    assert not valid("")
    assert not valid(None)
    assert not valid("a b")
    assert not valid("a\nb")
    assert not valid("é")


async def test_a_stream_that_fails_midway_is_cut_not_answered_twice(tmp_path: Path) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial")
        raise RuntimeError("mid-stream")

    path = tmp_path / "x.log"
    async with LogManager(Config(backends=[FileConfig(file_path=str(path), format="json")])) as lm:
        asynclog.stdlib.install(lm, loggers=["aiohttp"])
        app = web.Application(middlewares=[asynclog.aiohttp.request_id_middleware()])
        app.router.add_get("/stream", stream)
        async with (
            serving(app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                await client.get("/stream", headers={"X-Request-ID": "s-1"})
    entries = [json.loads(line) for line in read_lines(path)]
    # Ours with the id; aiohttp's own (it closes the connection) after the context ended.
    assert [(e["logger"], e["message"], e["fields"].get("request_id")) for e in entries] == [
        ("aiohttp.server", "Error handling request GET /stream", "s-1"),
        ("aiohttp.server", "Error handling request from 127.0.0.1", None),
    ]
    stacks = [e["exception"]["stack"].rstrip() for e in entries]
    assert all(stack.endswith("RuntimeError: mid-stream") for stack in stacks)
