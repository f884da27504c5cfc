"""An aiohttp app whose own logs and aiohttp's access and error logs all go through asynclog,
each entry of a request with its request_id, the access line included.

    python examples/aiohttp_app.py        # http://127.0.0.1:8080/hello?user=ada

Entries go to APP_LOG_FILE (default ./logs/app.log) as JSON lines; warnings and errors also
go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

import asynclog.aiohttp
import asynclog.stdlib
from asynclog import Config, ConsoleConfig, FileConfig, LogManager

LOG = web.AppKey("log", LogManager)


async def logging_context(app: web.Application) -> AsyncIterator[None]:
    config = Config(
        name="app",
        async_mode=True,
        backends=[
            FileConfig(file_path=os.environ.get("APP_LOG_FILE", "logs/app.log"), format="json"),
            ConsoleConfig(level="WARNING"),
        ],
    )
    async with LogManager(config) as log:  # leaving the block writes every entry
        # aiohttp's loggers ("aiohttp.access", "aiohttp.server", ...) and ours, until it closes.
        asynclog.stdlib.install(log, level="INFO", loggers=["aiohttp", "app"], replace=True)
        app[LOG] = log
        yield


async def hello(request: web.Request) -> web.Response:
    user = request.query.get("user", "world")
    await request.app[LOG].info("hello", user=user)
    return web.json_response({"hello": user})


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("boom")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.05)
    await request.app[LOG].info("slow done", seconds=0.05)
    return web.json_response({"slept": 0.05})


def blocking_work(n: int) -> int:
    logging.getLogger("app.sync").info("blocking work done", extra={"n": n})  # from a thread
    return n * n


async def sync(request: web.Request) -> web.Response:
    n = int(request.query.get("n", "7"))
    # asyncio.to_thread copies the context (request_id); loop.run_in_executor would not.
    return web.json_response({"square": await asyncio.to_thread(blocking_work, n)})


def make_app() -> web.Application:
    # First in the list: every other middleware runs inside the request's context too.
    app = web.Application(middlewares=[asynclog.aiohttp.request_id_middleware()])
    app.cleanup_ctx.append(logging_context)
    app.add_routes(
        [
            web.get("/hello", hello),
            web.get("/boom", boom),
            web.get("/slow", slow),
            web.get("/sync", sync),
        ]
    )
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=int(os.environ.get("APP_PORT", "8080")),
        access_log_class=asynclog.aiohttp.AccessLogger,  # the access line gets the request_id
        print=None,
    )
