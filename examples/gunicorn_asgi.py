"""An ASGI app under gunicorn with uvicorn's worker, every log line through asynclog:
uvicorn's "Exception in ASGI application" tracebacks included.

    pip install gunicorn uvicorn-worker starlette
    gunicorn -k uvicorn_worker.UvicornWorker -w 2 -b 127.0.0.1:8000 \\
        --chdir examples gunicorn_asgi:app          # with or without --preload

`UvicornWorker` gives "uvicorn.error" and "uvicorn.access" gunicorn's handlers and sets
`propagate = False` on both, so routing "uvicorn" alone (enough under plain uvicorn) misses
them: the tracebacks go to gunicorn's stderr. `SERVER_LOGGERS` names each logger that does
not propagate; a record that reaches two of them (under plain uvicorn) is written once.

Each worker starts its manager in the app's lifespan, after the fork, so `--preload` changes
nothing; the workers share APP_LOG_FILE (default ./logs/app.log, JSON lines) with
`FileConfig(shared=True)`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import asynclog
import asynclog.stdlib
from asynclog import Config, FileConfig, LogManager

SERVER_LOGGERS = ["uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error"]
"""Under gunicorn each of these must be named: none of the last three propagates."""


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    config = Config(
        name="app",
        async_mode=True,
        backend_config=FileConfig(
            file_path=os.environ.get("APP_LOG_FILE", "logs/app.log"), format="json", shared=True
        ),
    )
    async with LogManager(config) as log:  # leaving the block writes every entry
        asynclog.stdlib.install(log, level="INFO", loggers=[*SERVER_LOGGERS, "app"], replace=True)
        app.state.log = log
        yield


def request_id_of(request: Request) -> str:
    """The client's X-Request-ID if it is 1 to 200 visible ASCII characters (so that a header
    cannot bloat or break the log lines), else a new one."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 200 and given.isascii() and given.isprintable() and " " not in given:
        return given
    return uuid.uuid4().hex


async def hello(request: Request) -> Response:
    request_id = request_id_of(request)
    with asynclog.contextualize(request_id=request_id):
        await request.app.state.log.info("hello", pid=os.getpid())
    return JSONResponse({"request_id": request_id, "pid": os.getpid()})


async def boom(request: Request) -> Response:
    # No exception handler: Starlette answers 500 and re-raises, and uvicorn logs the
    # traceback as "Exception in ASGI application" on "uvicorn.error".
    raise RuntimeError(f"boom for {request.headers.get('x-request-id')}")


app = Starlette(routes=[Route("/hello", hello), Route("/boom", boom)], lifespan=lifespan)
