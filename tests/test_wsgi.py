"""A WSGI app without an event loop: examples/wsgi_app.py (run_in_thread) served by gunicorn's
sync workers in two processes sharing one file, and by wsgiref's threads in this process, hit
by many concurrent requests: every request's entries are in the file exactly once."""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from .conftest import read_lines

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wsgi_app.py"
REQUESTS = 1500
BOOM_EVERY = 50
CONCURRENCY = 64


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request_plan(prefix: str, count: int) -> list[tuple[str, str]]:
    """(path, request id) pairs; every BOOM_EVERY-th one fails on purpose."""
    return [
        ("/boom" if number % BOOM_EVERY == 0 else f"/hello/{number}", f"{prefix}-{number}")
        for number in range(count)
    ]


def check_log(path: Path, plan: list[tuple[str, str]], pids: set[int]) -> None:
    """Each request: its own entry and its stdlib entry, exactly once each, with its id."""
    entries = [json.loads(line) for line in read_lines(path)]
    by_request: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in entries:
        by_request[entry["fields"]["request_id"]].append(entry)
    assert set(by_request) == {request_id for _, request_id in plan}
    for request_path, request_id in plan:
        mine = by_request[request_id]
        assert [(e["logger"], e["message"]) for e in mine] == [
            ("wsgi-app", "request"),
            ("app", "request failed" if request_path == "/boom" else f"handled {request_path}"),
        ], request_id
        assert mine[0]["fields"]["path"] == request_path
        assert (mine[1]["exception"] is not None) == (request_path == "/boom")
    assert {e["fields"]["pid"] for e in entries if e["logger"] == "wsgi-app"} == pids
    assert len(entries) == 2 * len(plan)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    log_path = tmp_path / "logs" / "app.log"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "APP_LOG_FILE": str(log_path),
    }
    command = [sys.executable, "-m", "gunicorn", "-k", "sync", "-w", "2", "--threads", "1"]
    command += ["-b", f"127.0.0.1:{port}", "--chdir", str(EXAMPLE.parent), "wsgi_app:app"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        yield port, log_path, server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()


def wait_until_serving(port: int, server: subprocess.Popen[bytes]) -> list[tuple[str, str]]:
    """Poll until gunicorn answers; returns the requests that the polling made."""
    made: list[tuple[str, str]] = []
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, "gunicorn exited while starting"
        request_id = f"warmup-{len(made)}"
        try:
            httpx.get(
                f"http://127.0.0.1:{port}/hello/warmup",
                headers={"X-Request-ID": request_id},
                timeout=5,
            )
        except httpx.TransportError:
            assert time.monotonic() < deadline, "gunicorn did not start in 30 s"
            time.sleep(0.05)
            continue
        made.append(("/hello/warmup", request_id))
        return made


async def fetch_all(port: int, plan: list[tuple[str, str]]) -> set[int]:
    """Send every request, CONCURRENCY at a time; returns the worker pids that answered."""
    todo = iter(plan)
    pids: set[int] = set()
    limits = httpx.Limits(max_connections=CONCURRENCY)

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:

        async def connection() -> None:
            for path, request_id in todo:
                response = await client.get(path, headers={"X-Request-ID": request_id})
                assert response.status_code == (500 if path == "/boom" else 200)
                body = response.json()
                assert body["request_id"] == request_id
                pids.add(body["pid"])

        await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    return pids


async def test_gunicorn_sync_workers_write_every_request_once(
    gunicorn: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, log_path, server = gunicorn
    warmup = await asyncio.to_thread(wait_until_serving, port, server)
    plan = request_plan("req", REQUESTS)
    pids = await fetch_all(port, plan)
    assert len(pids) == 2, "both workers served requests"
    server.send_signal(signal.SIGTERM)  # graceful: each worker exits, draining its manager
    assert await asyncio.to_thread(server.wait, 60) == 0
    assert server.stderr is not None
    stderr = server.stderr.read().decode()
    assert "asynclog[" not in stderr and "Traceback" not in stderr, stderr
    warmup_pids = {
        json.loads(line)["fields"]["pid"]
        for line in read_lines(log_path)
        if json.loads(line)["fields"]["request_id"].startswith("warmup-")
        and json.loads(line)["logger"] == "wsgi-app"
    }
    check_log(log_path, warmup + plan, pids | warmup_pids)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("APP_LOG_FILE", str(tmp_path / "logs" / "app.log"))
    spec = importlib.util.spec_from_file_location("wsgi_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.logs.close()


def test_wsgiref_threads_in_process(example: ModuleType, tmp_path: Path) -> None:
    server = make_server(
        "127.0.0.1", 0, example.app, server_class=ThreadingServer, handler_class=QuietHandler
    )
    port = server.server_port
    plan = request_plan("local", 400)
    with ThreadPoolExecutor(1) as serving, httpx.Client(timeout=30) as client:
        serving.submit(server.serve_forever)
        try:

            def fetch(item: tuple[str, str]) -> int:
                path, request_id = item
                response = client.get(
                    f"http://127.0.0.1:{port}{path}", headers={"X-Request-ID": request_id}
                )
                return int(response.json()["pid"])

            with ThreadPoolExecutor(16) as pool:
                pids = set(pool.map(fetch, plan))
        finally:
            server.shutdown()
            server.server_close()
    report = example.logs.close()
    assert (report.written, report.dropped) == (2 * len(plan), 0)
    check_log(tmp_path / "logs" / "app.log", plan, pids)
