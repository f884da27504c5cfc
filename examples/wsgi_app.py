"""A WSGI app (no event loop anywhere) logging through asynclog with `run_in_thread`.

    gunicorn -k sync -w 2 --threads 1 -b 127.0.0.1:8000 --chdir examples wsgi_app:app
    python examples/wsgi_app.py              # the same app under wsgiref, for a quick try

Each gunicorn worker imports this module after the fork (no --preload), so each worker starts
its own manager; both append to APP_LOG_FILE (default ./logs/app.log, JSON lines), which
`FileConfig(shared=True)` makes safe across processes. A call never waits for the disk: the
entry is handed to the manager's thread. At worker exit the manager drains itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import asynclog
import asynclog.stdlib
from asynclog import Config, FileConfig, contextualize

logs = asynclog.run_in_thread(
    Config(
        name="wsgi-app",
        async_mode=True,
        backend_config=FileConfig(
            file_path=os.environ.get("APP_LOG_FILE", "logs/app.log"), format="json", shared=True
        ),
    )
)
# Code that uses `logging` (libraries, older modules) ends up in the same file.
asynclog.stdlib.install(logs, level="INFO", loggers=["app"])
legacy = logging.getLogger("app")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Every request logs one entry of its own and one through `logging`, both carrying its
    request_id (from X-Request-ID, or a new one)."""
    request_id = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex
    path = environ.get("PATH_INFO", "/")
    with contextualize(request_id=request_id):
        logs.nowait.info("request", path=path, pid=os.getpid())  # returns at once
        if path == "/boom":
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                legacy.exception("request failed")
            return respond(start_response, "500 Internal Server Error", request_id)
        legacy.info("handled %s", path)
    return respond(start_response, "200 OK", request_id)


def respond(start_response: StartResponse, status: str, request_id: str) -> list[bytes]:
    body = json.dumps({"request_id": request_id, "pid": os.getpid()}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with logs, make_server("127.0.0.1", int(os.environ.get("APP_PORT", "8000")), app) as server:
        print(f"serving on http://127.0.0.1:{server.server_port}/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
