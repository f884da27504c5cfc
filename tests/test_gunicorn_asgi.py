"""The gunicorn recipe: examples/gunicorn_asgi.py under a real gunicorn with
uvicorn_worker.UvicornWorker, two workers, with --preload and without. UvicornWorker sets
"uvicorn.error" to propagate=False; the recipe names it, so each "Exception in ASGI
application" traceback lands in the asynclog file exactly once, and none on gunicorn's stderr."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import read_lines

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gunicorn_asgi.py"
HELLOS = 300
BOOMS = 25
CONCURRENCY = 32
EXCEPTION_MESSAGE = "Exception in ASGI application"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=[False, True], ids=["fork-then-import", "preload"])
def gunicorn(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    log_path = tmp_path / "logs" / "app.log"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "APP_LOG_FILE": str(log_path)}
    command = [sys.executable, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2"]
    command += ["-b", f"127.0.0.1:{port}", "--chdir", str(EXAMPLE.parent)]
    command += ["--preload"] if request.param else []
    command += ["gunicorn_asgi:app"]
    # stderr to a file, not a pipe: a worker writing tracebacks to a full pipe would block.
    with (tmp_path / "gunicorn.stderr").open("wb") as stderr:
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path
        )
    try:
        yield port, log_path, server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def wait_until_serving(port: int, server: subprocess.Popen[bytes]) -> list[str]:
    """Poll /hello until gunicorn answers; returns the request ids the polling used."""
    deadline = time.monotonic() + 30
    attempt = 0
    while True:
        assert server.poll() is None, "gunicorn exited while starting"
        request_id = f"warmup-{attempt}"
        attempt += 1
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/hello", headers={"X-Request-ID": request_id}, timeout=5
            )
        except httpx.TransportError:
            assert time.monotonic() < deadline, "gunicorn did not start in 30 s"
            time.sleep(0.05)
            continue
        assert response.status_code == 200
        return [request_id]


async def fetch_all(port: int, plan: list[tuple[str, str]]) -> set[int]:
    """GET every (path, request id), CONCURRENCY at a time; the pids that served /hello."""
    todo = iter(plan)
    pids: set[int] = set()

    async def connection() -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for path, request_id in todo:
                headers = {"X-Request-ID": request_id}
                if path == "/boom":
                    headers["Connection"] = "close"  # uvicorn closes it after an error
                response = await client.get(path, headers=headers)
                if path == "/boom":
                    assert (response.status_code, response.text) == (500, "Internal Server Error")
                else:
                    assert response.status_code == 200
                    assert response.json()["request_id"] == request_id
                    pids.add(response.json()["pid"])

    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    return pids


async def test_uvicorn_tracebacks_under_gunicorn_land_in_the_file_once_per_request(
    gunicorn: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, log_path, server = gunicorn
    warmup = await asyncio.to_thread(wait_until_serving, port, server)
    plan = [("/hello", f"hello-{i}") for i in range(HELLOS)]
    plan += [("/boom", f"boom-{i}") for i in range(BOOMS)]
    random.Random(15).shuffle(plan)
    pids = await fetch_all(port, plan)
    server.send_signal(signal.SIGTERM)  # graceful: each worker's lifespan closes its manager
    assert await asyncio.to_thread(server.wait, 60) == 0
    stderr = (log_path.parent.parent / "gunicorn.stderr").read_text()
    assert EXCEPTION_MESSAGE not in stderr and "Traceback" not in stderr, stderr
    assert "asynclog[" not in stderr, stderr

    entries = [json.loads(line) for line in read_lines(log_path)]
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in entries:
        grouped[entry["logger"], entry["message"].rstrip("\n")].append(entry)

    tracebacks = grouped["uvicorn.error", EXCEPTION_MESSAGE]
    assert [entry["level"] for entry in tracebacks] == ["ERROR"] * BOOMS
    raised = collections.Counter(
        entry["exception"]["stack"].rstrip("\n").rsplit("\n", 1)[-1] for entry in tracebacks
    )
    assert raised == {f"RuntimeError: boom for boom-{i}": 1 for i in range(BOOMS)}
    stacks = [e["exception"]["stack"] for e in tracebacks]
    assert all(stack.startswith("Traceback (most recent call last):") for stack in stacks)

    hellos = grouped["app", "hello"]
    assert sorted(e["fields"]["request_id"] for e in hellos) == sorted(
        [f"hello-{i}" for i in range(HELLOS)] + warmup
    )
    worker_pids = {e["fields"]["pid"] for e in hellos}
    assert pids <= worker_pids and len(worker_pids) <= 2

    access = collections.Counter(
        entry["message"].split(" - ", 1)[1]
        for entry in entries
        if entry["logger"] == "uvicorn.access"
    )
    assert access == {
        '"GET /hello HTTP/1.1" 200': HELLOS + len(warmup),
        '"GET /boom HTTP/1.1" 500': BOOMS,
    }
    # Both workers ran the lifespan, so both routed uvicorn's loggers through asynclog.
    assert len(grouped["uvicorn.error", "Application startup complete."]) == 2
    assert len(grouped["uvicorn.error", "Waiting for application shutdown."]) == 2
