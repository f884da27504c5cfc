"""A Starlette app whose own logs and uvicorn's access and error logs all go through asynclog.

    python examples/starlette_app.py        # http://127.0.0.1:8000/hello?user=ada

Entries go to APP_LOG_FILE (default ./logs/app.log) as JSON lines; warnings and errors also
go to stderr. Every entry logged while a request is handled carries its request_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import asynclog
import asynclog.stdlib
from asynclog import Config, ConsoleConfig, FileConfig, LogManager


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    config = Config(
        name="app",
        async_mode=True,
        # The default, spelled out: a full log queue drops the entry (counted, reported) and the
        # call returns False; it never raises into a request handler (no HTTP 500 from logging).
        raise_errors=False,
        backends=[
            FileConfig(file_path=os.environ.get("APP_LOG_FILE", "logs/app.log"), format="json"),
            ConsoleConfig(level="WARNING"),
        ],
    )
    async with LogManager(config) as log:  # leaving the block writes every entry
        # uvicorn's loggers (and ours) through asynclog until the manager closes. "uvicorn"
        # covers "uvicorn.error" here; under gunicorn's UvicornWorker name it too (recipes.md).
        asynclog.stdlib.install(
            log, level="INFO", loggers=["uvicorn", "uvicorn.access", "app"], replace=True
        )
        app.state.log = log
        yield


class RequestContext:
    """Pure ASGI middleware: everything logged while the request is handled, uvicorn's access
    line included, carries `request_id` (from X-Request-ID, or a new one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id  # for on_error, below
        with asynclog.contextualize(request_id=request_id):
            await self.app(scope, receive, send)


async def hello(request: Request) -> Response:
    user = request.query_params.get("user", "world")
    await request.app.state.log.info("hello", user=user)
    return JSONResponse({"hello": user})


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.05)
    await request.app.state.log.info("slow done", seconds=0.05)
    return JSONResponse({"slept": 0.05})


def blocking_work(n: int) -> int:
    logging.getLogger("app.sync").info("blocking work done", extra={"n": n})  # from a thread
    return n * n


async def sync(request: Request) -> Response:
    n = int(request.query_params.get("n", "7"))
    return JSONResponse({"square": await run_in_threadpool(blocking_work, n)})


async def on_error(request: Request, exc: Exception) -> Response:
    # Starlette runs this outermost, after RequestContext's block has ended: name the request.
    await request.app.state.log.exception(
        "unhandled error", exc_info=exc, request_id=request.state.request_id, path=request.url.path
    )
    return JSONResponse({"error": "internal"}, status_code=500)


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/boom", boom),
        Route("/slow", slow),
        Route("/sync", sync),
    ],
    middleware=[Middleware(RequestContext)],
    exception_handlers={Exception: on_error},
    lifespan=lifespan,
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("APP_PORT", "8000")))
